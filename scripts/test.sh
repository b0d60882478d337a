#!/usr/bin/env bash
# Quick start, step 2: run the whole test suite. Installs what is missing,
# builds, runs every ctest test (unit, e2e), then the unit tests once more
# under AddressSanitizer + UndefinedBehaviorSanitizer, a short libFuzzer run
# of each parser, then the format check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/node-deps.sh   # optional: the openai/LangChain clients for the world's e2e test
jobs=$(nproc)

echo "== build"
scripts/build.sh
echo "== tests"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== unit tests under ASan+UBSan"
BUILD_DIR=build-asan scripts/build.sh -DRB_ASAN=ON -DRB_UBSAN=ON -DRB_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -L unit

echo "== fuzz (20 s per target)"
scripts/fuzz.sh

echo "== format check"
scripts/format-check.sh

#!/usr/bin/env bash
# Configures and builds rebound into BUILD_DIR (default: build/). Extra
# arguments go to cmake, e.g. scripts/build.sh -DRB_ASAN=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" "${gen[@]}" "$@" >/dev/null
else
    cmake -S . -B "$build" "$@" >/dev/null
fi
cmake --build "$build" -j "$(nproc)"

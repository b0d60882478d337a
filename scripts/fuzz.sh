#!/usr/bin/env bash
# Short libFuzzer run over our parsers of untrusted input, as CI does it:
# builds tests/fuzz/fuzz_*.c with clang, ASan and UBSan into BUILD_DIR
# (default: build-fuzz/), then runs each target for FUZZ_SECONDS (default 20)
# starting from a copy of its seed corpus tests/fuzz/corpus/<name>/ (the repo
# is not modified). Exits 1 when a target crashes, leaks or hangs, and prints
# the reproducer; prints SKIP and exits 0 when clang or its libFuzzer runtime
# is not installed (Debian: clang libclang-rt-14-dev).
#   FUZZ_MAX_LEN  largest input in bytes (default 8192)
#   FUZZ_TARGETS  names to run, e.g. "scenario" (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-20}
max_len=${FUZZ_MAX_LEN:-8192}
case $build in /*) ;; *) build=$root/$build ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rebound-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! command -v clang >/dev/null; then
    echo "fuzz: SKIP: clang is not installed (Debian packages: clang libclang-rt-14-dev)"
    exit 0
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
    >"$tmp/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" \
    >"$tmp/probe.log" 2>&1; then
    echo "fuzz: SKIP: clang cannot link -fsanitize=fuzzer,address,undefined" \
        "(Debian package: libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev):"
    sed 's/^/  /' "$tmp/probe.log" | head -5
    exit 0
fi

echo "== fuzz: build ($build)"
gen=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then
    gen=(-G Ninja)
fi
# Warnings are not errors here: clang warns about things gcc does not (the
# gcc build is the warnings gate).
CC=clang cmake -S . -B "$build" "${gen[@]}" -DCMAKE_C_COMPILER=clang \
    -DRB_FUZZ=ON -DRB_ASAN=ON -DRB_UBSAN=ON -DRB_TESTS=OFF -DRB_BENCH=OFF \
    -DRB_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" ${name#fuzz_} "* ]]; then
        continue
    fi
    targets+=("$name")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no targets match FUZZ_TARGETS='${FUZZ_TARGETS:-}'" >&2
    exit 2
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for name in "${targets[@]}"; do
    short=${name#fuzz_}
    bin=$build/tests/fuzz/$name
    work=$tmp/$short
    artifacts=$build/fuzz-artifacts/$short
    mkdir -p "$work/corpus" "$artifacts"
    if [ -d "tests/fuzz/corpus/$short" ]; then
        cp -R "tests/fuzz/corpus/$short/." "$work/corpus/"
    fi
    echo "== fuzz: $short (${seconds} s, $(find "$work/corpus" -type f | wc -l) seeds," \
        "max_len $max_len)"
    # From an empty folder and with no stdin: whatever file names the input
    # makes up (a scenario's workflow_file) resolve there, and nothing waits
    # on a terminal.
    rc=0
    (cd "$work" && "$bin" -max_total_time="$seconds" -max_len="$max_len" -timeout=60 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        corpus </dev/null >"$work/log" 2>&1) || rc=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|stat::number_of_executed_units' "$work/log" |
        sed 's/^/  /' || true
    if [ "$rc" -ne 0 ]; then
        cp "$work/log" "$artifacts/log"
        echo "fuzz: $short FAILED (exit $rc):"
        # The sanitizer's or libFuzzer's report: what went wrong and where.
        report=$(awk '/==[0-9]+== ?ERROR|runtime error:|ERROR: libFuzzer/ { on = 1 }
            on { print; if (/^SUMMARY:/ || ++n >= 40) exit }' "$work/log")
        [ -n "$report" ] || report=$(tail -n 30 "$work/log")
        printf '%s\n' "$report" | sed 's/^/  /'
        found=0
        while IFS= read -r f; do
            found=1
            echo "fuzz: reproducer: $f"
            echo "fuzz: reproduce with: $bin $f"
        done < <(grep -oE "Test unit written to [^ ]+" "$work/log" | sed 's/^Test unit written to //')
        [ $found -eq 1 ] || echo "fuzz: no reproducer written; full output: $artifacts/log"
        failed+=("$short")
    else
        echo "fuzz: $short ok"
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${seconds} s without a crash"

#!/usr/bin/env bash
# Builds rebound in Release (if needed) and runs the benchmarks: prints the
# machine, the date and the load, then each bench's table of medians.
#
# usage: bench/run.sh [--quick] [more options for the bench programs]
# environment: BUILD_DIR (default build-release), BENCH_WORK (scratch folder
# for the stores; default $BUILD_DIR/bench-work, on the disk being measured).
#
# Every bench/bench_*.c program is run as
#   bench_NAME all --work DIR --rebound PATH [options]
# and prints its own table; bench_runner first, the others after it; then
# bench/suite.sh (`rebound run` on the scenario library, -j 2 and -j 1).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build-release}
work=${BENCH_WORK:-$build/bench-work}

# Build only what is run: the CLI and the bench programs.
gen=()
command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ] && gen=(-G Ninja)
targets=(rebound)
for src in bench/bench_*.c; do
    targets+=("$(basename "$src" .c)")
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DRB_TESTS=OFF \
    -DRB_BENCH=ON && cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"; } \
    >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bench/run.sh: the build failed (above)" >&2
    exit 1
fi

mkdir -p "$work"
rm -rf "${work:?}"/*

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) CPUs, ${cpu:-unknown CPU}, $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
echo "system:     $(uname -sr); $(df -T "$work" | awk 'NR==2{print $2}') at $(df "$work" | awk 'NR==2{print $6}')"
echo "build:      $build (Release), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- runner 2>/dev/null || echo ' + uncommitted runner changes')"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before"
echo

status=0
run_bench() {
    local prog=$1
    shift
    echo "== $(basename "$prog")"
    "$prog" all --work "$work" --rebound "$build/harness/rebound" "$@" || status=1
    echo
}
run_bench "$build/bench/bench_runner" "$@"
for prog in "$build"/bench/bench_*; do
    [ -x "$prog" ] && [ -f "$prog" ] || continue
    [ "$(basename "$prog")" = bench_runner ] && continue
    run_bench "$prog" "$@"
done

# The run engine: the scenario library end to end (bench/suite.sh).
echo "== suite.sh"
bench/suite.sh --rebound "$build/harness/rebound" --work "$work" "$@" || status=1
echo

echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after"
rm -rf "${work:?}"/*
exit $status

#!/usr/bin/env bash
# The run engine's bench: the wall time of `rebound run` on the whole
# scenario library (every trial) at -j 2 and at -j 1, and the harness's
# overhead per trial. Prints the machine and a table; needs jq.
#
# usage: bench/suite.sh [--rebound PATH] [--library DIR] [--jobs "2 1"] [--repeats N]
#                       [--quick]
# environment: BUILD_DIR (default build-release: built when PATH is not given),
# BENCH_WORK (scratch folder; default $BUILD_DIR/bench-work).
#
# Overhead of a trial, from results.json (docs/results.md): its worker's wall
# time (`worker_ms`: fork to reap, as the engine saw it) minus the agent's
# span (first proc.start to last proc.exit, on the same clock): the fork, the
# world's start and stop, the supervisor's setup, reading the journal and
# saving trial.json, the worker's exit. Restart gaps (detect, restart delay,
# spawn) are inside the span: they are the fault's recovery, scored as such.
# Also shown: worker_ms minus the sum of the attempts' lifetimes (the
# restart gaps counted as overhead), and the engine's own serial time at
# -j 1 (suite wall minus every worker's wall: scheduling, reading trials
# back, scoring, writing results), per trial.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build-release}
work=${BENCH_WORK:-$build/bench-work}
rebound="" library=scenarios/library jobs="2 1" repeats=1
while [ $# -gt 0 ]; do
    case $1 in
    --rebound) rebound=$2; shift 2 ;;
    --library) library=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --quick) library=quick; jobs=2; shift ;;
    --work) work=$2; shift 2 ;;
    *) shift ;; # bench/run.sh passes its own options on
    esac
done
command -v jq > /dev/null || { echo "bench/suite.sh: jq is needed" >&2; exit 1; }
if [ -z "$rebound" ]; then
    rebound=$build/harness/rebound
    if [ ! -x "$rebound" ]; then
        gen=()
        command -v ninja > /dev/null && [ ! -f "$build/CMakeCache.txt" ] && gen=(-G Ninja)
        cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DRB_TESTS=OFF > /dev/null
        cmake --build "$build" -j "$(nproc)" --target rebound > /dev/null
    fi
fi
mkdir -p "$work/suite"
if [ "$library" = quick ]; then
    library=$work/suite/quick-lib
    mkdir -p "$library"
    cp scenarios/library/kill-at-step-147.json scenarios/library/tiered-research.json "$library/"
fi
n_files=$(find "$library" -maxdepth 1 -name '*.json' | wc -l)

# overhead FILE: per-trial overhead lines "span_overhead lifetimes_overhead"
# (ms) for every golden and faulted trial of a results.json.
overhead() {
    jq -r '
      def span: [.events[] | select(.kind == "proc.start") | .t_ms] as $s
              | [.events[] | select(.kind == "proc.exit") | .t_ms] as $e
              | if ($s | length) > 0 and ($e | length) > 0 then ($e | max) - ($s | min) else null end;
      def lifetimes: [.events[] | select(.kind == "proc.start" or .kind == "proc.exit")]
              | [range(0; length; 2) as $i | if .[$i + 1] then .[$i + 1].t_ms - .[$i].t_ms else 0 end]
              | add // 0;
      [.trials[] | select(.verdict != "error") | .faulted, .golden]
      | unique_by(.dir)[]
      | select(.worker_ms != null and span != null)
      | "\(.worker_ms - span) \(.worker_ms - lifetimes)"' "$1"
}

# stats: p50, p95 and max of the numbers on stdin (nearest rank).
stats() {
    sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "-"; exit }
        p50 = v[int(NR * 0.50 + 0.999999)]; p95 = v[int(NR * 0.95 + 0.999999)]
        printf "p50 %.1f, p95 %.1f, max %.1f (n %d)\n", p50, p95, v[NR], NR }'
}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) CPUs, ${cpu:-unknown CPU}, $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
echo "rebound:    $rebound ($("$rebound" --version 2>/dev/null | head -n 1 || echo '?')), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "library:    $library ($n_files scenarios)"
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before"
echo
printf '%-6s %-7s %-9s %-8s %-8s %s\n' "-j" "repeat" "wall (s)" "trials" "passed" "exit"
status=0
for j in $jobs; do
    for ((r = 1; r <= repeats; r++)); do
        out=$work/suite/j$j-r$r
        rm -rf "$out"
        code=0
        t0=$(date +%s.%N)
        REBOUND_LIBRARY=$library "$rebound" run --out "$out" -j "$j" > "$out.log" 2>&1 ||
            code=$?
        t1=$(date +%s.%N)
        if [ ! -s "$out/results.json" ]; then
            echo "bench/suite.sh: no results from -j $j: $(tail -n 5 "$out.log")" >&2
            status=1
            continue
        fi
        printf '%-6s %-7s %-9.1f %-8s %-8s %s\n' "$j" "$r" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
            "$(jq .suite.trials "$out/results.json")" "$(jq .suite.passed "$out/results.json")" "$code"
    done
done
echo
for j in $jobs; do
    out=$work/suite/j$j-r1
    [ -s "$out/results.json" ] || continue
    echo "-j $j, overhead per trial (ms), outside the agent's span: $(overhead "$out/results.json" | cut -d' ' -f1 | stats)"
    echo "-j $j, overhead per trial (ms), minus attempt lifetimes:  $(overhead "$out/results.json" | cut -d' ' -f2 | stats)"
    if [ "$j" = 1 ]; then
        jq -r '([.trials[] | .faulted, .golden] | unique_by(.dir) | map(.worker_ms // 0)) as $w
               | "-j 1, engine time per trial (ms): \((.suite.wall_ms - ($w | add)) / ($w | length) * 10 | round / 10) (suite wall \(.suite.wall_ms) ms, workers \($w | add | round) ms, \($w | length) trials)"' \
            "$out/results.json"
    fi
done
echo "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after"
exit $status

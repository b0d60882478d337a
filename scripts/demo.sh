#!/usr/bin/env bash
# The main job: a durable shell agent killed mid-run and resumed. Uses the
# build in BUILD_DIR (default build/) and a store under OUT (default out/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
export REBOUND=${REBOUND:-$PWD/${BUILD_DIR:-build}/harness/rebound}
out=${OUT:-out/demo}
rm -rf "$out" && mkdir -p "$out"
export REBOUND_STORE=$out/store AGENT_TRACE=$out/trace
agent=examples/shell-durable/agent.sh

echo "== 1. an uninterrupted run of 200 steps"
REBOUND_RUN=golden "$agent" 200 | tee "$out/golden.txt"

echo "== 2. the same agent, killed (SIGKILL) during step 147"
: > "$AGENT_TRACE"
export REBOUND_RUN=faulted
# Each step works 20 ms here, so that the kill lands inside step 147.
STEP_SLEEP=0.02 setsid "$agent" 200 > "$out/faulted-1.txt" 2>/dev/null &
pid=$!
for _ in $(seq 1 6000); do   # bounded: at most 60 s
    [ "$(grep -c . "$AGENT_TRACE")" -ge 147 ] && break
    sleep 0.01
done
kill -KILL -- "-$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
echo "   killed during $(tail -n 1 "$AGENT_TRACE"); committed before the kill: $("$REBOUND" runs | awk '$1 == "faulted" { print $3 }') steps"

echo "== 3. started again (attempt 2, told how attempt 1 died): it resumes from the replay log"
REBOUND_ATTEMPT=2 REBOUND_LAST_FAILURE='{"kind":"preemption","form":"kill","signal":9}' \
    "$agent" 200 | tee "$out/faulted-2.txt"
executed=$(grep -c . "$AGENT_TRACE")
echo "   step executions in all: $executed (200 steps; the one in flight at the kill ran twice)"
"$REBOUND" log faulted | sed -n '1,3p;146,152p;/^attempts:/,$p'
if cmp -s "$out/golden.txt" "$out/faulted-2.txt"; then
    echo "== result: same final output as the uninterrupted run; store in $REBOUND_STORE"
else
    echo "== result: FINAL OUTPUT DIFFERS from the uninterrupted run" >&2
    exit 1
fi

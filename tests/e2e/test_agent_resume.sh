#!/usr/bin/env bash
# End to end: `rebound agent` (the built-in agent) against `rebound world` on
# loopback. A small workflow (3 LLM turns of a tool loop, one task step,
# fan-out into 3 research threads of which one repeats another's question)
# runs to its final answer; run again on the same run it executes nothing and
# the world sees no request; killed with SIGKILL mid-run and run again it
# finishes with the golden answer, re-asking at most the one LLM call in
# flight. Then the failure paths: a task step over its memory limit is retried
# with more memory (and parks the run in ignore-failure-context mode), and an
# LLM that only answers 503 parks the run for a human (exit 8).
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

worlds=()
# shellcheck disable=SC2016 # expanded when the cleanup runs
at_exit 'for p in "${worlds[@]}"; do kill -TERM "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done'

# start_world NAME [ARGS...]: starts a world journaling to $tmp/NAME.jsonl,
# sets $url (root URL) and $wpid.
start_world() {
    local name=$1 i
    shift
    "$REBOUND" world --journal "$tmp/$name.jsonl" "$@" > "$tmp/$name.out" \
        2> "$tmp/$name.err" &
    wpid=$!
    worlds+=("$wpid")
    for ((i = 0; i < 200; i++)); do
        grep -q '^world: listening on ' "$tmp/$name.out" && break
        kill -0 "$wpid" 2> /dev/null || fail "world '$name' exited early: $(cat "$tmp/$name.err")"
        sleep 0.05
    done
    url=$(sed -n 's/^world: listening on \(.*\)\/v1$/\1/p' "$tmp/$name.out")
    [[ $url =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "world '$name' printed no URL"
}

# use_world: points the agent at the world started last.
use_world() {
    export OPENAI_BASE_URL=$url/v1 REBOUND_TOOLS_URL=$url/tools
}

# llm_lines FILE: LLM requests in a journal file.
llm_lines() {
    grep -c '"route":"/v1/chat/completions"' "$1" || true
}

cat > "$tmp/small.json" << 'EOF'
{
  "description": "a small workflow for the agent's end-to-end test",
  "rebound": 1,
  "name": "small",
  "agent": {"builtin": {"workflow": {
    "steps": 14, "llm_turns": 6,
    "tasks": [{"step": 5, "alloc_mb": 8}],
    "fanout": {"at_step": 9, "threads": 3, "duplicates": 1}}}},
  "seeds": [1]
}
EOF

# 1. Golden run: exit 0, a final answer, each step executed once.
start_world golden --seed 3
use_world
expect_exit 0 '' rb agent --scenario "$tmp/small.json" --store "$tmp/st1" --run r1
answer=$(head -n 1 "$tmp/out")
[[ $answer == "After "*" tool calls: "* ]] || fail "no final answer printed: '$answer'"
grep -Eq "^agent: run 'r1' attempt 1: [0-9]+ steps: [0-9]+ executed, 0 replayed, 2 cached$" \
    "$tmp/out" || fail "unexpected summary: $(tail -n 1 "$tmp/out")"
for k in llm-001 tool-002 task-005 research-1/tool-009 research-3/llm-011; do
    rb log --store "$tmp/st1" --json r1 | jq -e --arg k "$k" \
        '[.steps[] | select(.step == $k and .status == "committed")] | length == 1' \
        > /dev/null || fail "step '$k' is not committed once"
done
golden_llm=$(llm_lines "$tmp/golden.jsonl")
# 3 LLM turns of the loop and 2 research summaries: the duplicate thread's
# identical call was served from the global cache, not asked again
[ "$golden_llm" -eq 5 ] || fail "the world saw $golden_llm LLM requests; 5 were expected"
repeats=$(grep -c '"repeat":true' "$tmp/golden.jsonl" || true)
[ "$repeats" -eq 0 ] || fail "the golden run repeated $repeats requests"

# 2. The same run again: everything replayed, no request reaches the world.
before=$(wc -l < "$tmp/golden.jsonl")
expect_exit 0 '' rb agent --scenario "$tmp/small.json" --store "$tmp/st1" --run r1
[ "$(head -n 1 "$tmp/out")" = "$answer" ] || fail "the replayed answer differs"
grep -Eq "attempt 2: ([0-9]+) steps: 0 executed, [0-9]+ replayed" "$tmp/out" ||
    fail "the rerun executed steps: $(tail -n 1 "$tmp/out")"
sleep 0.2
[ "$(wc -l < "$tmp/golden.jsonl")" -eq "$before" ] ||
    fail "the rerun sent requests to the world"

# 3. SIGKILL after the 2nd request, then rerun: the golden answer, and at
# most the one LLM call in flight asked again. Latency keeps calls in flight.
start_world killed --seed 3 --latency 150
use_world
"$REBOUND" agent --scenario "$tmp/small.json" --store "$tmp/st2" --run r2 \
    > "$tmp/killed.out" 2> "$tmp/killed.err" &
apid=$!
at_exit "kill -KILL $apid 2> /dev/null || true"
for ((i = 0; i < 400; i++)); do
    [ "$(wc -l < "$tmp/killed.jsonl")" -ge 2 ] && break
    kill -0 "$apid" 2> /dev/null || break
    sleep 0.02
done
kill -KILL "$apid" 2> /dev/null || fail "the agent finished before it could be killed"
wait "$apid" 2> /dev/null || true
[ -s "$tmp/killed.out" ] && fail "the killed agent printed an answer"
expect_exit 0 '' rb agent --scenario "$tmp/small.json" --store "$tmp/st2" --run r2
[ "$(head -n 1 "$tmp/out")" = "$answer" ] ||
    fail "after the kill the answer is '$(head -n 1 "$tmp/out")', not '$answer'"
grep -Eq "attempt 2: [0-9]+ steps: [0-9]+ executed, [1-9][0-9]* replayed" "$tmp/out" ||
    fail "the resumed run replayed nothing: $(tail -n 1 "$tmp/out")"
sleep 0.3 # the journal line of an exchange is written when it ends
llm_repeats=$(grep '"route":"/v1/chat/completions"' "$tmp/killed.jsonl" |
    grep -c '"repeat":true' || true)
[ "$llm_repeats" -le 1 ] || fail "$llm_repeats LLM requests were asked again"
killed_llm=$(llm_lines "$tmp/killed.jsonl")
echo "killed and resumed: $killed_llm LLM requests ($llm_repeats repeated), golden $golden_llm"
[ "$killed_llm" -le $((golden_llm + 1)) ] ||
    fail "the killed run sent $killed_llm LLM requests; golden sent $golden_llm"

# 4. A task over its memory limit: retried with twice the memory until it fits.
cat > "$tmp/oom.json" << 'EOF'
{
  "description": "a task step bigger than its memory limit",
  "rebound": 1,
  "name": "oom",
  "agent": {"builtin": {"workflow": {"steps": 3, "llm_turns": 0,
    "tasks": [{"step": 2, "alloc_mb": 48}]}}},
  "seeds": [1]
}
EOF
expect_exit 0 '' rb agent --scenario "$tmp/oom.json" --store "$tmp/st3" --run o1 \
    --task-mem-mb 16
tries=$(rb log --store "$tmp/st3" --json o1 |
    jq '.steps[] | select(.step == "task-002" and .status == "committed") | .tries')
[ "$tries" -ge 2 ] || fail "the task fitted in 16 MiB at once ($tries tries)"
# ignore-failure-context retries with the same memory, and gives up: parked
expect_exit 8 "parked for a human" rb agent --scenario "$tmp/oom.json" --store "$tmp/st3" \
    --run o2 --task-mem-mb 16 --mode ignore-failure-context
rb escalations --store "$tmp/st3" | grep -q o2 || fail "run 'o2' is not listed as parked"

# 5. An LLM that answers only 503: the run is parked for a human with context.
curl -sS --max-time 10 -o /dev/null -d '{"kind":"server_error","route":"/v1/"}' \
    "$url/_world/faults" || fail "cannot add a fault to the world"
expect_exit 8 "llm-001.*parked for a human|parked for a human.*llm-001" \
    rb agent --scenario "$tmp/small.json" --store "$tmp/st2" --run r3 --tries 2 \
    --backoff-ms 10
rb escalations --store "$tmp/st2" | grep -q r3 || fail "run 'r3' is not listed as parked"
expect_exit 8 "" rb agent --scenario "$tmp/small.json" --store "$tmp/st2" --run r3
# 6. Bad usage: one clear message, exit 2, nothing run.
expect_exit 2 "no scenario" rb agent --store "$tmp/st4"
expect_exit 2 "cannot open '.*nope.json'" rb agent --scenario "$tmp/nope.json" --store "$tmp/st4"
expect_exit 2 "unknown mode 'bogus'" rb agent --scenario "$tmp/small.json" --store "$tmp/st4" \
    --mode bogus
expect_exit 2 "runs its own command" rb agent --store "$tmp/st4" \
    --scenario "$REBOUND_SOURCE_DIR/tests/cases/external-command/scenario.json"

# 7. The wall clock jumps 2 hours forward mid-run (libfaketime): the correct
# agent's lease is on the monotonic clock and holds; wall-clock-lease mode
# thinks its lease expired and stops (exit 9).
faketime_lib=
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
    /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [ -e "$f" ] && faketime_lib=$f && break
done
if ldd "$REBOUND" 2> /dev/null | grep -q libasan; then
    faketime_lib= # AddressSanitizer must come first; a preloaded library breaks it
fi
if [ -z "$faketime_lib" ]; then
    echo "skipping the clock jump: no libfaketime, or a sanitizer build"
    echo "ok"
    exit 0
fi
# a world of its own: write_record's answers count the writes seen before
start_world jump --seed 3 --latency 100
use_world
# jumped MODE RUN: runs the agent with a wall clock that jumps after the
# first request; sets $code
jumped() {
    local i n
    echo "+0" > "$tmp/clock"
    n=$(wc -l < "$tmp/jump.jsonl")
    LD_PRELOAD=$faketime_lib FAKETIME_TIMESTAMP_FILE=$tmp/clock FAKETIME_NO_CACHE=1 \
        FAKETIME_DONT_FAKE_MONOTONIC=1 "$REBOUND" agent --scenario "$tmp/small.json" \
        --store "$tmp/st5" --run "$2" --mode "$1" --lease-ms 600000 \
        > "$tmp/$2.out" 2> "$tmp/$2.err" &
    apid=$!
    for ((i = 0; i < 400; i++)); do
        [ "$(wc -l < "$tmp/jump.jsonl")" -gt "$n" ] && break
        sleep 0.02
    done
    echo "+7200" > "$tmp/clock.new" && mv "$tmp/clock.new" "$tmp/clock"
    for ((i = 0; i < 1000; i++)); do
        kill -0 "$apid" 2> /dev/null || break
        sleep 0.02
    done
    code=0
    wait "$apid" || code=$?
}
jumped correct j1
[ "$code" -eq 0 ] || fail "the correct agent failed after a clock jump: $(cat "$tmp/j1.err")"
[ "$(head -n 1 "$tmp/j1.out")" = "$answer" ] ||
    fail "the clock jump changed the answer: $(cat "$tmp/j1.out")"
jumped wall-clock-lease j2
[ "$code" -eq 9 ] || fail "wall-clock-lease exited $code after a clock jump; 9 was expected"
grep -q "lease on run 'j2' expired" "$tmp/j2.err" || fail "no lease message: $(cat "$tmp/j2.err")"
echo "ok"

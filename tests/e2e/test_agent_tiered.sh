#!/usr/bin/env bash
# End to end: the tiered shape. `rebound agent` runs the library's
# tiered-research scenario (200 workflow steps, 100 LLM calls; a fan-out of
# 2 drivers x 3 coordinators x 5 researchers, each researcher a search tool
# call and an LLM summary, with a duplicate coordinator and a duplicate
# researcher) against `rebound world` on loopback. The golden run finishes,
# every leaf's steps are committed under its path ("d1/c2/r3/llm-066"), and
# the world sees the scenario's LLM calls less those the global cache served
# to duplicates; a rerun executes nothing; killed with SIGKILL inside the
# fan-out and run again, it finishes with the golden answer.
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

scenario=$REBOUND_SOURCE_DIR/scenarios/library/tiered-research.json
worlds=()
# shellcheck disable=SC2016 # expanded when the cleanup runs
at_exit 'for p in "${worlds[@]}"; do kill -TERM "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done'

# start_world NAME [ARGS...]: starts a world journaling to $tmp/NAME.jsonl and
# points the agent at it.
start_world() {
    local name=$1 i url
    shift
    "$REBOUND" world --journal "$tmp/$name.jsonl" "$@" > "$tmp/$name.out" \
        2> "$tmp/$name.err" &
    worlds+=("$!")
    for ((i = 0; i < 200; i++)); do
        grep -q '^world: listening on ' "$tmp/$name.out" && break
        kill -0 "$!" 2> /dev/null || fail "world '$name' exited early: $(cat "$tmp/$name.err")"
        sleep 0.05
    done
    url=$(sed -n 's/^world: listening on \(.*\)\/v1$/\1/p' "$tmp/$name.out")
    [[ $url =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "world '$name' printed no URL"
    export OPENAI_BASE_URL=$url/v1 REBOUND_TOOLS_URL=$url/tools
}

llm_lines() {
    grep -c '"route":"/v1/chat/completions"' "$1" || true
}

# The shape, from the scenario: 30 leaves, of which 2 x 2 x 4 = 16 ask
# distinct questions; 100 LLM calls, of which 30 - 16 = 14 are duplicates'.
jq -e '.agent.builtin.workflow | .steps == 200 and .llm_turns == 100 and
    .fanout.threads * .fanout.each.threads * .fanout.each.each.threads == 30' \
    "$scenario" > /dev/null || fail "the tiered scenario changed shape; update this test"

# 1. Golden run.
start_world golden --seed 3
expect_exit 0 '' rb agent --scenario "$scenario" --store "$tmp/st1" --run t1
answer=$(head -n 1 "$tmp/out")
[[ $answer == "After "* ]] || fail "no final answer printed: '$answer'"
# 200 main-line and leaf steps, plus the 30 leaves' second step; the 14
# duplicate leaves' two calls each come from the cache
grep -Eq "^agent: run 't1' attempt 1: 230 steps: 202 executed, 0 replayed, 28 cached$" \
    "$tmp/out" || fail "unexpected summary: $(tail -n 1 "$tmp/out")"
rb log --store "$tmp/st1" --json t1 > "$tmp/log.json"
leaves=$(jq '[.steps[] | select(.status == "committed") |
    select(.step | test("^d[12]/c[1-3]/r[1-5]/(tool|llm)-0(6[0-9]|[78][0-9])$"))] | length' \
    "$tmp/log.json")
[ "$leaves" -eq 60 ] || fail "$leaves leaf steps committed under their paths; 60 expected"
for k in d1/c1/r1/tool-060 d1/c2/r3/llm-067 d2/c3/r5/llm-089; do
    jq -e --arg k "$k" '[.steps[] | select(.step == $k and .status == "committed")] |
        length == 1' "$tmp/log.json" > /dev/null || fail "step '$k' is not committed once"
done
golden_llm=$(llm_lines "$tmp/golden.jsonl")
[ "$golden_llm" -eq $((100 - 14)) ] ||
    fail "the world saw $golden_llm LLM requests; 86 (100 less 14 cache hits) were expected"

# 2. A rerun executes nothing and sends nothing.
before=$(wc -l < "$tmp/golden.jsonl")
expect_exit 0 '' rb agent --scenario "$scenario" --store "$tmp/st1" --run t1
[ "$(head -n 1 "$tmp/out")" = "$answer" ] || fail "the replayed answer differs"
grep -Eq "attempt 2: 230 steps: 0 executed, 230 replayed, 0 cached$" "$tmp/out" ||
    fail "the rerun executed steps: $(tail -n 1 "$tmp/out")"
sleep 0.2
[ "$(wc -l < "$tmp/golden.jsonl")" -eq "$before" ] || fail "the rerun sent requests"

# 3. SIGKILL once 30 LLM requests were answered (about 24 are the main
# line's before the fan-out), then a rerun: the golden answer.
start_world killed --seed 3 --latency 20
"$REBOUND" agent --scenario "$scenario" --store "$tmp/st2" --run t2 \
    > "$tmp/killed.out" 2> "$tmp/killed.err" &
apid=$!
at_exit "kill -KILL $apid 2> /dev/null || true"
for ((i = 0; i < 1000; i++)); do
    [ "$(llm_lines "$tmp/killed.jsonl")" -ge 30 ] && break
    kill -0 "$apid" 2> /dev/null || break
    sleep 0.02
done
kill -KILL "$apid" 2> /dev/null || fail "the agent finished before it could be killed"
wait "$apid" 2> /dev/null || true
[ -s "$tmp/killed.out" ] && fail "the killed agent printed an answer"
expect_exit 0 '' rb agent --scenario "$scenario" --store "$tmp/st2" --run t2
[ "$(head -n 1 "$tmp/out")" = "$answer" ] ||
    fail "after the kill the answer is '$(head -n 1 "$tmp/out")', not '$answer'"
grep -Eq "attempt 2: 230 steps: [0-9]+ executed, [1-9][0-9]* replayed" "$tmp/out" ||
    fail "the resumed run replayed nothing: $(tail -n 1 "$tmp/out")"
sleep 0.3 # the journal line of an exchange is written when it ends
killed_llm=$(llm_lines "$tmp/killed.jsonl")
echo "killed and resumed: $killed_llm LLM requests, golden $golden_llm"
# at most the calls in flight at the kill (4 workers) are asked again
[ "$killed_llm" -le $((golden_llm + 4)) ] ||
    fail "the killed run sent $killed_llm LLM requests; golden sent $golden_llm"
echo ok

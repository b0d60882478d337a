#!/usr/bin/env bash
# End to end: `rebound audit` on each agent of examples/, run as a black box
# under its default fault (a SIGKILL in the middle of the golden trial: its
# middle LLM call, or its middle step for the shell agents, which make none).
# The verdicts must differ as the agents do: the durable ones recover with
# the golden answer and context, redoing at most the LLM call in flight; the
# naive ones redo everything done before the kill (every LLM call of the
# first attempt is paid again, every e-mail sent twice; the naive shell agent
# runs its first steps again); the forgetful one finishes with its context
# flagged lost, at the LLM request where its history diverged. A golden
# trial recorded by one audit is then reused by another (--golden).
#
# ctest: slow
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
cd "$REBOUND_SOURCE_DIR" # the examples' paths, as a user types them

# audit NAME WANT_EXIT [AUDIT OPTIONS] -- CMD...: audits into $tmp/NAME.
audit() {
    local name=$1 want=$2 code=0
    shift 2
    rb audit --out "$tmp/$name" --name "$name" "$@" > "$tmp/$name.out" \
        2> "$tmp/$name.err" || code=$?
    [ "$code" -eq "$want" ] ||
        fail "$name: exit $code, $want expected: $(cat "$tmp/$name.out" "$tmp/$name.err")"
}

# check NAME JQ-EXPRESSION: the expression holds on NAME's only trial record.
check() {
    jq -e ".trials | length == 1 and (.[0] | $2)" "$tmp/$1/results.json" > /dev/null ||
        fail "$1: '$2' does not hold: $(jq -c '.trials[0] | {outcome, llm, context,
            side_effects, steps_redone, inflight_lost, faults, broken}' \
            "$tmp/$1/results.json")"
}

# says NAME REGEX: NAME's text output has a line matching REGEX.
says() {
    grep -Eq -- "$2" "$tmp/$1.out" || fail "$1: no line /$2/ in: $(cat "$tmp/$1.out")"
}

# 1. The shell agents: step events, no LLM calls; killed at step 10 of 20.
export STEP_SLEEP=0.02
audit shell-durable 0 -- bash examples/shell-durable/agent.sh 20
says shell-durable '^faults: kill@step=10 \(the middle of the golden trial.s 20 steps\)$'
says shell-durable '^shell-durable  seed 1  recovered  PASS$'
says shell-durable '^  steps redone: 0 \(\+1 in flight\)$'
check shell-durable '.outcome == "recovered" and .steps_redone == 0
    and .context.preserved == true and .faults[0].form == "sigkill"'

audit shell-naive 0 -- bash examples/shell-naive/agent.sh 20
check shell-naive '.outcome == "recovered" and .steps_redone == 9 and .inflight_lost == 1'
says shell-naive '^  steps redone: 9 \(\+1 in flight\)$'
unset STEP_SLEEP

if ! command -v python3 > /dev/null; then
    echo "SKIP: python3 is not installed: the Python examples were not audited"
    exit 0
fi

# 2. The Python agents: a black box (no step events), 6 LLM calls in the
# golden trial, killed when the 3rd reaches the world (the world answers each
# after 100 ms, so the kill lands while the call is in flight).
py=(--turns 5 --latency 100)

audit python-durable 0 "${py[@]}" -- python3 examples/python-durable/agent.py
says python-durable '^faults: kill@llm_call=3 \(the middle of the golden trial.s 6 LLM calls\)$'
says python-durable '^python-durable  seed 1  recovered  PASS$'
says python-durable '^  context: preserved$'
says python-durable '^  steps redone: unknown'
check python-durable '.outcome == "recovered" and .context.preserved == true
    and .context.divergence == null and .llm.golden_calls == 6 and .llm.duplicated <= 1
    and .side_effects.doubled == 0 and .side_effects.missing == 0
    and .steps_redone == null and .faults[0].trigger == "llm call 3"
    and (.faults[0].recovery_first_request_ms | type) == "number"'
grep -q "resuming run 'python-durable-s1-faulted' with" \
    "$tmp/python-durable/trials/python-durable-s1-faulted/stderr" ||
    fail "python-durable did not resume from its checkpoint keyed by REBOUND_RUN_ID"

audit python-naive 1 "${py[@]}" -- python3 examples/python-naive/agent.py
says python-naive '^python-naive  seed 1  recovered  FAIL$'
# Every LLM call of the first attempt was made again: each one the world
# answered is a duplicate (the one in flight at the kill may or may not have
# been answered before the agent's socket closed). From the journal: the
# first attempt's calls end where the first request is sent again.
first=$(jq -s '[.[] | select(.route == "/v1/chat/completions")] | sort_by(.seq) as $c
    | ([range(1; $c | length) | select($c[.].hash == $c[0].hash)] | first) as $k
    | [$c[:$k][] | select(.status == 200 and .completed)] | length' \
    "$tmp/python-naive/trials/python-naive-s1-faulted/world.jsonl")
[ "$first" -ge 2 ] || fail "python-naive: the first attempt got $first answers before the kill"
check python-naive ".llm.golden_calls == 6 and .llm.duplicated == $first
    and .llm.tokens_wasted > 0 and .side_effects.doubled >= 1 and .steps_redone == null"
says python-naive '^  broken: .*side effects not exactly once'

audit python-forgetful 1 "${py[@]}" -- python3 examples/python-forgetful/agent.py
says python-forgetful '^python-forgetful  seed 1  degraded  FAIL$'
says python-forgetful '^  context: lost at LLM request [0-9]+ \(attempt 2\): message [0-9]+ .*differs'
check python-forgetful '.outcome == "degraded" and .context.preserved == false
    and .context.divergence.attempt == 2 and .context.divergence.request >= 2
    and (.context.divergence.what | test("message [0-9]+ .*differs"))'

# 3. The golden trial of the durable audit, reused (--no-golden --golden
# RESULTS, as docs/audit.md writes it) from where it was moved to, as a CI
# artifact would be: no golden trial is run, the default kill is placed from
# the recorded one, its wire is read from the moved folder, the verdict is
# the same.
mv "$tmp/python-durable" "$tmp/moved"
audit python-durable 0 "${py[@]}" --no-golden --golden "$tmp/moved/results.json" \
    --out "$tmp/reused" -- python3 examples/python-durable/agent.py
jq -e '.trials[0].outcome == "recovered" and .trials[0].context.preserved == true' \
    "$tmp/reused/results.json" > /dev/null || fail "reused golden: $(cat "$tmp/python-durable.out")"
[ ! -e "$tmp/reused/trials/python-durable-s1-golden" ] ||
    fail "--golden ran a golden trial anyway"
echo "ok"

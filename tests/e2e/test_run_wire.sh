#!/usr/bin/env bash
# End to end: what `rebound run` reads off the wire (the world's journal) and
# the store, with the real built-in agent, the real world on loopback and real
# kills. Over three seeds each:
#   correct agent, killed mid-run     no divergence, at most the call in flight
#                                     asked again
#   drop-history agent, same kill     context lost, with the first point of
#                                     divergence in attempt 2, named on the
#                                     summary's broken line
#   no-replay agent, same kill        LLM calls duplicated, their tokens and cost
#                                     wasted at the scenario's prices
# and once each:
#   ignore-failure-context, task OOM  failure_context_delivered false (the task
#                                     tried again with the same memory); the
#                                     correct agent: true
#   retries exhausted (LLM 503s)      outcome escalated: parked for a human with
#                                     its context, which expect.outcome checks
#   a black box (Python, no steps)    step metrics null, recovery to the first
#                                     new request known, its repeats duplicated
#
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

fixtures=$REBOUND_SOURCE_DIR/tests/e2e/flawed

# with_mode MODE FIXTURE NAME: the fixture with the agent in MODE, three seeds
# and prices, as $tmp/NAME.json.
with_mode() {
    jq --arg m "$1" '.agent.builtin.mode = $m | .seeds = [1, 2, 3]
        | .world.prices = {"prompt": 0.5, "completion": 1.5}' \
        "$fixtures/$2.json" > "$tmp/$3.json"
}

# run_it NAME EXIT: runs $tmp/NAME.json; results in $res, summary in $tmp/NAME.out.
run_it() {
    local code=0
    rb run "$tmp/$1.json" --out "$tmp/o-$1" > "$tmp/$1.out" 2> "$tmp/$1.err" || code=$?
    [ "$code" -eq "$2" ] || fail "$1: exit $code, $2 expected: $(cat "$tmp/$1.out" "$tmp/$1.err")"
    res=$tmp/o-$1/results.json
}

brief() {
    jq -c '[.trials[] | {seed, outcome, llm, tools, divergence: .context.divergence,
            failure_context, escalation, broken}]' "$res"
}

# 1. The correct agent: nothing diverges; the one call in flight at the kill
# may be asked again, nothing more.
with_mode correct kill correct
run_it correct 0
jq -e '[.trials[] | .context.divergence == null and .context.preserved
        and .llm.duplicated <= 1 and .llm.calls >= .llm.golden_calls
        and .llm.golden_calls > 0 and .llm.prompt_tokens > 0
        and .faults[0].recovery_first_request_ms >= 0 and .steps_known]
       | all and length == 3' "$res" > /dev/null || fail "correct: $(brief)"

# 2. drop-history: the conversation sent after the restart lacks the earlier
# turns: the first request of attempt 2 that golden never sent is named,
# with the message that differs.
with_mode drop-history kill drop
run_it drop 1
jq -e '[.trials[] | .outcome == "degraded" and (.context.preserved | not)
        and .context.divergence.attempt == 2 and .context.divergence.request > 0
        and (.context.divergence.what | test("^message [0-9]+ \\(role [a-z]+\\) (differs|missing)"))]
       | all and length == 3' "$res" > /dev/null || fail "drop-history: $(brief)"
grep -Eq '^  broken: .*context_preserved false, expected true: request [0-9]+ \(attempt 2\): message [0-9]+ \(role [a-z]+\)' \
    "$tmp/drop.out" || fail "drop-history: $(cat "$tmp/drop.out")"

# 3. no-replay: every call before the kill is asked again: duplicated, and
# their tokens wasted at the scenario's prices (prompt and completion apart).
with_mode no-replay kill naive
run_it naive 1
jq -e '[.trials[] | .llm.duplicated >= 3 and .llm.tokens_wasted > 0
        and .llm.tokens_wasted == .llm.prompt_tokens_wasted + .llm.completion_tokens_wasted
        and ((.llm.cost_wasted - (.llm.prompt_tokens_wasted * 0.5
              + .llm.completion_tokens_wasted * 1.5) / 1000) | fabs) < 0.000001
        and .llm.calls > .llm.golden_calls and .context.divergence == null]
       | all and length == 3' "$res" > /dev/null || fail "no-replay: $(brief)"

# 4. A task OOM-killed: the correct agent asks for more memory (the failure
# reached the retry); ignore-failure-context tries again with the same.
for m in correct ignore-failure-context; do
    jq --arg m "$m" '.agent.builtin.mode = $m | .seeds = [1]
        | .expect = {"failure_context_delivered": true}' \
        "$fixtures/oom.json" > "$tmp/oom-$m.json"
done
run_it oom-correct 0
jq -e '.trials[0] | .failure_context_delivered == true
       and .failure_context.retries >= 1 and .failure_context.retries_blind == 0' \
    "$res" > /dev/null || fail "oom correct: $(brief)"
run_it oom-ignore-failure-context 1
jq -e '.trials[0] | .failure_context_delivered == false
       and .failure_context.retries_blind >= 1' "$res" > /dev/null ||
    fail "oom ignore-failure-context: $(brief)"
grep -q '^  broken: failure_context_delivered false, expected true: task-006 retried with 64 MiB after an OOM at 64 MiB' \
    "$tmp/oom-ignore-failure-context.out" || fail "$(cat "$tmp/oom-ignore-failure-context.out")"

# 5. Retries run out (every LLM call from the 3rd answers 503): the agent
# parks the run for a human with its context; the outcome is escalated, and
# a scenario that expects it passes.
cat > "$tmp/escalate.json" << 'EOF'
{
  "description": "Every LLM call from the third answers 503: the agent's retries run out and it parks the run for a human, with its context.",
  "rebound": 1,
  "agent": {"builtin": {"workflow": {"steps": 10, "llm_turns": 4}}},
  "faults": [{"kind": "network", "form": "server_error", "at": {"llm_call": 3}, "count": 1000}],
  "restart": {"delay_ms": 0, "max_attempts": 2},
  "expect": {"outcome": "escalated"},
  "seeds": [1]
}
EOF
run_it escalate 0
jq -e '.trials[0] | .outcome == "escalated" and .escalation.context_kept
       and (.escalation.reason | test("failed after [0-9]+ tries"))' "$res" > /dev/null ||
    fail "escalate: $(brief)"
grep -q '^escalate  seed 1  escalated' "$tmp/escalate.out" || fail "$(cat "$tmp/escalate.out")"

# 6. A black box: a Python agent without a replay log and without step
# events, killed when its 3rd LLM request is read; it starts over.
if command -v python3 > /dev/null; then
    cat > "$tmp/blackbox.py" << 'EOF'
import json, os, urllib.request
base = os.environ["OPENAI_BASE_URL"]
msgs = [{"role": "system", "content": "You are a careful researcher."},
        {"role": "user", "content": "Find three facts about rebound."}]
for i in range(5):
    body = json.dumps({"model": "rebound-world", "messages": msgs}).encode()
    req = urllib.request.Request(base + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        ans = json.load(r)
    msgs.append({"role": "assistant", "content": ans["choices"][0]["message"].get("content") or "ok"})
    msgs.append({"role": "user", "content": "Go on (%d)." % i})
print(msgs[-2]["content"])
EOF
    jq -n --arg py "$tmp/blackbox.py" '{
        "description": "A black box killed at its third LLM request.",
        "rebound": 1,
        "agent": {"command": {"argv": ["python3", $py]}},
        "world": {"latency": {"fixed_ms": 30}},
        "faults": [{"kind": "preemption", "form": "sigkill", "at": {"llm_call": 3}}],
        "restart": {"delay_ms": 10, "max_attempts": 3},
        "expect": {"context_preserved": true},
        "seeds": [1]}' > "$tmp/blackbox.json"
    run_it blackbox 0
    jq -e '.trials[0] | .outcome == "recovered" and .steps_known == false
           and .steps_redone == null and .inflight_lost == null
           and .steps_executed == null and .faults[0].inflight == null
           and .faults[0].recovery_ms == null
           and .faults[0].recovery_first_request_ms > 0
           and .llm.duplicated >= 2 and .llm.golden_calls == 5
           and .context.divergence == null' "$res" > /dev/null ||
        fail "black box: $(jq -c '.trials[0] | del(.faulted.events, .golden.events)' "$res")"
    # the summary line gives the recovery the wire shows, said as such
    grep -Eq '^blackbox  seed 1  recovered  recovery [0-9]+ ms to the first new request  redone unknown' \
        "$tmp/blackbox.out" || fail "black box line: $(cat "$tmp/blackbox.out")"
else
    echo "skipping the black box: no python3"
fi
echo ok

#!/usr/bin/env bash
# End to end: `rebound run` on scenarios of the built-in agent (run as
# `rebound agent --scenario FILE`, one more agent command). Killed as step
# 20 of 30 starts, the correct agent recovers with nothing redone and the
# golden answer; the deliberately flawed modes are caught by the metric that
# shows their flaw: no-replay by steps_redone, drop-history by the context,
# no-idempotency by the side effects counted in the world's journal.
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

# scenario MODE [AT [NAME]]: a 30-step workflow with 6 LLM turns, killed at
# step 20 (or at trigger AT), expecting everything.
scenario() {
    local at=${2:-'{"step": 20, "when": "before"}'}
    cat > "$tmp/${3:-$1}.json" << JSON
{"description": "test", "rebound": 1,
 "agent": {"builtin": {"mode": "$1", "workflow": {"steps": 30, "llm_turns": 6}}},
 "world": {"turns": 2},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": $at}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true,
            "failure_context_delivered": true, "side_effects_exactly_once": true},
 "seeds": [1, 2]}
JSON
}

# run MODE EXIT [AT NAME]: runs it, checks the exit code; the record of seed
# 1 in $rec.
run() {
    local code=0 name=${4:-$1}
    scenario "$1" "${3:-}" "$name"
    rb run "$tmp/$name.json" --out "$tmp/o-$name" > "$tmp/$name.out" 2> "$tmp/$name.err" ||
        code=$?
    [ "$code" -eq "$2" ] ||
        fail "$name: exit $code, $2 expected: $(cat "$tmp/$name.out" "$tmp/$name.err")"
    rec=$(jq -c '.trials[0] | del(.faulted.events, .golden.events)' "$tmp/o-$name/results.json")
}

run correct 0
jq -e '.outcome == "recovered" and .steps_redone == 0 and .context.preserved
       and .golden_steps == 30 and .faulted.attempts == 2 and .recovery_ms >= 0
       and .failure_context_delivered' <<< "$rec" > /dev/null || fail "correct: $rec"
grep -q '^suite: 2 trials, 2 passed, 0 failed; resilience score 100$' "$tmp/correct.out" ||
    fail "correct: $(cat "$tmp/correct.out")"
# The answer compared is the agent's, not its closing line of counts.
! grep -q "agent: run .* 30 executed" "$tmp/o-correct/trials/correct-s1-faulted/stdout" ||
    fail "correct: the faulted attempt executed every step"

run no-replay 1
jq -e '.steps_redone >= 15 and .context.preserved' <<< "$rec" > /dev/null ||
    fail "no-replay: $rec"
grep -Eq '^  broken: steps_redone [0-9]+ > max_steps_redone 0$' "$tmp/no-replay.out" ||
    fail "no-replay: $(cat "$tmp/no-replay.out")"

run drop-history 1
jq -e '.outcome == "degraded" and (.context.preserved | not) and .steps_redone == 0' \
    <<< "$rec" > /dev/null || fail "drop-history: $rec"
grep -q 'context_preserved false, expected true' "$tmp/drop-history.out" ||
    fail "drop-history: $(cat "$tmp/drop-history.out")"
# Killed as the 2nd, 3rd and 4th tool requests arrive: the correct agent's
# side effects take effect once (its Idempotency-Key, counted in the world's
# journal), the no-idempotency mode's twice.
for mode in correct no-idempotency; do
    cat > "$tmp/effects-$mode.json" << JSON
{"description": "test", "rebound": 1,
 "agent": {"builtin": {"mode": "$mode", "workflow": {"steps": 30, "llm_turns": 6}}},
 "world": {"turns": 2},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"tool_call": 2}},
            {"kind": "preemption", "form": "sigkill", "at": {"tool_call": 3}},
            {"kind": "preemption", "form": "sigkill", "at": {"tool_call": 4}}],
 "restart": {"delay_ms": 10, "max_attempts": 5},
 "expect": {"outcome": "recovered", "side_effects_exactly_once": true},
 "seeds": [1, 2, 3]}
JSON
done
expect_exit 0 'resilience score 100$' rb run "$tmp/effects-correct.json" --out "$tmp/o-ec"
jq -e '([.trials[] | .side_effects.exactly_once and .faults_fired == 3] | all)
       and ([.trials[].side_effects.total] | add > 0)' "$tmp/o-ec/results.json" > /dev/null ||
    fail "effects-correct: $(jq -c '[.trials[] | .side_effects]' "$tmp/o-ec/results.json")"
code=0
rb run "$tmp/effects-no-idempotency.json" --out "$tmp/o-en" > "$tmp/en.out" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "effects-no-idempotency: exit $code: $(cat "$tmp/en.out")"
jq -e '[.trials[].side_effects.doubled] | add >= 1' "$tmp/o-en/results.json" > /dev/null ||
    fail "effects-no-idempotency: $(jq -c '[.trials[] | .side_effects]' "$tmp/o-en/results.json")"
grep -Eq '^  broken: .*side effects not exactly once: [1-9][0-9]* doubled' "$tmp/en.out" ||
    fail "effects-no-idempotency: $(cat "$tmp/en.out")"
echo ok

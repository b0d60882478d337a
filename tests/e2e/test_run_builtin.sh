#!/usr/bin/env bash
# End to end: `rebound run` on scenarios of the built-in agent (run as
# `rebound agent --scenario FILE`, one more agent command). Killed as step
# 20 of 30 starts, the correct agent recovers with nothing redone and the
# golden answer; the deliberately flawed modes are caught by the metric that
# shows their flaw: no-replay by steps_redone, drop-history by the context.
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

# scenario MODE: a 30-step workflow with 6 LLM turns, killed at step 20.
scenario() {
    cat > "$tmp/$1.json" << JSON
{"description": "test", "rebound": 1,
 "agent": {"builtin": {"mode": "$1", "workflow": {"steps": 30, "llm_turns": 6}}},
 "world": {"turns": 2},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"step": 20, "when": "before"}}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true,
            "failure_context_delivered": true},
 "seeds": [1, 2]}
JSON
}

# run MODE EXIT: runs it, checks the exit code; the record of seed 1 in $rec.
run() {
    local code=0
    scenario "$1"
    rb run "$tmp/$1.json" --out "$tmp/o-$1" > "$tmp/$1.out" 2> "$tmp/$1.err" || code=$?
    [ "$code" -eq "$2" ] || fail "$1: exit $code, $2 expected: $(cat "$tmp/$1.out" "$tmp/$1.err")"
    rec=$(jq -c '.trials[0] | del(.faulted.events, .golden.events)' "$tmp/o-$1/results.json")
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
echo ok

#!/usr/bin/env bash
# End to end: the evaluator catches bad agents. `rebound run` runs the
# built-in agent in each of its deliberately flawed modes against the
# scenarios that expose the flaw (tests/e2e/flawed/), and must flag exactly
# what is wrong: the expectation that breaks, the metric that shows it, and
# nothing unrelated. The correct agent, on the same scenarios over three
# seeds, must be flagged for nothing. Supersedes test_run_builtin.sh.
#
#   no-replay               kill.json    steps_redone > 0, nothing else
#   drop-history            kill.json    outcome degraded, context lost
#   ignore-failure-context  oom.json     failure context not delivered: the task
#                                        tried three times at the same memory,
#                                        the run parked, not finished
#                           oom-limit.json  OOM-killed as a whole in every attempt
#                                        (a crash loop) instead of parked
#   no-idempotency          effects.json a side effect doubled at the world
#   wall-clock-lease        clock.json   stopped by its lease (exit 9) when the
#                                        wall clock jumps
#
# The correct agent also answers a preemption notice (notice.json) by
# committing the step in flight and exiting on its own within the grace.
#
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

fixtures=$REBOUND_SOURCE_DIR/tests/e2e/flawed

# The clock fixture needs libfaketime, which AddressSanitizer cannot run
# under (it must be the first library loaded).
clock=
for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [ -e "$f" ] && clock=clock && break
done
if [ -z "$clock" ] || ldd "$REBOUND" 2> /dev/null | grep -q libasan; then
    echo "skipping the clock fixture: no libfaketime, or a sanitizer build"
    clock=
fi

# with MODE FIXTURE SEEDS: the fixture with the agent in MODE and these seeds
# (a JSON array), as $tmp/MODE-FIXTURE.json.
with_mode() {
    jq --arg m "$1" --argjson s "$3" '.agent.builtin.mode = $m | .seeds = $s' \
        "$fixtures/$2.json" > "$tmp/$1-$2.json"
}

# run_mode MODE FIXTURE SEEDS EXIT: runs it and checks the exit code; its
# results are $tmp/o-MODE-FIXTURE/results.json, its summary $tmp/MODE-FIXTURE.out.
run_mode() {
    local code=0 name=$1-$2
    with_mode "$1" "$2" "$3"
    rb run "$tmp/$name.json" --out "$tmp/o-$name" > "$tmp/$name.out" 2> "$tmp/$name.err" ||
        code=$?
    [ "$code" -eq "$4" ] ||
        fail "$name: exit $code, $4 expected: $(cat "$tmp/$name.out" "$tmp/$name.err")"
    res=$tmp/o-$name/results.json
}

# flags NAME REQUIRED ALLOWED: in every trial of $res, the broken
# expectations (by their first word: outcome, steps_redone,
# context_preserved, side, ...) include every one of REQUIRED and nothing
# beyond REQUIRED and ALLOWED (space-separated lists).
flags() {
    local got
    got=$(jq -c --arg req "$2" --arg ok "$2 $3" '
        def words(s): s | split(" ") | map(select(. != ""));
        [.trials[] | [.broken[] | split(" ")[0] | rtrimstr(":")] | unique
         | (words($req) - .) == [] and (. - words($ok)) == []] | all and length > 0' "$res")
    [ "$got" = true ] ||
        fail "$1: flagged $(jq -c '[.trials[].broken]' "$res"); wanted exactly $2 (maybe also: ${3:-nothing})"
}

# The older test's records: the first trial without its timelines.
first() {
    jq -c '.trials[0] | del(.faulted.events, .golden.events)' "$res"
}

# 1. The correct agent on every fixture, three seeds: nothing flagged.
seeds='[1, 2, 3]'
files=()
for f in kill effects oom oom-limit notice $clock; do
    with_mode correct "$f" "$seeds"
    files+=("$tmp/correct-$f.json")
done
code=0
rb run "${files[@]}" --out "$tmp/o-correct" > "$tmp/correct.out" 2> "$tmp/correct.err" ||
    code=$?
[ "$code" -eq 0 ] || fail "correct: exit $code: $(cat "$tmp/correct.out" "$tmp/correct.err")"
n=$((${#files[@]} * 3))
grep -q "^suite: $n trials, $n passed, 0 failed; resilience score 100$" "$tmp/correct.out" ||
    fail "correct: $(cat "$tmp/correct.out")"
res=$tmp/o-correct/results.json
jq -e '[.trials[] | .verdict == "pass" and .broken == []
        and .faults_fired == .faults_armed and .faults_fired > 0
        and .outcome == (if .scenario == "correct-oom-limit" then "escalated"
                         else "recovered" end)] | all' "$res" > /dev/null ||
    fail "correct: $(jq -c '[.trials[] | {scenario, seed, outcome, broken}]' "$res")"
# killed inside step 19: two attempts, the failure handed over, nothing redone
jq -e '[.trials[] | select(.scenario == "correct-kill") | .steps_redone == 0
        and .context.preserved and .context.divergence == null and .golden_steps == 30
        and .faulted.attempts == 2 and .failure_context_delivered and .recovery_ms >= 0
        and .llm.duplicated <= 1] | all' "$res" > /dev/null ||
    fail "correct-kill: $(jq -c '[.trials[] | select(.scenario == "correct-kill")
        | del(.faulted.events, .golden.events)]' "$res")"
# The answer compared is the agent's, not its closing line of counts.
! grep -q "agent: run .* 30 executed" "$tmp/o-correct/trials/correct-kill-s1-faulted/stdout" ||
    fail "correct-kill: the faulted attempt executed every step"
# the effects were applied at the world, each once, with the kill between
# an effect and its commit
jq -e '[.trials[] | select(.scenario == "correct-effects") | .side_effects.exactly_once
        and .side_effects.total > 0 and .faults_fired == 2] | all' "$res" > /dev/null ||
    fail "correct-effects: $(jq -c '[.trials[] | select(.scenario == "correct-effects")
        | .side_effects]' "$res")"
# the OOM'd task was tried again with more memory, within the attempt
jq -e '[.trials[] | select(.scenario == "correct-oom") | .faulted.attempts == 1 and
        ([.faulted.events[] | select(.kind == "task.end") | [.outcome, .limit]]
         == [["oom", 67108864], ["ok", 134217728]])] | all' "$res" > /dev/null ||
    fail "correct-oom: $(jq -c '[.trials[] | select(.scenario == "correct-oom")
        | [.faulted.events[] | select(.kind == "task.end") | [.outcome, .limit]]]' "$res")"
# OOM-killed as a whole under a limit it cannot raise, the agent is told so
# and parks the run at the next attempt, the failure as context: one OOM kill
jq -e '[.trials[] | select(.scenario == "correct-oom-limit") |
        ([.faults[] | select(.form == "oom-kill")] | length == 1)
        and .escalation.context_kept and .failure_context_delivered] | all' "$res" \
    > /dev/null || fail "correct-oom-limit: $(jq -c '[.trials[] |
        select(.scenario == "correct-oom-limit") | {outcome, escalation, faults}]' "$res")"
# a notice: the step in flight is committed, the agent exits 143 on its own
# (not SIGKILLed when the grace runs out), and nothing is executed twice
jq -e '[.trials[] | select(.scenario == "correct-notice") |
        ([.faulted.events[] | select(.kind == "proc.exit")][0] | .exit_code == 143
         and .signal == 0) and .faults[0].inflight == 0
        and .steps_executed == .golden_steps] | all' "$res" > /dev/null ||
    fail "correct-notice: $(jq -c '[.trials[] | select(.scenario == "correct-notice")
        | {steps_executed, golden_steps, faults,
           exits: [.faulted.events[] | select(.kind == "proc.exit")]}]' "$res")"
if [ -n "$clock" ]; then
    jq -e '[.trials[] | select(.scenario == "correct-clock") | .faulted.attempts == 1]
           | all' "$res" > /dev/null || fail "correct-clock: restarted after the jump"
fi

# 2. no-replay: every committed step runs again after the restart; the only
# thing wrong is the redone work (LLM calls made twice, the same requests).
run_mode no-replay kill '[1, 2]' 1
flags no-replay steps_redone ""
jq -e '[.trials[] | .outcome == "recovered" and .steps_redone >= 15 and .context.preserved
        and .context.divergence == null and .llm.duplicated >= 5] | all' "$res" > /dev/null ||
    fail "no-replay: $(first)"
grep -Eq '^  broken: steps_redone [0-9]+ > max_steps_redone 0$' "$tmp/no-replay-kill.out" ||
    fail "no-replay: $(cat "$tmp/no-replay-kill.out")"

# 3. drop-history: steps replayed, but the conversation sent after the
# restart lacks the earlier turns (the first request to diverge is the
# restarted attempt's), so the answer differs: context lost (and
# with it, maybe, a tool the golden run called: a side effect missing).
run_mode drop-history kill '[1, 2]' 1
flags drop-history "outcome context_preserved" "side"
jq -e '[.trials[] | .outcome == "degraded" and (.context.preserved | not)
        and .context.divergence.attempt == 2 and .steps_redone == 0] | all' "$res" \
    > /dev/null || fail "drop-history: $(first)"
grep -q 'context_preserved false, expected true' "$tmp/drop-history-kill.out" ||
    fail "drop-history: $(cat "$tmp/drop-history-kill.out")"

# 4. ignore-failure-context: the task OOMs, and the agent tries it again
# blindly with the same 64 MiB three times (the failure did not reach the
# retry), then gives up: the run is parked for a human, not finished;
# nothing was redone.
run_mode ignore-failure-context oom '[1]' 1
flags ignore-failure-context "outcome failure_context_delivered" "context_preserved"
jq -e '[.trials[] | .outcome == "escalated" and .failure_context_delivered == false
        and .steps_redone == 0 and
        ([.faulted.events[] | select(.kind == "task.end") | [.outcome, .limit]]
         | length >= 3 and all(. == ["oom", 67108864]))] | all' "$res" > /dev/null ||
    fail "ignore-failure-context: $(first) $(jq -c '[.trials[0].faulted.events[]
        | select(.kind == "task.end") | [.outcome, .limit]]' "$res")"

# ... and, OOM-killed as a whole, it starts again as it was and is killed
# again, until the attempts run out: failed, not escalated.
run_mode ignore-failure-context oom-limit '[1]' 1
flags ignore-failure-context-limit outcome "context_preserved"
jq -e '[.trials[] | .outcome == "failed" and .faulted.attempts == 3 and .escalation == null
        and ([.faults[] | select(.form == "oom-kill")] | length == 3)] | all' "$res" \
    > /dev/null || fail "ignore-failure-context (limit): $(first)"

# 5. no-idempotency: the call killed between its effect and its commit is
# sent again without a key, and the world applies it twice (a record written
# twice answers with another version, so the conversation may differ too).
run_mode no-idempotency effects '[1, 2]' 1
flags no-idempotency side "outcome context_preserved"
jq -e '[.trials[] | .side_effects.doubled >= 1 and .steps_redone == 0] | all' "$res" \
    > /dev/null || fail "no-idempotency: $(jq -c '[.trials[] | .side_effects]' "$res")"
grep -Eq '^  broken: .*side effects not exactly once: [1-9][0-9]* doubled' \
    "$tmp/no-idempotency-effects.out" || fail "no-idempotency: $(cat "$tmp/no-idempotency-effects.out")"

# 6. wall-clock-lease: two hours jump forward, the agent takes its lease for
# expired and stops (exit 9); with one attempt allowed the run is not done.
if [ -n "$clock" ]; then
    run_mode wall-clock-lease clock '[1]' 1
    flags wall-clock-lease outcome "context_preserved side"
    jq -e '[.trials[] | .outcome == "failed" and .faulted.exit_code == 9] | all' "$res" \
        > /dev/null || fail "wall-clock-lease: $(first)"
    grep -q "lease on run '.*' expired" "$tmp/o-wall-clock-lease-clock/trials/wall-clock-lease-clock-s1-faulted/stderr" ||
        fail "wall-clock-lease: $(cat "$tmp/o-wall-clock-lease-clock/trials/wall-clock-lease-clock-s1-faulted/stderr")"
fi
echo ok

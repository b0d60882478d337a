#!/usr/bin/env bash
# End to end: the shipped scenario library (scenarios/library/) as a user runs
# it, `rebound run -j 2` with no path: every scenario passes against the
# built-in agent (exit 0, resilience score 100), every armed fault fired, and
# the library still covers what issue 5 asks of it: every fault kind and form,
# kills before, during and after a step, a fault during recovery, escalations
# and side effects. docs/scenario-library.md lists every file. And it has
# teeth: each deliberately flawed mode of the built-in agent breaks the
# library scenario that checks what it gets wrong.
#
# ctest: slow
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

lib=$REBOUND_SOURCE_DIR/scenarios/library
doc=$REBOUND_SOURCE_DIR/docs/scenario-library.md

# 1. What the library holds, without running it.
n=$(find "$lib" -maxdepth 1 -name '*.json' | wc -l)
[ "$n" -ge 24 ] || fail "the library holds $n scenarios; at least 24 are wanted"
for f in "$lib"/*.json; do
    name=$(basename "$f")
    grep -q "^| \`$name\` |" "$doc" || fail "$name is not listed in docs/scenario-library.md"
    jq -e '(keys_unsorted[0] == "description") and (.description | length > 60)
           and (.expect | length >= 2)' "$f" > /dev/null ||
        fail "$name: description first, saying what it checks, and at least two expectations"
done
# every form of every kind, written or drawn
forms=$(jq -r '.faults[] | select(.kind) | "\(.kind) \(.form)"' "$lib"/*.json | sort -u)
for want in "preemption notice" "preemption sigkill" "preemption freeze" "oom oom-kill" \
    "oom limit" "oom rlimit" "oom task" "network reset" "network refused" "network stall" \
    "network server_error" "network rate_limit" "network truncate" "network slow" \
    "network partition" "clock jump" "clock offset" "clock drift"; do
    grep -qx "$want" <<< "$forms" || fail "no library scenario has a '$want' fault"
done
# has FILTER MESSAGE: some scenario of the library gives FILTER an output.
has() {
    jq -s -e "[.[] | $1] | length > 0" "$lib"/*.json > /dev/null || fail "$2"
}
for when in before during after; do
    has ".faults[] | select(.at.when == \"$when\")" \
        "no library scenario has a fault at a step '$when'"
done
has 'select(.agent.builtin.workflow.steps == 200) | .faults[] | select(.at.step == 147)' \
    "no kill at step 147 of 200"
has 'select([.faults[] | select(.kind == "preemption")] | length >= 2)' \
    "no scenario with repeated kills"
has '.faults[] | select(.random)' "no random schedule"
has 'select(.expect.outcome == "escalated")' "no scenario expects an escalation"
has 'select(.expect.side_effects_exactly_once == true and
            ([.faults[] | select(.at.tool_call)] | length > 0))' \
    "no side-effecting tool killed between effect and commit"

# 2. Run it. A partition needs root and ip; without them that scenario is
# left out (rebound run would refuse it, exit 2).
files=()
for f in "$lib"/*.json; do
    if jq -e '.faults[] | select(.form == "partition")' "$f" > /dev/null &&
        { [ "$(id -u)" -ne 0 ] || ! command -v ip > /dev/null; }; then
        echo "skipping $(basename "$f"): network namespaces need root and ip"
        continue
    fi
    files+=("$f")
done
if [ "${#files[@]}" -eq "$n" ]; then
    # as a user runs it: no path, the library found from the source tree
    args=()
else
    args=("${files[@]}")
fi
code=0
REBOUND_LIBRARY=$lib rb run "${args[@]}" -j 2 --out "$tmp/o" > "$tmp/out" 2> "$tmp/err" ||
    code=$?
[ "$code" -eq 0 ] || fail "the library: exit $code: $(grep -A1 FAIL "$tmp/out"; cat "$tmp/err")"
res=$tmp/o/results.json
trials=$(jq '.suite.trials' "$res")
grep -q "^suite: $trials trials, $trials passed, 0 failed; resilience score 100$" "$tmp/out" ||
    fail "the library: $(tail -1 "$tmp/out")"
[ "$(jq '[.trials[].scenario] | unique | length' "$res")" -eq "${#files[@]}" ] ||
    fail "not every scenario ran: $(jq -c '[.trials[].scenario] | unique' "$res")"
jq -e '[.trials[] | .verdict == "pass" and .broken == [] and .faults_fired == .faults_armed]
       | all' "$res" > /dev/null ||
    fail "$(jq -c '[.trials[] | select(.verdict != "pass") | {scenario, seed, broken}]' "$res")"
# a fault fired in every scenario but those whose faults all stand from the
# start and write no event (clock offset and drift, RLIMIT_AS)
jq -e '[.trials[] | select(.faults_armed == 0) | .scenario] | unique
       == ["clock-drift", "clock-offset", "oom-rlimit-escalates"]' "$res" > /dev/null ||
    fail "$(jq -c '[.trials[] | select(.faults_fired == 0) | .scenario]' "$res")"
# a run parked for a human is not restarted: in every escalated trial the
# attempt that exited 8 (parked) is the last one
jq -e '[.trials[] | select(.trial == "faulted" and .outcome == "escalated")
        | [.faulted.events[] | select(.kind == "proc.exit") | .exit_code]
        | (.[-1] == 8 and (map(select(. == 8)) | length) == 1)] | length >= 4 and all' \
    "$res" > /dev/null ||
    fail "an escalated run was restarted after exit 8: $(jq -c '[.trials[] | select(.outcome == "escalated") | {scenario, exits: [.faulted.events[] | select(.kind == "proc.exit") | .exit_code]}]' "$res")"

# 3. The library has teeth: each deliberately flawed agent mode breaks the
# library scenario that checks what it gets wrong (one seed each; copies of
# the scenarios with the mode set, in the library's folder terms).
# teeth MODE SCENARIO REGEX: the flawed run exits 1 and a broken line
# matches REGEX.
teeth() {
    local code=0
    jq --arg m "$1" '.agent.builtin.mode = $m | .seeds = [.seeds[0]] | .trials = 1' \
        "$lib/$2.json" > "$tmp/$1-$2.json"
    rb run "$tmp/$1-$2.json" --out "$tmp/o-$1" > "$tmp/$1.out" 2> "$tmp/$1.err" || code=$?
    [ "$code" -eq 1 ] || fail "$1 on $2: exit $code, 1 expected: $(cat "$tmp/$1.out" "$tmp/$1.err")"
    grep -Eq "^  broken: .*$3" "$tmp/$1.out" || fail "$1 on $2: $(cat "$tmp/$1.out")"
}
teeth no-replay kill-at-step-147 'steps_redone [0-9]+ > max_steps_redone 0'
teeth drop-history kill-mid-llm-call 'context_preserved false, expected true'
teeth no-idempotency kill-between-effect-and-commit 'side effects not exactly once: [1-9]'
teeth ignore-failure-context oom-in-task-step 'failure_context_delivered false, expected true'
if ! ldd "$REBOUND" 2> /dev/null | grep -q libasan; then
    teeth wall-clock-lease clock-jump-forward 'outcome: failed, expected recovered'
fi
echo ok

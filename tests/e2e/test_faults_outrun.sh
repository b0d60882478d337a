#!/bin/bash
# test_faults_outrun.sh - an agent outruns a kill (tests/e2e/outrun/): its
# first attempt writes steps 1-4 in one write, so step 4's commit is in the
# pipe when the kill for step 3's commit is sent. The second fault (at step
# 4's commit) must not fire into that dying attempt (where it tests nothing)
# nor be lost (step 4 is replayed, never committed again): it fires when the
# second attempt replays step 4, so the run has three attempts and each fault
# ends one. Runs `rebound run` on the folder (its scenario.json) with a
# command agent, three seeds.
#
# ctest-timeout: 120
source "$(dirname "$0")/e2e_lib.sh"

dir="$REBOUND_SOURCE_DIR/tests/e2e/outrun"
rb run "$dir" --out "$tmp/out" -j 2 >"$tmp/summary" ||
    fail "rebound run failed: $(cat "$tmp/summary")"
res="$tmp/out/results.json"
n=$(jq '[.trials[] | select(.trial == "faulted")] | length' "$res")
[[ $n == 3 ]] || fail "expected 3 faulted trials, got $n"
for seed in 1 2 3; do
    t=".trials[] | select(.trial == \"faulted\" and .seed == $seed)"
    fired=$(jq "$t | .faults_fired" "$res")
    attempts=$(jq "$t | .faulted.attempts" "$res")
    # proc.start and fault.inject in order: start, inject, start, inject, start
    order=$(jq -r "[$t | .faulted.events[] | select(.kind == \"proc.start\" or .kind == \"fault.inject\") | .kind] | join(\" \")" "$res")
    [[ $fired == 2 ]] || fail "seed $seed: $fired faults fired, expected 2"
    [[ $attempts == 3 ]] || fail "seed $seed: $attempts attempts, expected 3 (each fault ends one): $order"
    [[ $order == "proc.start fault.inject proc.start fault.inject proc.start" ]] ||
        fail "seed $seed: the second fault did not hit the second attempt: $order"
    # ... on the replay of step 4, the point of the run where it was due
    prev=$(jq -r "[$t | .faulted.events[] | select(.kind == \"fault.inject\" or .kind == \"step.replay\")] | map(.kind + \":\" + (.step // \"\")) | join(\" \")" "$res")
    [[ $prev == *"step.replay:s4 fault.inject:"* ]] ||
        fail "seed $seed: the second fault did not follow step 4's replay: $prev"
done
grep -q "3 passed" "$tmp/summary" || fail "not every trial passed: $(cat "$tmp/summary")"
echo ok

#!/usr/bin/env bash
# End to end: random fault schedules. A schedule of every kind (3 faults in
# steps 5..30) drawn per trial seed runs against the built-in agent: every
# trial recovers with its context and every drawn fault fires. The drawn
# faults are in each trial's timeline (a fault.schedule event): the same
# seed draws the same faults on a second run, other seeds draw others, and a
# schedule with its own seed draws the same faults for every trial seed. A
# time window serves an agent that writes no step events.
#
# ctest-timeout: 150
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

# scenario NAME SEED_KEY
scenario() {
    cat > "$tmp/$1.json" << JSON
{"description": "a random schedule", "rebound": 1,
 "agent": {"builtin": {"workflow": {"steps": 36, "llm_turns": 10}}},
 "world": {"turns": 1, "latency": {"fixed_ms": 2}},
 "faults": [{"random": {"kinds": ["preemption", "oom", "network", "clock"],
                        "count": 3, "window_steps": [5, 30]$2}}],
 "restart": {"delay_ms": 5, "max_attempts": 5},
 "expect": {"outcome": "recovered", "context_preserved": true},
 "seeds": [1, 2, 3], "deadline_ms": 60000}
JSON
}

# run NAME OUT: runs scenario NAME; every trial must pass.
run() {
    local code=0
    rb run "$tmp/$1.json" --out "$tmp/$2" > "$tmp/$2.out" 2> "$tmp/$2.err" || code=$?
    [ "$code" -eq 0 ] || fail "$1: exit $code: $(cat "$tmp/$2.out" "$tmp/$2.err")"
    jq -e '[.trials[] | select(.trial == "faulted")] | length == 3 and all(
        .faults_armed == 3 and .faults_fired == 3 and .outcome == "recovered")' \
        "$tmp/$2/results.json" > /dev/null ||
        fail "$1: $(jq -c '[.trials[] | del(.faulted, .golden)]' "$tmp/$2/results.json")"
}

# schedules OUT: "seed: faults" for each faulted trial, in seed order.
schedules() {
    jq -c '[.trials[] | select(.trial == "faulted")] | sort_by(.seed)[]
        | "\(.seed): \([.faulted.events[] | select(.kind == "fault.schedule")][0].faults)"' \
        "$tmp/$1/results.json"
}

scenario drawn ""
run drawn a
run drawn b
schedules a > "$tmp/a.txt"
schedules b > "$tmp/b.txt"
[ "$(wc -l < "$tmp/a.txt")" -eq 3 ] || fail "not one schedule per trial: $(cat "$tmp/a.txt")"
cmp -s "$tmp/a.txt" "$tmp/b.txt" ||
    fail "the same seeds drew other faults: $(diff "$tmp/a.txt" "$tmp/b.txt")"
grep -q 'null' "$tmp/a.txt" && fail "a trial has no fault.schedule event: $(cat "$tmp/a.txt")"
[ "$(cut -d' ' -f2- "$tmp/a.txt" | sort -u | wc -l)" -ge 2 ] ||
    fail "three seeds drew the same faults: $(cat "$tmp/a.txt")"
# every drawn fault is a fault of the format, triggered in the window
jq -e '[.trials[] | select(.trial == "faulted") | .faulted.events[]
    | select(.kind == "fault.schedule") | .faults[]] | length == 9 and all(
      (.kind | IN("preemption", "oom", "network", "clock")) and .random == 0
      and ((.at.step // 0) as $s | .at.llm_call != null or ($s >= 5 and $s <= 30)))' \
    "$tmp/a/results.json" > /dev/null || fail "drawn faults: $(cat "$tmp/a.txt")"
# the record says it too (faults_drawn), as the timeline does
jq -e '[.trials[] | select(.trial == "faulted")] | all(.faults_drawn
    == [.faulted.events[] | select(.kind == "fault.schedule")][0].faults)' \
    "$tmp/a/results.json" > /dev/null || fail "faults_drawn differs from the timeline"
# what the timeline says was drawn is what was injected
jq -e '[.trials[] | select(.trial == "faulted")] | all(
    ([.faulted.events[] | select(.kind == "fault.schedule")][0].faults | length)
    == (.faults | length))' "$tmp/a/results.json" > /dev/null ||
    fail "drawn and injected faults differ"
echo "drawn:"
cat "$tmp/a.txt"

# A time window, for an agent that writes no step events: a shell agent
# making LLM calls with curl (which retries) meets the world faults drawn
# 100..400 ms after its start, every one of them, and recovers.
cat > "$tmp/calls.sh" << 'SH'
#!/usr/bin/env bash
set -euo pipefail
state=start
for ((i = 1; i <= 40; i++)); do
    state=$(curl -sSf --max-time 20 --retry 6 --retry-delay 0 --retry-all-errors \
        -H "content-type: application/json" \
        -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$state $i\"}]}" \
        "$OPENAI_BASE_URL/chat/completions" | sha256sum | cut -c1-16)
done
echo "final: $state"
SH
chmod +x "$tmp/calls.sh"
cat > "$tmp/timed.json" << 'JSON'
{"description": "a random schedule in a time window", "rebound": 1,
 "agent": {"command": {"argv": ["./calls.sh"]}},
 "world": {"turns": 0, "latency": {"fixed_ms": 25}},
 "faults": [{"random": {"kinds": ["network"], "count": 2, "window_ms": [100, 400]}}],
 "expect": {"outcome": "recovered"},
 "seeds": [1, 2], "deadline_ms": 60000}
JSON
code=0
rb run "$tmp/timed.json" --out "$tmp/t" > "$tmp/t.out" 2> "$tmp/t.err" || code=$?
[ "$code" -eq 0 ] || fail "time window: exit $code: $(cat "$tmp/t.out" "$tmp/t.err")"
jq -e '[.trials[] | select(.trial == "faulted")] | length == 2 and all(
    .faults_armed == 2 and .faults_fired == 2 and (.faults_drawn | length) == 2
    and all(.faults_drawn[]; .at.time_ms >= 100 and .at.time_ms <= 400)
    and all(.faults[]; .trigger | test("^time [0-9]+ms$")))' "$tmp/t/results.json" > /dev/null ||
    fail "time window: $(jq -c '[.trials[] | del(.faulted, .golden)]' "$tmp/t/results.json")"

# The schedule's own seed: every trial seed draws the same faults.
scenario fixed ', "seed": 42'
run fixed c
[ "$(schedules c | cut -d' ' -f2- | sort -u | wc -l)" -eq 1 ] ||
    fail "a schedule with its own seed drew different faults: $(schedules c)"
echo "ok"

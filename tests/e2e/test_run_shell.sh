#!/usr/bin/env bash
# End to end: `rebound run` on scenarios whose agent is an external command.
# The durable shell agent (examples/shell-durable, `rebound step`) killed
# inside step 20 of 40 recovers: nothing redone beyond the step in flight,
# the golden output, a measured recovery; results.json says so. The same
# work without durability (examples/shell-naive) redoes the steps done before
# the kill, and its `max_steps_redone: 0` makes rebound exit 1 naming the
# metric, the limit and the value. A preemption notice at a time trigger, a
# deadline (outcome hung), a memory limit (the watchdog's OOM kill), clock
# faults, a broken scenario (exit 2, FILE:LINE:COL), a task fault on a
# command agent and a missing agent program (exit 2), and the library run
# when no scenario is given, complete it.
#
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
src=$REBOUND_SOURCE_DIR

# scenario FILE AGENT FAULT EXPECT [DEADLINE_MS]: writes a 40-step scenario.
scenario() {
    cat > "$1" << JSON
{
  "description": "test",
  "rebound": 1,
  "agent": {"command": {"argv": ["bash", "$2", "40"], "cwd": "$src",
                        "env": {"STEP_SLEEP": "0.02"}}},
  "faults": [$3],
  "restart": {"delay_ms": 10, "max_attempts": 3},
  "expect": $4,
  "seeds": [7],
  "deadline_ms": ${5:-30000}
}
JSON
}

kill20='{"kind": "preemption", "form": "sigkill", "at": {"step": 20, "when": "during", "delay_ms": 10}}'
strict='{"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true, "failure_context_delivered": true}'

# 1. The durable agent recovers.
scenario "$tmp/durable.json" examples/shell-durable/agent.sh "$kill20" "$strict"
code=0
rb run "$tmp/durable.json" --out "$tmp/o1" > "$tmp/o1.out" 2> "$tmp/o1.err" || code=$?
[ "$code" -eq 0 ] || fail "durable: exit $code: $(cat "$tmp/o1.out" "$tmp/o1.err")"
grep -Eq '^durable  seed 7  recovered .* redone 0 .* context preserved  PASS$' "$tmp/o1.out" ||
    fail "durable: summary line: $(cat "$tmp/o1.out")"
grep -q '^suite: 1 trial, 1 passed, 0 failed; resilience score 100$' "$tmp/o1.out" ||
    fail "durable: suite line: $(cat "$tmp/o1.out")"
r=$tmp/o1/results.json
jq -e '.schema == 1 and (.trials | length) == 1' "$r" > /dev/null || fail "results: $(head -c 300 "$r")"
t='.trials[0]'
jq -e "$t.outcome == \"recovered\" and $t.steps_redone == 0 and $t.inflight_lost <= 1
       and $t.context.preserved == true and $t.recovery_ms > 0 and $t.verdict == \"pass\"
       and $t.golden_steps == 40 and $t.faults_fired == 1
       and $t.faults[0].form == \"sigkill\" and $t.faults[0].detect_ms >= 0
       and $t.faults[0].restart_ms >= 0 and $t.failure_context_delivered == true
       and $t.faulted.attempts == 2 and $t.golden.attempts == 1" "$r" > /dev/null ||
    fail "durable: metrics: $(jq -c "$t | del(.faulted, .golden)" "$r")"
# The timeline holds the kill and the agent's steps, on one clock.
jq -e "[$t.faulted.events[] | select(.kind == \"fault.inject\")] | length == 1" "$r" \
    > /dev/null || fail "durable: no fault.inject in the timeline"
jq -e "[$t.faulted.events[] | select(.kind == \"step.replay\")] | length >= 18" "$r" \
    > /dev/null || fail "durable: the restarted attempt did not replay"
grep -q '^final: ' "$tmp/o1/trials/durable-s7-golden/stdout" || fail "durable: golden stdout"

# 2. The naive agent redoes the work before the kill: rebound exits 1.
scenario "$tmp/naive.json" examples/shell-naive/agent.sh "$kill20" "$strict"
code=0
rb run "$tmp/naive.json" --out "$tmp/o2" > "$tmp/o2.out" 2> "$tmp/o2.err" || code=$?
[ "$code" -eq 1 ] || fail "naive: exit $code, 1 expected: $(cat "$tmp/o2.out" "$tmp/o2.err")"
t='.trials[0]'
r=$tmp/o2/results.json
redone=$(jq "$t.steps_redone" "$r")
[ "$redone" -ge 17 ] && [ "$redone" -le 21 ] ||
    fail "naive: steps_redone $redone, about 19 expected: $(jq -c "$t | del(.faulted, .golden)" "$r")"
jq -e "$t.verdict == \"fail\" and $t.outcome == \"recovered\" and $t.context.preserved" \
    "$r" > /dev/null || fail "naive: $(jq -c "$t | del(.faulted, .golden)" "$r")"
grep -Eq "^  broken: steps_redone $redone > max_steps_redone 0$" "$tmp/o2.out" ||
    fail "naive: the broken expectation is not named: $(cat "$tmp/o2.out")"
grep -q 'resilience score 0$' "$tmp/o2.out" || fail "naive: suite: $(cat "$tmp/o2.out")"

# 3. A preemption notice at a time trigger: SIGTERM, then SIGKILL after the
# grace; the durable agent still recovers.
notice='{"kind": "preemption", "form": "notice", "grace_ms": 100, "at": {"time_ms": 300}}'
scenario "$tmp/notice.json" examples/shell-durable/agent.sh "$notice" \
    '{"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true}'
code=0
rb run "$tmp/notice.json" --out "$tmp/o3" > "$tmp/o3.out" 2> "$tmp/o3.err" || code=$?
[ "$code" -eq 0 ] || fail "notice: exit $code: $(cat "$tmp/o3.out" "$tmp/o3.err")"
jq -e '.trials[0].faults[0].form == "notice" and .trials[0].faults[0].trigger == "time 300ms"
       and .trials[0].faulted.attempts == 2' "$tmp/o3/results.json" > /dev/null ||
    fail "notice: $(jq -c '.trials[0] | del(.faulted, .golden)' "$tmp/o3/results.json")"

# 4. An agent that outlives the deadline is hung; its expectation breaks.
cat > "$tmp/hung.json" << 'JSON'
{"description": "hangs", "rebound": 1,
 "agent": {"command": {"argv": ["sleep", "30"]}},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"time_ms": 50}}],
 "expect": {"outcome": "recovered"}, "deadline_ms": 400}
JSON
code=0
rb run "$tmp/hung.json" --out "$tmp/o4" > "$tmp/o4.out" 2> "$tmp/o4.err" || code=$?
[ "$code" -eq 1 ] || fail "hung: exit $code: $(cat "$tmp/o4.out" "$tmp/o4.err")"
jq -e '.trials[0].outcome == "hung"' "$tmp/o4/results.json" > /dev/null ||
    fail "hung: $(jq -c '.trials[0] | del(.faulted, .golden)' "$tmp/o4/results.json")"
grep -q 'outcome: hung, expected recovered' "$tmp/o4.out" || fail "hung: $(cat "$tmp/o4.out")"

# 6. A memory limit on the agent: step 3 of the first attempt outgrows it,
# the watchdog kills the group (an OOM kill), the restart replays 1-2 and
# finishes with the golden output.
cat > "$tmp/mem-agent.sh" << 'SH'
#!/usr/bin/env bash
set -euo pipefail
state=start
for ((i = 1; i <= 6; i++)); do
    state=$("$REBOUND" step --name "s-$i" -- bash -c '
        if [ "$2" = 3 ] && [ "$REBOUND_ATTEMPT" = 1 ]; then
            big=$(head -c 300000000 /dev/zero | tr "\0" a); echo "${#big}" >&2
        fi
        printf "%s" "$1|$2" | sha256sum | cut -c1-16' _ "$state" "$i")
done
echo "final: $state"
SH
chmod +x "$tmp/mem-agent.sh"
cat > "$tmp/mem.json" << 'JSON'
{"description": "oom", "rebound": 1, "agent": {"command": {"argv": ["./mem-agent.sh"]}},
 "faults": [{"kind": "oom", "form": "limit", "limit_mb": 150, "mechanism": "watchdog"}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true,
            "failure_context_delivered": true}, "deadline_ms": 30000}
JSON
code=0
rb run "$tmp/mem.json" --out "$tmp/o9" > "$tmp/o9.out" 2> "$tmp/o9.err" || code=$?
[ "$code" -eq 0 ] || fail "mem: exit $code: $(cat "$tmp/o9.out" "$tmp/o9.err")"
jq -e '.trials[0] | .faults_fired == 1 and .faults[0].form == "oom-kill"
       and .faults[0].mechanism == "watchdog"
       and .faults[0].inflight_step == "s-3" and .faulted.attempts == 2
       and .steps_redone == 0 and .context.preserved' "$tmp/o9/results.json" > /dev/null ||
    fail "mem: $(jq -c '.trials[0] | del(.faulted, .golden)' "$tmp/o9/results.json")"

# 7. Clock faults, from an output folder given relative to where rebound
# runs (the agent runs elsewhere): the agent's clock is a day ahead from the
# start, jumps an hour back after step 5, and a kill in step 7 is survived.
# (Skipped in a sanitizer build: AddressSanitizer must come first, and the
# agent's `rebound step` would get libfaketime preloaded before it.)
if { [ -n "${REBOUND_FAKETIME_LIB:-}" ] ||
    compgen -G '/usr/lib/*/faketime/libfaketime.so.1' > /dev/null; } &&
    ! ldd "$REBOUND" 2> /dev/null | grep -q libasan; then
    mkdir "$tmp/seen"
    cat > "$tmp/clock.json" << JSON
{"description": "clock", "rebound": 1,
 "agent": {"command": {"argv": ["bash", "-c",
    "date +%s > \\"\$CLOCK_DIR/\$REBOUND_TRIAL-\$REBOUND_ATTEMPT\\"; exec examples/shell-durable/agent.sh 10"],
    "cwd": "$src", "env": {"CLOCK_DIR": "$tmp/seen", "STEP_SLEEP": "0.02"}}},
 "faults": [{"kind": "clock", "form": "offset", "offset_s": 86400},
            {"kind": "clock", "form": "jump", "jump_s": -3600, "at": {"step": 5, "when": "after"}},
            {"kind": "preemption", "form": "sigkill", "at": {"step": 7, "when": "during", "delay_ms": 5}}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true},
 "deadline_ms": 30000}
JSON
    code=0
    (cd "$tmp" && "$REBOUND" run clock.json --out o10 > clock.out 2> clock.err) || code=$?
    [ "$code" -eq 0 ] || fail "clock: exit $code: $(cat "$tmp/clock.out" "$tmp/clock.err")"
    now=$(date +%s)
    g=$(cat "$tmp/seen/golden-1") f1=$(cat "$tmp/seen/faulted-1") f2=$(cat "$tmp/seen/faulted-2")
    [ $((g - now)) -lt 600 ] && [ $((f1 - now)) -gt 80000 ] && [ $((f2 - f1)) -lt -3000 ] ||
        fail "clock: the agent saw golden $g, faulted $f1 then $f2 (now $now)"
    jq -e '.trials[0] | .faults_fired == 2 and .faults[0].form == "clock-jump"
           and .faulted.attempts == 2' "$tmp/o10/results.json" > /dev/null ||
        fail "clock: $(jq -c '.trials[0] | del(.faulted, .golden)' "$tmp/o10/results.json")"
else
    echo "skipped the clock faults: no libfaketime, or a sanitizer build" >&2
fi

# 5. Bad input: exit 2 with a position, a clear message, nothing written.
printf '{\n  "rebound": 1,\n  "agent": {"command": {"argv": ["true"]}},\n  "bogus": 3\n}\n' \
    > "$tmp/broken.json"
code=0
rb run "$tmp/broken.json" --out "$tmp/o5" > "$tmp/o5.out" 2> "$tmp/o5.err" || code=$?
[ "$code" -eq 2 ] || fail "broken: exit $code: $(cat "$tmp/o5.err")"
grep -Eq "^$tmp/broken.json:4:3: .*bogus" "$tmp/o5.err" || fail "broken: $(cat "$tmp/o5.err")"
[ ! -e "$tmp/o5/results.json" ] || fail "broken: results were written"

scenario "$tmp/offset.json" examples/shell-durable/agent.sh \
    '{"kind": "oom", "form": "task", "limit_mb": 64, "at": {"step": 3}}' '{}'
code=0
rb run "$tmp/offset.json" --out "$tmp/o6" > "$tmp/o6.out" 2> "$tmp/o6.err" || code=$?
[ "$code" -eq 2 ] || fail "offset: exit $code: $(cat "$tmp/o6.err")"
grep -Eq "^rebound: run: $tmp/offset.json:[0-9]+: an oom 'task' fault needs the built-in agent \(its task steps\)$" \
    "$tmp/o6.err" || fail "offset: $(cat "$tmp/o6.err")"

cat > "$tmp/noprog.json" << 'JSON'
{"description": "missing", "rebound": 1,
 "agent": {"command": {"argv": ["rebound-no-such-agent"]}}}
JSON
expect_exit 2 "cannot start agent 'rebound-no-such-agent': not found on PATH" \
    rb run "$tmp/noprog.json" --out "$tmp/o7"
[ ! -e "$tmp/o7" ] || fail "noprog: an output folder was made"
expect_exit 2 "give --out" rb run "$tmp/durable.json"
mkdir "$tmp/empty-lib"
REBOUND_LIBRARY=$tmp/empty-lib expect_exit 2 "no scenarios in the library" \
    rb run --out "$tmp/o8"

# 8. With no scenario, the library ($REBOUND_LIBRARY here) is run.
mkdir "$tmp/lib"
cp "$tmp/durable.json" "$tmp/lib/"
REBOUND_LIBRARY=$tmp/lib expect_exit 0 '^durable  seed 7  recovered .*PASS$' \
    rb run --out "$tmp/o11"
echo ok

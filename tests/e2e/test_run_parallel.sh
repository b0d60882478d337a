#!/usr/bin/env bash
# End to end: `rebound run -j N` runs trials at once, each in its own worker
# process, folder, store and world. 1. Two trials that can only finish
# together (each waits for the other's marker) pass under -j 3, and the
# scenario that finished last is still printed first: lines and records keep
# scenario and seed order. 2. -j 1 and -j 4 print the same lines in the same
# order. 3. --baseline no-replay runs each faulted trial again without the
# replay log and reports what replay saved. 4. Ctrl-C (SIGINT) under -j 2
# stops both running trials, writes valid partial results (suite.complete
# false), exits 130 and leaves nothing running; rebound killed outright
# leaves nothing running either. 5. Not a terminal: no escape codes at all;
# a terminal (script(1)): a progress line and PASS in colour, and no colour
# under NO_COLOR.
#
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

command -v jq > /dev/null || fail "jq is needed"
mkdir -p "$tmp/rdv"

# An agent that waits for a marker file another trial makes (bounded), and
# is killed once in its faulted trial.
cat > "$tmp/rdv-agent.sh" << 'SH'
#!/usr/bin/env bash
set -eu
if [ "$REBOUND_TRIAL" = golden ]; then
    : > "$RDV/$ROLE-golden-started"
    if [ -n "${WAIT_FOR:-}" ]; then
        for ((i = 0; i < 300; i++)); do
            [ -e "$RDV/$WAIT_FOR" ] && break
            sleep 0.1
        done
        [ -e "$RDV/$WAIT_FOR" ] || { echo "no $WAIT_FOR: trials did not run at once" >&2; exit 3; }
    fi
elif [ "${REBOUND_ATTEMPT:-1}" = 1 ]; then
    sleep 30 # the fault kills it
fi
echo "answer of $ROLE"
SH
chmod +x "$tmp/rdv-agent.sh"

# rdv NAME ROLE WAIT_FOR: a scenario of that agent, a kill at 300 ms.
rdv() {
    cat > "$tmp/$1.json" << JSON
{"description": "parallel", "rebound": 1,
 "agent": {"command": {"argv": ["$tmp/rdv-agent.sh"],
                       "env": {"RDV": "$tmp/rdv", "ROLE": "$2", "WAIT_FOR": "$3"}}},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"time_ms": 300}}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "context_preserved": true},
 "seeds": [1], "deadline_ms": 60000}
JSON
}

# 1. Scenario a's golden trial waits for b's, which starts only when a
#    third trial may run at once (-j 3: a golden, a faulted, b golden).
rdv a a b-golden-started
rdv b b ''
code=0
rb run "$tmp/a.json" "$tmp/b.json" -j 3 --out "$tmp/o1" > "$tmp/o1.out" 2> "$tmp/o1.err" ||
    code=$?
[ "$code" -eq 0 ] || fail "rendezvous: exit $code: $(cat "$tmp/o1.out" "$tmp/o1.err")"
[ "$(grep -c PASS "$tmp/o1.out")" -eq 2 ] || fail "rendezvous: $(cat "$tmp/o1.out")"
[ "$(sed -n 1p "$tmp/o1.out" | cut -d' ' -f1)" = a ] &&
    [ "$(sed -n 2p "$tmp/o1.out" | cut -d' ' -f1)" = b ] ||
    fail "rendezvous: lines out of scenario order: $(cat "$tmp/o1.out")"
jq -e '[.trials[].scenario] == ["a", "b"] and [.scenarios[].name] == ["a", "b"]
       and .suite.jobs == 3 and .suite.complete and .suite.wall_ms > 0
       and .scenarios[0].trials == 1 and .scenarios[0].outcomes.recovered == 1
       and .scenarios[0].metrics.wall_ms.n == 1
       and .scenarios[0].metrics.llm_calls_duplicated.n >= 0
       and .scenarios[0].baseline == null' "$tmp/o1/results.json" > /dev/null ||
    fail "rendezvous: $(jq -c '{suite, scenarios}' "$tmp/o1/results.json")"
# The reports beside results.json.
for f in junit.xml summary.md report.html; do
    [ -s "$tmp/o1/$f" ] || fail "rendezvous: no $f: $(ls "$tmp/o1")"
done
# Each trial had its own folder, output and world.
for t in a-s1-golden a-s1-faulted b-s1-golden b-s1-faulted; do
    [ -s "$tmp/o1/trials/$t/trial.json" ] && [ -s "$tmp/o1/trials/$t/stdout" ] ||
        fail "rendezvous: trial folder $t: $(ls "$tmp/o1/trials/$t")"
done

# 2. The built-in agent, two scenarios, two seeds, two trials each: the same
#    lines in the same order at -j 1 and -j 4.
builtin() {
    cat > "$tmp/$1.json" << JSON
{"description": "parallel", "rebound": 1,
 "agent": {"builtin": {"workflow": {"steps": $2, "llm_turns": 4}}},
 "world": {"turns": 1},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"step": $3, "when": "before"}}],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true},
 "trials": 2, "seeds": [1, 2]}
JSON
}
builtin long 60 30
builtin short 10 5
keys() {
    sed -E 's/  recovery .*  (PASS|FAIL)$/ \1/' "$1"
}
for j in 1 4; do
    code=0
    rb run "$tmp/long.json" "$tmp/short.json" -j "$j" --out "$tmp/o2-$j" \
        > "$tmp/o2-$j.out" 2> "$tmp/o2-$j.err" || code=$?
    [ "$code" -eq 0 ] || fail "-j $j: exit $code: $(cat "$tmp/o2-$j.out" "$tmp/o2-$j.err")"
done
[ "$(keys "$tmp/o2-1.out")" = "$(keys "$tmp/o2-4.out")" ] ||
    fail "-j 1 and -j 4 differ: $(cat "$tmp/o2-1.out" "$tmp/o2-4.out")"
[ "$(keys "$tmp/o2-4.out" | head -n 8 | tr '\n' '|')" = \
    "$(for s in long short; do for n in 1 2; do for k in 1 2; do printf "%s  seed %s trial %s  recovered PASS|" $s $n $k; done; done; done)" ] ||
    fail "-j 4: order: $(cat "$tmp/o2-4.out")"
jq -e '[.trials[] | "\(.scenario) \(.seed)"] ==
       ["long 1", "long 1", "long 2", "long 2", "short 1", "short 1", "short 2", "short 2"]
       and .suite.jobs == 4
       and (.scenarios[0] | .trials == 4 and .passed == 4 and .verdict == "pass"
            and .metrics.steps_redone.n == 4 and .metrics.steps_redone.max == 0
            and .metrics.recovery_ms.n >= 1 and .metrics.recovery_ms.p50 <= .metrics.recovery_ms.max)' \
    "$tmp/o2-4/results.json" > /dev/null ||
    fail "-j 4: $(jq -c '{suite, scenarios}' "$tmp/o2-4/results.json")"
# 5a. Not a terminal: not one escape code.
! grep -q $'\033' "$tmp/o2-4.out" "$tmp/o2-4.err" || fail "escape codes when not a terminal"

# 3. The baseline: without the replay log the restart redoes the 29 steps
#    done before the kill; with it, none.
code=0
rb run "$tmp/long.json" --baseline no-replay -j 2 --out "$tmp/o3" > "$tmp/o3.out" \
    2> "$tmp/o3.err" || code=$?
[ "$code" -eq 0 ] || fail "baseline: exit $code: $(cat "$tmp/o3.out" "$tmp/o3.err")"
jq -e '.trials | length == 4 and all(.[]; .steps_redone == 0
       and .baseline.mode == "no-replay" and .baseline.steps_redone >= 28
       and (.baseline.dir | test("-baseline-[12]$")))' "$tmp/o3/results.json" > /dev/null ||
    fail "baseline: $(jq -c '[.trials[] | {steps_redone, baseline}]' "$tmp/o3/results.json")"
jq -e '.scenarios[0].baseline | .mode == "no-replay" and .metrics.steps_redone.p50 >= 28
       and .reduction_pct.steps_redone == 100' "$tmp/o3/results.json" > /dev/null ||
    fail "baseline: $(jq -c '.scenarios[0].baseline' "$tmp/o3/results.json")"
grep -Eq '\[no-replay: recovery [0-9]+ ms, redone (29|30)\]  PASS$' "$tmp/o3.out" ||
    fail "baseline: $(cat "$tmp/o3.out")"
grep -q '^suite: 4 trials, 4 passed, 0 failed; resilience score 100; against no-replay: recovery p50 .*, steps redone p50 100% less$' \
    "$tmp/o3.out" || fail "baseline: $(cat "$tmp/o3.out")"

# 4. Ctrl-C under -j 2: both trials (each sleeping) are stopped, the rest
#    never starts (a third seed, a second scenario). SIGINT is
#    reset to its default for rebound: a script's background job ignores it.
cat > "$tmp/sleepy-agent.sh" << 'SH'
#!/usr/bin/env bash
sleep 60
SH
chmod +x "$tmp/sleepy-agent.sh"
cat > "$tmp/sleepy.json" << JSON
{"description": "sleeps", "rebound": 1,
 "agent": {"command": {"argv": ["$tmp/sleepy-agent.sh"]}},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"time_ms": 50000}}],
 "seeds": [1, 2, 3], "deadline_ms": 120000}
JSON
env --default-signal=INT "$REBOUND" run "$tmp/sleepy.json" "$tmp/short.json" -j 2 --out "$tmp/o4" \
    > "$tmp/o4.out" 2> "$tmp/o4.err" &
pid=$!
at_exit "kill -KILL $pid 2> /dev/null || true; pkill -KILL -f '$tmp/sleepy-agent.sh' || true"
for ((i = 0; i < 400; i++)); do
    [ "$(pgrep -fc "$tmp/sleepy-agent.sh" || true)" -ge 2 ] && break
    sleep 0.05
done
[ "$(pgrep -fc "$tmp/sleepy-agent.sh" || true)" -ge 2 ] || fail "sigint: two agents never ran at once"
kill -INT "$pid"
for ((i = 0; i < 400; i++)); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
done
kill -0 "$pid" 2> /dev/null && fail "sigint: still running 20 s after SIGINT"
code=0
wait "$pid" || code=$?
[ "$code" -eq 130 ] || fail "sigint: exit $code, 130 expected: $(cat "$tmp/o4.err")"
jq -e '.schema == 1 and .suite.complete == false and (.trials | type == "array")
       and (.scenarios | type == "array")' "$tmp/o4/results.json" > /dev/null ||
    fail "sigint: results: $(head -c 400 "$tmp/o4/results.json"; cat "$tmp/o4.err")"
grep -q 'interrupted; results so far are in' "$tmp/o4.err" || fail "sigint: $(cat "$tmp/o4.err")"
[ -s "$tmp/o4/junit.xml" ] || fail "sigint: no reports of the partial results"
! pgrep -f "$tmp/sleepy-agent.sh" > /dev/null || fail "sigint: an agent is still running"
! pgrep -f "$tmp/o4" > /dev/null || fail "sigint: a worker is still running"
jq -e '[.scenarios[].name] == ["sleepy"]' "$tmp/o4/results.json" > /dev/null ||
    fail "sigint: a scenario that did not run is listed: $(jq -c .scenarios "$tmp/o4/results.json")"
# The third seed never started.
[ ! -e "$tmp/o4/trials/sleepy-s3-golden/trial.json" ] || fail "sigint: seed 3 ran"

# 4b. rebound itself killed (SIGKILL: nothing to catch): its workers stop
#     their trials as for a stop signal, and nothing is left running.
"$REBOUND" run "$tmp/sleepy.json" -j 2 --out "$tmp/o4b" > /dev/null 2>&1 &
pid=$!
for ((i = 0; i < 400; i++)); do
    [ "$(pgrep -fc "$tmp/sleepy-agent.sh" || true)" -ge 2 ] && break
    sleep 0.05
done
[ "$(pgrep -fc "$tmp/sleepy-agent.sh" || true)" -ge 2 ] || fail "sigkill: two agents never ran at once"
kill -KILL "$pid"
wait "$pid" 2> /dev/null || true
for ((i = 0; i < 400; i++)); do
    pgrep -f "$tmp/(o4b|sleepy-agent)" > /dev/null || break
    sleep 0.05
done
! pgrep -f "$tmp/(o4b|sleepy-agent)" > /dev/null ||
    fail "sigkill: left running 20 s after rebound was killed: $(pgrep -af "$tmp/")"

# 5b. A terminal: the progress line on stderr, PASS in colour; NO_COLOR.
if script -qec true /dev/null > /dev/null 2>&1; then
    script -qec "$(printf '%q ' "$REBOUND" run "$tmp/short.json" -j 2 --out "$tmp/o5")" \
        /dev/null > "$tmp/o5.tty" 2>&1 || fail "tty: $(cat "$tmp/o5.tty")"
    grep -q $'\033\\[32mPASS\033\\[0m' "$tmp/o5.tty" || fail "tty: no coloured PASS: $(cat -v "$tmp/o5.tty")"
    grep -q $'\r\033\\[K\\[[0-9]/1 scenarios, [0-9]*/6 trials, 0 failed, ' "$tmp/o5.tty" ||
        fail "tty: no progress line: $(cat -v "$tmp/o5.tty")"
    NO_COLOR=1 script -qec "$(printf '%q ' "$REBOUND" run "$tmp/short.json" -j 2 --out "$tmp/o6")" \
        /dev/null > "$tmp/o6.tty" 2>&1 || fail "tty: $(cat "$tmp/o6.tty")"
    ! grep -q $'\033\\[3[12]m' "$tmp/o6.tty" || fail "NO_COLOR: colour: $(cat -v "$tmp/o6.tty")"
    grep -q 'PASS' "$tmp/o6.tty" || fail "NO_COLOR: $(cat -v "$tmp/o6.tty")"
else
    echo "skipped the terminal case: script(1) cannot make a terminal here" >&2
fi
echo ok

#!/usr/bin/env bash
# End to end: `rebound audit`'s command line. Bad fault specs, a missing
# command or agent, --no-golden with no fault to place, and a --golden with
# nothing in it are refused with one clear message and exit 2, running
# nothing. What the agent is given (REBOUND_RUN_ID the same in both attempts
# of a trial, REBOUND_ATTEMPT, REBOUND_LAST_FAILURE). A scenario file run
# with its own agent, then with its agent replaced and its faults overridden
# (the expectation it breaks makes exit 1). --no-golden with a fault: no
# golden trial, the context and the outcome's recovered-or-degraded reported
# unknown, and no expectation on them. SIGTERM during the faulted trial:
# exit 143, the agent killed, results.json marked incomplete.
#
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"
cd "$REBOUND_SOURCE_DIR"

# 1. Usage.
expect_exit 0 'FORM@TRIGGER' rb audit --help
grep -q REBOUND_RUN_ID "$tmp/out" || fail "--help does not name REBOUND_RUN_ID"
expect_exit 2 "no agent command: give it after '--'" rb audit --out "$tmp/u"
expect_exit 2 "bad fault 'kill@soon': bad trigger 'soon'" \
    rb audit --out "$tmp/u" --faults kill@soon -- true
expect_exit 2 "bad fault 'boom@llm_call=1': unknown form 'boom'" \
    rb audit --out "$tmp/u" --faults boom@llm_call=1 -- true
expect_exit 2 "bad fault 'kill@llm_call=0': bad trigger" \
    rb audit --out "$tmp/u" --faults kill@llm_call=0 -- true
expect_exit 2 "bad fault 'kill@start': form 'kill' needs a trigger" \
    rb audit --out "$tmp/u" --faults kill@start -- true
expect_exit 2 "bad fault 'kill@llm_call=2:5': form 'kill' takes no ':N'" \
    rb audit --out "$tmp/u" --faults kill@llm_call=2:5 -- true
expect_exit 2 "cannot start agent '/nonexistent/agent': no such executable file" \
    rb audit --out "$tmp/u" -- /nonexistent/agent
expect_exit 2 "no faults given and no golden trial to place the default kill in" \
    rb audit --out "$tmp/u" --no-golden -- true
expect_exit 2 "no golden trial in '$tmp/none'" \
    rb audit --out "$tmp/u" --golden "$tmp/none" -- true
expect_exit 2 "unknown option '--fualts'" rb audit --fualts kill@llm_call=1 -- true
expect_exit 2 "bad name 'a/b': the name names the trials' folders" \
    rb audit --out "$tmp/u" --name a/b --faults kill@time_ms=10 -- true
# Every form and trigger docs/audit.md lists makes a valid scenario: the
# audit goes on to the agent, which is missing here.
for f in kill@llm_call=1 notice@tool_call=2:500 freeze@time_ms=5:200 oom-kill@step=3 \
    partition@llm_call=2 partition@llm_call=2:2000 clock-jump@step=3+50:-3600 \
    reset@start stall@llm_call=1 server_error@tool_call=1:2 rate_limit@llm_call=1:3 \
    truncate@start slow@start refused@llm_call=2 refused@start:500; do
    expect_exit 2 "cannot start agent '/nonexistent/agent'" \
        rb audit --out "$tmp/u" --faults "$f" -- /nonexistent/agent
done
[ ! -e "$tmp/u/results.json" ] || fail "a refused audit wrote results"

# 2. What the agent is given. It calls a tool, and its first faulted attempt
# then sleeps until it is killed (at that tool call).
cat > "$tmp/agent.sh" << 'EOF'
echo "attempt=$REBOUND_ATTEMPT id=$REBOUND_RUN_ID failure=${REBOUND_LAST_FAILURE:-none}" >&2
curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"query":"q"}' \
    "$REBOUND_TOOLS_URL/search"
[ "$REBOUND_ATTEMPT" != 1 ] || [ "$REBOUND_TRIAL" != faulted ] || sleep 30
echo "answer"
EOF
expect_exit 0 '^audit  seed 1  recovered  PASS$' \
    rb audit --out "$tmp/env" --faults kill@tool_call=1 -- bash "$tmp/agent.sh"
err=$tmp/env/trials/audit-s1-faulted/stderr
grep -q '^attempt=1 id=audit-s1-faulted failure=none$' "$err" || fail "attempt 1: $(cat "$err")"
grep -Eq '^attempt=2 id=audit-s1-faulted failure=\{"kind":"preemption","form":"sigkill".*"attempt":1\}$' \
    "$err" || fail "attempt 2: $(cat "$err")"
# It wrote no step events: what needs them is unknown, not 0.
grep -q '^  steps redone: unknown (the agent wrote no step events)$' "$tmp/out" ||
    fail "steps not unknown: $(cat "$tmp/out")"
jq -e '.trials[0] | .steps_redone == null and .inflight_lost == null' \
    "$tmp/env/results.json" > /dev/null ||
    fail "steps not null: $(jq -c '.trials[0] | {steps_redone, inflight_lost}' "$tmp/env/results.json")"

# ... and its golden trial folder reused by another audit: none is run.
expect_exit 0 '^audit  seed 1  recovered  PASS$' \
    rb audit --out "$tmp/env2" --golden "$tmp/env/trials/audit-s1-golden" \
    --faults kill@tool_call=1 -- bash "$tmp/agent.sh"
[ ! -e "$tmp/env2/trials/audit-s1-golden" ] || fail "--golden ran a golden trial anyway"
[ -e "$tmp/env2/trials/audit-s1-faulted/stderr" ] || fail "--golden: no faulted trial"

# 3. A scenario file with its own agent and faults.
expect_exit 0 '^shell-durable  seed 1  recovered  PASS$' \
    rb audit --scenario scenarios/examples/shell-durable.json --out "$tmp/sc"
# ... its agent replaced by the naive one, killed at step 5 instead: the
# scenario's max_steps_redone 0 is broken.
code=0
rb audit --scenario scenarios/examples/shell-durable.json --out "$tmp/sc2" \
    --faults kill@step=5 -- env STEP_SLEEP=0.01 bash examples/shell-naive/agent.sh 20 \
    > "$tmp/sc2.out" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "replaced agent: exit $code: $(cat "$tmp/sc2.out")"
grep -q '^  broken: steps_redone 4 > max_steps_redone 0' "$tmp/sc2.out" ||
    fail "replaced agent: $(cat "$tmp/sc2.out")"
jq -e '.trials[0].faults[0].trigger == "step 5 start"' "$tmp/sc2/results.json" > /dev/null ||
    fail "the scenario's faults were not replaced: $(cat "$tmp/sc2.out")"

# 4. --no-golden: nothing golden is run, the context is unknown.
code=0
rb audit --out "$tmp/ng" --no-golden --faults kill@step=3 -- \
    env STEP_SLEEP=0.01 bash examples/shell-naive/agent.sh 6 > "$tmp/ng.out" 2>&1 || code=$?
[ "$code" -eq 0 ] || fail "--no-golden: exit $code: $(cat "$tmp/ng.out")"
grep -q '^audit  seed 1  done (context unknown)  PASS$' "$tmp/ng.out" ||
    fail "--no-golden: $(cat "$tmp/ng.out")"
grep -q '^  context: unknown (no golden trial to compare with)$' "$tmp/ng.out" ||
    fail "--no-golden: $(cat "$tmp/ng.out")"
[ ! -e "$tmp/ng/trials/audit-s1-golden" ] || fail "--no-golden ran a golden trial"
# ... and results.json holds no guess made against an empty golden trial
jq -e '[.trials[] | select(.trial == "faulted")] | length == 1 and all(
        .outcome == "unknown" and .llm.duplicated == null and .llm.tokens_wasted == null
        and .context.preserved == null and .steps_redone == null
        and .side_effects.missing == null)' "$tmp/ng/results.json" > /dev/null ||
    fail "--no-golden: guesses in results.json: $(jq -c '.trials[0] | {outcome, llm, context, steps_redone}' "$tmp/ng/results.json")"
# 5. A stop signal: the agent is killed, exit 128+15, the results so far.
"$REBOUND" audit --out "$tmp/stop" --faults kill@time_ms=50000 -- bash "$tmp/agent.sh" \
    > "$tmp/stop.out" 2>&1 &
pid=$!
at_exit "kill $pid 2> /dev/null"
for ((i = 0; i < 300; i++)); do # up to 30 s for the faulted trial to start
    grep -qs '^attempt=1 id=audit-s1-faulted' "$tmp/stop/trials/audit-s1-faulted/stderr" &&
        break
    sleep 0.1
done
[ "$i" -lt 300 ] || fail "the faulted trial never started: $(cat "$tmp/stop.out")"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
[ "$code" -eq 143 ] || fail "stopped: exit $code: $(cat "$tmp/stop.out")"
jq -e '.suite.complete == false' "$tmp/stop/results.json" > /dev/null ||
    fail "stopped: results: $(cat "$tmp/stop.out")"
! pgrep -f "$tmp/agent.sh" > /dev/null || fail "the agent outlived the stop"
echo "ok"

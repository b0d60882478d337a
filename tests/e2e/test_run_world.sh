#!/usr/bin/env bash
# End to end: `rebound run` with faults seen at the trial's world. The agent
# is a shell agent whose every step is an LLM call (curl to OPENAI_BASE_URL)
# made durable with `rebound step`. A SIGKILL fired by the 5th LLM request
# (an `llm_call` trigger: the world sees it, the supervisor kills) and a 503
# answered from the 4th LLM request on (a world fault, `count` 1) both end
# in a restart that replays the calls made and recovers the golden answer;
# a 503 at the start with no restarts left fails the trial (exit 1); a stop
# signal ends a run cleanly and still writes the results so far (128+N).
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

cat > "$tmp/llm-agent.sh" << 'SH'
#!/usr/bin/env bash
# N steps, each one LLM call whose answer's hash feeds the next.
set -euo pipefail
state=start
for ((i = 1; i <= $1; i++)); do
    state=$("$REBOUND" step --name "ask-$i" -- bash -c 'set -o pipefail
        curl -sSf --max-time 20 -H "content-type: application/json" \
            -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$1 $2\"}]}" \
            "$OPENAI_BASE_URL/chat/completions" | sha256sum | cut -c1-16' _ "$state" "$i")
done
echo "final: $state"
SH
chmod +x "$tmp/llm-agent.sh"

# scenario NAME FAULT RESTART EXPECT
scenario() {
    cat > "$tmp/$1.json" << JSON
{"description": "test", "rebound": 1,
 "agent": {"command": {"argv": ["./llm-agent.sh", "10"]}},
 "world": {"turns": 0},
 "faults": [$2], "restart": $3, "expect": $4, "deadline_ms": 30000}
JSON
}
ok='{"outcome": "recovered", "max_steps_redone": 0, "context_preserved": true}'
again='{"delay_ms": 10, "max_attempts": 3}'

# check NAME EXIT JQ: runs scenario NAME, checks the exit code and the record.
check() {
    local code=0
    rb run "$tmp/$1.json" --out "$tmp/o-$1" > "$tmp/$1.out" 2> "$tmp/$1.err" || code=$?
    [ "$code" -eq "$2" ] || fail "$1: exit $code, $2 expected: $(cat "$tmp/$1.out" "$tmp/$1.err")"
    jq -e ".trials[0] | $3" "$tmp/o-$1/results.json" > /dev/null ||
        fail "$1: $(jq -c '.trials[0] | del(.faulted, .golden)' "$tmp/o-$1/results.json")"
}

scenario kill '{"kind": "preemption", "form": "sigkill", "at": {"llm_call": 5}}' "$again" "$ok"
check kill 0 '.outcome == "recovered" and .faults_fired == 1 and .faulted.attempts == 2
    and .steps_redone == 0 and .context.preserved and .recovery_ms > 0
    and .golden_steps == 10 and .faults[0].detect_ms >= 0
    and .faults[0].trigger == "llm call 5"'
# The restarted attempt replayed the calls made before the kill: the faulted
# world saw at most one more chat request than the golden one.
g=$(grep -c '/v1/chat/completions' "$tmp/o-kill/trials/kill-s0-golden/world.jsonl")
f=$(grep -c '/v1/chat/completions' "$tmp/o-kill/trials/kill-s0-faulted/world.jsonl")
[ "$g" -eq 10 ] && [ "$f" -ge 10 ] && [ "$f" -le 11 ] ||
    fail "kill: LLM requests golden $g, faulted $f"

scenario e503 '{"kind": "network", "form": "server_error", "count": 1, "at": {"llm_call": 4}}' \
    "$again" "$ok"
check e503 0 '.outcome == "recovered" and .faults_fired == 1 and .faulted.attempts == 2
    and .faults[0].form == "server_error" and .faults[0].trigger == "llm call 4"
    and .faults[0].detect_ms >= 0 and .faults[0].recovery_ms > 0
    and .steps_redone == 0 and .context.preserved'
grep -q '"status":503' "$tmp/o-e503/trials/e503-s0-faulted/world.jsonl" ||
    fail "e503: the world answered no 503"

scenario down '{"kind": "network", "form": "server_error", "route": "/v1/"}' \
    '{"max_attempts": 2}' "$ok"
check down 1 '.outcome == "failed" and .faulted.attempts == 2 and .verdict == "fail"'
grep -q 'outcome: failed, expected recovered' "$tmp/down.out" || fail "down: $(cat "$tmp/down.out")"
# A stop signal during a trial (SIGTERM here: a background job of a script
# ignores SIGINT): the agent is killed, the results so far are written
# (suite.complete false), rebound exits 128+15, nothing is left running.
scenario slow '{"kind": "preemption", "form": "sigkill", "at": {"llm_call": 500}}' "$again" "$ok"
sed -i 's/"10"\]/"1000"]/' "$tmp/slow.json"
"$REBOUND" run "$tmp/slow.json" --out "$tmp/o-slow" > "$tmp/slow.out" 2> "$tmp/slow.err" &
pid=$!
at_exit "kill -KILL $pid 2> /dev/null || true"
for ((i = 0; i < 200; i++)); do
    [ -s "$tmp/o-slow/trials/slow-s0-golden/world.jsonl" ] && break
    sleep 0.05
done
[ -s "$tmp/o-slow/trials/slow-s0-golden/world.jsonl" ] || fail "slow: the golden trial never called the world"
kill -TERM "$pid"
for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
done
kill -0 "$pid" 2> /dev/null && fail "slow: still running 10 s after SIGTERM"
code=0
wait "$pid" || code=$?
[ "$code" -eq 143 ] || fail "slow: exit $code after SIGTERM, 143 expected: $(cat "$tmp/slow.err")"
jq -e '.suite.complete == false' "$tmp/o-slow/results.json" > /dev/null ||
    fail "slow: results: $(ls -la "$tmp/o-slow"; head -c 300 "$tmp/o-slow/results.json"; cat "$tmp/slow.err" "$tmp/slow.out")"
grep -q 'interrupted; results so far are in' "$tmp/slow.err" || fail "slow: $(cat "$tmp/slow.err")"
! pgrep -f "$tmp/llm-agent.sh" > /dev/null || fail "slow: an agent is still running"
echo ok

#!/usr/bin/env bash
# End to end: world faults at a time and into a step, and world.port. A 503
# armed 300 ms after the agent's start and a reset armed 5 ms into step 12
# both fire (each hits one call at the world) and the built-in agent, whose
# LLM client retries, recovers with its context. A scenario with a fixed
# world.port gives the agent that port; when the port is taken, `rebound run`
# says so and exits 2 with nothing left running.
#
# ctest-timeout: 90
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

cat > "$tmp/timed.json" << 'JSON'
{"description": "world faults at a time and into a step", "rebound": 1,
 "agent": {"builtin": {"workflow": {"steps": 30, "llm_turns": 12}}},
 "world": {"turns": 1, "latency": {"fixed_ms": 20}},
 "faults": [
   {"kind": "network", "form": "server_error", "at": {"time_ms": 300}, "route": "/v1/", "count": 1},
   {"kind": "network", "form": "reset", "at": {"step": 12, "when": "during", "delay_ms": 5}, "count": 1}
 ],
 "restart": {"delay_ms": 10, "max_attempts": 3},
 "expect": {"outcome": "recovered", "context_preserved": true},
 "seeds": [1], "deadline_ms": 60000}
JSON
code=0
rb run "$tmp/timed.json" --out "$tmp/o" > "$tmp/o.out" 2> "$tmp/o.err" || code=$?
r=$tmp/o/results.json
[ "$code" -eq 0 ] || fail "timed: exit $code: $(cat "$tmp/o.out" "$tmp/o.err")"
jq -e '.trials[0] | .outcome == "recovered" and .faults_armed == 2 and .faults_fired == 2
    and ([.faults[].trigger] | sort) == ["step 12 start+5ms", "time 300ms"]' "$r" > /dev/null ||
    fail "timed: $(jq -c '.trials[0] | del(.faulted, .golden)' "$r")"
# armed no earlier than its time after the agent's start (never before)
jq -e '.trials[0].faulted.events as $e
    | ([$e[] | select(.kind == "proc.start")][0].t_ms) as $start
    | [$e[] | select(.kind == "fault.arm" and .trigger == "time 300ms")][0].t_ms - $start >= 300' \
    "$r" > /dev/null || fail "timed: the time fault was armed early: $(jq -c '[.trials[0].faulted.events[]
        | select(.kind | startswith("fault") or startswith("proc"))]' "$r")"
# each hit one request at the world, the 503 an LLM call
j=$tmp/o/trials/timed-s1-faulted/world.jsonl
[ "$(jq -s '[.[] | select(.fault == "server_error" and .status == 503
    and .route == "/v1/chat/completions")] | length' "$j")" -eq 1 ] ||
    fail "timed: no 503 at the world"
[ "$(jq -s '[.[] | select(.fault == "reset")] | length' "$j")" -eq 1 ] ||
    fail "timed: no reset at the world"
# the golden trial's world saw no fault
[ "$(jq -s '[.[] | select(.fault != null)] | length' \
    "$tmp/o/trials/timed-s1-golden/world.jsonl")" -eq 0 ] || fail "timed: golden faulted"

# world.port: a port held by another world first, then free.
"$REBOUND" world --port 0 > "$tmp/holder.out" 2> /dev/null &
holder=$!
at_exit "kill $holder 2> /dev/null"
for ((i = 0; i < 100; i++)); do # up to 10 s
    grep -q listening "$tmp/holder.out" && break
    sleep 0.1
done
port=$(sed -n 's|.*127\.0\.0\.1:\([0-9]*\)/v1.*|\1|p' "$tmp/holder.out")
[ -n "$port" ] || fail "the holder world did not start: $(cat "$tmp/holder.out")"
cat > "$tmp/port.sh" << 'SH'
#!/bin/sh
echo "base $OPENAI_BASE_URL"
SH
chmod +x "$tmp/port.sh"
cat > "$tmp/port.json" << JSON
{"description": "a fixed port", "rebound": 1,
 "agent": {"command": {"argv": ["./port.sh"]}},
 "world": {"port": $port}, "seeds": [1]}
JSON
code=0
rb run "$tmp/port.json" --out "$tmp/p1" > "$tmp/p1.out" 2> "$tmp/p1.err" || code=$?
[ "$code" -eq 2 ] || fail "port taken: exit $code: $(cat "$tmp/p1.out" "$tmp/p1.err")"
grep -q "cannot start the world on 127.0.0.1:$port: address already in use" "$tmp/p1.err" ||
    fail "port taken: message: $(cat "$tmp/p1.err")"
pgrep -f "$tmp/port" > /dev/null && fail "port taken: something is left running"
kill -0 "$holder" || fail "port taken: the holder is gone"
echo "port taken: $(cat "$tmp/p1.err")"
kill "$holder"
wait "$holder" || true
code=0
rb run "$tmp/port.json" --out "$tmp/p2" > "$tmp/p2.out" 2> "$tmp/p2.err" || code=$?
[ "$code" -eq 0 ] || fail "port free: exit $code: $(cat "$tmp/p2.out" "$tmp/p2.err")"
grep -qx "base http://127.0.0.1:$port/v1" "$tmp/p2/trials/port-s1-faulted/stdout" ||
    fail "port free: the agent got $(cat "$tmp/p2/trials/port-s1-faulted/stdout")"
echo "ok"

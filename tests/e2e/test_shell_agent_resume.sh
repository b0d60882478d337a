#!/usr/bin/env bash
# The main job, as a test: the 200-step shell agent made durable with
# `rebound step` (examples/shell-durable/agent.sh) is killed with SIGKILL --
# its whole process group -- during step 147, started again on the same run,
# and must then finish with steps 1-146 executed exactly once, step 147 run
# again (it never committed), and the same final output as an uninterrupted
# run. Asserted from the agent's trace file (one line per executed step) and
# from `rebound log --json`.
#
# Step 147 is made slow in the first, doomed run only (a `sleep` on PATH that
# sleeps long for step-147 while SLOW_STEP is set), so the kill lands inside
# that step on any machine, however loaded.
#
# ctest-timeout: 180
set -euo pipefail

source "$(dirname "$0")/e2e_lib.sh"
agent=$REBOUND_SOURCE_DIR/examples/shell-durable/agent.sh
steps=200
kill_at=147
agent_pid=
# On failure, the agent's group goes (or the agent alone, if setsid had not
# run yet), and is reaped before the scratch folder is removed.
# shellcheck disable=SC2016 # expanded at exit, when agent_pid is known
at_exit '[ -z "$agent_pid" ] || { kill -KILL -- "-$agent_pid" 2> /dev/null ||
    kill -KILL "$agent_pid"; wait "$agent_pid"; } 2> /dev/null'

# A `sleep` that takes long in step-147 of the doomed run (bounded: 120 s).
real_sleep=$(command -v sleep)
mkdir "$tmp/bin"
cat > "$tmp/bin/sleep" << EOF
#!/usr/bin/env bash
if [ -n "\${SLOW_STEP:-}" ] && [ "\${REBOUND_STEP:-}" = "\$SLOW_STEP" ]; then
    exec '$real_sleep' 120
fi
exec '$real_sleep' "\$@"
EOF
chmod +x "$tmp/bin/sleep"
export PATH="$tmp/bin:$PATH" REBOUND_STORE=$tmp/store

# The trace a run of steps FROM..TO leaves: one line per step, in order.
expected_trace() {
    local i
    for ((i = $1; i <= $2; i++)); do printf 'step-%03d\n' "$i"; done
}

# 1. An uninterrupted run.
AGENT_TRACE=$tmp/golden.trace REBOUND_RUN=golden "$agent" "$steps" > "$tmp/golden.out" ||
    fail "the uninterrupted run exited $?"
grep -q '^final: [0-9a-f]\{16\}$' "$tmp/golden.out" ||
    fail "the uninterrupted run printed '$(cat "$tmp/golden.out")', not 'final: <hash>'"
cmp -s "$tmp/golden.trace" <(expected_trace 1 "$steps") ||
    fail "the uninterrupted run did not execute steps 1-$steps once each, in order"

# 2. The same agent in its own process group, killed during step 147.
export AGENT_TRACE=$tmp/faulted.trace REBOUND_RUN=faulted
: > "$AGENT_TRACE"
SLOW_STEP=$(printf 'step-%03d' "$kill_at") setsid "$agent" "$steps" \
    > "$tmp/faulted-1.out" 2> "$tmp/faulted-1.err" &
agent_pid=$!
for ((t = 0; t < 100; t++)); do # bounded: 10 s for setsid to take effect
    pgid=$(ps -o pgid= -p "$agent_pid" | tr -d ' ')
    [ "$pgid" = "$agent_pid" ] && break
    sleep 0.1
done
[ "$pgid" = "$agent_pid" ] ||
    fail "the agent (pid $agent_pid) is not leading its own process group (pgid '$pgid')"
for ((t = 0; t < 1200; t++)); do # bounded: 120 s
    [ "$(tail -n 1 "$AGENT_TRACE")" = "step-$kill_at" ] && break
    kill -0 "$agent_pid" 2>/dev/null ||
        fail "the agent ended before step $kill_at: $(cat "$tmp/faulted-1.err")"
    sleep 0.1
done
[ "$(tail -n 1 "$AGENT_TRACE")" = "step-$kill_at" ] ||
    fail "the agent did not reach step $kill_at within 120 s (trace ends at" \
        "'$(tail -n 1 "$AGENT_TRACE")')"
status=0
exec 3>&2 2> /dev/null # bash would report the kill ("Killed") on stderr
kill -KILL -- "-$pgid" || { exec 2>&3; fail "cannot kill process group $pgid"; }
wait "$agent_pid" || status=$?
exec 2>&3 3>&-
agent_pid=
[ "$status" -eq 137 ] || fail "the killed agent exited $status; 137 (SIGKILL) was expected"
for ((t = 0; t < 100; t++)); do # bounded: 10 s for the group to vanish
    pgrep -g "$pgid" > /dev/null || break
    sleep 0.1
done
! pgrep -g "$pgid" > /dev/null || fail "processes of the killed group remain: $(pgrep -g "$pgid")"
[ ! -s "$tmp/faulted-1.out" ] || fail "the killed agent printed a final output"
cmp -s "$AGENT_TRACE" <(expected_trace 1 "$kill_at") ||
    fail "before the kill the trace should hold steps 1-$kill_at once each"

# What the store says right after the kill: 146 committed steps, no more.
"$REBOUND" log --json faulted > "$tmp/log-killed.json" || fail "rebound log exited $?"
committed=$(jq '[.steps[] | select(.status == "committed")] | length' "$tmp/log-killed.json")
[ "$committed" -eq $((kill_at - 1)) ] ||
    fail "after the kill the log holds $committed committed steps; $((kill_at - 1)) expected"

# 3. Started again on the same run, as a supervisor would: attempt 2, told how
# attempt 1 died.
REBOUND_ATTEMPT=2 REBOUND_LAST_FAILURE='{"kind":"preemption","signal":9}' \
    "$agent" "$steps" > "$tmp/faulted-2.out" 2> "$tmp/faulted-2.err" ||
    fail "the restarted agent exited $?: $(cat "$tmp/faulted-2.err")"

# Steps 1-146 executed exactly once, 147 twice (the kill, then the rerun),
# 148-200 once: the restart began at 147, not at 1.
cmp -s "$AGENT_TRACE" <(expected_trace 1 "$kill_at"; expected_trace "$kill_at" "$steps") || {
    echo "trace of executed steps (first lines after the kill):" >&2
    sed -n "$((kill_at - 2)),$((kill_at + 3))p" "$AGENT_TRACE" >&2
    for ((i = 1; i < kill_at; i++)); do
        n=$(grep -cx "$(printf 'step-%03d' "$i")" "$AGENT_TRACE" || true)
        [ "$n" -eq 1 ] || echo "step $i executed $n times" >&2
    done
    fail "the trace is not steps 1-$kill_at then $kill_at-$steps, each once"
}
cmp -s "$tmp/golden.out" "$tmp/faulted-2.out" ||
    fail "final output after the restart is '$(cat "$tmp/faulted-2.out")';" \
        "the uninterrupted run gave '$(cat "$tmp/golden.out")'"

# The log agrees: 200 committed steps, seq 1-200 in order, the same outputs as
# the uninterrupted run; steps before 147 committed by attempt 1, the rest by
# attempt 2; attempt 1 recorded as preempted by signal 9.
"$REBOUND" log --json faulted > "$tmp/faulted.json" || fail "rebound log exited $?"
"$REBOUND" log --json golden > "$tmp/golden.json" || fail "rebound log exited $?"
jq -r '.steps[] | "\(.seq) \(.step) \(.status) \(.output | @json)"' "$tmp/golden.json" > "$tmp/g.txt"
jq -r '.steps[] | "\(.seq) \(.step) \(.status) \(.output | @json)"' "$tmp/faulted.json" > "$tmp/f.txt"
[ "$(wc -l < "$tmp/f.txt")" -eq "$steps" ] ||
    fail "the faulted run's log has $(wc -l < "$tmp/f.txt") steps; $steps expected"
diff "$tmp/g.txt" "$tmp/f.txt" > "$tmp/diff.txt" ||
    fail "the faulted run's log differs from the uninterrupted one: $(head -5 "$tmp/diff.txt")"
bad=$(jq --argjson k "$kill_at" '[.steps[] | select((.seq < $k and .attempt != 1)
    or (.seq >= $k and .attempt != 2))] | length' "$tmp/faulted.json")
[ "$bad" -eq 0 ] || fail "$bad steps are recorded with the wrong attempt"
end1=$(jq -r '.attempts[] | select(.attempt == 1) | "\(.end) \(.signal)"' "$tmp/faulted.json")
[ "$end1" = "preempted 9" ] || fail "attempt 1 is recorded as '$end1', not 'preempted 9'"
"$REBOUND" check > /dev/null || fail "rebound check exited $? after the kill and resume"

echo "ok: killed during step $kill_at, resumed at $kill_at; steps 1-$((kill_at - 1))" \
    "ran once; final output $(cat "$tmp/faulted-2.out")"

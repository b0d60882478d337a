#!/usr/bin/env bash
# The shell agent of examples/shell-durable WITHOUT durability: the same STEPS
# steps and the same final state, but no replay log, so an agent killed at
# step N and started again runs steps 1..N-1 again. It writes step events to
# REBOUND_EVENT_FD (when set) as the runner would, so `rebound run` can see
# the work redone: the evaluator's check that it catches a bad agent.
#
#   examples/shell-naive/agent.sh [STEPS]
#
# Environment: STEP_SLEEP (seconds each step works, default 0), AGENT_TRACE
# (a file that gets one line per step executed).
set -euo pipefail
steps=${1:-20}
export STEP_SLEEP=${STEP_SLEEP:-0} AGENT_TRACE=${AGENT_TRACE:-/dev/null}

# emit KIND STEP: one JSON line per event, in one write.
emit() {
    [[ -n ${REBOUND_EVENT_FD:-} ]] || return 0
    printf '{"kind":"%s","step":"%s","attempt":%s,"pid":%s}\n' "$1" "$2" \
        "${REBOUND_ATTEMPT:-1}" "$$" >&"$REBOUND_EVENT_FD"
}

state="start"
for ((i = 1; i <= steps; i++)); do
    name=$(printf 'step-%03d' "$i")
    emit step.start "$name"
    echo "$name" >> "$AGENT_TRACE"
    sleep "$STEP_SLEEP"
    state=$(printf "%s" "$state|$i" | sha256sum | cut -c1-16)
    emit step.commit "$name"
done
echo "final: $state"

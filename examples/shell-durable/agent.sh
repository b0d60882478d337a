#!/usr/bin/env bash
# A shell agent made durable with `rebound step`: STEPS steps, each a command
# whose stdout feeds the next. Killed anywhere and started again with the same
# REBOUND_RUN, it replays committed steps from the log and resumes at the
# first step that never committed.
#
#   REBOUND_STORE=DIR REBOUND_RUN=ID examples/shell-durable/agent.sh [STEPS]
#
# Environment: REBOUND (the rebound binary, default: rebound on PATH),
# STEP_SLEEP (seconds each step works, default 0), AGENT_TRACE (a file that
# gets one line per step actually executed, for tests).
set -euo pipefail
steps=${1:-20}
rebound=${REBOUND:-rebound}
: "${REBOUND_STORE:?set REBOUND_STORE to a store folder}"
: "${REBOUND_RUN:?set REBOUND_RUN to a run id}"
export STEP_SLEEP=${STEP_SLEEP:-0} AGENT_TRACE=${AGENT_TRACE:-/dev/null}

state="start"
for ((i = 1; i <= steps; i++)); do
    name=$(printf 'step-%03d' "$i")
    # The step's work: extend the state deterministically. The command runs at
    # most once per (run, name) once it has exited 0.
    state=$("$rebound" step --name "$name" -- bash -c '
        echo "$REBOUND_STEP" >> "$AGENT_TRACE"
        sleep "$STEP_SLEEP"
        printf "%s" "$1|$2" | sha256sum | cut -c1-16' _ "$state" "$i")
done
echo "final: $state"

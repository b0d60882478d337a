#!/usr/bin/env bash
# End to end: the official `openai` npm client and LangChain's ChatOpenAI,
# unchanged but for their base URL, against `rebound world`
# (tests/e2e/node/*.mjs): models, the tool-call loop, determinism, streaming,
# error bodies, and their own retries through injected 429, 5xx and reset
# faults, seen in the journal. Skipped, with a message saying why, when
# Node.js or the packages are absent (scripts/node-deps.sh installs them).
#
# ctest-timeout: 60
set -euo pipefail

node_dir=$REBOUND_SOURCE_DIR/tests/e2e/node
if ! command -v node > /dev/null; then
    echo "SKIP: Node.js is not installed; the openai client test did not run"
    exit 77
fi
if [ ! -d "$node_dir/node_modules/openai" ]; then
    echo "SKIP: the openai npm package is not installed; run scripts/node-deps.sh"
    exit 77
fi

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# run SCRIPT: a fresh world, the client script against it, then SIGTERM
run() {
    local turns=3
    "$REBOUND" world --seed 11 --turns "$turns" > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    for _ in $(seq 200); do
        grep -q '^world: listening on ' "$tmp/out" && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    base=$(sed -n 's/^world: listening on //p' "$tmp/out")
    [ -n "$base" ] || { echo "FAIL: world did not start: $(cat "$tmp/err")" >&2; exit 1; }
    node "$node_dir/$1" "$base" "$turns"
    kill -TERM "$pid"
    wait "$pid"
    pid=
}

run openai_client.mjs
if [ -d "$node_dir/node_modules/@langchain/openai" ]; then
    run langchain_client.mjs
else
    echo "SKIP: @langchain/openai is not installed; run scripts/node-deps.sh"
fi

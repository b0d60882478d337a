#!/usr/bin/env bash
# End to end: the official `openai` npm client, unchanged but for its base
# URL, against `rebound world` (tests/e2e/node/openai_client.mjs): models,
# the tool-call loop, determinism, streaming, error bodies, and its own
# retries through injected 429, 5xx and reset faults, seen in the journal.
# Skipped, with a message saying why, when Node.js or the package is absent
# (scripts/node-deps.sh installs it).
#
# ctest-timeout: 60
set -euo pipefail

node_dir=$REBOUND_SOURCE_DIR/tests/e2e/node
if ! command -v node > /dev/null; then
    echo "SKIP: Node.js is not installed; the openai client test did not run"
    exit 0
fi
if [ ! -d "$node_dir/node_modules/openai" ]; then
    echo "SKIP: the openai npm package is not installed; run scripts/node-deps.sh"
    exit 0
fi

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

turns=3
"$REBOUND" world --seed 11 --turns "$turns" > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 200); do
    grep -q '^world: listening on ' "$tmp/out" && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
done
base=$(sed -n 's/^world: listening on //p' "$tmp/out")
[ -n "$base" ] || { echo "FAIL: world did not start: $(cat "$tmp/err")" >&2; exit 1; }

node "$node_dir/openai_client.mjs" "$base" "$turns"

kill -TERM "$pid"
wait "$pid"
pid=

#!/usr/bin/env bash
# Installs the Node packages the end-to-end tests drive the world with (the
# official `openai` client, pinned in tests/e2e/node/package.json) into
# tests/e2e/node/node_modules. Optional: without Node or the npm registry it
# says so and exits 0, and test_world_openai skips with a clear message.
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e/node"
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    echo "node-deps: node/npm not installed; the openai client test will be skipped"
    exit 0
fi
if [ -d node_modules/openai ] &&
    node -e 'const p=require("./package.json"),m=require("./node_modules/openai/package.json");process.exit(p.dependencies.openai===m.version?0:1)'; then
    echo "node-deps: openai $(node -p 'require("./node_modules/openai/package.json").version') present"
    exit 0
fi
echo "node-deps: installing $(node -p 'Object.entries(require("./package.json").dependencies).map(e=>e.join("@")).join(" ")')"
if ! npm install --no-audit --no-fund --no-package-lock --loglevel=error; then
    echo "node-deps: npm install failed; the openai client test will be skipped" >&2
fi

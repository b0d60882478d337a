#!/usr/bin/env bash
# Installs the Node packages the end-to-end tests drive the world with (the
# official `openai` client and LangChain's ChatOpenAI, pinned in
# tests/e2e/node/package.json to versions that run on Node 20) into
# tests/e2e/node/node_modules. Optional: without Node or the npm registry it
# says so and exits 0, and test_world_openai skips with a clear message.
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e/node"
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    echo "node-deps: node/npm not installed; the openai client test will be skipped"
    exit 0
fi
# the pinned packages, and whether each is installed at its version
wanted=$(node -p 'Object.entries(require("./package.json").dependencies).map(e=>e.join("@")).join(" ")')
if node -e '
    const deps = require("./package.json").dependencies;
    for (const [name, version] of Object.entries(deps)) {
        try {
            if (require(`./node_modules/${name}/package.json`).version !== version) process.exit(1);
        } catch { process.exit(1); }
    }'; then
    echo "node-deps: $wanted present"
    exit 0
fi
echo "node-deps: installing $wanted"
if ! npm install --no-audit --no-fund --no-package-lock --loglevel=error; then
    echo "node-deps: npm install failed; the openai client test will be skipped" >&2
fi

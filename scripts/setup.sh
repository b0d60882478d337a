#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and run the main job
# on the embedded default store (SQLite + a blob folder; nothing to start).
#
# The main job: `rebound run` on the shipped scenario library
# (scenarios/library/): for each scenario and seed, a golden trial and a
# faulted trial (kills at step 147 of 200, an OOM in a task step, a 429
# storm, a tiered research run killed mid-flight, ...), scored, with the
# results in out/run/results.json. Exit 0 when every expectation holds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
echo "== rebound run: the scenario library"
exec "${BUILD_DIR:-build}/harness/rebound" run --out out/run

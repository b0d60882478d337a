#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and run the main job
# on the embedded default store (SQLite + a blob folder; nothing to start).
#
# The main job today: a 200-step shell agent made durable with `rebound step`
# is killed during step 147, started again, and resumes at step 147 with the
# same final output as an uninterrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec scripts/demo.sh

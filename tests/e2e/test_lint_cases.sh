#!/usr/bin/env bash
# `rebound lint` on the data-driven cases in tests/cases/<name>/: each holds a
# scenario.json and `expected`, the exact stderr lint must print for it (empty
# for a valid scenario). Lint runs inside the case's folder, so the messages
# read `scenario.json:LINE:COL: message`. A case passes when stderr matches
# byte for byte, the exit code is 0 for a valid case and 2 otherwise, and the
# summary on stdout counts it right. Then the command itself: several files
# at once, a missing file, the shipped library, --help and bad usage.
#
# ctest-timeout: 60
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

cases=$REBOUND_SOURCE_DIR/tests/cases
n=0
for dir in "$cases"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/scenario.json" ] || fail "case '$name' has no scenario.json"
    [ -f "$dir/expected" ] || fail "case '$name' has no expected file"
    rc=0
    (cd "$dir" && "$REBOUND" lint scenario.json) > "$tmp/out" 2> "$tmp/err" || rc=$?
    if ! cmp -s "$tmp/err" "$dir/expected"; then
        echo "case '$name': stderr differs from expected:" >&2
        diff "$dir/expected" "$tmp/err" >&2 || true
        fail "case '$name'"
    fi
    if [ -s "$dir/expected" ]; then
        want_rc=2 want_out="1 file, 1 with errors"
    else
        want_rc=0 want_out="1 file, 0 with errors"
    fi
    [ "$rc" -eq "$want_rc" ] || fail "case '$name': exit $rc, expected $want_rc"
    [ "$(cat "$tmp/out")" = "$want_out" ] ||
        fail "case '$name': stdout '$(cat "$tmp/out")', expected '$want_out'"
    n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "only $n cases found in $cases"

# Several files: every error of every file, one summary, exit 2.
rc=0
(cd "$cases" && "$REBOUND" lint valid-minimal/scenario.json wrong-type/scenario.json \
    trigger-beyond-workflow/scenario.json) > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "lint of three files (two bad) exited $rc, expected 2"
[ "$(cat "$tmp/out")" = "3 files, 2 with errors" ] || fail "summary: $(cat "$tmp/out")"
grep -qx "wrong-type/scenario.json:5:13: 'trials' must be an integer, not a string" \
    "$tmp/err" || fail "the error of the second file is missing: $(cat "$tmp/err")"
grep -q "^trigger-beyond-workflow/scenario.json:6:62: " "$tmp/err" ||
    fail "the error of the third file is missing: $(cat "$tmp/err")"

# A missing file: a clear message, the others still linted, exit 2.
rc=0
"$REBOUND" lint "$tmp/nope.json" "$cases/valid-minimal/scenario.json" \
    > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "a missing file: exit $rc, expected 2"
[ "$(cat "$tmp/err")" = "rebound: lint: cannot open '$tmp/nope.json': no such file or directory" ] ||
    fail "a missing file: stderr '$(cat "$tmp/err")'"
[ "$(cat "$tmp/out")" = "2 files, 1 with errors" ] || fail "summary: $(cat "$tmp/out")"

# A folder is not a scenario file.
rc=0
"$REBOUND" lint "$tmp" > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "a folder: exit $rc, expected 2"
grep -q "^rebound: lint: cannot read '$tmp': is a directory$" "$tmp/err" ||
    fail "a folder: stderr '$(cat "$tmp/err")'"

# The shipped library lints clean, and each file starts with its description.
rc=0
"$REBOUND" lint "$REBOUND_SOURCE_DIR"/scenarios/library/*.json > "$tmp/out" 2> "$tmp/err" ||
    rc=$?
[ "$rc" -eq 0 ] || fail "the library does not lint clean: $(cat "$tmp/err")"
[ ! -s "$tmp/err" ] || fail "lint printed on stderr for a clean library"
grep -q " files, 0 with errors$" "$tmp/out" || fail "summary: $(cat "$tmp/out")"
for f in "$REBOUND_SOURCE_DIR"/scenarios/library/*.json; do
    [ "$(sed -n 2p "$f" | sed 's/^ *//' | cut -c1-14)" = '"description":' ] ||
        fail "'$f' does not start with its description"
done

# Usage.
expect_exit 0 '^usage: rebound lint FILE' rb lint --help
expect_exit 2 '' rb lint
expect_exit 2 '' rb lint --frobnicate x.json
echo "ok: $n cases"

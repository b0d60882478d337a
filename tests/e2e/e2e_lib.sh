# shellcheck shell=bash
# e2e_lib.sh - what the shell end-to-end tests share (sourced, not a test):
# a scratch folder removed at exit along with whatever the test registered
# with at_exit (mounts, processes), fail(), and expect_exit(), which runs a
# command and checks its exit code and, for an error, that it printed one
# clear message on stderr in the house style.
set -euo pipefail

: "${REBOUND:?set REBOUND to the rebound binary (ctest does)}"
REBOUND_SOURCE_DIR=${REBOUND_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export REBOUND_SOURCE_DIR
unset REBOUND_RUN REBOUND_STORE REBOUND_ATTEMPT REBOUND_LAST_FAILURE REBOUND_EVENT_FD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rebound-e2e.XXXXXX")
e2e_cleanups=()

# at_exit CMD: run CMD (a string for eval) at exit, last registered first.
at_exit() {
    e2e_cleanups+=("$1")
}

e2e_on_exit() {
    local i
    for ((i = ${#e2e_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${e2e_cleanups[i]}" || true
    done
    rm -rf "$tmp"
}
trap e2e_on_exit EXIT
trap 'exit 143' TERM # a ctest timeout: clean up too
trap 'exit 130' INT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

rb() {
    "$REBOUND" "$@"
}

# expect_exit CODE REGEX CMD [ARGS...]
# Runs CMD (stdout in $tmp/out, stderr in $tmp/err) and checks that it exits
# CODE. For CODE 0, REGEX (if not empty) must match stdout. Otherwise stderr
# must be one line, "rebound: [command: ]message", the message starting in
# lowercase (or a quote) and without a final period, and REGEX (extended,
# case-sensitive) must match it.
expect_exit() {
    local want=$1 re=$2 code=0 lines msg
    shift 2
    "$@" > "$tmp/out" 2> "$tmp/err" || code=$?
    if [ "$code" -ne "$want" ]; then
        fail "'$*' exited $code; $want was expected. stderr: $(cat "$tmp/err")"
    fi
    if [ "$want" -eq 0 ]; then
        if [ -n "$re" ] && ! grep -Eq -- "$re" "$tmp/out"; then
            fail "'$*' printed '$(cat "$tmp/out")', which does not match /$re/"
        fi
        return 0
    fi
    lines=$(wc -l < "$tmp/err")
    [ "$lines" -eq 1 ] ||
        fail "'$*' printed $lines lines on stderr; one message was expected: $(cat "$tmp/err")"
    msg=$(cat "$tmp/err")
    [[ $msg == "rebound: "* ]] || fail "'$*': message '$msg' does not start with 'rebound: '"
    msg=${msg#rebound: }
    if [[ $msg =~ ^(step|runs|log|lineage|escalations|escalations\ resolve|park|check):\ (.*)$ ]]; then
        msg=${BASH_REMATCH[2]}
    fi
    [[ $msg != [A-Z]* ]] || fail "'$*': message '$msg' starts with a capital"
    [[ $msg != *. ]] || fail "'$*': message '$msg' ends with a period"
    grep -Eq -- "$re" "$tmp/err" ||
        fail "'$*': message '$(cat "$tmp/err")' does not match /$re/"
    echo "exit $code: $(cat "$tmp/err")"
}

# snapshot STORE RUN: the run's committed steps as JSON lines, in seq order
# (seq, name, tries, output).
snapshot() {
    rb log --store "$1" --json "$2" |
        jq -c '.steps[] | select(.status == "committed") |
            {seq, step, tries, output, output_hex}'
}

# assert_intact STORE RUN FILE: the run's steps are as FILE (a snapshot) says.
assert_intact() {
    local now
    now=$(snapshot "$1" "$2") || fail "cannot read run '$2' of store '$1'"
    [ "$now" = "$(cat "$3")" ] ||
        fail "run '$2' changed: $(diff <(echo "$now") "$3" | head -5)"
}

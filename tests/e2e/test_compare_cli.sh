#!/usr/bin/env bash
# `rebound compare` end to end: the exit code and the verdict line on each
# crafted pair of tests/fixtures/compare/ (1 for a regression, naming the
# scenario and the metric; 0 for an improvement, noise within the spread, a
# change too small in ms, a scenario in one file only), the thresholds as
# options, the Markdown table, bad usage and bad files (exit 2, one clear
# message); then a real `rebound run` compared with itself (unchanged) and
# with a copy whose recoveries were made ten times slower (a regression).
#
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

fx=$REBOUND_SOURCE_DIR/tests/fixtures/compare

# compare_case CASE CODE REGEX [OPTIONS...]: compares the pair CASE and
# checks the exit code and that stdout matches REGEX; stderr must be empty.
compare_case() {
    local case=$1 want=$2 re=$3 code=0
    shift 3
    rb compare "$@" "$fx/$case/base.json" "$fx/$case/new.json" > "$tmp/out" 2> "$tmp/err" ||
        code=$?
    [ "$code" -eq "$want" ] ||
        fail "compare $case $*: exit $code, expected $want: $(cat "$tmp/out" "$tmp/err")"
    [ ! -s "$tmp/err" ] || fail "compare $case $*: printed on stderr: $(cat "$tmp/err")"
    grep -Eq -- "$re" "$tmp/out" ||
        fail "compare $case $*: output does not match /$re/: $(cat "$tmp/out")"
    echo "compare $case $*: exit $code"
}

compare_case regression 1 \
    '^verdict: REGRESSION in kill-at-step-147 \(recovery p50, recovery p95\)$'
grep -q 'recovery p50  1050 ms -> 1550 ms, +47.6% (+500 ms), regression' "$tmp/out" ||
    fail "the regression's p50 line is missing: $(cat "$tmp/out")"
compare_case regression 0 '^verdict: no regression' --max-regression 60
compare_case regression 0 '^verdict: no regression' --min-change-ms=600
compare_case improvement 0 '^verdict: no regression \(1 improved\)$'
compare_case noise 0 'within noise \(spread 900-1400 ms over 3 base samples\)'
grep -q '^verdict: no regression (1 within noise)$' "$tmp/out" ||
    fail "noise: verdict line: $(cat "$tmp/out")"
compare_case tiny 0 '^verdict: no regression \(1 unchanged\)$'
compare_case tiny 1 '^verdict: REGRESSION in kill-at-step-147 \(recovery p50, recovery p95\)$' \
    --min-change-ms 5
compare_case added-removed 0 '^verdict: no regression \(1 unchanged, 1 added, 1 removed\)$'
grep -q '^oom-kill  added$' "$tmp/out" || fail "added scenario not listed: $(cat "$tmp/out")"
grep -q '^network-reset  removed$' "$tmp/out" ||
    fail "removed scenario not listed: $(cat "$tmp/out")"
compare_case outcome-worse 1 '^verdict: REGRESSION in kill-at-step-147 \(outcomes\)$'
grep -q '3 recovered -> 2 recovered, 1 failed; passed 3/3 -> 2/3, worse' "$tmp/out" ||
    fail "outcome change not shown: $(cat "$tmp/out")"
compare_case steps-up 1 '^verdict: REGRESSION in kill-at-step-147 \(steps redone\)$'
compare_case old-format 0 '^verdict: no regression'
compare_case seeds 0 'only in the base: 1; only in the new: 4 \(not compared\)'

# Seeds are agent-controlled strings: no escape sequence reaches the
# terminal, no Markdown heading is injected, nobody is pinged, and two long
# seeds that differ at the end stay two seeds.
compare_case hostile-seeds 0 '^verdict: no regression'
! LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/out" ||
    fail "hostile-seeds: a control character in the text output: $(cat -v "$tmp/out")"
grep -q 'only in the new: A\{40\}2 (not compared)' "$tmp/out" ||
    fail "hostile-seeds: long seeds merged: $(cat -v "$tmp/out")"
compare_case hostile-seeds 0 '^\*\*Verdict: no regression' --format md
! grep -q '^## Verdict' "$tmp/out" || fail "hostile-seeds: a heading injected: $(cat -v "$tmp/out")"
! grep -q '@octocat\|@team\|://' "$tmp/out" || fail "hostile-seeds: a live mention or link: $(cat -v "$tmp/out")"

# Markdown: a table, the name escaped so that it stays in its cell.
compare_case odd-names 1 '^\| odd\\\|name \\\*bold\\\* ' --format md
grep -q '^| scenario | recovery p50 | recovery p95 | steps redone | outcomes | verdict |$' \
    "$tmp/out" || fail "no Markdown table header: $(cat "$tmp/out")"
grep -q '^\*\*Verdict: regression\*\* in odd' "$tmp/out" ||
    fail "no Markdown verdict: $(cat "$tmp/out")"
! grep -q $'\x1b' "$tmp/out" || fail "an escape character reached the output"
compare_case regression 1 '^\*\*Verdict: regression\*\*' --format=md

# Bad usage and bad files: exit 2, one message.
good=$fx/regression/new.json
expect_exit 2 'give two results files' rb compare
expect_exit 2 'give two results files' rb compare "$good"
expect_exit 2 "too many files: 'c'" rb compare "$good" "$good" c
expect_exit 2 "unknown option '--max'" rb compare --max 5 "$good" "$good"
expect_exit 2 "bad --max-regression 'ten': expected a percentage" \
    rb compare --max-regression ten "$good" "$good"
expect_exit 2 "bad --max-regression '-5'" rb compare --max-regression=-5 "$good" "$good"
expect_exit 2 "bad --min-change-ms 'nan'" rb compare --min-change-ms nan "$good" "$good"
expect_exit 2 '--min-change-ms needs a value' rb compare "$good" "$good" --min-change-ms
expect_exit 2 "bad --format 'html': expected text or md" rb compare --format html "$good" "$good"
expect_exit 2 "cannot read results '.*/nope.json': no such file or directory" \
    rb compare "$fx/nope.json" "$good"
expect_exit 2 "cannot read results '.*/bad': it is a folder" rb compare "$good" "$fx/bad"
expect_exit 2 "'.*/malformed.json' is not valid JSON: line [0-9]+ column [0-9]+: " \
    rb compare "$good" "$fx/bad/malformed.json"
expect_exit 2 "'.*/not-results.json' is not a results file: no 'schema'" \
    rb compare "$fx/bad/not-results.json" "$good"
expect_exit 2 "was written by a newer rebound \(results schema 2, this one reads 1\)" \
    rb compare "$fx/bad/newer-schema.json" "$good"
expect_exit 2 "'.*/no-scenario.json': trial 1 has no 'scenario'" \
    rb compare "$good" "$fx/bad/no-scenario.json"
expect_exit 0 'exit codes: 0 no regression; 1 a regression' rb compare --help
grep -q 'within the spread \[min, max\] of the base trials' "$tmp/out" ||
    fail "--help does not state the noise rule"

# A real run: compared with itself, nothing changed; compared with a copy
# whose every recovery is ten times slower (plus a second), a regression.
run_rc=0
rb run "$REBOUND_SOURCE_DIR/scenarios/library/kill-at-step-147.json" --out "$tmp/run" \
    > "$tmp/run.out" 2>&1 || run_rc=$?
[ -f "$tmp/run/results.json" ] ||
    fail "rebound run wrote no results.json (exit $run_rc): $(tail -5 "$tmp/run.out")"
expect_exit 0 '^verdict: no regression \(1 unchanged\)$' \
    rb compare "$tmp/run/results.json" "$tmp/run/results.json"
jq '(.trials[].faults[]? | select(.recovery_ms != null) | .recovery_ms) |= . * 10 + 1000 |
    (.trials[] | select(.recovery_ms != null) | .recovery_ms) |= . * 10 + 1000' \
    "$tmp/run/results.json" > "$tmp/slow.json"
code=0
rb compare "$tmp/run/results.json" "$tmp/slow.json" > "$tmp/out" 2> "$tmp/err" || code=$?
[ "$code" -eq 1 ] || fail "a ten times slower recovery: exit $code: $(cat "$tmp/out" "$tmp/err")"
grep -Eq '^verdict: REGRESSION in kill-at-step-147 \(recovery p50, recovery p95\)$' \
    "$tmp/out" || fail "slower copy: $(cat "$tmp/out")"
grep -q '^  seeds         1 2 3$' "$tmp/out" || fail "the run's seeds are not matched"
echo "real run: self-compare unchanged, slower copy a regression"
echo "PASS"

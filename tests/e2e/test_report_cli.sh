#!/usr/bin/env bash
# `rebound report` from the command line: each format to stdout and to
# --out FILE (the same bytes, written whole), --help, and bad input: a
# missing file, malformed JSON, a JSON file that is not results, a newer
# schema, an unknown or missing format (each one clear message, exit 2), and
# an --out that cannot be written (exit 10, nothing left behind).
#
# ctest-timeout: 60
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

fx=$REBOUND_SOURCE_DIR/tests/fixtures/results

expect_exit 0 'junit\|md\|html' rb report --help
grep -q 'docs/reports.md' "$tmp/out" || fail "--help does not point at docs/reports.md"

for f in junit md html; do
    expect_exit 0 '' rb report "$fx/mixed.json" --format "$f"
    cp "$tmp/out" "$tmp/stdout.$f"
    expect_exit 0 '' rb report "$fx/mixed.json" --format "$f" --out "$tmp/report.$f"
    cmp -s "$tmp/stdout.$f" "$tmp/report.$f" || fail "--out $f differs from stdout"
    [ -s "$tmp/report.$f" ] || fail "--out $f is empty"
done
grep -q '^## rebound resilience suite: FAIL$' "$tmp/report.md" || fail "md: no suite verdict"
grep -q '<testsuites name="rebound" tests="5" failures="2" errors="1"' "$tmp/report.junit" ||
    fail "junit: wrong totals"
grep -q 'id="suite-verdict"' "$tmp/report.html" || fail "html: no suite verdict"
# -f and -o, and --format=VALUE
expect_exit 0 '' rb report -f markdown -o "$tmp/short.md" "$fx/with-scenarios.json"
grep -q '120 / 480 ms' "$tmp/short.md" || fail "md from the scenarios block: no p50/p95"

# Bad input: one message, exit 2.
expect_exit 2 "cannot read results '$tmp/nope.json': no such file" \
    rb report "$tmp/nope.json" --format md
expect_exit 2 "malformed.json:[0-9]+:[0-9]+: not valid JSON" \
    rb report "$fx/malformed.json" --format md
expect_exit 2 "not a results document: no integer 'schema' field" \
    rb report "$fx/not-results.json" --format html
expect_exit 2 "results schema 2 is newer than this rebound reads" \
    rb report "$fx/newer-schema.json" --format junit
expect_exit 2 "unknown report format 'pdf' \(junit, md or html\)" \
    rb report "$fx/mixed.json" --format pdf
expect_exit 2 "no --format given" rb report "$fx/mixed.json"
expect_exit 2 "no results file given" rb report --format md
expect_exit 2 "unknown option '--colour'" rb report "$fx/mixed.json" --format md --colour
expect_exit 2 "option '--format' needs a value" rb report "$fx/mixed.json" --format
expect_exit 2 "one results file at a time" rb report "$fx/mixed.json" "$fx/mixed.json" -f md

# An --out that cannot be written: exit 10, and nothing left behind.
expect_exit 10 "cannot write report '$tmp/missing/r.html'" \
    rb report "$fx/mixed.json" --format html --out "$tmp/missing/r.html"
mkdir "$tmp/outdir"
expect_exit 10 "cannot write report '$tmp/outdir': is a directory" \
    rb report "$fx/mixed.json" --format md --out "$tmp/outdir"
[ -z "$(ls -A "$tmp/outdir")" ] || fail "a temporary file was left in $tmp/outdir: $(ls -A "$tmp/outdir")"
echo "report cli: ok"

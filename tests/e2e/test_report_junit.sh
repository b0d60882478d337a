#!/usr/bin/env bash
# The JUnit report validates against the JUnit schema CI systems read
# (tests/fixtures/junit.xsd, written from the Jenkins/Ant element and
# attribute list), for the fixtures (failed, hung, escalated and error
# trials, odd characters in names) and for the results of a real run of a
# library scenario; and its totals agree with its testcases. Needs xmllint
# (libxml2-utils, in scripts/deps.sh): skipped without it.
#
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

if ! command -v xmllint > /dev/null; then
    echo "SKIP: xmllint not installed (scripts/deps.sh installs libxml2-utils)"
    exit 77
fi
xsd=$REBOUND_SOURCE_DIR/tests/fixtures/junit.xsd
fx=$REBOUND_SOURCE_DIR/tests/fixtures/results

# xp FILE XPATH: the number XPATH evaluates to.
xp() {
    xmllint --xpath "$2" "$1"
}

check() {
    local xml=$1 tests failures errors
    xmllint --noout --schema "$xsd" "$xml" 2> "$tmp/xmllint.err" ||
        fail "$xml does not validate: $(cat "$tmp/xmllint.err")"
    tests=$(xp "$xml" 'string(/testsuites/@tests)')
    failures=$(xp "$xml" 'string(/testsuites/@failures)')
    errors=$(xp "$xml" 'string(/testsuites/@errors)')
    [ "$tests" = "$(xp "$xml" 'count(//testcase)')" ] || fail "$xml: tests=$tests"
    [ "$failures" = "$(xp "$xml" 'count(//testcase[failure])')" ] ||
        fail "$xml: failures=$failures"
    [ "$errors" = "$(xp "$xml" 'count(//testcase[error])')" ] || fail "$xml: errors=$errors"
    [ "$(xp "$xml" 'count(//testsuite)')" = "$(xp "$xml" 'count(//testsuite[@name])')" ] ||
        fail "$xml: a testsuite without a name"
    [ "$(xp "$xml" 'sum(//testsuite/@skipped)')" = "$(xp "$xml" 'count(//testcase[skipped])')" ] ||
        fail "$xml: skipped= does not count the skipped testcases"
}

# The schema must be able to say no: a testcase without a name, or a time
# that is not seconds, is refused.
printf '<testsuites><testsuite name="s" tests="1"><testcase time="1"/></testsuite></testsuites>\n' \
    > "$tmp/noname.xml"
! xmllint --noout --schema "$xsd" "$tmp/noname.xml" 2> /dev/null || fail "the schema accepts a testcase without a name"
printf '<testsuites><testsuite name="s" tests="1"><testcase name="c" time="1.5s"/></testsuite></testsuites>\n' \
    > "$tmp/badtime.xml"
! xmllint --noout --schema "$xsd" "$tmp/badtime.xml" 2> /dev/null || fail "the schema accepts time=1.5s"

for f in mixed with-scenarios unicode interrupted; do
    rb report "$fx/$f.json" --format junit --out "$tmp/$f.xml"
    check "$tmp/$f.xml"
done
# What a CI system shows for the fixtures.
[ "$(xp "$tmp/mixed.xml" 'string(//testcase[@name="naive seed 7 [trial 1]"]/failure/@message)')" = \
    'steps_redone 3 > max_steps_redone 0' ] || fail "naive: wrong failure message"
[ "$(xp "$tmp/mixed.xml" 'count(//testcase[@classname="cannot-start"]/error)')" = 1 ] ||
    fail "cannot-start: not an error"
[ "$(xp "$tmp/mixed.xml" 'string(//testsuite[starts-with(@name,"odd")]/@name)')" = \
    "$(printf 'odd <name> & "quoted" | pipe `tick` *star*\nnewline')" ] ||
    fail "the odd name did not survive the XML round trip"
# U+FFFE/U+FFFF in names and broken texts, and long multi-byte broken
# texts cut at byte counts, still make well-formed XML (check validated it).
[ "$(xp "$tmp/unicode.xml" 'count(//testcase[failure])')" = 3 ] || fail "unicode: failures lost"
# A scenario the machine could not run is a skipped testcase with why; an
# interrupted suite is an error CI shows.
[ "$(xp "$tmp/interrupted.xml" 'string(//testsuite[@name="partition-db"]/testcase/skipped/@message)')" = \
    'cannot make a network namespace: operation not permitted' ] || fail "interrupted: skipped scenario missing"
[ "$(xp "$tmp/interrupted.xml" 'sum(//testsuite/@skipped)')" = 2 ] || fail "interrupted: skipped= is not 2"
[ "$(xp "$tmp/interrupted.xml" 'string(//testcase/error[@type="interrupted"]/@message)')" = \
    'suite interrupted: results are partial' ] || fail "interrupted: no error for the interrupted suite"
[ "$(xp "$tmp/interrupted.xml" 'string(/testsuites/@errors)')" = 1 ] || fail "interrupted: errors= is not 1"

# A real run of a library scenario.
rb run "$REBOUND_SOURCE_DIR/scenarios/library/kill-at-step-147.json" --out "$tmp/run" > "$tmp/run.log" 2>&1 ||
    fail "rebound run failed: $(cat "$tmp/run.log")"
rb report "$tmp/run/results.json" --format junit --out "$tmp/run.xml"
check "$tmp/run.xml"
[ "$(xp "$tmp/run.xml" 'count(//testsuite[@name="kill-at-step-147"]/testcase)')" -ge 1 ] ||
    fail "the real run has no testcase for kill-at-step-147"
# Once rebound run writes its reports itself, its junit.xml must validate too.
if [ -f "$tmp/run/junit.xml" ]; then
    check "$tmp/run/junit.xml"
fi
echo "report junit: ok"

#!/usr/bin/env bash
# The HTML report in a real browser: headless Chromium loads report.html
# (from the fixtures, with failed, hung, escalated and error trials and odd
# names, and from a real run of a library scenario), and the test checks
# what the browser built: the suite verdict and score, one recovery chart per
# scenario, one timeline per trial, no console message at all (the page has
# no script, and its Content-Security-Policy turns any attempted fetch into a
# console error), and, in an instrumented copy, that every chart was laid
# out with a real size. A screenshot of each page is kept in
# $REBOUND_BUILD_DIR/test-output/report_html/. Skipped (exit 77) when
# Chromium is not installed (scripts/deps.sh installs it) or cannot start.
#
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

browser=
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" > /dev/null; then
        browser=$b
        break
    fi
done
if [ -z "$browser" ]; then
    echo "SKIP: chromium not installed (scripts/deps.sh installs it)"
    exit 77
fi
outdir=${REBOUND_BUILD_DIR:-$tmp}/test-output/report_html
mkdir -p "$outdir"

# chrome ARGS...: headless Chromium with its own profile, bounded in time.
chrome() {
    timeout 120 "$browser" --headless --disable-gpu --no-sandbox --no-first-run \
        --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$tmp/profile" \
        --enable-logging=stderr --v=0 "$@"
}
printf '<!DOCTYPE html><title>t</title><p id="x">up</p>\n' > "$tmp/probe.html"
if ! chrome --dump-dom "file://$tmp/probe.html" > "$tmp/probe.dom" 2> "$tmp/probe.err" ||
    ! grep -q 'id="x"' "$tmp/probe.dom"; then
    echo "SKIP: $browser cannot run here: $(grep -v dbus "$tmp/probe.err" | tail -3)"
    exit 77
fi

# count FILE REGEX: how many times REGEX matches in FILE.
count() {
    grep -oE -- "$2" "$1" | wc -l
}

# check NAME RESULTS: renders NAME.html from RESULTS and checks it.
check() {
    local name=$1 results=$2 html=$tmp/$1.html dom=$tmp/$1.dom n_s n_t n_ev
    rb report "$results" --format html --out "$html"
    n_s=$(jq '[.trials[].scenario] + [(.scenarios // [])[].name] | unique | length' "$results")
    n_t=$(jq '.trials | length' "$results")
    n_ev=$(jq '[.trials[] | select((.faulted.events // []) | length > 0)] | length' "$results")

    chrome --dump-dom "file://$html" > "$dom" 2> "$tmp/$name.log" ||
        fail "$name: chromium failed: $(tail -5 "$tmp/$name.log")"
    if grep -E ':CONSOLE|Failed to load resource|net::ERR_' "$tmp/$name.log" > "$tmp/console"; then
        fail "$name: the page logged to the console: $(cat "$tmp/console")"
    fi
    grep -q '<p id="suite-verdict" class="verdict \(pass\|fail\)">\(PASS\|FAIL\)</p>' "$dom" ||
        fail "$name: no suite verdict in the DOM"
    grep -q '<p id="resilience-score">resilience score <b>[0-9]*</b>' "$dom" ||
        fail "$name: no resilience score in the DOM"
    [ "$(count "$dom" '<figure class="recovery-chart">')" -eq "$n_s" ] ||
        fail "$name: $(count "$dom" '<figure class="recovery-chart">') recovery charts for $n_s scenarios"
    [ "$(count "$dom" '<figure class="timeline">')" -eq "$n_t" ] ||
        fail "$name: $(count "$dom" '<figure class="timeline">') timelines for $n_t trials"
    [ "$(count "$dom" '<svg [^>]*class="timeline-svg"')" -eq "$n_ev" ] ||
        fail "$name: $(count "$dom" '<svg [^>]*class="timeline-svg"') timeline charts for $n_ev trials with events"
    [ "$(count "$dom" '<table id="summary"')" -eq 1 ] || fail "$name: no summary table"

    # Layout: an instrumented copy (its policy allows this one inline script)
    # writes the size of every chart into the DOM.
    sed -e "s/default-src 'none'; style-src 'unsafe-inline'/default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'/" \
        -e 's|</body>|<script>(function(){var bad=0,n=0;document.querySelectorAll("svg").forEach(function(s){var r=s.getBoundingClientRect();n++;if(r.width<200\|\|r.height<20)bad++;});var ok=0;document.querySelectorAll("svg.timeline-svg rect").forEach(function(r){if(r.getBoundingClientRect().width>0)ok++;});var p=document.createElement("p");p.id="layout";p.textContent="svgs="+n+" small="+bad+" rects="+ok;document.body.appendChild(p);})();</script></body>|' \
        "$html" > "$tmp/$name.layout.html"
    chrome --window-size=1200,900 --dump-dom "file://$tmp/$name.layout.html" > "$tmp/$name.layout.dom" 2> /dev/null ||
        fail "$name: chromium failed on the instrumented copy"
    local want='id="layout">svgs=[1-9][0-9]* small=0 rects='
    [ "$n_ev" -eq 0 ] || want="${want}[1-9]"
    grep -q "$want" "$tmp/$name.layout.dom" ||
        fail "$name: charts not laid out: $(grep -o 'id="layout">[^<]*' "$tmp/$name.layout.dom" || echo 'no layout line')"

    chrome --window-size=1200,3000 --screenshot="$outdir/$name.png" "file://$html" > /dev/null 2>&1 ||
        fail "$name: no screenshot"
    [ "$(head -c 4 "$outdir/$name.png" | tail -c 3)" = PNG ] || fail "$name: the screenshot is not a PNG"
    echo "$name: ok ($n_s scenarios, $n_t trials; screenshot $outdir/$name.png)"
}

fx=$REBOUND_SOURCE_DIR/tests/fixtures/results
check fixture-mixed "$fx/mixed.json"
check fixture-scenarios "$fx/with-scenarios.json"

rb run "$REBOUND_SOURCE_DIR/scenarios/library/kill-at-step-147.json" --out "$tmp/run" > "$tmp/run.log" 2>&1 ||
    fail "rebound run failed: $(cat "$tmp/run.log")"
check real-run "$tmp/run/results.json"
# The odd names of the fixture reached the page as text, not markup.
grep -q 'odd &lt;name&gt; &amp; "quoted" | pipe `tick` \*star\*' "$tmp/fixture-mixed.dom" ||
    fail "the odd scenario name is not shown as text"
echo "report html: ok"

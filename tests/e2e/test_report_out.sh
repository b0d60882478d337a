#!/usr/bin/env bash
# `rebound report --out PATH` keeps PATH what it is: a character device (a
# private copy of /dev/null made with mknod in the scratch folder, never the
# real one), a FIFO or a symbolic link is written straight into, not
# replaced by a regular file; a regular file is replaced whole through a
# temporary file that is created new, so a symbolic link planted at the old
# guessable temporary name (PATH.tmp-PID) is neither followed nor left as
# the report.
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

fx=$REBOUND_SOURCE_DIR/tests/fixtures/results

# A character device like /dev/null (1,3), inside the scratch folder.
if mknod "$tmp/null" c 1 3 2> /dev/null; then
    expect_exit 0 "" rb report "$fx/mixed.json" --format junit --out "$tmp/null"
    [ -c "$tmp/null" ] || fail "--out to a character device replaced it: $(ls -l "$tmp/null")"
    [ -z "$(ls -A "$tmp" | grep -v '^null$' | grep -v '^out$\|^err$' || true)" ] ||
        fail "files left behind: $(ls -A "$tmp")"
else
    echo "note: mknod not permitted here; the character device case is not run"
fi

# A FIFO: the reader gets the whole report, the FIFO stays a FIFO.
mkfifo "$tmp/fifo"
timeout 60 cat "$tmp/fifo" > "$tmp/from-fifo" &
reader=$!
expect_exit 0 "" timeout 60 "$REBOUND" report "$fx/mixed.json" --format md --out "$tmp/fifo"
wait "$reader" || fail "the FIFO reader failed"
[ -p "$tmp/fifo" ] || fail "--out to a FIFO replaced it: $(ls -l "$tmp/fifo")"
grep -q '^## rebound resilience suite' "$tmp/from-fifo" || fail "the FIFO reader got no report"

# A symbolic link to a file: the link stays, the file gets the report.
echo old > "$tmp/real.html"
ln -s real.html "$tmp/link.html"
expect_exit 0 "" rb report "$fx/mixed.json" --format html --out "$tmp/link.html"
[ -L "$tmp/link.html" ] || fail "--out to a link replaced the link"
grep -q '<html' "$tmp/real.html" || fail "the link's target did not get the report"

# A link planted at PATH.tmp-PID (the name an older rebound used): not
# followed, and the report is a regular file of its own.
mkdir "$tmp/d"
echo precious > "$tmp/victim"
(
    ln -s "$tmp/victim" "$tmp/d/r.xml.tmp-$BASHPID"
    exec "$REBOUND" report "$fx/mixed.json" --format junit --out "$tmp/d/r.xml"
) || fail "rebound report failed next to a planted link"
[ "$(cat "$tmp/victim")" = precious ] || fail "a planted link at the temporary name was followed"
[ -f "$tmp/d/r.xml" ] && [ ! -L "$tmp/d/r.xml" ] || fail "the report is not a regular file"
grep -q '<testsuites' "$tmp/d/r.xml" || fail "the report is not there"

# A regular file is replaced whole, and no temporary file is left.
echo old > "$tmp/d/r.md"
expect_exit 0 "" rb report "$fx/mixed.json" --format md --out "$tmp/d/r.md"
grep -q '^## rebound resilience suite' "$tmp/d/r.md" || fail "the regular file was not replaced"
[ "$(ls -A "$tmp/d" | grep -c tmp-)" = 1 ] || fail "a temporary file was left: $(ls -A "$tmp/d")"
echo "report out: ok"

#!/usr/bin/env bash
# Bad input through the CLI: each case gets one clear message on stderr and
# its own exit code (the table in `rebound --help`), and nothing already
# committed is lost. Steps are committed first; after each provoked error the
# earlier steps are checked with `rebound log --json`.
#
#   4  unreadable store (run as an unprivileged user), a store path that is a
#      regular file; a missing store is created (0)
#   5  a store of a newer schema, left byte for byte unchanged
#   6  a corrupt database (garbage header, garbage pages), a damaged or missing
#      blob, a foreign SQLite file
#   7  a full disk (a small tmpfs): a large output, no space at all, and a sweep
#      of nearly-full levels; after freeing space the store is whole and new
#      steps commit. Skipped, saying so, when a tmpfs cannot be mounted.
#   2  bad run ids and step names (empty, newline, > 256 bytes, bad UTF-8),
#      an empty command, unknown options; odd but valid names round-trip
#   127, 126, the command's own status, 128+N for a signal
#   8  a parked run, until a human resolves it
#
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

store=$tmp/store
export REBOUND_STORE=$store

# ---- committed steps that every case below must leave intact ----------------
head -c 6000 < <(yes 'a line of a blob-sized output') > "$tmp/blob.txt"
expect_exit 0 '^one$' rb step --run base --name one -- echo one
expect_exit 0 '' rb step --run base --name blob -- cat "$tmp/blob.txt"
cmp -s "$tmp/out" "$tmp/blob.txt" || fail "step 'blob' did not print its 6000-byte output"
expect_exit 0 '^three$' rb step --run base --name three -- echo three
snapshot "$store" base > "$tmp/base.snap"
[ "$(wc -l < "$tmp/base.snap")" -eq 3 ] || fail "expected 3 committed steps in run 'base'"
intact() {
    assert_intact "$store" base "$tmp/base.snap"
}

# ---- 4: the store cannot be opened or created ---------------------------------
: > "$tmp/plain-file"
expect_exit 4 "cannot open store '$tmp/plain-file': not a folder" \
    rb step --store "$tmp/plain-file" --run base --name x -- echo x
expect_exit 4 "not a folder" rb log --store "$tmp/plain-file" base
[ ! -s "$tmp/plain-file" ] || fail "rebound wrote into the regular file given as a store"

mkdir "$tmp/fresh"
expect_exit 0 '^made$' rb step --store "$tmp/fresh/store" --run r --name a -- echo made
[ "$(stat -c %a "$tmp/fresh/store")" = 700 ] ||
    fail "a new store folder has mode $(stat -c %a "$tmp/fresh/store"), not 700"
[ "$(stat -c %a "$tmp/fresh/store/rebound.db")" = 600 ] ||
    fail "a new store database has mode $(stat -c %a "$tmp/fresh/store/rebound.db"), not 600"
expect_exit 0 '"made\\n"' rb log --store "$tmp/fresh/store" r

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: unreadable-store cases need root (to run rebound as another user)"
else
    # A root-owned 0700 store, used by user nobody (65534). Root ignores file
    # modes, so the test switches user. The folder above the store and a copy
    # of the binary are reachable by everyone.
    chmod 0755 "$tmp"
    mkdir -m 0755 "$tmp/pub"
    install -m 0755 "$REBOUND" "$tmp/pub/rebound"
    cp -a "$store" "$tmp/pub/store"
    chmod 0700 "$tmp/pub/store"
    nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    if ! "${nobody[@]}" "$tmp/pub/rebound" --version > /dev/null 2>&1; then
        echo "SKIP: unreadable-store cases: user 65534 cannot run $tmp/pub/rebound" \
            "(is ${TMPDIR:-/tmp} closed to other users?)"
    else
        expect_exit 4 "cannot open store '$tmp/pub/store(/rebound.db)?': [Pp]ermission denied" \
            "${nobody[@]}" "$tmp/pub/rebound" step --store "$tmp/pub/store" \
            --run base --name x -- echo x
        expect_exit 4 "[Pp]ermission denied" \
            "${nobody[@]}" "$tmp/pub/rebound" log --store "$tmp/pub/store" base
        expect_exit 4 "[Pp]ermission denied" \
            "${nobody[@]}" "$tmp/pub/rebound" runs --store "$tmp/pub/store"
        # The folder open to all, the database still root's 0600.
        chmod 0755 "$tmp/pub/store"
        expect_exit 4 "cannot open store '$tmp/pub/store/rebound.db'.*[Pp]ermission denied" \
            "${nobody[@]}" "$tmp/pub/rebound" step --store "$tmp/pub/store" \
            --run base --name x -- echo x
        assert_intact "$tmp/pub/store" base "$tmp/base.snap"
    fi
fi
intact

# ---- 5: a store written by a newer rebound ------------------------------------
cp -a "$store" "$tmp/newer"
sqlite3 "$tmp/newer/rebound.db" 'PRAGMA user_version = 1000' ||
    fail "sqlite3 could not set user_version"
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
sums "$tmp/newer" > "$tmp/newer.sums"
for cmd in "step --run base --name x -- echo x" "log base" "runs" "check" \
    "park --reason r base"; do
    read -ra words <<< "$cmd"
    expect_exit 5 "schema version 1000.*upgrade rebound" \
        rb "${words[0]}" --store "$tmp/newer" "${words[@]:1}"
done
sums "$tmp/newer" | cmp -s - "$tmp/newer.sums" ||
    fail "a newer store was changed by a refused command: $(sums "$tmp/newer" |
        diff - "$tmp/newer.sums")"
intact

# ---- 6: a corrupt store -----------------------------------------------------------
garbage() { head -c "$1" < <(yes 'this is not what SQLite wrote here'); }
cp -a "$store" "$tmp/bad-header"
garbage 100 | dd of="$tmp/bad-header/rebound.db" conv=notrunc status=none
sums "$tmp/bad-header" > "$tmp/bad-header.sums"
expect_exit 6 "store '$tmp/bad-header/rebound.db' is corrupt" \
    rb step --store "$tmp/bad-header" --run base --name x -- echo x
expect_exit 6 "is corrupt" rb log --store "$tmp/bad-header" base
expect_exit 6 "is corrupt" rb check --store "$tmp/bad-header"
sums "$tmp/bad-header" | cmp -s - "$tmp/bad-header.sums" ||
    fail "a corrupt store was changed by a refused command"

cp -a "$store" "$tmp/bad-pages"
size=$(stat -c %s "$tmp/bad-pages/rebound.db")
page=$(sqlite3 "$tmp/bad-pages/rebound.db" 'PRAGMA page_size')
[ "$size" -ge $((3 * page)) ] || fail "the store has only $size bytes; pages to spoil expected"
garbage $((size - page)) | dd of="$tmp/bad-pages/rebound.db" bs="$page" seek=1 \
    conv=notrunc status=none
expect_exit 6 "store '$tmp/bad-pages/rebound.db' is corrupt" \
    rb step --store "$tmp/bad-pages" --run base --name x -- echo x
expect_exit 6 "is corrupt" rb log --store "$tmp/bad-pages" base
expect_exit 6 "is corrupt" rb check --store "$tmp/bad-pages"

# A blob whose content no longer matches its name, then a missing blob.
cp -a "$store" "$tmp/bad-blob"
hash=$(rb log --store "$store" --json base | jq -r '.steps[] | select(.step == "blob") |
    .output_hash')
blob=$tmp/bad-blob/blobs/${hash:0:2}/${hash:2}
[ -f "$blob" ] || fail "the output of step 'blob' is not in the blob store at $blob"
echo "not the output" > "$blob"
expect_exit 6 "blob '.*${hash:2}' is damaged" \
    rb step --store "$tmp/bad-blob" --run base --name blob -- cat "$tmp/blob.txt"
expect_exit 6 "is damaged" rb log --store "$tmp/bad-blob" --json base
rm "$blob"
expect_exit 6 "step 'blob' of run 'base' refers to blob $hash, which is missing" \
    rb check --store "$tmp/bad-blob"

mkdir -m 0700 "$tmp/foreign"
sqlite3 "$tmp/foreign/rebound.db" 'CREATE TABLE notes(x); INSERT INTO notes VALUES (1)'
expect_exit 6 "is an SQLite database but not a rebound store" \
    rb step --store "$tmp/foreign" --run base --name x -- echo x
[ "$(sqlite3 "$tmp/foreign/rebound.db" 'SELECT count(*) FROM sqlite_schema')" = 1 ] ||
    fail "rebound changed a foreign SQLite database"
intact

# ---- 7: a full disk -------------------------------------------------------------------
mnt=$tmp/mnt
mkdir "$mnt"
if ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt" 2> "$tmp/mount.err"; then
    echo "SKIP: disk-full cases: cannot mount a tmpfs ($(cat "$tmp/mount.err"))"
else
    at_exit "umount '$mnt' 2>/dev/null || umount -l '$mnt'"
    fs=$mnt/store
    # fill_to BYTES: leave about BYTES free on the tmpfs.
    fill_to() {
        local avail
        rm -f "$mnt/fill" "$mnt/fill2"
        avail=$(df --output=avail -B1 "$mnt" | tail -n 1)
        [ "$avail" -gt "$1" ] || fail "only $avail bytes free on the tmpfs"
        fallocate -l $((avail - $1)) "$mnt/fill"
        if [ "$1" -eq 0 ]; then
            dd if=/dev/zero of="$mnt/fill2" bs=4096 status=none 2> /dev/null || true
        fi
    }
    free_all() {
        rm -f "$mnt/fill" "$mnt/fill2"
    }
    expect_exit 0 '^one$' rb step --store "$fs" --run full --name one -- echo one
    expect_exit 0 '' rb step --store "$fs" --run full --name blob -- cat "$tmp/blob.txt"
    snapshot "$fs" full > "$tmp/full.snap"
    head -c 1048576 < <(yes 0123456789abcdef) > "$tmp/big.txt"

    # A 1 MiB output (a blob) with 256 KiB free: refused, nothing half-written.
    fill_to 262144
    expect_exit 7 "disk full" rb step --store "$fs" --run full --name big -- cat "$tmp/big.txt"
    [ -z "$(ls -A "$fs/blobs/tmp")" ] ||
        fail "a refused blob write left temp files: $(ls "$fs/blobs/tmp")"
    assert_intact "$fs" full "$tmp/full.snap"

    # No space at all: even a small step is refused.
    fill_to 0
    expect_exit 7 "disk full" rb step --store "$fs" --run full --name small -- echo small

    # Nearly full, at many levels: each step either commits or is refused with
    # exit 7 and "disk full" -- never another error, never a half commit.
    : > "$tmp/sweep.committed"
    refused=0
    for kib in 4 8 12 16 20 24 28 32 36 40 44 48 56 64 80 96 128; do
        fill_to $((kib * 1024))
        code=0
        rb step --store "$fs" --run full --name "sweep-$kib" -- echo "level $kib" \
            > "$tmp/out" 2> "$tmp/err" || code=$?
        case $code in
        0) echo "sweep-$kib" >> "$tmp/sweep.committed" ;;
        7)
            refused=$((refused + 1))
            if [ "$(wc -l < "$tmp/err")" -ne 1 ] || ! grep -q "disk full" "$tmp/err"; then
                fail "with $kib KiB free: exit 7 but the message is: $(cat "$tmp/err")"
            fi
            ;;
        *) fail "with $kib KiB free, 'rebound step' exited $code: $(cat "$tmp/err")" ;;
        esac
    done
    [ "$refused" -gt 0 ] || fail "no step was refused with 4-128 KiB free; the disk was not full"

    # Space again: everything committed before is there, the refused steps commit.
    free_all
    expect_exit 0 "" rb check --store "$fs"
    snapshot "$fs" full > "$tmp/full-after.snap"
    head -n 2 "$tmp/full-after.snap" | cmp -s - "$tmp/full.snap" ||
        fail "the steps committed before the disk filled changed"
    jq -r .step "$tmp/full-after.snap" | tail -n +3 > "$tmp/after.names"
    cmp -s "$tmp/after.names" "$tmp/sweep.committed" ||
        fail "after the disk filled, the log holds steps '$(tr '\n' ' ' < "$tmp/after.names")';" \
            "the ones that exited 0 were '$(tr '\n' ' ' < "$tmp/sweep.committed")'"
    expect_exit 0 '' rb step --store "$fs" --run full --name big -- cat "$tmp/big.txt"
    cmp -s "$tmp/out" "$tmp/big.txt" || fail "step 'big' did not print its 1 MiB output"
    expect_exit 0 '^small$' rb step --store "$fs" --run full --name small -- echo small
    rb log --store "$fs" --json full | jq -e '[.steps[] | select(.step == "big")][0] |
        .status == "committed" and .output_size == 1048576' > /dev/null ||
        fail "step 'big' is not committed with its 1 MiB output"
    expect_exit 0 "" rb check --store "$fs"
fi
intact

# ---- 2: bad names; odd names that are fine ---------------------------------------------
long256=$(printf 'n%.0s' {1..256})
long257=${long256}x
expect_exit 2 "step name is empty" rb step --run base --name '' -- echo x
expect_exit 2 "step name holds a control character \(byte 0x0a" \
    rb step --run base --name $'two\nlines' -- echo x
expect_exit 2 "step name holds a control character \(byte 0x09" \
    rb step --run base --name $'tab\there' -- echo x
expect_exit 2 "step name is 257 bytes long; the limit is 256" \
    rb step --run base --name "$long257" -- echo x
expect_exit 2 "step name is not valid UTF-8" rb step --run base --name $'bad\xff' -- echo x
expect_exit 2 "no run id" rb step --run '' --name x -- echo x
expect_exit 2 "run id holds a control character" rb step --run $'r\n1' --name x -- echo x
expect_exit 2 "run id is 257 bytes long; the limit is 256" \
    rb step --run "$long257" --name x -- echo x
expect_exit 2 "run id is 257 bytes long" rb log "$long257"
expect_exit 2 "no step name" rb step --run base -- echo x
expect_exit 2 "no run id" rb step --name x -- echo x
expect_exit 2 "unknown option '--bogus'" rb step --bogus --run base --name x -- echo x
expect_exit 2 "option '--name' needs a value" rb step --run base --name
expect_exit 2 "unknown option '--bogus'" rb log --bogus base
expect_exit 2 "unknown command 'nosuch'" rb nosuch
expect_exit 2 "no run 'nosuch'" rb log nosuch
intact

odd_run=$'run with spaces, "double" and \'single\' quotes, ünïcödé ✓, a/b\\c'
odd_step=$'step «x» "y" \'z\' 日本 $HOME `id`'
expect_exit 0 '^odd$' rb step --run "$odd_run" --name "$odd_step" -- echo odd
expect_exit 0 '^256$' rb step --run "$odd_run" --name "$long256" -- echo 256
REBOUND_RUN=$odd_run expect_exit 0 '^odd$' rb step --name "$odd_step" -- echo not run
rb log --json "$odd_run" > "$tmp/odd.json"
jq -e --arg r "$odd_run" --arg s "$odd_step" --arg l "$long256" '.run == $r and
    (.steps | length) == 2 and .steps[0].step == $s and .steps[0].output == "odd\n" and
    .steps[0].tries == 1 and .steps[1].step == $l' "$tmp/odd.json" > /dev/null ||
    fail "the odd run id and step name did not round-trip: $(head -c 600 "$tmp/odd.json")"
rb runs --json | jq -e --arg r "$odd_run" '[.runs[].run] | index($r) != null' > /dev/null ||
    fail "'rebound runs --json' does not list the odd run id"
expect_exit 0 '"step «x» \\"y\\"' rb lineage --dot "$odd_run"
intact

# ---- 127, 126, the command's status, a signal; an empty command ---------------------
expect_exit 2 "no command given" rb step --run base --name x --
expect_exit 2 "no command given" rb step --run base --name x -- ''
expect_exit 127 "cannot run 'no-such-command-here': command not found" \
    rb step --run base --name nf -- no-such-command-here
expect_exit 127 "command not found" rb step --run base --name nf -- "$tmp/no/such/file"
printf '#!/bin/sh\necho hi\n' > "$tmp/not-executable"
chmod 0644 "$tmp/not-executable"
expect_exit 126 "cannot run '$tmp/not-executable'" \
    rb step --run base --name nx -- "$tmp/not-executable"
expect_exit 5 "step 'st' failed: 'sh' exited with status 5; recorded as a failed try" \
    rb step --run base --name st -- sh -c 'exit 5'
expect_exit 143 "killed by signal 15" rb step --run base --name st -- sh -c 'kill -TERM $$'
expect_exit 0 '^third try$' rb step --run base --name st -- sh -c 'echo "third try"'
rb log --json base | jq -e '.steps[] | select(.step == "st") |
    .status == "committed" and .tries == 3' > /dev/null ||
    fail "step 'st' should be committed after 3 tries"
expect_exit 0 '^found$' rb step --run base --name nf -- echo found
head -n 3 <(snapshot "$store" base) | cmp -s - "$tmp/base.snap" ||
    fail "the first 3 steps of run 'base' changed"

# ---- 8: a parked run ----------------------------------------------------------------------
snapshot "$store" base > "$tmp/base.snap"
expect_exit 0 "parked: run 'base'" \
    rb park --reason "needs a human review" --context '{"ticket": 42}' base
expect_exit 8 "run 'base' is parked for a human \(needs a human review\).*escalations resolve" \
    rb step --run base --name p1 -- sh -c "echo ran > '$tmp/p1.trace'; echo p1"
[ ! -e "$tmp/p1.trace" ] || fail "a step of a parked run executed its command"
expect_exit 8 "is parked" rb step --run base --name one -- echo one
expect_exit 0 "run 'base'" rb escalations
grep -q "reason: needs a human review" "$tmp/out" ||
    fail "'rebound escalations' does not show the reason: $(cat "$tmp/out")"
rb escalations --json | jq -e '.escalations | length == 1 and .[0].run == "base" and
    .[0].status == "open" and .[0].context.ticket == 42' > /dev/null ||
    fail "'rebound escalations --json' does not show the open escalation"
expect_exit 2 "needs both a run and a reason" rb park base
expect_exit 2 "--context is not valid JSON" rb park --reason r --context '{oops' base
expect_exit 0 "resolved: run 'base'" rb escalations resolve --note "looked at it" base
expect_exit 2 "run 'base' has no open escalation" rb escalations resolve base
expect_exit 0 '^p1$' rb step --run base --name p1 -- sh -c "echo ran > '$tmp/p1.trace'; echo p1"
[ -e "$tmp/p1.trace" ] || fail "after resolving, the step did not run"
expect_exit 0 "no open escalations" rb escalations
rb escalations --all --json | jq -e '.escalations[0].status == "resolved" and
    .escalations[0].note == "looked at it"' > /dev/null ||
    fail "'rebound escalations --all --json' does not show the resolved escalation"
head -n "$(wc -l < "$tmp/base.snap")" <(snapshot "$store" base) | cmp -s - "$tmp/base.snap" ||
    fail "parking and resolving changed the steps of run 'base'"
expect_exit 0 "is sound" rb check

echo "ok: bad input refused with one message and its exit code; nothing committed was lost"

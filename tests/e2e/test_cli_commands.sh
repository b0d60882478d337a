#!/usr/bin/env bash
# The commands a user inspects a store with, and what their output must hold:
# `rebound --version` and `--help`, each command's `--help`, `rebound runs`,
# `rebound log RUN` (text and --json: each step with seq, status, output),
# `rebound lineage RUN` (text and --dot, a digraph), `rebound escalations`,
# `rebound check`; and `rebound step` itself: a committed step replays
# without running, and `--cache` serves a second run's identical call (same
# command line and stdin) from the global cache without running it.
#
# ctest-timeout: 60
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

export REBOUND_STORE=$tmp/store
trace=$tmp/trace # one line per command actually executed
: > "$trace"
# traced NAME CMD...: a command that logs NAME to the trace, then runs CMD.
mkdir "$tmp/bin"
cat > "$tmp/bin/traced" << EOF
#!/usr/bin/env bash
echo "\$1" >> '$trace'
shift
exec "\$@"
EOF
chmod +x "$tmp/bin/traced"
export PATH="$tmp/bin:$PATH"
executions() {
    grep -cx "$1" "$trace" || true
}

# ---- version and help --------------------------------------------------------------
version=$(sed -n 's/^project(rebound VERSION \([0-9.]*\).*/\1/p' "$REBOUND_SOURCE_DIR/CMakeLists.txt")
expect_exit 0 "^rebound $version \(store schema [0-9]+\)$" rb --version
expect_exit 0 "^rebound $version " rb -V
expect_exit 0 '^usage: rebound <command>' rb --help
for cmd in step runs log lineage escalations park check; do
    grep -q "^  $cmd " "$tmp/out" || fail "'rebound --help' does not list command '$cmd'"
done
for code in 0 1 2 3 4 5 6 7 8 9 10 126 127; do
    grep -Eq "^  $code +[a-z(]" "$tmp/out" ||
        fail "'rebound --help' does not explain exit code $code"
done
rb > /dev/null 2> "$tmp/err" && fail "'rebound' with no command exited 0"
grep -q '^usage: rebound' "$tmp/err" || fail "'rebound' with no command printed no usage"

# Each command's help: its usage line and the options a user needs.
declare -A wants=(
    [step]="--name --run --store --cache --cache-version --full"
    [runs]="--store --json"
    [log]="--store --json RUN"
    [lineage]="--store --dot RUN"
    [escalations]="--all --json resolve --note"
    [park]="--reason --context RUN"
    [check]="--store"
)
for cmd in "${!wants[@]}"; do
    expect_exit 0 "^usage: rebound $cmd" rb "$cmd" --help
    for word in ${wants[$cmd]}; do
        grep -q -- "$word" "$tmp/out" || fail "'rebound $cmd --help' does not mention '$word'"
    done
done

# ---- a run to inspect --------------------------------------------------------------------
head -c 6000 < <(yes 'blob-sized output line') > "$tmp/blob.txt"
expect_exit 0 '^one$' rb step --run alpha --name one -- traced one echo one
expect_exit 0 '' rb step --run alpha --name blob -- traced blob cat "$tmp/blob.txt"
expect_exit 0 '' rb step --run alpha --name binary -- traced binary printf '\000\001\377'
expect_exit 3 "step 'broken' failed" rb step --run alpha --name broken -- \
    traced broken sh -c 'echo half; exit 3'
# A committed step replays its output without running again.
expect_exit 0 '^one$' rb step --run alpha --name one -- traced one echo changed
[ "$(executions one)" -eq 1 ] || fail "a committed step ran again ($(executions one) times)"

# ---- runs ----------------------------------------------------------------------------------
expect_exit 0 '^RUN +STATUS +STEPS +FAILED +ATTEMPTS +UPDATED$' rb runs
grep -Eq '^alpha +active +3 +1 +1 +[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$tmp/out" ||
    fail "'rebound runs' does not show run 'alpha' as active with 3 steps, 1 failed," \
        "1 attempt: $(cat "$tmp/out")"
rb runs --json | jq -e '.runs | length == 1 and .[0].run == "alpha" and
    .[0].status == "active" and .[0].steps == 3 and .[0].failed == 1 and
    .[0].attempts == 1 and .[0].updated_wall_ms > 0' > /dev/null ||
    fail "'rebound runs --json' does not describe run 'alpha': $(rb runs --json)"

# ---- log ---------------------------------------------------------------------------------------
expect_exit 0 "^run 'alpha'$" rb log alpha
cp "$tmp/out" "$tmp/log.txt"
grep -Eq '^ +SEQ +STEP +KIND +ATTEMPT +TRIES +FROM +BYTES +MS +OUTPUT$' "$tmp/log.txt" ||
    fail "'rebound log' has no header line: $(cat "$tmp/log.txt")"
grep -Eq '^ +1 +one +shell +1 +1 +exec +4 .*"one\\n"$' "$tmp/log.txt" ||
    fail "'rebound log' does not show step 'one' (seq 1, output \"one\\n\")"
grep -Eq '^ +2 +blob +shell +1 +1 +exec +6000 .* blob [0-9a-f]{16}' "$tmp/log.txt" ||
    fail "'rebound log' does not show step 'blob' as a 6000-byte blob"
grep -Eq '^ +3 +binary +.* 3 .*"\\x00\\x01\\xff"$' "$tmp/log.txt" ||
    fail "'rebound log' does not show step 'binary' escaped"
grep -Eq '^ +- +broken +.*failed: .*exited with status 3' "$tmp/log.txt" ||
    fail "'rebound log' does not show step 'broken' as failed with its reason"
grep -Eq '^  attempt 1 +pid [0-9]+ ' "$tmp/log.txt" ||
    fail "'rebound log' does not list attempt 1"

rb log --json alpha > "$tmp/log.json"
jq -e --rawfile blob "$tmp/blob.txt" '
    .run == "alpha" and (.steps | length) == 4 and
    ([.steps[] | select(.status == "committed") | .seq] == [1, 2, 3]) and
    ([.steps[] | select(.status == "committed") | .step] == ["one", "blob", "binary"]) and
    .steps[0].output == "one\n" and .steps[0].output_size == 4 and
    .steps[0].meta.argv == ["traced", "one", "echo", "one"] and
    .steps[1].output == $blob and .steps[1].output_size == 6000 and
    .steps[2].output_hex == "0001ff" and (.steps[2] | has("output") | not) and
    (.steps[3] | .step == "broken" and .status == "failed" and .tries == 1 and
        (.error.message | test("exited with status 3")) and (has("output") | not)) and
    ([.steps[] | .output_hash // "" | test("^([0-9a-f]{64})?$")] | all) and
    (.attempts | length == 1 and .[0].attempt == 1 and .[0].pid > 0)
' "$tmp/log.json" > /dev/null || fail "'rebound log --json' is not as expected: $(cat "$tmp/log.json")"
# The output hash is the SHA-256 of the output.
[ "$(jq -r '.steps[1].output_hash' "$tmp/log.json")" = "$(sha256sum < "$tmp/blob.txt" | cut -d' ' -f1)" ] ||
    fail "the output_hash of step 'blob' is not the SHA-256 of its output"

# ---- lineage --------------------------------------------------------------------------------
expect_exit 0 '' rb lineage alpha
for step in one blob binary; do
    hash=$(jq -r --arg s "$step" '.steps[] | select(.step == $s) | .output_hash' "$tmp/log.json")
    grep -Eq "^$step +-> ${hash:0:16} +\(output\)$" "$tmp/out" ||
        fail "'rebound lineage' does not show step '$step' producing ${hash:0:16}: $(cat "$tmp/out")"
done
grep -q broken "$tmp/out" && fail "'rebound lineage' shows the failed step 'broken'"
expect_exit 0 '^digraph lineage \{$' rb lineage --dot alpha
[ "$(tail -n 1 "$tmp/out")" = "}" ] || fail "'rebound lineage --dot' does not end with '}'"
hash=$(jq -r '.steps[1].output_hash' "$tmp/log.json")
grep -Fq "\"blob\" -> \"blob:${hash:0:12}\";" "$tmp/out" ||
    fail "'rebound lineage --dot' has no edge from step 'blob' to its output: $(cat "$tmp/out")"
if command -v dot > /dev/null; then
    dot -Tsvg "$tmp/out" > /dev/null || fail "Graphviz refuses 'rebound lineage --dot'"
fi

# ---- escalations and check --------------------------------------------------------------------
expect_exit 0 '^no open escalations' rb escalations
rb escalations --json | jq -e '.escalations == []' > /dev/null ||
    fail "'rebound escalations --json' is not an empty list"
expect_exit 0 '' rb park --reason 'budget exceeded' --context '{"spent": 12.5}' alpha
expect_exit 0 "^#[0-9]+ +open +run 'alpha' +since [0-9]{4}-" rb escalations
# REBOUND_RUN, set for a run's steps, is no argument to the listing.
REBOUND_RUN=alpha expect_exit 0 "run 'alpha'" rb escalations
grep -q '^  reason: budget exceeded$' "$tmp/out" || fail "'rebound escalations' shows no reason"
grep -q '^  context: {"spent": 12.5}$' "$tmp/out" || fail "'rebound escalations' shows no context"
expect_exit 0 '^alpha +parked ' rb runs
expect_exit 0 '' rb escalations resolve alpha
expect_exit 0 '^alpha +active ' rb runs
expect_exit 0 "^store '$tmp/store' is sound$" rb check

# ---- the global cache --------------------------------------------------------------------------
# Two runs make the same call (command line and stdin): the second is served
# from the cache, prints the same output, and does not run the command.
cached_call() { # RUN NAME STDIN [--cache-version V]
    local run=$1 name=$2 input=$3
    shift 3
    rb step --run "$run" --name "$name" --cache "$@" -- \
        traced upper sh -c 'tr a-z A-Z; date +%s%N' <<< "$input"
}
cached_call c1 ask "the question" > "$tmp/c1.out" || fail "the first cached call failed"
cached_call c2 same-call "the question" > "$tmp/c2.out" || fail "the second cached call failed"
[ "$(executions upper)" -eq 1 ] ||
    fail "the same call in a second run executed again ($(executions upper) executions)"
cmp -s "$tmp/c1.out" "$tmp/c2.out" ||
    fail "the cached call printed '$(cat "$tmp/c2.out")'; the first printed '$(cat "$tmp/c1.out")'"
grep -q '^THE QUESTION$' "$tmp/c1.out" || fail "the cached call printed '$(cat "$tmp/c1.out")'"
rb log --json c2 | jq -e '.steps[0] | .cached == true and .status == "committed"' > /dev/null ||
    fail "'rebound log --json' does not show the second run's step as served from the cache"
rb log --json c1 | jq -e '.steps[0].cached == false' > /dev/null ||
    fail "the first run's step is marked cached"
# Another stdin, or another --cache-version, is another call: it runs.
cached_call c2 other-input "another question" > "$tmp/c3.out"
[ "$(executions upper)" -eq 2 ] || fail "a call with another stdin was served from the cache"
cached_call c3 new-version "the question" --cache-version 2 > "$tmp/c4.out"
[ "$(executions upper)" -eq 3 ] || fail "a call with another --cache-version was served from the cache"
# Without --cache, nothing is shared between runs.
rb step --run c4 --name plain -- traced plain echo x > /dev/null
rb step --run c5 --name plain -- traced plain echo x > /dev/null
[ "$(executions plain)" -eq 2 ] || fail "a step without --cache was shared between runs"

echo "ok: inspection commands and the cache show what a user needs"

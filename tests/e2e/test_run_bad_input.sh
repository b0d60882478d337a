#!/usr/bin/env bash
# End to end: `rebound run` on bad input. Each case exits 2 with a clear
# message (a scenario's problems as FILE:LINE:COL: message, nothing run; the
# rest as one `rebound: run: ...` line) and leaves nothing running:
# malformed JSON, an unknown fault kind, several broken files at once (each
# reported), a missing file, an output folder under a regular file or on a
# read-only file system, an agent program that is not there or cannot be
# executed (the trials that could not run are recorded with verdict "error",
# nothing new starts, the results so far are written), a fixed world port
# already taken (and, free, its trials run one at a time under -j 4), and bad
# options. Cases test_run_shell.sh covers (an unknown
# key, a program not on PATH, no --out, an empty library) are not repeated.
#
# ctest-timeout: 60
set -euo pipefail
source "$(dirname "$0")/e2e_lib.sh"

cd "$tmp"
command -v jq > /dev/null || fail "jq is needed"

# nothing_left: no process of this test's scenarios or output folders.
nothing_left() {
    ! pgrep -f "$tmp/" > /dev/null || fail "$1: left running: $(pgrep -af "$tmp/")"
}

# scenario_err CODE REGEX FILE...: rb run exits CODE, stderr matches REGEX
# (extended), nothing written.
scenario_err() {
    local want=$1 re=$2 code=0
    shift 2
    rb run "$@" --out "$tmp/o-bad" > "$tmp/out" 2> "$tmp/err" || code=$?
    [ "$code" -eq "$want" ] || fail "'$*': exit $code, $want expected: $(cat "$tmp/err")"
    grep -Eq -- "$re" "$tmp/err" || fail "'$*': stderr '$(cat "$tmp/err")' does not match /$re/"
    [ ! -e "$tmp/o-bad" ] || fail "'$*': an output folder was made"
    [ ! -s "$tmp/out" ] || fail "'$*': printed $(cat "$tmp/out")"
    echo "exit $code: $(head -n 3 "$tmp/err")"
}

printf '{"rebound": 1,\n "description": "x",\n "agent": {"command": {"argv": ["true"]}},,\n}\n' \
    > malformed.json
scenario_err 2 '^malformed\.json:3:[0-9]+: .+' malformed.json

printf '{"rebound": 1, "description": "x",\n "agent": {"command": {"argv": ["true"]}},\n "faults": [{"kind": "meteor", "form": "sigkill", "at": {"time_ms": 5}}]}\n' \
    > kind.json
scenario_err 2 "^kind\.json:3:[0-9]+: unknown fault kind 'meteor'" kind.json

# Every broken file is reported, not only the first; a good one among them
# does not run.
printf '{"rebound": 1, "description": "x", "agent": {"command": {"argv": ["true"]}}}\n' > ok.json
scenario_err 2 "kind\.json:3:[0-9]+: unknown fault kind" malformed.json ok.json kind.json
grep -q '^malformed\.json:3:' "$tmp/err" || fail "several: malformed.json not reported: $(cat "$tmp/err")"

expect_exit 2 "cannot open 'missing\.json'" rb run missing.json --out "$tmp/o-bad"
expect_exit 2 "the output folder's path is not UTF-8" rb run ok.json --out "$tmp/"$'o-\xe9'
[ ! -e "$tmp/"$'o-\xe9' ] || fail "not UTF-8: an output folder was made"
mkdir -p "$tmp/no-scenarios"
expect_exit 2 "no scenario files .* in folder" rb run "$tmp/no-scenarios" --out "$tmp/o-bad"
[ ! -e "$tmp/o-bad" ] || fail "missing: an output folder was made"

# An output folder that cannot be written: under a regular file, and on a
# read-only file system (a tmpfs in a mount namespace of its own: we are
# root, so permissions alone would not stop us).
: > afile
expect_exit 2 "cannot write to output folder 'afile/out': not a directory" \
    rb run ok.json --out afile/out
if unshare -m true 2> /dev/null; then
    mkdir ro
    code=0
    unshare -m sh -c 'mount -t tmpfs -o ro tmpfs "$1" && exec "$2" run ok.json --out "$1/out"' \
        _ "$tmp/ro" "$REBOUND" > "$tmp/out" 2> "$tmp/err" || code=$?
    [ "$code" -eq 2 ] || fail "read-only: exit $code: $(cat "$tmp/err")"
    grep -qx "rebound: run: cannot write to output folder '$tmp/ro/out': read-only file system" \
        "$tmp/err" || fail "read-only: $(cat "$tmp/err")"
else
    echo "skipped the read-only case: no mount namespace" >&2
fi

# The agent's program: not there (relative to the scenario's folder), then
# there but not something the kernel can execute. The latter is found when
# its trials start: they are recorded as errors and nothing new starts.
printf '{"rebound": 1, "description": "x", "agent": {"command": {"argv": ["./no-such-agent"]}}}\n' \
    > noprog.json
expect_exit 2 "noprog\.json: cannot start agent '\./no-such-agent': no such executable file" \
    rb run noprog.json --out "$tmp/o-noprog"
[ ! -e "$tmp/o-noprog" ] || fail "noprog: an output folder was made"
printf 'garbage\001\002\n' > notexec
chmod +x notexec
printf '{"rebound": 1, "description": "x", "agent": {"command": {"argv": ["./notexec"]}},\n "seeds": [1, 2, 3, 4, 5, 6]}\n' \
    > noexec.json
code=0
rb run noexec.json -j 2 --out "$tmp/o-noexec" > "$tmp/out" 2> "$tmp/err" || code=$?
[ "$code" -eq 2 ] || fail "noexec: exit $code: $(cat "$tmp/err")"
grep -Eiqx "rebound: run: noexec\.json: cannot start agent '.*notexec': exec format error" \
    "$tmp/err" || fail "noexec: $(cat "$tmp/err")"
jq -e '.suite.complete == false and (.trials | length >= 1)
       and all(.trials[]; .verdict == "error" and (.broken[0] | test("exec format error"; "i")))
       and ([.trials[].seed] | max) < 6' "$tmp/o-noexec/results.json" > /dev/null ||
    fail "noexec: $(jq -c '{suite, t: [.trials[] | {seed, trial, verdict, broken}]}' \
        "$tmp/o-noexec/results.json")"
grep -q 'ERROR' "$tmp/out" || fail "noexec: $(cat "$tmp/out")"
nothing_left noexec

# A fixed world port: its trials run one at a time (-j 4 does not make them
# fight over it); taken by another program, the trial cannot run: exit 2.
"$REBOUND" world --port 0 > "$tmp/world.out" 2> /dev/null &
wpid=$!
at_exit "kill $wpid 2> /dev/null || true"
for ((i = 0; i < 200; i++)); do
    grep -q 'listening on' "$tmp/world.out" 2> /dev/null && break
    sleep 0.05
done
port=$(sed -nE 's|^world: listening on http://127\.0\.0\.1:([0-9]+)/v1$|\1|p' "$tmp/world.out")
[ -n "$port" ] || fail "port: the world did not start: $(cat "$tmp/world.out")"
fixed() {
    printf '{"rebound": 1, "description": "x",
 "agent": {"builtin": {"workflow": {"steps": 10, "llm_turns": 2}}}, "world": {"port": %s},
 "faults": [{"kind": "preemption", "form": "sigkill", "at": {"step": 5, "when": "before"}}],
 "restart": {"delay_ms": 10}, "expect": {"outcome": "recovered"}, "seeds": [1, 2], "trials": 2}\n' \
        "$1" > "$2"
}
fixed "$port" taken.json
code=0
rb run taken.json -j 4 --out "$tmp/o-taken" > "$tmp/out" 2> "$tmp/err" || code=$?
[ "$code" -eq 2 ] || fail "port taken: exit $code: $(cat "$tmp/out" "$tmp/err")"
grep -Eqx "rebound: run: taken\.json: cannot start the world on 127\.0\.0\.1:$port: address already in use" \
    "$tmp/err" || fail "port taken: $(cat "$tmp/err")"
jq -e '.suite.complete == false and .trials[0].verdict == "error"' "$tmp/o-taken/results.json" \
    > /dev/null || fail "port taken: $(jq -c . "$tmp/o-taken/results.json")"
nothing_left "port taken"
kill "$wpid"
wait "$wpid" 2> /dev/null || true
# Now free (the world has stopped): all four faulted trials pass at -j 4.
fixed "$port" free.json
expect_exit 0 '^suite: 4 trials, 4 passed' rb run free.json -j 4 --out "$tmp/o-free"

# Two scenarios of one name would share trial folders (under -j, at once).
mkdir other
cp ok.json other/ok.json
expect_exit 2 "two scenarios are named 'ok' \('ok\.json' and 'other/ok\.json'\)" \
    rb run ok.json other/ok.json --out "$tmp/o-same"
[ ! -e "$tmp/o-same/results.json" ] || fail "same name: results were written"

# Bad options.
expect_exit 2 "bad -j '0'" rb run ok.json -j 0 --out "$tmp/o-bad"
expect_exit 2 "bad -j 'x'" rb run ok.json -jx --out "$tmp/o-bad"
expect_exit 2 "unknown baseline 'replay'" rb run ok.json --baseline replay --out "$tmp/o-bad"
expect_exit 2 "unknown option '--frobnicate'" rb run ok.json --frobnicate --out "$tmp/o-bad"
[ ! -e "$tmp/o-bad" ] || fail "options: an output folder was made"
nothing_left options
echo ok

#!/usr/bin/env bash
# End to end: `rebound world` on the command line. Help, bad options and bad
# config files give a clear one-line error and exit 2; a port in use exits
# 10; faults in a config file are active from the start; the options given
# on the command line win over the file; SIGINT stops it with exit 0.
#
# ctest-timeout: 60
set -euo pipefail

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect CODE PATTERN ARGS...: runs `rebound world ARGS`, wants exit CODE and
# PATTERN in its stderr
expect() {
    local code=$1 pattern=$2 rc=0
    shift 2
    timeout 20 "$REBOUND" world "$@" > "$tmp/o" 2> "$tmp/e" || rc=$?
    [ "$rc" = "$code" ] || fail "world $*: exit $rc, want $code ($(cat "$tmp/e"))"
    grep -q -- "$pattern" "$tmp/e" || fail "world $*: no '$pattern' in: $(cat "$tmp/e")"
    [ "$(wc -l < "$tmp/e")" -le 1 ] || fail "world $*: more than one line: $(cat "$tmp/e")"
}

# start ARGS...: starts the world in the background; sets $pid and $root
start() {
    "$REBOUND" world "$@" > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    for _ in $(seq 200); do
        grep -q '^world: listening on ' "$tmp/out" && break
        kill -0 "$pid" 2> /dev/null || fail "world exited: $(cat "$tmp/err")"
        sleep 0.05
    done
    root=$(sed -n 's/^world: listening on \(.*\)\/v1$/\1/p' "$tmp/out")
    [ -n "$root" ] || fail "world did not print its URL"
}

"$REBOUND" world --help | grep -q 'usage: rebound world' || fail "--help"
"$REBOUND" --help | grep -q '^  world ' || fail "world missing from rebound --help"
expect 2 "unknown option '--prot'" --prot 1
expect 2 "option '--seed' needs a value" --seed
expect 2 "'abc' is not a number" --port abc
expect 2 "'70000' is not a number in 0..65535" --port 70000
expect 2 "unexpected argument 'extra'" extra
expect 2 "cannot read config '$tmp/none.json'" --config "$tmp/none.json"
printf '{"seed": 1,\n "turn": 3}\n' > "$tmp/bad.json"
expect 2 "unknown key 'turn'" --config "$tmp/bad.json"
printf '{"seed": 1,\n "turns": }\n' > "$tmp/broken.json"
expect 2 "broken.json:2:" --config "$tmp/broken.json"
printf '{"faults": [{"kind": "melt"}]}\n' > "$tmp/melt.json"
expect 2 "unknown fault kind 'melt'" --config "$tmp/melt.json"
expect 10 "cannot open journal '$tmp/no/such/dir/j'" --journal "$tmp/no/such/dir/j"

# faults from the config file are active at once; --seed beats the file's seed
printf '{"seed": 5, "model": "m-cfg", "faults": [{"kind": "server_error", "status": 502, "count": 1}]}\n' \
    > "$tmp/cfg.json"
start --config "$tmp/cfg.json" --seed 9
code=$(curl -sS -o /dev/null -w '%{http_code}' "$root/v1/models")
[ "$code" = 502 ] || fail "config fault: first call answered $code"
curl -sS "$root/v1/models" | grep -q '"id":"m-cfg"' || fail "config model not listed"
curl -sS "$root/_world/status" | grep -q '"seed":9,' || fail "--seed did not win"
port=${root##*:}

# a port in use
expect 10 "cannot listen on 127.0.0.1:$port" --port "$port"

# SIGINT: exit 0
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "exit $rc after SIGINT"
grep -q "stopped by signal 2 after 2 requests" "$tmp/err" || fail "stop line: $(cat "$tmp/err")"
echo "ok: rebound world command line"

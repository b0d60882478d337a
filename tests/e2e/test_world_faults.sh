#!/usr/bin/env bash
# End to end: `rebound world` as a standalone server, driven by curl (a real
# libcurl client, loopback only) through every HTTP fault form, switched on
# at run time through POST /_world/faults: reset, refused (then listening
# again on the same port), stall (until healed), 5xx, 429 with Retry-After,
# truncated body, slow streaming; by count, by span of time, by seeded share
# and by route prefix. Then SIGTERM: exit 0 and a journal file that holds
# every call with its fault.
#
# ctest-timeout: 120
set -euo pipefail

tmp=$(mktemp -d)
pid=
bg=
cleanup() {
    [ -z "$bg" ] || kill "$bg" 2> /dev/null || true
    [ -z "$pid" ] || kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "--- world stderr:" >&2
    cat "$tmp/err" >&2 || true
    exit 1
}

"$REBOUND" world --seed 7 --turns 1 --journal "$tmp/journal.jsonl" \
    > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 200); do
    grep -q '^world: listening on ' "$tmp/out" && break
    kill -0 "$pid" 2> /dev/null || fail "world exited early"
    sleep 0.05
done
base=$(sed -n 's/^world: listening on //p' "$tmp/out")
[[ $base =~ ^http://127\.0\.0\.1:[0-9]+/v1$ ]] || fail "no base URL printed: '$base'"
root=${base%/v1}

chat='{"model":"m","messages":[{"role":"user","content":"hello"}]}'
stream='{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}'

# call PATH [DATA [curl args...]]: POSTs DATA (default $chat; "-" for a GET)
# and sets $rc, $status and $body; headers in $tmp/h.
call() {
    local path=$1 data=${2:-$chat}
    local args=(-d "$data")
    shift
    [ $# -eq 0 ] || shift
    [ "$data" != - ] || args=()
    rc=0
    rm -f "$tmp/body"
    status=$(curl -sS --max-time 20 -o "$tmp/body" -D "$tmp/h" -w '%{http_code}' \
        "$root$path" "${args[@]}" "$@" 2> "$tmp/curl_err") || rc=$?
    body=$(cat "$tmp/body" 2> /dev/null || true)
}
fault() {
    local ans
    ans=$(curl -sS --max-time 10 -X POST "$root/_world/faults" -d "$1") ||
        fail "cannot add fault $1"
    [[ $ans == *'"ids":['* ]] || fail "fault $1 not added: $ans"
}
heal() {
    curl -sS --max-time 10 -X DELETE "$root/_world/faults" > /dev/null || fail "cannot heal"
}

# The answer without faults, for comparison.
call /v1/chat/completions
[ "$rc" = 0 ] && [ "$status" = 200 ] || fail "golden call: rc=$rc status=$status"
golden=$body
[[ $golden == *'"object":"chat.completion"'* ]] || fail "golden answer: $golden"

# --- reset: the connection is reset; the next call is answered as before
fault '{"kind":"reset","count":1}'
call /v1/chat/completions
[ "$rc" = 56 ] || fail "reset: curl exit $rc, want 56: $(cat "$tmp/curl_err")"
call /v1/chat/completions
[ "$rc" = 0 ] && [ "$body" = "$golden" ] || fail "after reset: rc=$rc, not the golden answer"

# --- 5xx with the status asked for, and an OpenAI error body
fault '{"kind":"server_error","status":502,"count":1}'
call /v1/chat/completions
[ "$status" = 502 ] || fail "server_error: status $status"
[[ $body == *'"type":"server_error"'* ]] || fail "server_error body: $body"

# --- 429 with Retry-After
fault '{"kind":"rate_limit","retry_after_s":3,"count":1}'
call /v1/chat/completions
[ "$status" = 429 ] || fail "rate_limit: status $status"
grep -qi '^retry-after: 3' "$tmp/h" || fail "rate_limit: no Retry-After: 3 in $(cat "$tmp/h")"

# --- truncated body: curl sees fewer bytes than Content-Length
fault '{"kind":"truncate","count":1}'
call /v1/chat/completions
[ "$rc" = 18 ] || fail "truncate: curl exit $rc, want 18: $(cat "$tmp/curl_err")"
[ "${#body}" -lt "${#golden}" ] || fail "truncate: whole body came"
[ "$body" = "${golden:0:${#body}}" ] || fail "truncate: the part sent is not the answer's start"

# --- truncated stream: the SSE answer ends before [DONE], with an error
fault '{"kind":"truncate","count":1,"chunk_bytes":300}'
call /v1/chat/completions "$stream"
[ "$rc" = 18 ] || fail "truncated stream: curl exit $rc, want 18: $(cat "$tmp/curl_err")"
[[ $body != *'[DONE]'* ]] || fail "truncated stream: [DONE] arrived"

# --- slow streaming: the whole stream arrives, event by event, with pauses
call /v1/chat/completions "$stream"
golden_stream=$body
events=$(grep -c '^data: ' <<< "$golden_stream" || true)
[ "$events" -ge 5 ] || fail "stream: only $events events"
fault '{"kind":"slow","route":"/v1/chat/","delay_ms":40,"count":1}'
start=$(date +%s%N)
call /v1/chat/completions "$stream" -N
took_ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" = 0 ] && [ "$body" = "$golden_stream" ] || fail "slow: rc=$rc or the stream differs"
# at least (events - 1) pauses of 40 ms
[ "$took_ms" -ge $(((events - 1) * 40)) ] || fail "slow: took ${took_ms} ms for $events events"

# --- stall: the call hangs until the fault is healed, then the connection closes
fault '{"kind":"stall","count":1}'
curl -sS --max-time 30 -o /dev/null "$root/v1/chat/completions" -d "$chat" \
    2> "$tmp/stall_err" &
bg=$!
for _ in $(seq 200); do # until the stalled call has arrived
    curl -sS "$root/_world/journal" | grep -q '"fault":"stall"' && break
    sleep 0.05
done
curl -sS "$root/_world/journal" | grep -q '"fault":"stall"' || fail "stall: not journaled"
sleep 0.3
kill -0 "$bg" 2> /dev/null || fail "stall: the call ended before the heal"
heal
rc=0
wait "$bg" || rc=$?
bg=
[ "$rc" = 52 ] || fail "stall: curl exit $rc after heal, want 52: $(cat "$tmp/stall_err")"
call /v1/chat/completions
[ "$rc" = 0 ] && [ "$status" = 200 ] || fail "after stall: rc=$rc status=$status"

# --- stall with a client timeout: the client gives up (curl exit 28)
fault '{"kind":"stall","delay_ms":5000,"count":1}'
rc=0
curl -sS --max-time 1 -o /dev/null "$root/v1/chat/completions" -d "$chat" 2> /dev/null ||
    rc=$?
[ "$rc" = 28 ] || fail "stall with timeout: curl exit $rc, want 28"
heal

# --- refused for a span: connections are refused, then the same port answers
ans=$(curl -sS -X POST "$root/_world/faults" -d '{"kind":"refused"}')
[[ $ans == *'duration_ms'* ]] || fail "refused without a span over HTTP should be refused: $ans"
fault '{"kind":"refused","duration_ms":1500}'
call /v1/models -
[ "$rc" = 7 ] || fail "refused: curl exit $rc, want 7: $(cat "$tmp/curl_err")"
for _ in $(seq 100); do
    call /v1/models -
    [ "$rc" = 0 ] && break
    sleep 0.1
done
[ "$rc" = 0 ] && [ "$status" = 200 ] || fail "refused: never listened again (rc=$rc)"

# --- a span of time: every call inside it is hit, none after
fault '{"kind":"server_error","duration_ms":700}'
call /v1/chat/completions
[ "$status" = 503 ] || fail "span: status $status inside the span"
sleep 0.8
call /v1/chat/completions
[ "$status" = 200 ] || fail "span: status $status after the span"

# --- a route prefix: only tool calls are hit
fault '{"kind":"server_error","route":"/tools/","count":5}'
call /v1/chat/completions
[ "$status" = 200 ] || fail "route: chat hit ($status)"
call /tools/search '{"query":"q"}'
[ "$status" = 503 ] || fail "route: tool not hit ($status)"
heal

# --- a seeded share of calls
fault '{"kind":"rate_limit","share":0.5,"count":1000}'
hits=0
for _ in $(seq 30); do
    call /v1/models -
    [ "$status" = 429 ] && hits=$((hits + 1))
done
heal
[ "$hits" -gt 3 ] && [ "$hits" -lt 27 ] || fail "share 0.5: $hits of 30 calls hit"

# --- side effects and the effect counts
call /tools/send_email '{"to":"a@example.test"}' -H 'Idempotency-Key: e1'
call /tools/send_email '{"to":"a@example.test"}' -H 'Idempotency-Key: e1'
grep -qi '^idempotent-replayed: true' "$tmp/h" || fail "idempotency: second call not replayed"
effects=$(curl -sS "$root/_world/effects")
[[ $effects == '{"applied":1,"replayed":1,'* ]] || fail "effects: $effects"

# --- SIGTERM: exit 0, and the journal file holds every call
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "world exit status $rc after SIGTERM"
grep -q 'stopped by signal' "$tmp/err" || fail "no stop message"
lines=$(wc -l < "$tmp/journal.jsonl")
served=$(sed -n 's/.* after \([0-9]*\) requests$/\1/p' "$tmp/err")
[ "$lines" -ge 45 ] && [ "$lines" = "$served" ] ||
    fail "journal: $lines lines for $served requests"
# (refused connections never reach the world, so they are not journaled)
for kind in reset stall server_error rate_limit truncate slow; do
    grep -q "\"fault\":\"$kind\"" "$tmp/journal.jsonl" || fail "journal: no $kind entry"
done
grep -q '"repeat":true,"repeat_of":1,' "$tmp/journal.jsonl" || fail "journal: no repeat of call 1"
echo "ok: world faults end to end"

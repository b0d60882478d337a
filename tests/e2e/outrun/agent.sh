#!/bin/bash
# An agent that outruns a kill (tests/e2e/test_faults_outrun.sh): its first
# attempt writes the events of steps 1 to 4 in one write, so the events of
# step 4 are in the pipe before the kill for step 3's commit lands. A later
# attempt replays what an earlier one recorded as committed, waits, and
# finishes. Events go to REBOUND_EVENT_FD; committed steps to $REBOUND_STORE.done (bash: dash cannot redirect to an fd above 9).
set -eu
fd=${REBOUND_EVENT_FD:?}
done_file=$REBOUND_STORE.done
buf=
ev() { buf="$buf{\"kind\":\"$1\",\"step\":\"$2\"}
"; }
flush() { printf '%s' "$buf" >&"$fd"; buf=; }
if [ ! -s "$done_file" ]; then
    for s in s1 s2 s3 s4; do
        echo "$s" >>"$done_file"
        ev step.start "$s"
        ev step.commit "$s"
    done
    flush
else
    while read -r s; do
        ev step.replay "$s"
    done <"$done_file"
    flush
fi
sleep 0.4
for s in s5 s6; do
    grep -qx "$s" "$done_file" && continue
    ev step.start "$s"
    ev step.commit "$s"
    flush
    echo "$s" >>"$done_file"
done
echo "final: s1 s2 s3 s4 s5 s6"

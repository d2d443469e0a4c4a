#!/bin/sh
# valgrind smoke test: the real ensembled under memcheck through a short
# life and a restart. Run 1: start empty, replay a simulated CSV with
# ensemblectl, recompute, status, SIGTERM (final snapshot). Run 2: restore
# the snapshot and the journal, publish, status, SIGTERM. Each run must exit
# 0 with no memcheck error and no definite leak (valgrind's exit code 1
# otherwise).
#
# Usage: valgrind-smoke.sh [ENSEMBLED [ENSEMBLECTL]]
#        (defaults: $ENSEMBLED, $ENSEMBLECTL, then build/ beside this tree)
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ensembled=${1:-${ENSEMBLED:-$repo/build/ensembled}}
ctl=${2:-${ENSEMBLECTL:-$repo/build/ensemblectl}}
rows=400

command -v valgrind >/dev/null 2>&1 || { echo "valgrind not installed: skipped"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ensembled-vg-XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/valgrind.*.log "$tmp"/daemon.*.log; do
        [ -f "$f" ] && { echo "--- $f ---" >&2; tail -n 60 "$f" >&2; }
    done
    exit 1
}

cat >"$tmp/ensembled.conf" <<EOF
[ingest]
bind = ipc://$tmp/ingest
[publish]
bind = ipc://$tmp/publish
interval = 0
every_labels = 100
[control]
bind = ipc://$tmp/control
[metrics]
bind =
[state]
dir = $tmp/state
snapshot_interval = 2s
fsync_interval = 200ms
[log]
level = info
EOF
control="ipc://$tmp/control"

# status field of the default task (empty if none yet).
field() {
    "$ctl" status --json --control "$control" --timeout 5000 2>/dev/null |
        python3 -c 'import json,sys
try:
    t = json.load(sys.stdin)["tasks"].get("default") or {}
    print(t.get(sys.argv[1], ""))
except Exception:
    print("")' "$1"
}

wait_for() { # seconds, shell condition
    n=0
    while ! eval "$2"; do
        n=$((n + 1))
        [ "$n" -gt $(($1 * 4)) ] && return 1
        sleep 0.25
    done
}

start() { # run number
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --track-origins=yes --log-file="$tmp/valgrind.$1.log" \
        "$ensembled" -c "$tmp/ensembled.conf" --foreground >"$tmp/daemon.$1.log" 2>&1 &
    pid=$!
    wait_for 120 '"$ctl" status --control "$control" --timeout 2000 >/dev/null 2>&1' ||
        fail "run $1: ensembled did not answer status under valgrind"
}

stop() { # run number
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    pid=
    [ "$rc" -eq 0 ] || fail "run $1: ensembled under valgrind exited $rc (1: memcheck errors or a definite leak)"
    grep -q "ERROR SUMMARY: 0 errors" "$tmp/valgrind.$1.log" || fail "run $1: memcheck errors"
    echo "run $1: $(grep -E 'ERROR SUMMARY|definitely lost' "$tmp/valgrind.$1.log" | sed 's/^==[0-9]*== //' | tr '\n' ' ')"
}

"$ctl" simulate --families strong:3:0.8:0.9,mid:2:0.72:0.3,weak:3:0.68:0 --rows $rows \
    --classes 2 --seed 3 --csv "$tmp/fleet.csv" >/dev/null || fail "ensemblectl simulate"

# Run 1: ingest, select, stop.
start 1
"$ctl" replay --csv "$tmp/fleet.csv" --ingest "ipc://$tmp/ingest" --batch 50 --label-lag 20 \
    >/dev/null || fail "ensemblectl replay"
wait_for 120 '[ "$(field joined)" = "$rows" ]' || fail "run 1: the replay did not join ($(field joined) of $rows)"
"$ctl" recompute --control "$control" --timeout 60000 >/dev/null || fail "recompute"
wait_for 120 '[ "$(field version)" != "" ] && [ "$(field version)" -ge 1 ] && [ -n "$(field ensemble)" ]' ||
    fail "run 1: nothing published"
v1=$(field version)
"$ctl" ensemble --control "$control" --timeout 60000 >/dev/null || fail "run 1: ensemble"
stop 1

# Run 2: restore (snapshot and journal), publish at once, stop.
start 2
[ "$(field rows)" = "$rows" ] || fail "run 2: restored $(field rows) rows, expected $rows"
wait_for 120 '[ "$(field version)" -gt "$v1" ]' || fail "run 2: no publication above version $v1"
"$ctl" status --control "$control" --timeout 60000 >/dev/null || fail "run 2: status"
stop 2
echo "valgrind smoke: OK"

#!/bin/sh
# bench/history.sh - the `history` row: history-fill writes 30 days of rows
# for 20 models x 5 tasks (and 3 domains a series) into a fresh database,
# a fresh outcomed serves it, and bench/history-bench.py times
#   history {bucket_s: 3600, model: model-03, since: 30 days}  (3,600 points)
#   history {bucket_s: 86400, since: 30 days}                  (3,000 points)
# (target: each <= 200 ms), and the p99 of 20 other clients running the
# router cycle (outcome-bench) with and without those reads going on, in 3
# interleaved rounds (target: the median p99 during them within 2x of the
# median without).  It also prints the disk cost of the rows per series
# and day, from the SQLite file (dbstat).
#
#   bench/history.sh [BUILD_DIR (default build)]
# Exit status: 0 when every target is met.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${1:-$ROOT/build}
ninja -C "$BUILD" bench/history-fill bench/outcome-bench daemon/outcomed >/dev/null

TMP=$(mktemp -d /tmp/outcomed-history.XXXXXX)
PID=
cleanup() { stop_pid "$PID"; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
# The end at midnight (UTC), so that 30 days are 720 whole hours and 30
# whole days.
END=$(( $(date +%s) / 86400 * 86400 ))
"$BUILD/bench/history-fill" --db "$TMP/db" --days 30 --models 20 --tasks 5 --domains 3 \
        --end "$END"
# Rows as old as the fill's first are kept (the default keeps 30 days,
# which would start deleting the first minutes at once).
printf '[store]\nhistory_days = 60\n' >"$TMP/outcomed.conf"
"$BUILD/daemon/outcomed" --config "$TMP/outcomed.conf" --socket "$TMP/s.sock" --db "$TMP/db" \
        2>"$TMP/daemon.log" &
PID=$!
wait_socket "$TMP/s.sock"
rc=0
/usr/bin/python3 "$ROOT/bench/history-bench.py" --socket "$TMP/s.sock" --db "$TMP/db" \
        --end "$END" --bench "$BUILD/bench/outcome-bench" || rc=$?
exit $rc

#!/bin/sh
# bench/hash-flood.sh - the hash-flooding row: a fresh outcomed (temporary
# socket, database and configuration, durability relaxed) and hash-flood
# against it: 65,536 starts with random client-chosen trace ids, then
# 65,536 with ids that all collide under unkeyed FNV-1a, with the rates,
# their ratio (target: colliding within 2x of random) and another
# connection's slowest ping during each.
#
#   bench/hash-flood.sh [BUILD_DIR (default build)] [OUTCOMED (default
#                        BUILD_DIR/daemon/outcomed)]
# Exit status: hash-flood's (0: target met).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BUILD=${1:-$ROOT/build}
DAEMON=${2:-$BUILD/daemon/outcomed}
ninja -C "$BUILD" bench/hash-flood daemon/outcomed >/dev/null

TMP=$(mktemp -d /tmp/outcomed-flood.XXXXXX)
PID=
cleanup() { stop_pid "$PID"; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
printf '[store]\ndurability = relaxed\n' >"$TMP/outcomed.conf"
"$DAEMON" --config "$TMP/outcomed.conf" --socket "$TMP/s.sock" --db "$TMP/db" \
        2>"$TMP/daemon.log" &
PID=$!
wait_socket "$TMP/s.sock"
echo "hash-flood: $DAEMON"
"$BUILD/bench/hash-flood" -s "$TMP/s.sock" -n 65536 -P 256

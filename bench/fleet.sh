#!/bin/sh
# bench/fleet.sh - what [fleet] costs and how fast hosts converge: three
# outcomed hosts on this machine sharing evidence through a PostgreSQL 15
# cluster of the run's own.  Prints figures (bench/fleet.py says which);
# not a test.
#
#   ./bench/fleet.sh                 BUILD=build DURATION=5 SAMPLES=40
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_session "$0" "$@"
bench_renice
BUILD=${BUILD:-build}
[ -x "$BUILD/daemon/outcomed" ] && [ -x "$BUILD/bench/outcome-bench" ] || {
        echo "fleet.sh: build first (ninja -C $BUILD)" >&2
        exit 2
}
BUILD=$BUILD exec /usr/bin/python3 bench/fleet.py

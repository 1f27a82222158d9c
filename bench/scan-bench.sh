#!/bin/sh
# bench/scan-bench.sh - the git scanner's speed: a scan of a
# repository of 50,000 tracked files with 1, 10 and 100 changed files, and
# ping round trips on another connection while it runs.  Builds a release
# tree (BUILD_DIR, default build-release) and runs bench/scan-bench.py,
# whose docstring lists the settings (FILES, CHANGED, REPEAT, CACHE_DIR,
# KEEP).  A benchmark, not a test: it prints figures, it checks nothing.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build-release}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        echo "scan-bench: configuring $BUILD_DIR (release)"
        meson setup "$BUILD_DIR" --buildtype=release >/dev/null
fi
ninja -C "$BUILD_DIR" daemon/outcomed >/dev/null
exec /usr/bin/python3 "$ROOT/bench/scan-bench.py" --bin "$ROOT/$BUILD_DIR/daemon/outcomed"

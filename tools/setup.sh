#!/bin/sh
# tools/setup.sh - install what outcomed needs from Debian 12's packages,
# then configure and build it in ./build.  Safe to run again: it installs
# only what is missing and rebuilds only what changed.  Run as root (or
# with sudo available) on Debian 12.
#
#   tools/setup.sh [--deps-only]
#
# --deps-only: the packages and the grammars only, no ./build (bench/run.sh
# builds a release tree of its own).  OUTCOMED_EXTRA_PACKAGES: more Debian
# packages to install with the rest (bench/run.sh: Redis).
set -eu
cd "$(dirname "$0")/.."
DEPS_ONLY=0
case ${1:-} in
--deps-only) DEPS_ONLY=1 ;;
"") ;;
*) echo "usage: tools/setup.sh [--deps-only]" >&2; exit 2 ;;
esac

PACKAGES="build-essential meson ninja-build pkg-config libuv1-dev libmsgpack-dev
libsqlite3-dev libinih-dev check python3-msgpack sqlite3 libsystemd-dev scdoc
systemd util-linux"
# Hostile-input checks (.ci/run): clang and its libFuzzer runtime for
# tests/fuzz/, valgrind for the leak runs.
PACKAGES="$PACKAGES clang libclang-rt-14-dev valgrind"
# Ground truth from git: libgit2 and the tree-sitter runtime; git for the
# tests' repositories; npm fetches the grammars (below) unless the machine
# has it already.
PACKAGES="$PACKAGES libgit2-dev libtree-sitter-dev git"
# [fleet]: hosts share evidence through PostgreSQL (libpq); the tests start
# a cluster of their own with the server's initdb and pg_ctl.
PACKAGES="$PACKAGES postgresql libpq-dev"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
# The Debian package (debian/, .ci/deb) and the Python client's offline pip
# install into a venv (clients/python/tests/test_install.py).
PACKAGES="$PACKAGES debhelper dpkg-dev fakeroot lintian python3-venv python3-setuptools
python3-wheel"
# promtool, which checks the `metrics` text (tests/integration/test_metrics.py).
PACKAGES="$PACKAGES prometheus"
# tmux, whose pane shows `outcomectl top`'s live screen to
# tests/integration/test_top.py (those tests skip without it).
PACKAGES="$PACKAGES tmux"
# chromium, the real browser that opens `outcomectl report`'s page in
# tests/integration/test_report.py (which skips without it).
PACKAGES="$PACKAGES chromium"

PACKAGES="$PACKAGES ${OUTCOMED_EXTRA_PACKAGES:-}"

missing=""
for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "setup: installing$missing"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The tree-sitter grammars compiled into outcomed: generated C sources from
# the npm registry at the versions grammars/package-lock.json pins (no
# install scripts run), into grammars/node_modules/, which git ignores.
# Fetched again only when the lock file changes.
if [ ! -f grammars/node_modules/.package-lock.json ] ||
   [ grammars/package-lock.json -nt grammars/node_modules/.package-lock.json ]; then
        echo "setup: fetching the tree-sitter grammars (npm ci)"
        (cd grammars && npm ci --ignore-scripts --omit=peer --no-audit --no-fund --loglevel=error)
fi

# uPlot, the charts `outcomectl report` inlines into its page at build time:
# its dist/ files from the npm registry at the version client/report/
# package-lock.json pins, into client/report/node_modules/ (not in git);
# again only when the lock changes.
if [ ! -f client/report/node_modules/.package-lock.json ] ||
   [ client/report/package-lock.json -nt client/report/node_modules/.package-lock.json ]; then
        echo "setup: fetching uPlot for outcomectl report (npm ci)"
        (cd client/report && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

# The TypeScript client's dependencies (clients/typescript: tsc, the AI SDK
# for its tests), at the versions its package-lock.json pins, into
# clients/typescript/node_modules/ (not in git); again only when the lock changes.
if [ ! -f clients/typescript/node_modules/.package-lock.json ] ||
   [ clients/typescript/package-lock.json -nt clients/typescript/node_modules/.package-lock.json ]; then
        echo "setup: fetching the TypeScript client's dependencies (npm ci)"
        (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi

[ $DEPS_ONLY = 0 ] || exit 0

if [ ! -f build/build.ninja ]; then
        meson setup build
fi
ninja -C build

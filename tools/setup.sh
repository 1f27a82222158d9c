#!/bin/sh
# tools/setup.sh - install what outcomed needs from Debian 12's packages,
# then configure and build it in ./build.  Safe to run again: it installs
# only what is missing and rebuilds only what changed.  Run as root (or
# with sudo available) on Debian 12.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="build-essential meson ninja-build pkg-config libuv1-dev libmsgpack-dev
libsqlite3-dev libinih-dev check python3-msgpack sqlite3 libsystemd-dev scdoc
systemd util-linux"
# Hostile-input checks (.ci/run): clang and its libFuzzer runtime for
# tests/fuzz/, valgrind for the leak runs.
PACKAGES="$PACKAGES clang libclang-rt-14-dev valgrind"

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

if [ ! -f build/build.ninja ]; then
        meson setup build
fi
ninja -C build

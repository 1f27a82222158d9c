#!/bin/sh
# Build the package with its pinned tsc into dist/ and run its tests
# (node's test runner) against real daemons: $OUTCOMED_BIN, else
# build/daemon/outcomed.  meson runs this as the test typescript-client.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ]; then
        echo "clients/typescript: node_modules/ is missing; run tools/setup.sh (npm ci)" >&2
        exit 1
fi
rm -rf dist
node_modules/.bin/tsc -p tsconfig.json
exec node --test --test-reporter=spec dist/test/*.test.js

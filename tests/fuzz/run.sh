#!/bin/sh
# tests/fuzz/run.sh - run one libFuzzer target of tests/fuzz/ for a while.
#
#   tests/fuzz/run.sh BINARY [SECONDS] [-- LIBFUZZER OPTIONS...]
#
# BINARY is build-fuzz/tests/fuzz/fuzz_T; SECONDS defaults to $FUZZ_SECONDS,
# else 20 (what meson's 'fuzz' suite and CI run).  First every input kept in
# regressions/T/ is replayed once; then the target fuzzes for SECONDS,
# starting from corpus/T/ (read only: new inputs go to a scratch directory,
# $FUZZ_WORK or a temporary one) and printing libFuzzer's final stats.  A
# crash leaves its input in $FUZZ_ARTIFACTS (default: a directory next to
# the binary) and makes this script fail; copy it into regressions/T/.
set -eu

bin=$1
shift
secs=${FUZZ_SECONDS:-20}
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
        secs=$1
        shift
fi
[ "${1:-}" = "--" ] && shift

here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$bin")
target=${name#fuzz_}
corpus=$here/corpus/$target
regressions=$here/regressions/$target
artifacts=${FUZZ_ARTIFACTS:-$(dirname "$bin")/artifacts-$target}
mkdir -p "$artifacts"

work=${FUZZ_WORK:-}
cleanup=""
if [ -z "$work" ]; then
        work=$(mktemp -d "${TMPDIR:-/tmp}/outcomed-fuzz-$target.XXXXXX")
        cleanup=$work
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
mkdir -p "$work"

if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions" 2>/dev/null)" ]; then
        echo "run.sh: replaying $(ls "$regressions" | wc -l) regression input(s) of $target"
        "$bin" -runs=1 "$regressions"/*
fi

seeds=""
[ -d "$corpus" ] && seeds=$corpus
dict=""
case $target in
request|proto) dict="-dict=$here/rpc.dict" ;;
esac
echo "run.sh: fuzzing $target for ${secs}s (corpus: ${seeds:-none}, scratch: $work)"
# shellcheck disable=SC2086
"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" $dict "$@" "$work" $seeds

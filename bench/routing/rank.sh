#!/bin/sh
# bench/routing/rank.sh - what a domain costs `rank`: 50 clients asking
# rank with a domain, beside the same clients asking it without one, on one
# daemon holding DOMAINS domains x 2 models of evidence.  Runs the two
# interleaved ROUNDS times and prints each p99, their medians and the
# ratio (target: with a domain <= 2x without).  A benchmark that prints
# figures, not a test.
#
#   bench/routing/rank.sh [ROUNDS]        (DOMAINS=1000 SECONDS_EACH=3)
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
DOMAINS=${DOMAINS:-1000}
SECS=${SECONDS_EACH:-3}
BIN=${OUTCOMED_BIN:-build/daemon/outcomed}
BENCH=${OUTCOME_BENCH:-build/bench/outcome-bench}
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "rank.sh: build first (./tools/setup.sh)" >&2; exit 2; }

dir=$(mktemp -d /tmp/outcomed-rank-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
cat >"$dir/outcomed.conf" <<EOF
[daemon]
log_level = warn
[price:m-0]
input_per_mtok = 0.6
output_per_mtok = 0.6
[price:m-1]
input_per_mtok = 10
output_per_mtok = 30
EOF
"$BIN" --config "$dir/outcomed.conf" --socket "$dir/s" --db "$dir/d.db" &
pid=$!
i=0
until "$BENCH" -s "$dir/s" -n 1 --method ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "rank.sh: the daemon did not start" >&2; exit 1; }
        sleep 0.05
done
echo "filling: 2 models x $DOMAINS domains (outcome-bench cycles)..."
"$BENCH" -s "$dir/s" -c 4 -P 16 -n $((DOMAINS * 300)) --model m --models 2 --task reasoning \
        --domain subject --domains "$DOMAINS" >/dev/null

p99() { sed -n 's/.*"methods":{"rank":{[^}]*"p99":\([0-9.]*\).*/\1/p'; }
with="" without=""
for r in $(seq "$ROUNDS"); do
        a=$("$BENCH" -s "$dir/s" -c 50 -d "$SECS" -w 0.5 --method rank --model m --models 2 \
                --task reasoning --cost-weight 0.1 --json | p99)
        b=$("$BENCH" -s "$dir/s" -c 50 -d "$SECS" -w 0.5 --method rank --model m --models 2 \
                --task reasoning --cost-weight 0.1 --domain subject --domains "$DOMAINS" --json | p99)
        echo "round $r: rank p99 without a domain $a us, with one $b us"
        without="$without $a" with="$with $b"
done
median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mw=$(median "$without") mb=$(median "$with")
awk -v a="$mw" -v b="$mb" 'BEGIN { r = b / a; printf "rank, 50 clients: p99 %.1f us without a domain, %.1f us with one: %.2fx (target <= 2: %s)\n", a, b, r, r <= 2 ? "met" : "MISSED" }'

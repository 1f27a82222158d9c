#!/bin/sh
# bench/run.sh - outcomed beside Redis, one command from a fresh clone.
#
# Builds a release tree (build-release/), starts a fresh outcomed (temporary
# socket, database and configuration file) and a fresh redis-server, both
# on Unix sockets, and for each scenario runs redis-benchmark (INCR) and
# then outcome-bench (the router cycle start -> complete -> outcome) with
# the same number of clients, pipeline depth and requests.  The CPU time
# each server spent (utime + stime from /proc/PID/stat, all its threads)
# is divided by the requests it served.  Prints one table, with the speed
# targets checked (README, Performance); then bench/memory.sh measures the
# memory per pending trace and the start-up with 1,000,000 of them (MEMORY=0: not),
# and a last line counts the targets missed in both.
#
# Each scenario names a durability, given to outcomed as `[store]
# durability = VALUE` and matched by Redis's persistence, or `scan`; each
# gets a fresh pair of servers:
#   relaxed  Redis without persistence (--save '' --appendonly no)
#   ack      Redis with --appendonly yes --appendfsync everysec
#   fsync    Redis with --appendonly yes --appendfsync always
#   scan     outcomed with durability = relaxed, Redis as for relaxed, and
#            git scans running all through outcome-bench's run (not
#            Redis's): bench/scan-load.py makes a repository of 30,000
#            tracked files (C and Python; built once and kept in
#            /tmp/outcomed-bench-scan-repo), which outcomed watches
#            ([git] settle_s = 0), puts 500 pending code traces on it,
#            and then runs `scan` after `scan`, committing changes to 20
#            of the traces' files every second (a scan diffs every pending
#            trace, reads the new index, parses the changed files); the
#            edits and commits (a developer's work) go on while Redis is
#            measured too, so that only the scans differ; the
#            table gives the scans that ran during outcome-bench's run
#            (counted from the scan replies and stats.scans_total), how
#            long they took and the scanner thread's CPU, and checks only
#            p99 (<= 2x Redis's).
# A daemon that refuses the key (one older than it) runs with its
# defaults; the table says so.
#
# `tools/setup.sh --deps-only` installs the missing Debian packages (its
# list, and redis-server, redis-tools) and fetches the tree-sitter
# grammars the build needs, so a fresh clone needs nothing else.  On a machine with
# systemd, Debian's redis-server package starts a system Redis of its own;
# this script does not use it (systemctl disable --now redis-server).
#
# Settings (environment variables):
#   SCENARIOS   what to run, "DURABILITY:CLIENTS:PIPELINE:REQUESTS ...",
#               default "relaxed:1:1:100000 relaxed:50:1:300000
#                        relaxed:50:16:3000000 ack:50:16:3000000
#                        scan:50:1:300000"
#   BUILD_DIR   release tree (default build-release)
#   RESULTS     also write the raw figures (TSV) to this file
#   MEMORY      1 (default): then run bench/memory.sh (memory per pending
#               trace, start-up with 1,000,000 traces; its settings too),
#               with the same BUILD_DIR; 0: not
#   SCAN_FILES, SCAN_TRACES, SCAN_CHANGED, SCAN_REPO_CACHE
#               the scan scenario's repository size (30000), pending
#               traces (500), files changed during each scan (20) and
#               cache directory (see bench/scan-load.py)
#   SCAN_OTHER_PENDING
#               the scan scenario: this many more pending traces (generate
#               traces started and never completed, as routers leave them)
#               before the runs (default 0); every scan's snapshot, taken
#               on the event loop, walks all pending traces
#   KEEP_TMP=1  keep the temporary directory (logs, databases)
#   NICE        priority of the whole run (servers and clients alike):
#               default -20 as root, so that other work on the machine
#               disturbs the figures less; NICE= to leave it alone.  The
#               table's "CPU wait" column shows how long each server still
#               waited for a CPU (run-queue wait); rows where Redis waited
#               over 5% are flagged.
#
# Every run is bounded: outcome-bench stops after -n requests or 120 s,
# and each command is killed after 300 s.
set -eu

. "$(dirname "$0")/lib.sh"
bench_session "$0" "$@"

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD_DIR=${BUILD_DIR:-build-release}
SCENARIOS=${SCENARIOS:-"relaxed:1:1:100000 relaxed:50:1:300000 relaxed:50:16:3000000 ack:50:16:3000000 scan:50:1:300000"}
RESULTS=${RESULTS:-}
MEMORY=${MEMORY:-1}
KEEP_TMP=${KEEP_TMP:-0}
CMD_TIMEOUT=300

say() { printf '%s\n' "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ---- packages and build --------------------------------------------------

OUTCOMED_EXTRA_PACKAGES="python3 redis-server redis-tools" sh tools/setup.sh --deps-only >&2

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        say "configuring $BUILD_DIR (release)"
        meson setup "$BUILD_DIR" --buildtype=release >/dev/null
fi
ninja -C "$BUILD_DIR" daemon/outcomed bench/outcome-bench client/outcomectl >/dev/null
OUTCOMED="$ROOT/$BUILD_DIR/daemon/outcomed"
BENCH="$ROOT/$BUILD_DIR/bench/outcome-bench"
CTL="$ROOT/$BUILD_DIR/client/outcomectl"

# ---- servers -------------------------------------------------------------

# Children inherit the priority: both servers and both clients.
bench_renice

TMP=$(mktemp -d /tmp/outcomed-bench.XXXXXX)
RAW="$TMP/results.tsv"
REDIS_PID=""
OUTCOMED_PID=""
LOAD_PID=""
BUSY=""

cleanup() {
        stop_pid "$LOAD_PID"
        stop_pid "$OUTCOMED_PID"
        stop_pid "$REDIS_PID"
        if [ "$KEEP_TMP" = 1 ]; then
                say "kept $TMP"
        else
                rm -rf "$TMP"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU ticks (utime + stime) of a process, all threads; comm may hold spaces.
cpu_ticks() {
        sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

start_redis() {
        # start_redis VARIANT
        rm -rf "$TMP/redis"
        mkdir -p "$TMP/redis"
        case $1 in
        relaxed | scan) persist="--appendonly no" ;;
        fsync) persist="--appendonly yes --appendfsync always" ;;
        *) persist="--appendonly yes --appendfsync everysec" ;;
        esac
        # shellcheck disable=SC2086
        redis-server --port 0 --unixsocket "$TMP/redis.sock" --unixsocketperm 700 \
                --dir "$TMP/redis" --save '' $persist --daemonize no \
                --logfile "$TMP/redis.log" &
        REDIS_PID=$!
        i=0
        until redis-cli -s "$TMP/redis.sock" ping >/dev/null 2>&1; do
                kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start: $(tail -5 "$TMP/redis.log")"
                [ $i -lt 100 ] || die "redis-server did not answer within 10 s"
                sleep 0.1
                i=$((i + 1))
        done
}

# Start outcomed with `durability = $2` when it knows the key, watching
# the repository $3 when given; sets DURABILITY_USED to what it runs with.
start_outcomed() {
        # start_outcomed VARIANT DURABILITY [REPO]
        rm -f "$TMP"/outcomed.db*
        for with_key in yes no; do
                {
                        printf '[daemon]\nsocket = %s\nlog_level = warn\n' "$TMP/outcomed.sock"
                        printf '[store]\ndb = %s\n' "$TMP/outcomed.db"
                        [ $with_key = no ] || printf 'durability = %s\n' "$2"
                        [ -z "${3:-}" ] ||
                                printf '[git]\nrepo = %s\nsettle_s = 0\nscan_interval_s = 86400\n' "$3"
                } >"$TMP/outcomed.conf"
                "$OUTCOMED" --config "$TMP/outcomed.conf" 2>"$TMP/outcomed-$1.log" &
                OUTCOMED_PID=$!
                i=0
                while ! "$BENCH" -s "$TMP/outcomed.sock" --method ping -n 1 --timeout 2 \
                        >/dev/null 2>&1; do
                        if ! kill -0 "$OUTCOMED_PID" 2>/dev/null; then
                                wait "$OUTCOMED_PID" 2>/dev/null || true
                                OUTCOMED_PID=""
                                break
                        fi
                        [ $i -lt 100 ] || die "outcomed did not answer within 10 s"
                        sleep 0.1
                        i=$((i + 1))
                done
                if [ -n "$OUTCOMED_PID" ]; then
                        if [ $with_key = yes ]; then
                                DURABILITY_USED=$2
                        else
                                DURABILITY_USED="default"
                        fi
                        return 0
                fi
                if [ $with_key = yes ] && grep -q durability "$TMP/outcomed-$1.log"; then
                        say "outcomed refused durability = $2 ($(grep durability "$TMP/outcomed-$1.log" |
                                head -1)); running it with its defaults"
                        continue
                fi
                die "outcomed did not start: $(tail -5 "$TMP/outcomed-$1.log")"
        done
}

# Percent of one CPU used by everything over half a second (the servers
# are idle then): the figures mean little when other work shares the cores.
busy_pct() {
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
        sleep 0.5
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
        echo "$a $b" | awk -v tck="$(getconf CLK_TCK)" '{ printf "%d", ($3 - $1) * 100 / (tck / 2) }'
}

# ---- runs ----------------------------------------------------------------

# Nanoseconds the threads of a process spent runnable but waiting for a
# CPU (run-queue wait, /proc/PID/task/*/schedstat): what other work on
# the machine, the client included, took from the server.
wait_ns() {
        cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f", s }'
}

# Run a benchmark command with its output in $TMP/out; sets SERVER_TICKS
# (the server's CPU time over the run) and WAIT_NS (its run-queue wait).
measure() {
        # measure SERVER_PID COMMAND...
        pid=$1
        shift
        s0=$(cpu_ticks "$pid")
        w0=$(wait_ns "$pid")
        rc=0
        timeout $CMD_TIMEOUT "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
        s1=$(cpu_ticks "$pid")
        w1=$(wait_ns "$pid")
        SERVER_TICKS=$((s1 - s0))
        WAIT_NS=$((w1 - w0))
        return $rc
}

run_redis() {
        # run_redis CLIENTS PIPELINE REQUESTS -> "rps p99_ms cpu_ticks wait_ns"
        measure "$REDIS_PID" redis-benchmark -s "$TMP/redis.sock" -c "$1" -P "$2" -n "$3" \
                -t incr --csv || die "redis-benchmark failed: $(cat "$TMP/err")"
        # "INCR","150375.94","0.180","0.040","0.167","0.263","0.375","1.023"
        awk -F'"' -v cpu=$SERVER_TICKS -v wait=$WAIT_NS \
                '$2 == "INCR" { print $4, $14, cpu, wait; found = 1 } END { if (!found) exit 1 }' \
                "$TMP/out" || die "cannot read redis-benchmark's output: $(cat "$TMP/out")"
}

run_outcomed() {
        # run_outcomed CLIENTS PIPELINE REQUESTS -> "JSON<tab>cpu_ticks<tab>wait_ns"
        rc=0
        measure "$OUTCOMED_PID" "$BENCH" -s "$TMP/outcomed.sock" -c "$1" -P "$2" -n "$3" \
                -d 120 --json || rc=$?
        [ $rc -le 1 ] || die "outcome-bench failed (exit $rc): $(cat "$TMP/err")"
        printf '%s\t%s\t%s\n' "$(cat "$TMP/out")" $SERVER_TICKS $WAIT_NS
}

# ---- the scan scenario: git scans all through outcome-bench's run --------

SCAN_DIR="$TMP/scan"

# Wait for a file bench/scan-load.py writes (at most $2 s).
wait_load_file() {
        # wait_load_file FILE SECONDS
        i=0
        until [ -e "$1" ]; do
                kill -0 "$LOAD_PID" 2>/dev/null ||
                        die "bench/scan-load.py stopped: $(tail -5 "$SCAN_DIR/log")"
                [ $i -lt $(($2 * 10)) ] ||
                        die "bench/scan-load.py wrote no $(basename "$1") within $2 s: $(tail -5 "$SCAN_DIR/log")"
                sleep 0.1
                i=$((i + 1))
        done
}

# Start bench/scan-load.py, which makes the repository (SCAN_REPO) and,
# once outcomed answers, the pending traces; it scans only while
# $SCAN_DIR/go exists.
start_load() {
        rm -rf "$SCAN_DIR"
        mkdir -p "$SCAN_DIR"
        /usr/bin/python3 "$ROOT/bench/scan-load.py" "$TMP/outcomed.sock" "$SCAN_DIR" \
                2>"$SCAN_DIR/log" &
        LOAD_PID=$!
        wait_load_file "$SCAN_DIR/repo" 300
        SCAN_REPO=$(cat "$SCAN_DIR/repo")
}

# "CPU ticks, run-queue wait (ns)" of the threads of a process that run
# at a lower priority than its main thread: outcomed's git scanner
# (SCHED_IDLE, policy 5, or a nice of its own).
background_cpu() {
        main=$(sed 's/.*) //' "/proc/$1/stat" | awk '{ print $17 }')
        for t in /proc/"$1"/task/*; do
                printf '%s %s\n' "$(sed 's/.*) //' "$t/stat" 2>/dev/null)" \
                        "$(cut -d' ' -f2 "$t/schedstat" 2>/dev/null)"
        done | awk -v m="$main" 'NF > 40 && ($17 > m || $39 == 5) { s += $12 + $13; w += $NF }
                END { printf "%d %.0f", s, w }'
}

# "wall-clock scans_total git_judged_total scanner_ticks scanner_wait_ns
# load_ticks" now (load: scan-load.py and its git commands).
scan_mark() {
        st=$("$CTL" --socket "$TMP/outcomed.sock" --json stats) || die "outcomectl stats failed"
        printf '%s %s %s %s %s\n' "$(date +%s.%N)" \
                "$(printf '%s' "$st" | sed -n 's/.*"scans_total":\([0-9]*\).*/\1/p')" \
                "$(printf '%s' "$st" | sed -n 's/.*"git_judged_total":\([0-9]*\).*/\1/p')" \
                "$(background_cpu "$OUTCOMED_PID")" \
                "$(sed 's/.*) //' "/proc/$LOAD_PID/stat" | awk '{ print $12 + $13 + $14 + $15 }')"
}

# The scans of scans.log seen from a window of marks: JSON for the table.
scan_summary() {
        # scan_summary MARK_BEFORE MARK_AFTER
        python3 - "$SCAN_DIR/scans.log" "$1" "$2" <<'PY'
import json, sys
log, m0, m1 = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
t0, t1 = float(m0[0]), float(m1[0])
scans, begun = [], {}
for line in open(log):
    f = line.split()
    if f[0] == "begin":
        begun[f[1]] = True
    elif f[0] in ("load", "warm"):
        begun.pop(f[1], None)
        if f[0] == "load" and float(f[2]) > t0 and float(f[1]) < t1:
            scans.append((float(f[1]), float(f[2]), int(f[3]), int(f[4]), int(f[5])))
busy = sum(min(b, t1) - max(a, t0) for a, b, _, _, _ in scans)
running = [float(a) for a in begun if float(a) < t1]  # no reply yet
busy += sum(t1 - max(a, t0) for a in running)
print(json.dumps({
    "window_s": t1 - t0,
    "scans": len(scans) + len(running),                 # overlapping the run
    "scans_total": int(m1[1]) - int(m0[1]),             # stats.scans_total
    "judged_total": int(m1[2]) - int(m0[2]),            # stats.git_judged_total
    "duration_ms": [s[2] for s in scans],
    "pending": scans[-1][4] if scans else 0,
    "busy_pct": busy / (t1 - t0) * 100 if t1 > t0 else 0,
    "scanner_ticks": int(m1[3]) - int(m0[3]),
    "scanner_wait_ns": int(m1[4]) - int(m0[4]),
    "load_ticks": int(m1[5]) - int(m0[5]),
}))
PY
}

printf 'variant\tclients\tpipeline\trequests\tdurability\tredis_rps\tredis_p99_ms\tredis_cpu_ticks\tredis_wait_ns\toutcomed_json\toutcomed_cpu_ticks\toutcomed_wait_ns\tscan_json\n' >"$RAW"
variants=""
for s in $SCENARIOS; do
        v=${s%%:*}
        case " $variants " in *" $v "*) ;; *) variants="$variants $v" ;; esac
done
for variant in $variants; do
        scen=""
        for s in $SCENARIOS; do
                case $s in "$variant":*) scen="$scen $s" ;; esac
        done
        [ -n "$scen" ] || continue
        say "$variant: starting redis-server and outcomed"
        if [ "$variant" = scan ]; then
                say "scan: making the repository (bench/scan-load.py)"
                start_load
                start_redis "$variant"
                start_outcomed "$variant" relaxed "$SCAN_REPO"
                wait_load_file "$SCAN_DIR/ready" 300
                say "scan: $(cat "$SCAN_DIR/ready")"
                if [ "${SCAN_OTHER_PENDING:-0}" -gt 0 ]; then
                        say "scan: starting $SCAN_OTHER_PENDING more pending traces (generate)"
                        "$BENCH" -s "$TMP/outcomed.sock" -m start --task generate -c 4 -P 64 \
                                -n "$SCAN_OTHER_PENDING" --timeout 30 >/dev/null ||
                                die "outcome-bench -m start failed"
                fi
        else
                start_redis "$variant"
                start_outcomed "$variant" "$variant"
        fi
        busy=$(busy_pct)
        if [ "$busy" -gt 20 ]; then
                say "warning: other processes use ${busy}% of a CPU; the figures will be low"
                BUSY="$BUSY $variant:$busy"
        fi
        for s in $scen; do
                c=$(echo "$s" | cut -d: -f2)
                p=$(echo "$s" | cut -d: -f3)
                n=$(echo "$s" | cut -d: -f4)
                # the scan scenario: no scan while Redis runs, but the same
                # developer's edits and commits (bench/scan-load.py's DIR/env)
                if [ "$variant" = scan ]; then
                        wait_load_file "$SCAN_DIR/paused" 300
                        touch "$SCAN_DIR/env"
                fi
                say "$variant ${c}x$p: redis-benchmark -n $n"
                r=$(run_redis "$c" "$p" "$n")
                scan_json=""
                if [ "$variant" = scan ]; then
                        # Scans start, and outcome-bench starts once the
                        # first of them is done (the scanner is at work).
                        k=$(grep -c '^load ' "$SCAN_DIR/scans.log" || true)
                        touch "$SCAN_DIR/go"
                        i=0
                        while [ "$(grep -c '^load ' "$SCAN_DIR/scans.log" || true)" -le "$k" ]; do
                                kill -0 "$LOAD_PID" 2>/dev/null ||
                                        die "bench/scan-load.py stopped: $(tail -5 "$SCAN_DIR/log")"
                                [ $i -lt 1200 ] || die "no scan was done within 120 s"
                                sleep 0.1
                                i=$((i + 1))
                        done
                        m0=$(scan_mark)
                fi
                say "$variant ${c}x$p: outcome-bench -n $n"
                o=$(run_outcomed "$c" "$p" "$n")
                if [ "$variant" = scan ]; then
                        m1=$(scan_mark)
                        rm -f "$SCAN_DIR/go"
                        scan_json=$(scan_summary "$m0" "$m1")
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$c" "$p" "$n" "$DURABILITY_USED" \
                        "$(printf '%s' "$r" | tr ' ' '\t')" "$o" "$scan_json" >>"$RAW"
        done
        stop_pid "$LOAD_PID"
        LOAD_PID=""
        stop_pid "$OUTCOMED_PID"
        OUTCOMED_PID=""
        stop_pid "$REDIS_PID"
        REDIS_PID=""
done
[ -z "$RESULTS" ] || cp "$RAW" "$RESULTS"

# ---- the table -----------------------------------------------------------

REDIS_VERSION=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
GIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "(not a git tree)")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 - "$RAW" "$(getconf CLK_TCK)" "$REDIS_VERSION" "$GIT" "$CPU" "$(nproc)" "$(uname -r)" \
        "$BUSY" <<'PY' | tee "$TMP/table.txt"
import csv, json, sys

raw, tck, redis_v, git, cpu, ncpu, kernel, busy = sys.argv[1:]
tck = float(tck)
csv.field_size_limit(1 << 24)
rows = list(csv.DictReader(open(raw), delimiter="\t"))

# The speed targets per scenario: minimum throughput ratio, maximum CPU
# ratio, maximum p99 ratio (None: no target).  The p99 target is the
# 50-client one (one request at a time, also during git scans); with 16
# in flight each a request's latency is mostly its wait behind the 799
# others (Little's law: 800 / throughput), so at the 0.5x throughput the
# target allows, twice Redis's latency is already the expected median:
# that row shows p99 and does not check it.
TARGETS = {
    ("relaxed", "1", "1"): (0.9, None, None),
    ("relaxed", "50", "1"): (1.0, 1.5, 2.0),
    ("relaxed", "50", "16"): (0.5, None, None),
    ("ack", "50", "16"): (0.15, None, None),
    # git scans during outcomed's run: only p99 (the others are shown)
    ("scan", "50", "1"): (None, None, 2.0),
}

def ratio(a, b):
    return a / b if b else float("inf")

print(f"outcomed {git} vs Redis {redis_v} on Unix sockets; {cpu}, {ncpu} cores, Linux {kernel}")
print("outcomed: the router cycle (start -> complete -> outcome, 3 requests); Redis: INCR.")
print("CPU us/r: each server's utime+stime over the run / requests served.  Ratios: outcomed / Redis.")
print("CPU wait: time each server's threads were runnable but waiting for a CPU, % of the run")
print("  (Redis/outcomed): other processes, the client, and for outcomed its own writer threads")
print("  (not its git scanner's: that is on the `git scans` line).")
print()
fmt = "{:<14} {:>8} {:>10} {:>10} {:>9} {:>6} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>7}  {}"
print(fmt.format("scenario", "outcomed", "redis", "outcomed", "outcomed", "ratio", "redis",
                 "outcomed", "ratio", "redis", "outcomed", "ratio", "CPU",
                 "targets"))
print(fmt.format("", "durabil.", "req/s", "req/s", "cycles/s", "", "CPU us/r", "CPU us/r",
                 "", "p99 ms", "p99 ms", "", "wait %", ""))
missed = 0
notes = []
noisy = []
scan_lines = []
for r in rows:
    o = json.loads(r["outcomed_json"])
    name = f'{r["variant"]} {r["clients"]}x{r["pipeline"]}'
    rrps, orps = float(r["redis_rps"]), o["requests_per_s"]
    rcpu = float(r["redis_cpu_ticks"]) / tck * 1e6 / float(r["requests"])
    ocpu = float(r["outcomed_cpu_ticks"]) / tck * 1e6 / max(o["requests"], 1)
    rp99, op99 = float(r["redis_p99_ms"]), o["latency_us"]["p99"] / 1000.0
    tr, cr, pr = ratio(orps, rrps), ratio(ocpu, rcpu), ratio(op99, rp99)
    # each server's run-queue wait, in % of its run's time
    r_el = float(r["requests"]) / rrps if rrps else 0
    r_oth = float(r["redis_wait_ns"]) / 1e9 / r_el * 100 if r_el else 0
    o_wait = float(r["outcomed_wait_ns"])
    s = json.loads(r["scan_json"]) if r.get("scan_json") else None
    if s:  # the scanner's own wait (it runs SCHED_IDLE) is shown below
        o_wait = max(0.0, o_wait - s["scanner_wait_ns"])
    o_oth = o_wait / 1e9 / o["elapsed_s"] * 100 if o["elapsed_s"] else 0
    # Redis's one busy thread waits only for others (in the scan row also
    # for the developer's commits, which run beside both servers: expected)
    if r_oth > 5 and r["variant"] != "scan":
        noisy.append(name)
    checks = []
    t = TARGETS.get((r["variant"], r["clients"], r["pipeline"]))
    if t:
        for label, val, lim, ge in (("req/s", tr, t[0], True), ("cpu", cr, t[1], False),
                                    ("p99", pr, t[2], False)):
            if lim is None:
                continue
            ok = val >= lim if ge else val <= lim
            missed += not ok
            checks.append(f'{label} {">=" if ge else "<="}{lim:g} {"ok" if ok else "MISSED"}')
    if o["errors_total"]:
        notes.append(f'{name}: outcome-bench saw errors {o["errors"]}')
    if s:
        d = sorted(s["duration_ms"])
        scan_lines.append(
            f'{name}: a scan ran {s["busy_pct"]:.0f}% of the {s["window_s"]:.1f} s run: '
            f'{s["scans"]} scans overlapped it, {s["scans_total"]} ended in it '
            f'(stats.scans_total); '
            + (f'the finished ones took {d[0]}-{d[-1]} ms (median {d[len(d) // 2]})' if d
               else "none has finished yet")
            + f'; {s["judged_total"]} traces judged, {s["pending"]} pending\n'
            f'  scanner thread: CPU {s["scanner_ticks"] / tck / s["window_s"] * 100:.0f}% '
            f'of a core, waited for a CPU '
            f'{s["scanner_wait_ns"] / 1e9 / s["window_s"] * 100:.0f}% of the run; '
            f'scan-load.py and its git commands: CPU '
            f'{s["load_ticks"] / tck / s["window_s"] * 100:.0f}% of a core')
        if not s["scans"]:
            missed += 1
            checks.append("no scan ran: MISSED")
    print(fmt.format(name, r["durability"], f"{rrps:,.0f}", f"{orps:,.0f}",
                     f'{o.get("cycles_per_s", 0):,.0f}', f"{tr:.2f}", f"{rcpu:.2f}",
                     f"{ocpu:.2f}", f"{cr:.2f}", f"{rp99:.3f}", f"{op99:.3f}", f"{pr:.2f}",
                     f"{r_oth:.0f}/{o_oth:.0f}", ", ".join(checks)))
print()
for n in scan_lines:
    print("git scans:", n)
for n in notes:
    print("note:", n)
if any(r["durability"] == "default" for r in rows):
    print("note: this outcomed refused [store] durability: it ran with its defaults")
if noisy:
    print(f"warning: Redis waited for a CPU over 5% of the time during {', '.join(noisy)}: "
          "other work shared the cores, those rows are not reliable")
for b in busy.split():
    v, pct = b.split(":")
    print(f"warning: before the {v} runs other processes used {pct}% of a CPU: "
          "the figures are not reliable")
print(f"targets missed: {missed}")
PY

# ---- memory and start-up: bench/memory.sh --------------------------------

missed=$(sed -n 's/^targets missed: //p' "$TMP/table.txt")
if [ "$MEMORY" = 1 ]; then
        echo
        say "memory and start-up: bench/memory.sh"
        BUILD_DIR=$BUILD_DIR sh "$ROOT/bench/memory.sh" | tee "$TMP/memory.txt" ||
                die "bench/memory.sh failed"
        m=$(sed -n 's/^targets missed: //p' "$TMP/memory.txt")
        echo
        echo "targets missed, both tables: $((missed + ${m:-1}))"
fi

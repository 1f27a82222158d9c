#!/bin/sh
# bench/memory.sh - memory per pending trace and start-up time, against
# two speed targets (README, Performance).  A benchmark: it prints figures and a verdict per
# target, it is not a test (exit 0 whether a target is met or missed; 1
# when the run itself failed).
#
#   1. memory: at most 300 bytes per pending trace beside its strings,
#      with 1,000,000 pending traces.
#   2. start-up: with 1,000,000 pending traces and 10,000 profiles in the
#      database, from exec to the first answered ping in under 2 s.
#
# How:
#   - builds a release tree ($BUILD_DIR) as bench/run.sh does, and a small
#     probe linked with daemon/core/tracker.c that prints the sizes behind the
#     figure (struct tracker_trace, malloc chunks, hash table) and the heap
#     the tracker alone takes for the same traces (mallinfo2);
#   - memory: a fresh daemon (temporary directory, its own configuration,
#     socket and database; [limits] pending raised a little above
#     $TRACES) with durability relaxed; VmRSS and smaps_rollup's Private
#     are read once it is idle, then outcome-bench --method start puts
#     $TRACES traces in it ($CLIENTS connections x $PIPELINE in flight), the
#     store is waited for until idle (stats' journal_total has every start,
#     commits, snapshots and the daemon's CPU time stop moving), and they are
#     read again.  The strings each trace holds (daemon/core/tracker.c,
#     tracker__trace_copy: id, model, reason, each with its NUL; no repo,
#     files, output nor base for these traces) are counted from the ids
#     the daemon generated ("t-<16 hex>-<hex counter>": the oldest pending
#     id, read with query pending, gives the prefix and first counter, and
#     the counters are consecutive) and subtracted; the rest divided by the
#     traces is the figure.  The same is measured with the default
#     durability (ack) on the daemon of the start-up test (its baseline
#     then holds the $PROFILES profiles), and after a clean restart (the
#     state loaded from the database, without the fill's transient buffers);
#   - start-up: $PROFILES profiles are made first (outcome-bench --cycle,
#     4 clients of --models $PROFILES/4 each, one cycle per model), then
#     the $TRACES pending traces; SIGTERM (the daemon writes its snapshot),
#     then $RESTARTS restarts are timed from exec to the first answered
#     ping (a python helper takes the time, forks a poller that retries
#     every millisecond, and execs the daemon); each and the median are
#     printed, with the daemon's CPU time (all threads) and the time its
#     threads waited for a CPU (schedstat): on a shared machine the CPU
#     time is the steadier figure.  Informational: the same restarts with
#     malloc in transparent huge pages, and a restart after SIGKILL on a
#     daemon whose snapshots were held off (snapshot_interval_ms =
#     3600000), so that start-up replays the whole journal instead of
#     loading a snapshot.
#
# Settings (environment):
#   BUILD_DIR   release build tree (default build-release-mem)
#   TRACES      pending traces (default 1000000)
#   PROFILES    profiles for the start-up test (default 10000; a multiple
#               of 4)
#   CLIENTS, PIPELINE  outcome-bench's connections and requests in flight
#               for the fill (default 4 and 256)
#   RESTARTS    timed clean restarts (default 3)
#   MEM_DEFAULT 1: also the memory figure with the default durability
#               (it comes from the start-up daemon, nearly free; default 1)
#   KILL_RESTART 1: also time a restart after SIGKILL (one more fill;
#               default 1)
#   THP         1: also time the restarts with glibc's malloc asking for
#               transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1;
#               informational; default 1, skipped when the kernel has none)
#   TRIM        1: when gdb is installed, also read the memory of each
#               filled daemon after it calls malloc_trim(0) (informational;
#               default 1)
#   NICE        as bench/run.sh: the priority of the whole run, in a
#               session (autogroup) of its own; default -20 for root
#   KEEP_TMP    1: keep the temporary directory (databases, logs)
#
# Every wait is bounded: each command is killed after $CMD_TIMEOUT s, a
# daemon that does not answer within 60 s (120 s after SIGKILL) or does not
# stop within 60 s is an error, idle is waited for at most 120 s.  Needs
# only Debian packages (those of tools/setup.sh; python3-msgpack).

# The helpers' answers are eval'ed (ST_*, STR_*, P_*), and mem_kb's three
# numbers are split on purpose.
# shellcheck disable=SC2154,SC2046
set -eu

. "$(dirname "$0")/lib.sh"
bench_session "$0" "$@"

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD_DIR=${BUILD_DIR:-build-release-mem}
TRACES=${TRACES:-1000000}
PROFILES=${PROFILES:-10000}
CLIENTS=${CLIENTS:-4}
PIPELINE=${PIPELINE:-256}
RESTARTS=${RESTARTS:-3}
MEM_DEFAULT=${MEM_DEFAULT:-1}
KILL_RESTART=${KILL_RESTART:-1}
KEEP_TMP=${KEEP_TMP:-0}
THP=${THP:-1}
TRIM=${TRIM:-1}
CMD_TIMEOUT=300
PY=/usr/bin/python3
MEM_TARGET=300       # bytes per pending trace beside its strings
STARTUP_TARGET=2000  # ms from exec to the first ping
FILL_MODEL=outcome-bench

say() { printf '%s\n' "memory.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ---- packages and build --------------------------------------------------

for p in build-essential meson ninja-build pkg-config libuv1-dev libmsgpack-dev \
        libsqlite3-dev libinih-dev python3 python3-msgpack; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
                die "package $p is missing (./tools/setup.sh installs it)"
done
[ $((PROFILES % 4)) -eq 0 ] || die "PROFILES must be a multiple of 4"

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        say "configuring $BUILD_DIR (release)"
        meson setup "$BUILD_DIR" --buildtype=release >/dev/null
fi
ninja -C "$BUILD_DIR" daemon/outcomed bench/outcome-bench >/dev/null
OUTCOMED="$ROOT/$BUILD_DIR/daemon/outcomed"
BENCH="$ROOT/$BUILD_DIR/bench/outcome-bench"

bench_renice

TMP=$(mktemp -d /tmp/outcomed-mem.XXXXXX)
PID=""

cleanup() {
        stop_pid "$PID" 60
        if [ "$KEEP_TMP" = 1 ]; then
                say "kept $TMP"
        else
                rm -rf "$TMP"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers: a msgpack-RPC client, the start-up timer, the probe --------

cat >"$TMP/rpc.py" <<'PY'
import os, socket, sys, time
import msgpack

def call(path, method, args=None, timeout=30.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(msgpack.packb([0, 1, method, [args or {}]]))
        u = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        while True:
            d = s.recv(1 << 16)
            if not d:
                raise EOFError("connection closed")
            u.feed(d)
            for m in u:
                if m[2]:
                    raise RuntimeError(m[2])
                return m[3]
    finally:
        s.close()

def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])

cmd = sys.argv[1]
if cmd == "stats":
    # stats SOCK: the counters the script uses, as shell assignments
    st = call(sys.argv[2], "stats")
    for k in ("pending", "profiles", "journal_total", "commits_total", "snapshots_total",
              "replayed"):
        print(f"ST_{k}={int(st.get(k, 0))}")
elif cmd == "idle":
    # idle SOCK PID MIN_JOURNAL TIMEOUT: wait until every change is
    # journaled and commits, snapshots and the daemon's CPU time stand
    # still for 1.5 s (the snapshot interval is 1 s).
    path, pid, want, limit = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    end = time.monotonic() + limit
    last, still = None, 0
    while time.monotonic() < end:
        st = call(path, "stats")
        key = (st["journal_total"], st["commits_total"], st["snapshots_total"])
        cpu = ticks(pid)
        if last and key == last[0] and cpu - last[1] <= 2 and st["journal_total"] >= want:
            still += 1
            if still >= 3:
                sys.exit(0)
        else:
            still = 0
        last = (key, cpu)
        time.sleep(0.5)
    sys.exit(f"not idle after {limit:.0f} s (journal_total {st['journal_total']}, want {want})")
elif cmd == "first-id":
    p = call(sys.argv[2], "query", {"pending": True, "limit": 1})["pending"]
    print(p[0]["trace_id"] if p else "")
elif cmd == "launch":
    # launch SOCK OUTFILE TIMEOUT PROGRAM ARGS...: become PROGRAM (so the
    # caller's $! is the daemon); a poller forked first writes to OUTFILE
    # the milliseconds from just before exec to the first answered ping
    # ("timeout" past TIMEOUT seconds).
    path, out, limit, argv = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # an intermediate child: the poller is its child, orphaned
        os.close(w)
        if os.fork() != 0:
            os._exit(0)
        t0, pre = os.read(r, 64).decode().split()
        t0 = int(t0)
        res = "timeout"
        while time.monotonic_ns() - t0 < limit * 1e9:
            try:
                call(path, "ping", timeout=max(limit - (time.monotonic_ns() - t0) / 1e9, 0.1))
                res = f"{(time.monotonic_ns() - t0) / 1e6:.1f}"
                break
            except (OSError, EOFError, RuntimeError):
                time.sleep(0.001)
        with open(out + ".part", "w") as f:
            f.write(f"{res} {pre}\n")
        os.rename(out + ".part", out)
        os._exit(0)
    os.close(r)
    os.waitpid(pid, 0)
    # this process's CPU time so far, which /proc/PID/stat keeps across exec
    pre = sum(os.times()[:2]) * 1000
    os.write(w, f"{time.monotonic_ns()} {pre:.0f}".encode())  # w is close-on-exec
    os.execv(argv[0], argv)
elif cmd == "strings":
    # strings FIRST_ID N MODEL: bytes of the strings N traces hold (id,
    # model, reason "" each with its NUL), with consecutive generated ids
    # from FIRST_ID on.
    first, n, model = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    prefix, _, hexc = first.rpartition("-")
    c0 = int(hexc, 16)
    ids = sum(len(prefix) + 1 + len(f"{c:x}") + 1 for c in range(c0, c0 + n))
    print(f"STR_ids={ids} STR_models={n * (len(model) + 1)} STR_reasons={n}"
          f" STR_total={ids + n * (len(model) + 1) + n} STR_prefix={prefix} STR_c0={c0}")
PY

cat >"$TMP/probe.c" <<'C'
/* The sizes behind the figure, and the heap the tracker alone takes for n
 * traces like the fill's (mallinfo2: chunks in use, headers included). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tracker.h"

static size_t heap(void)
{
        struct mallinfo2 m = mallinfo2();
        return m.uordblks + m.hblkhd;
}

static size_t chunk(const void *p) /* the malloc chunk of p, header included */
{
        return malloc_usable_size((void *)p) + sizeof(size_t);
}

static double ms(const struct timespec *a, const struct timespec *b)
{
        return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

int main(int argc, char **argv)
{
        size_t n = argc > 2 ? strtoull(argv[1], NULL, 10) : 0;
        const char *model = argc > 2 ? argv[2] : "";
        struct timespec t0, t1, t2;
        struct tracker_options o = { .id_prefix = "t-0123456789abcdef" };
        struct tracker *t = tracker_new(&o), *u = tracker_new(&o);
        if (!t || !u || !n)
                return 1;
        size_t h0 = heap();
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t i = 0; i < n; i++) {
                struct tracker_start s = { .model = model, .task = TASK_GENERATE, .now = 1 };
                const char *out;
                if (tracker_start(t, &s, &out) < 0)
                        return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        size_t h1 = heap();
        /* what store_load asks of the tracker: tracker_load_trace each */
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr))
                if (tracker_load_trace(u, tr) < 0)
                        return 1;
        clock_gettime(CLOCK_MONOTONIC, &t2);
        /* Where the traces' bytes are: the trace's own chunk, and the
         * chunks of its strings when they are allocated apart. */
        const struct tracker_trace *f = tracker_pending_first(t);
        int inline_str = f->id == (const char *)f + tracker_trace_bytes();
        size_t ctr = 0, cstr = 0;
        for (const struct tracker_trace *tr = f; tr; tr = tracker_pending_next(tr)) {
                ctr += chunk(tr);
                if (!inline_str)
                        cstr += chunk(tr->id) + chunk(tr->model) + chunk(tr->reason);
        }
        size_t buckets = 64;
        while (buckets < n) /* strtab_put doubles at count >= nbuckets */
                buckets *= 2;
        printf("P_sizeof_trace=%zu P_sizeof_profile=%zu P_inline=%d P_chunks_trace=%zu "
               "P_chunks_str=%zu\n", tracker_trace_bytes(), sizeof(struct tracker_profile),
               inline_str, ctr, cstr);
        printf("P_heap=%zu P_buckets=%zu P_start_ms=%.0f P_load_ms=%.0f\n", h1 - h0, buckets,
               ms(&t0, &t1), ms(&t1, &t2));
        return 0;
}
C
PROBE=1
cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/daemon" -I"$ROOT/daemon/core" -o "$TMP/probe" "$TMP/probe.c" \
        "$ROOT/daemon/core/tracker.c" "$ROOT/daemon/core/strtab.c" "$ROOT/daemon/core/slab.c" "$ROOT/daemon/core/siphash.c" -lm 2>"$TMP/probe.err" || {
        say "warning: cannot build the probe (the figures go without it): $(head -3 "$TMP/probe.err")"
        PROBE=0
}

rpc() { timeout 60 "$PY" "$TMP/rpc.py" "$@"; }

# RSS and Private (smaps_rollup) of a process, in kB: "rss private hwm"
mem_kb() {
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
        h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status")
        p=$(awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup")
        echo "$r $p $h"
}

# Informational, with gdb: make the daemon call malloc_trim(0), which
# gives the kernel back the free pages inside the heap, and read its
# memory again (TRIM_RSS, TRIM_PRIV): what is left is what it uses, the
# difference is memory it freed but malloc kept.
trim() {
        [ "$TRIM" = 1 ] && command -v gdb >/dev/null 2>&1 || return 1
        timeout 60 gdb -p "$1" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || return 1
        set -- $(mem_kb "$1")
        TRIM_RSS=$1
        TRIM_PRIV=$2
}

# Percent of one CPU used by everything over half a second.
busy_pct() {
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
        sleep 0.5
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
        echo $(((b - a) * 100 * 2 / $(getconf CLK_TCK)))
}

write_conf() {
        # write_conf DIR DURABILITY|default SNAPSHOT_MS|default
        {
                printf '[daemon]\nsocket = %s\nlog_level = info\n' "$1/outcomed.sock"
                printf '[store]\ndb = %s\n' "$1/outcomed.db"
                [ "$2" = default ] || printf 'durability = %s\n' "$2"
                [ "$3" = default ] || printf 'snapshot_interval_ms = %s\n' "$3"
                printf '[limits]\npending = %s\n' $((TRACES + TRACES / 100 + 100))
                [ "$PROFILES" -lt 90000 ] || printf 'models = %s\n' $((PROFILES + 10000))
        } >"$1/outcomed.conf"
}

# CPU time (utime + stime, all threads) of a process, in ms.
cpu_ms() {
        sed 's/.*) //' "/proc/$1/stat" | awk -v t="$(getconf CLK_TCK)" '{ print ($12 + $13) * 1000 / t }'
}

# Milliseconds the threads of a process were runnable but waiting for a
# CPU: what other work on the machine took from it.
wait_ms() {
        cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%d", s / 1e6 }'
}

# Start the daemon of DIR and time it: sets PID, START_MS, and CPU_MS and
# WAIT_MS (its CPU time, all threads, and run-queue wait until then;
# CPU_MS without the helper's own before exec).  $LAUNCH_ENV:
# environment assignments for the daemon (env(1) execs, the pid stays).
launch() {
        # launch DIR TIMEOUT_S
        rm -f "$1/ready"
        # no timeout(1) around it: $! must be the daemon's pid (the poller
        # gives up by itself after TIMEOUT_S)
        # shellcheck disable=SC2086
        env ${LAUNCH_ENV:-} "$PY" "$TMP/rpc.py" launch "$1/outcomed.sock" "$1/ready" "$2" \
                "$OUTCOMED" --config "$1/outcomed.conf" 2>>"$1/outcomed.log" &
        PID=$!
        i=0
        while [ ! -f "$1/ready" ]; do
                if ! kill -0 "$PID" 2>/dev/null; then
                        wait "$PID" 2>/dev/null || true
                        PID=""
                        die "outcomed did not start: $(tail -5 "$1/outcomed.log")"
                fi
                [ $i -lt $(($2 * 100 + 500)) ] || die "no answer from the start-up poller"
                sleep 0.01
                i=$((i + 1))
        done
        CPU_MS=$(cpu_ms "$PID")
        WAIT_MS=$(wait_ms "$PID")
        read -r START_MS pre <"$1/ready"
        CPU_MS=$(awk -v a="$CPU_MS" -v b="$pre" 'BEGIN { printf "%.0f", a - b }')
        [ "$START_MS" != timeout ] || die "outcomed did not answer a ping within $2 s"
}

# SIGTERM and wait (bounded): sets STOP_MS.
stop_timed() {
        t0=$(date +%s%N)
        kill -TERM "$PID"
        i=0
        while kill -0 "$PID" 2>/dev/null; do
                [ $i -lt 6000 ] || die "outcomed did not stop within 60 s"
                sleep 0.01
                i=$((i + 1))
        done
        rc=0
        wait "$PID" || rc=$?
        PID=""
        [ $rc -eq 0 ] || die "outcomed exited with status $rc"
        STOP_MS=$((($(date +%s%N) - t0) / 1000000))
}

wait_idle() {
        # wait_idle DIR MIN_JOURNAL
        rpc idle "$1/outcomed.sock" "$PID" "$2" 120 || die "the store did not go idle"
}

stats() {
        eval "$(rpc stats "$1/outcomed.sock")"
}

# Put TRACES pending traces in the daemon of DIR; sets FILL_S.
fill() {
        say "$(basename "$1"): starting $TRACES traces (${CLIENTS}x$PIPELINE)"
        rc=0
        timeout "$CMD_TIMEOUT" "$BENCH" -s "$1/outcomed.sock" --method start --model "$FILL_MODEL" \
                -n "$TRACES" -c "$CLIENTS" -P "$PIPELINE" -d 600 --timeout 60 --json \
                >"$1/fill.json" 2>"$1/fill.err" || rc=$?
        [ $rc -eq 0 ] || die "outcome-bench --method start failed (exit $rc): $(cat "$1/fill.err" \
                "$1/fill.json")"
        FILL_S=$("$PY" -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["elapsed_s"])' \
                "$1/fill.json")
}

# PROFILES profiles, one cycle each: 4 clients of PROFILES/4 models each.
make_profiles() {
        say "$(basename "$1"): making $PROFILES profiles"
        k=$((PROFILES / 4))
        pids=""
        for j in 0 1 2 3; do
                timeout "$CMD_TIMEOUT" "$BENCH" -s "$1/outcomed.sock" --cycle --model "p$j" \
                        --models "$k" -n $((k * 3)) -c 1 -P 1 -d 600 --json \
                        >"$1/profiles-$j.json" 2>&1 &
                pids="$pids $!"
        done
        for p in $pids; do
                wait "$p" || die "outcome-bench --cycle failed: $(cat "$1"/profiles-*.json)"
        done
        stats "$1"
        [ "$ST_profiles" -eq "$PROFILES" ] || die "$ST_profiles profiles, not $PROFILES"
}

# After a fill: the strings' bytes (STR_*), from the oldest pending id.
count_strings() {
        stats "$1"
        [ "$ST_pending" -eq "$TRACES" ] || die "$ST_pending pending traces, not $TRACES"
        first=$(rpc first-id "$1/outcomed.sock")
        case $first in
        t-????????????????-*) ;;
        *) die "unexpected generated trace id '$first'" ;;
        esac
        eval "$(rpc strings "$first" "$TRACES" "$FILL_MODEL")"
}

RESULTS="$TMP/results"
: >"$RESULTS"
put() { printf '%s\n' "$*" >>"$RESULTS"; }

# ---- the probe: sizes, and the tracker's own heap -------------------------

if [ $PROBE = 1 ]; then
        say "probe: the tracker alone with $TRACES traces"
        eval "$(timeout "$CMD_TIMEOUT" "$TMP/probe" "$TRACES" "$FILL_MODEL")" ||
                die "the probe failed"
        put "P_sizeof_trace=$P_sizeof_trace P_sizeof_profile=$P_sizeof_profile" \
                "P_inline=$P_inline P_chunks_trace=$P_chunks_trace P_chunks_str=$P_chunks_str"
        put "P_heap=$P_heap P_buckets=$P_buckets P_start_ms=$P_start_ms P_load_ms=$P_load_ms"
fi

# ---- 1. memory, durability relaxed ----------------------------------------

D="$TMP/relaxed"
mkdir -p "$D"
write_conf "$D" relaxed default
launch "$D" 60
wait_idle "$D" 0
set -- $(mem_kb "$PID")
put "R_rss0=$1 R_priv0=$2"
fill "$D"
wait_idle "$D" "$TRACES"
set -- $(mem_kb "$PID")
put "R_rss1=$1 R_priv1=$2 R_hwm=$3 R_fill_s=$FILL_S"
count_strings "$D"
! trim "$PID" || put "R_trim_rss=$TRIM_RSS R_trim_priv=$TRIM_PRIV"
put "R_str=$STR_total R_str_ids=$STR_ids R_prefix=$STR_prefix"
stop_timed
put "R_stop_ms=$STOP_MS"
rm -f "$D"/outcomed.db*

# ---- 2. start-up with PROFILES profiles and TRACES traces (default durability)

D="$TMP/startup"
mkdir -p "$D"
write_conf "$D" default default
launch "$D" 60
make_profiles "$D"
wait_idle "$D" 0
set -- $(mem_kb "$PID")
put "A_rss0=$1 A_priv0=$2"
fill "$D"
wait_idle "$D" $((TRACES + PROFILES * 3))
set -- $(mem_kb "$PID")
put "A_rss1=$1 A_priv1=$2 A_hwm=$3 A_fill_s=$FILL_S"
count_strings "$D"
! trim "$PID" || put "A_trim_rss=$TRIM_RSS A_trim_priv=$TRIM_PRIV"
put "A_str=$STR_total"
stop_timed
put "A_stop_ms=$STOP_MS A_db_mb=$(($(stat -c %s "$D/outcomed.db") / 1048576))"

busy=$(busy_pct)
put "BUSY=$busy"
[ "$busy" -le 20 ] || say "warning: other processes use ${busy}% of a CPU; start-up times will be long"

# Timed restarts of DIR: S_<label>_<i>_{ms,cpu,wait,rss,priv,stop}, and
# S_<label>_times.
restarts() {
        # restarts DIR LABEL
        times=""
        for r in $(seq 1 "$RESTARTS"); do
                launch "$1" 60
                ms=$START_MS
                sleep 0.3
                set -- "$1" "$2" $(mem_kb "$PID")
                stats "$1"
                if [ "$ST_pending" -ne "$TRACES" ] || [ "$ST_profiles" -ne "$PROFILES" ]; then
                        die "restart $r loaded $ST_pending traces and $ST_profiles profiles"
                fi
                stop_timed
                say "restart $r${LAUNCH_ENV:+ ($LAUNCH_ENV)}: $ms ms to the first ping (CPU $CPU_MS ms," \
                        "waited for a CPU $WAIT_MS ms); RSS $3 kB; stop $STOP_MS ms"
                times="$times $ms"
                put "S_$2_${r}_ms=$ms S_$2_${r}_cpu=$CPU_MS S_$2_${r}_wait=$WAIT_MS" \
                        "S_$2_${r}_rss=$3 S_$2_${r}_priv=$4 S_$2_${r}_stop=$STOP_MS"
        done
        put "S_$2_times='$times'"
}
restarts "$D" plain
# Informational: the same with glibc's malloc asking for transparent huge
# pages (glibc >= 2.35 tunable), when the kernel gives them on madvise.
if [ "$THP" = 1 ] && grep -q '\[\(madvise\|always\)\]' \
        /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; then
        LAUNCH_ENV="GLIBC_TUNABLES=glibc.malloc.hugetlb=1"
        restarts "$D" thp
        LAUNCH_ENV=""
        put "THP_DONE=1"
fi

# ---- 3. restart after SIGKILL: the journal replayed -----------------------

if [ "$KILL_RESTART" = 1 ]; then
        D="$TMP/kill"
        mkdir -p "$D"
        write_conf "$D" default 3600000
        launch "$D" 60
        make_profiles "$D"
        fill "$D"
        wait_idle "$D" $((TRACES + PROFILES * 3))
        stats "$D"
        put "K_snapshots=$ST_snapshots_total K_journal=$ST_journal_total"
        kill -KILL "$PID"
        wait "$PID" 2>/dev/null || true
        PID=""
        launch "$D" 120
        ms=$START_MS
        stats "$D"
        put "K_ms=$ms K_cpu=$CPU_MS K_wait=$WAIT_MS K_replayed=$ST_replayed"
        stop_timed
        put "K_stop_ms=$STOP_MS"
        say "restart after SIGKILL: $ms ms (replayed $ST_replayed changes); stop $STOP_MS ms"
fi

# ---- the report -------------------------------------------------------------

GIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "(not a git tree)")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
"$PY" - "$RESULTS" "$TRACES" "$PROFILES" "$MEM_TARGET" "$STARTUP_TARGET" "$MEM_DEFAULT" \
        "$KILL_RESTART" "$GIT" "$CPU" "$(nproc)" "$(uname -r)" "$FILL_MODEL" <<'PY'
import shlex, statistics, sys

(res, n, profiles, mem_target, start_target, mem_default, kill, git, cpu, ncpu, kernel,
 model) = sys.argv[1:]
n, profiles, mem_target, start_target = int(n), int(profiles), int(mem_target), int(start_target)
v = {}
for line in open(res):
    for tok in shlex.split(line):
        k, _, x = tok.partition("=")
        v[k] = x
I = lambda k: int(v[k])
F = lambda k: float(v[k])
missed = 0

print(f"outcomed {git}; {cpu}, {ncpu} cores, Linux {kernel}")
print(f"{n:,} pending traces (model {model!r}, no reason, generated ids like "
      f"{v['R_prefix']}-1); {profiles:,} profiles for the start-up test")
print()
print("1. memory per pending trace (target: <= %d bytes beside its strings)" % mem_target)
ids = I("R_str_ids") / n
print(f"   strings per trace: id {ids:.2f} B + model {len(model) + 1} B + reason 1 B "
      f"= {I('R_str') / n:.2f} B (lengths with their NULs)")
def row(name, rss0, rss1, priv0, priv1, strs, verdict=True, extra=""):
    d = (rss1 - rss0) * 1024
    per = (d - strs) / n
    pp = ((priv1 - priv0) * 1024 - strs) / n
    ok = per <= mem_target
    print(f"   {name:<26} RSS {rss0 / 1024:7.1f} -> {rss1 / 1024:7.1f} MiB  (+{d / 1e6:6.1f} MB)"
          f"  {d / n:6.1f} B/trace, {per:6.1f} beside strings (Private: {pp:6.1f})  "
          + (("ok" if ok else "MISSED") if verdict else extra))
    return ok
def trimmed(p, rss0, priv0, strs):
    if f"{p}_trim_rss" in v:
        row("  after malloc_trim(0)", rss0, I(f"{p}_trim_rss"), priv0, I(f"{p}_trim_priv"), strs,
            False, "(informational: free heap pages given back)")
mem_ok = row("relaxed, live", I("R_rss0"), I("R_rss1"), I("R_priv0"), I("R_priv1"), I("R_str"))
print(f"   {'':<26} peak RSS during the fill (VmHWM) {I('R_hwm') / 1024:.1f} MiB; "
      f"fill {v['R_fill_s']} s ({n / max(F('R_fill_s'), 0.1):,.0f} starts/s)")
trimmed("R", I("R_rss0"), I("R_priv0"), I("R_str"))
if mem_default == "1":
    mem_ok &= row("ack (default), live", I("A_rss0"), I("A_rss1"), I("A_priv0"), I("A_priv1"),
                  I("A_str"))
    print(f"   {'':<26} (baseline with the {profiles:,} profiles; peak {I('A_hwm') / 1024:.1f} "
          f"MiB; fill {v['A_fill_s']} s, {n / max(F('A_fill_s'), 0.1):,.0f} starts/s)")
    trimmed("A", I("A_rss0"), I("A_priv0"), I("A_str"))
    row("ack, after a restart", I("A_rss0"), I("S_plain_1_rss"), I("A_priv0"),
        I("S_plain_1_priv"), I("A_str"), False,
        "(informational: the state loaded, no fill buffers)")
missed += not mem_ok
if "P_heap" in v:
    heap = I("P_heap")
    print(f"   {'tracker alone (probe)':<26} heap {heap / 1e6:.1f} MB = {heap / n:.1f} B/trace, "
          f"{(heap - I('R_str')) / n:.1f} beside strings (mallinfo2, no daemon around it)")
    ctr, cstr, strb = I("P_chunks_trace") / n, I("P_chunks_str") / n, I("R_str") / n
    b = I("P_buckets") * 8 / n
    if v["P_inline"] == "1":
        print(f"   where it goes: struct tracker_trace {I('P_sizeof_trace')} B with its id, model and"
              f" reason in the same malloc block: chunk {ctr:.1f} B/trace on average;")
    else:
        print(f"   where it goes: struct tracker_trace {I('P_sizeof_trace')} B -> chunk "
              f"{ctr:.1f} B; id, model, reason: 3 more mallocs, chunks {cstr:.1f} B/trace;")
    print(f"   hash bucket array {I('P_buckets'):,} x 8 B = {b:.1f} B/trace; total "
          f"{ctr + cstr + b:.1f} B/trace: {strb:.1f} string bytes, {I('P_sizeof_trace')} struct, "
          f"{b:.1f} buckets, {ctr + cstr - strb - I('P_sizeof_trace'):.1f} malloc headers and "
          f"rounding")
    print(f"   (struct tracker_profile: {I('P_sizeof_profile')} B each)")
print()
print("2. start-up with %s pending traces and %s profiles (target: < %d ms exec -> ping)"
      % (f"{n:,}", f"{profiles:,}", start_target))
def restarts(label):
    times = [float(x) for x in v[f"S_{label}_times"].split()]
    for i, t in enumerate(times, 1):
        k = f"S_{label}_{i}_"
        print(f"   restart {i}: {t:8.1f} ms   (CPU {I(k + 'cpu')} ms, waited for a CPU "
              f"{I(k + 'wait')} ms; RSS after load {I(k + 'rss') / 1024:.1f} MiB; stop "
              f"{I(k + 'stop')} ms)")
    return statistics.median(times), statistics.median(
        I(f"S_{label}_{i}_cpu") for i in range(1, len(times) + 1))
med, cpu_med = restarts("plain")
ok = med < start_target
missed += not ok
print(f"   median:    {med:8.1f} ms   {'ok' if ok else 'MISSED'}   (median CPU time {cpu_med} ms)")
if "THP_DONE" in v:
    print("   informational, with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (malloc's memory in"
          " transparent huge pages):")
    med, cpu_med = restarts("thp")
    print(f"   median:    {med:8.1f} ms   (median CPU time {cpu_med} ms)")
print(f"   database {v['A_db_mb']} MiB; stop with the {n:,} traces' first snapshot "
      f"{v['A_stop_ms']} ms" + (f"; the tracker alone loads them in {v['P_load_ms']} ms (probe)"
                                 if "P_load_ms" in v else ""))
if int(v["BUSY"]) > 20:
    print(f"   warning: other processes used {v['BUSY']}% of a CPU before the restarts: the"
          " times are long, the CPU times less so")
if kill == "1":
    print(f"   after SIGKILL, snapshots held off ({v['K_snapshots']} written), journal replayed:"
          f" {F('K_ms'):.1f} ms (CPU {v['K_cpu']} ms, waited for a CPU {v['K_wait']} ms),"
          f" {v['K_replayed']} changes replayed; stop {v['K_stop_ms']} ms (informational)")
print()
print(f"targets missed: {missed}")
PY

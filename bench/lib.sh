# bench/lib.sh - sourced by the bench/*.sh scripts: the run's priority,
# waiting for a server's socket, and stopping a server.
#
# The priority.  NICE (default -20 as root, else none; NICE= leaves it alone)
# is the priority of the whole run, servers and clients alike, so that
# other work on the machine disturbs the figures less.
#
# Linux groups the processes of each session (autogroups) and `nice` acts
# only inside a group: bench_session re-runs the script in a session of its
# own (once: OUTCOMED_BENCH_SESSION marks it, and a script run by another
# one stays in its session), and bench_renice then sets that group's nice
# and the script's own, which its children inherit.

if [ "$(id -u)" -eq 0 ]; then
        NICE=${NICE--20}
else
        NICE=${NICE-}
fi

# bench_session "$0" "$@": returns only in the session that runs the script.
bench_session() {
        if [ -n "$NICE" ] && [ -z "${OUTCOMED_BENCH_SESSION:-}" ] && [ -e /proc/self/autogroup ]; then
                OUTCOMED_BENCH_SESSION=1 setsid sh "$@" &
                child=$!
                trap 'kill -TERM $child 2>/dev/null || true' INT TERM
                while :; do
                        rc=0
                        wait $child || rc=$?
                        kill -0 $child 2>/dev/null || exit $rc
                done
        fi
}

bench_renice() {
        [ -n "$NICE" ] || return 0
        if [ -n "${OUTCOMED_BENCH_SESSION:-}" ]; then
                echo "$NICE" 2>/dev/null >"/proc/$$/autogroup" || true
        fi
        renice -n "$NICE" -p $$ >/dev/null 2>&1 ||
                printf '%s\n' "$(basename "$0"): cannot renice to $NICE; running as is" >&2
}

# stop_pid PID [SECONDS]: SIGTERM, wait for it to exit (default 10 s),
# then SIGKILL.
stop_pid() {
        [ -n "$1" ] || return 0
        kill -TERM "$1" 2>/dev/null || return 0
        i=0
        while kill -0 "$1" 2>/dev/null && [ $i -lt $((${2:-10} * 10)) ]; do
                sleep 0.1
                i=$((i + 1))
        done
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
}

# wait_socket PATH [SECONDS]: until PATH is a socket (default at most 10 s);
# the caller's first request says whether the server came up.
wait_socket() {
        i=0
        while [ ! -S "$1" ] && [ $i -lt $((${2:-10} * 10)) ]; do
                sleep 0.1
                i=$((i + 1))
        done
}

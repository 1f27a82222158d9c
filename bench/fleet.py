#!/usr/bin/python3
"""fleet.py - what [fleet] costs and how fast it converges (bench/fleet.sh).

Three outcomed daemons on this machine as three hosts, sharing evidence
through a PostgreSQL 15 cluster this script starts (tests/integration/pg.py).

1. CPU per request, fleet on / off: outcome-bench with 50 clients (the
   router cycle, 20 models) against each of the three daemons at once; the
   daemons' CPU time (utime + stime, /proc) over the requests they answered.
   Runs interleave off, on, off, on, off, on on fresh daemons; the median of
   the three of each is compared (target: on <= 1.15x off).
2. Change to effect: an outcome on one host, then the time until another
   host's fleet-scope rank shows it (polled every 5 ms), at the default
   sync_interval_ms (1000); SAMPLES samples, p50 / p99 / max (target: p99
   <= 2 s).
3. PostgreSQL rows written per second during the on runs (the hosts'
   rows_sent_total over the run's time).

Printed figures, not a test.  Environment: BUILD (default build), DURATION
(seconds per run, default 5), SAMPLES (default 40).
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
BUILD = os.path.abspath(os.environ.get("BUILD", os.path.join(ROOT, "build")))
os.environ.setdefault("OUTCOMED_BIN", os.path.join(BUILD, "daemon", "outcomed"))
import harness  # noqa: E402
import pg  # noqa: E402

DURATION = float(os.environ.get("DURATION", "5"))
SAMPLES = int(os.environ.get("SAMPLES", "40"))
BENCH = os.path.join(BUILD, "bench", "outcome-bench")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_thread_cpu_s(pid):
    """CPU of the daemon's fleet thread (named outcomed-fleet)."""
    total = 0.0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != "outcomed-fleet":
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def start_hosts(cluster, fleet, interval=None):
    ds = []
    for i in range(3):
        conf = ""
        if fleet:
            conf = "[fleet]\nconninfo = %s\nhost_id = bench-%d\n" % (cluster.conninfo("fleet"), i)
            if interval:
                conf += "sync_interval_ms = %d\n" % interval
        d = harness.Daemon(config=conf)
        d.start()
        ds.append(d)
    return ds


def stop_hosts(ds):
    for d in ds:
        d.stop()
        d.cleanup()


def sent_rows(ds):
    total = 0
    for d in ds:
        with d.client() as c:
            total += c.call("stats")["fleet"]["rows_sent_total"]
    return total


def load_run(cluster, fleet):
    ds = start_hosts(cluster, fleet)
    time.sleep(1.5)  # connected and the first batch sent
    before = [cpu_s(d.proc.pid) for d in ds]
    tbefore = [fleet_thread_cpu_s(d.proc.pid) for d in ds]
    rows0 = sent_rows(ds) if fleet else 0
    t0 = time.monotonic()
    procs = [subprocess.Popen([BENCH, "-s", d.socket_path, "-c", "50", "-d", str(DURATION),
                               "--models", "20", "--json"], stdout=subprocess.PIPE, text=True)
             for d in ds]
    outs = [p.communicate()[0] for p in procs]
    elapsed = time.monotonic() - t0
    time.sleep(1.2)  # the last batch of the run
    after = [cpu_s(d.proc.pid) for d in ds]
    tafter = [fleet_thread_cpu_s(d.proc.pid) for d in ds]
    rows = (sent_rows(ds) - rows0) if fleet else 0
    import json
    reqs = sum(json.loads(o)["requests"] for o in outs)
    stop_hosts(ds)
    cpu = sum(a - b for a, b in zip(after, before))
    tcpu = sum(a - b for a, b in zip(tafter, tbefore))
    return cpu / reqs * 1e6, reqs / elapsed, rows / (elapsed + 1.2), tcpu / reqs * 1e6


def change_to_effect(cluster):
    ds = start_hosts(cluster, True)
    time.sleep(1.5)
    a, b = ds[0].client(), ds[1].client()
    times = []
    for i in range(SAMPLES):
        model = "probe-%d" % (i % 4)
        tid = a.call("start", model=model, task="generate")["trace_id"]
        a.call("complete", trace_id=tid, latency_ms=5)
        before = b.call("query", model=model, scope="fleet")["profiles"]
        judged0 = before[0]["posterior"]["judged"] if before else 0.0
        t0 = time.monotonic()
        a.call("outcome", trace_id=tid, kind="accepted", confidence=0.9)
        while True:
            r = b.call("rank", task="generate", candidates=[model], strategy="mean",
                       exclude_degraded=False)
            if r["ranked"] and r["ranked"][0]["judged"] > judged0:
                break
            if time.monotonic() - t0 > 10:
                break
            time.sleep(0.005)
        times.append(time.monotonic() - t0)
        time.sleep(0.05 + (i % 7) * 0.13)  # land anywhere in the sync interval
    a.close()
    b.close()
    stop_hosts(ds)
    times.sort()
    return times


def main():
    cluster = pg.Cluster()
    try:
        cluster.start()
        cluster.createdb("fleet")
        print("fleet bench: 3 hosts on this machine, 50 clients each (router cycle, 20 models), "
              "%.0f s per run, PostgreSQL 15 on a Unix socket" % DURATION)
        off, on, rows, rate_off, rate_on, thread = [], [], [], [], [], []
        for run in range(3):
            c, r, _, _ = load_run(cluster, False)
            off.append(c)
            rate_off.append(r)
            c, r, w, t = load_run(cluster, True)
            on.append(c)
            rate_on.append(r)
            rows.append(w)
            thread.append(t)
            print("  run %d: off %.2f us/req (%.0f req/s), on %.2f us/req (%.0f req/s; fleet "
                  "thread %.3f us/req), %.0f PostgreSQL rows/s"
                  % (run + 1, off[-1], rate_off[-1], on[-1], rate_on[-1], thread[-1], rows[-1]))
        mo, mn = statistics.median(off), statistics.median(on)
        ratio = mn / mo
        print("1. daemon CPU per request, median of 3: off %.2f us, on %.2f us, ratio %.3f "
              "(target <= 1.15: %s); the fleet thread's own share: %.3f us"
              % (mo, mn, ratio, "ok" if ratio <= 1.15 else "MISSED", statistics.median(thread)))
        times = change_to_effect(cluster)
        p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
        print("2. change to effect on another host's fleet rank, sync_interval_ms 1000, %d "
              "samples: p50 %.0f ms, p99 %.0f ms, max %.0f ms (target p99 <= 2000 ms: %s)"
              % (len(times), p(0.5) * 1e3, p(0.99) * 1e3, times[-1] * 1e3,
                 "ok" if p(0.99) <= 2.0 else "MISSED"))
        print("3. PostgreSQL rows written per second under the load, median: %.0f"
              % statistics.median(rows))
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()

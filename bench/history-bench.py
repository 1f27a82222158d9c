#!/usr/bin/python3
"""history-bench.py - the figures of bench/history.sh (which fills the
database and starts the daemon): how long two big `history` reads take,
other clients' p99 with and without them, and the rows' disk cost.

    history-bench.py --socket PATH --db FILE --end UNIX --bench OUTCOME_BENCH
"""

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

import msgpack

DAY = 86400


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.u = msgpack.Unpacker(raw=False)
        self.msgid = 0

    def call(self, method, args):
        self.msgid += 1
        self.s.sendall(msgpack.packb([0, self.msgid, method, [args]]))
        while True:
            for msg in self.u:
                if msg[2] is not None:
                    raise RuntimeError("%s: %s" % (method, msg[2]))
                return msg[3]
            data = self.s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            self.u.feed(data)


def timed(conn, args, n):
    times, points = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        r = conn.call("history", args)
        times.append((time.perf_counter() - t0) * 1000)
        points = r["points"]
    return statistics.median(times), max(times), points


def cycle_p99(bench, sock, secs):
    out = subprocess.run([bench, "-s", sock, "-c", "20", "-d", str(secs), "-w", "0.5", "--json",
                          "--models", "8", "--model", "load"],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["latency_us"]["p99"] / 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--end", type=int, required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--secs", type=int, default=4)
    a = ap.parse_args()

    since, until = a.end - 30 * DAY, a.end
    one = {"bucket_s": 3600, "model": "model-03", "since": since, "until": until}
    all_ = {"bucket_s": 86400, "since": since, "until": until}
    c = Conn(a.socket)
    c.call("history", one)  # warm the page cache as a running daemon's is
    c.call("history", all_)
    ok = True
    print("history (30 days, 20 models x 5 tasks; each read 7 times, median and max)")
    for name, args, want in (("bucket_s 3600, one model", one, 3600),
                             ("bucket_s 86400, all models", all_, 3000)):
        med, mx, points = timed(c, args, 7)
        good = med <= 200 and points in (want, want + 5, want + 100)
        ok &= good
        print("  %-28s %6d points  %7.1f ms (max %.1f)   target <= 200 ms  %s"
              % (name, points, med, mx, "ok" if good else "MISSED"))

    stop = threading.Event()
    reads = [0]

    def reader():
        rc = Conn(a.socket)
        while not stop.is_set():
            rc.call("history", one)
            rc.call("history", all_)
            reads[0] += 2

    alone, during = [], []
    for _ in range(3):
        alone.append(cycle_p99(a.bench, a.socket, a.secs))
        stop.clear()
        t = threading.Thread(target=reader)
        t.start()
        try:
            during.append(cycle_p99(a.bench, a.socket, a.secs))
        finally:
            stop.set()
            t.join()
    ma, md = statistics.median(alone), statistics.median(during)
    good = md <= 2 * ma
    ok &= good
    print("other clients (outcome-bench -c 20, the router cycle), p99, 3 interleaved rounds")
    print("  without history reads  %s ms  median %.2f" % (" ".join("%.2f" % x for x in alone), ma))
    print("  during history reads   %s ms  median %.2f  (%d reads)"
          % (" ".join("%.2f" % x for x in during), md, reads[0]))
    print("  ratio %.2fx   target <= 2x  %s" % (md / ma if ma else 0, "ok" if good else "MISSED"))

    db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True)
    size = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    n = {t: db.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
         for t in ("history_minute", "history_hour", "history_day")}
    series = db.execute("SELECT count(*) FROM history_series WHERE domain = ''").fetchone()[0]
    doms = db.execute("SELECT count(*) FROM history_series WHERE domain != ''").fetchone()[0]
    print("disk (from the SQLite file, dbstat), 30 days, a row every minute of every series")
    for t, per in (("history_minute", series), ("history_hour", series), ("history_day", doms)):
        print("  %-15s %9d rows  %6.1f MiB  %7.0f bytes/row  %8.0f bytes per series and day"
              % (t, n[t], size.get(t, 0) / 1048576, size.get(t, 0) / max(n[t], 1),
                 size.get(t, 0) / max(per, 1) / 30))
    tot = size.get("history_minute", 0) + size.get("history_hour", 0)
    print("  a (model, task) series, busy every minute: %.0f KiB a day" % (tot / series / 30 / 1024))
    print("file %.1f MiB" % (os.path.getsize(a.db) / 1048576))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

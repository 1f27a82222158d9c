#!/usr/bin/python3
"""replay.py - how well outcomed routes, measured on real benchmark outcomes.

Replays RouteLLM's per-prompt MMLU results (data/mmlu.tar.xz: 57 subjects,
14,042 prompts, each answered right or wrong by Mixtral-8x7B and by GPT-4)
through real outcomed daemons, the way a router uses one: for each prompt
ask `rank` (task "reasoning", the subject as `domain`, both models as
candidates, a `cost_weight`, `seed` = prompt index + 1), call the model
ranked first, then report `start`, `complete` (100 ms, 400 input and 50
output tokens) and `outcome` (`accepted` if that model answered right, else
`rejected`, confidence 1).  One fresh daemon per run.

Each stationary run gives a point (share of prompts sent to GPT-4, PGR),
PGR = (accuracy - Mixtral's) / (GPT-4's - Mixtral's) on the stream.  APGR is
the area under the upper concave hull of a sweep's points with (0, 0) and
(1, 1); CPT(x) the smallest share at which that hull reaches PGR x.  Rows:

  stationary  the sweep over cost_weight, mean of the seeds
  delayed     each outcome reported 500 prompts after its call
  censored    30% of calls never get an outcome (they stay pending)
  drift       from prompt n/2 GPT-4's answers on 10 subjects count as wrong:
              share of their later prompts still sent to GPT-4 (cost_weight 0)
  cold start  at prompt n/3 a third candidate joins, answering as GPT-4 at
              $2/$6: its share of the last third's strong-bound traffic
              (cost_weight 0.1)
  restart     SIGTERM and a new daemon on the same database at n/2: the
              decisions must equal an uninterrupted run's (cost_weight 0.1)

Run from the repository (the daemon is ./build/daemon/outcomed):

  bench/routing/replay.py                 # every row, 3 seeds (a few minutes)
  bench/routing/replay.py --rows stationary --seeds 1 --strategy thompson

It prints the table, writes results.json and curves.svg to --out, and exits
non-zero only when a run fails (targets are printed, not enforced).
Needs python3-msgpack (Debian's /usr/bin/python3).
"""
import argparse
import concurrent.futures
import csv
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MIXTRAL, GPT4, NEWCOMER = "mixtral-8x7b", "gpt-4-1106", "gpt-4-newcomer"
PRICES = {MIXTRAL: (0.60, 0.60), GPT4: (10.0, 30.0), NEWCOMER: (2.0, 6.0)}
WEIGHTS = [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]
ROWS = ["stationary", "delayed", "censored", "drift", "cold", "restart"]
DELAY = 500          # prompts between a call and its outcome (delayed row)
CENSORED = 0.30      # share of calls that never get an outcome (censored row)
COLD_WEIGHT = 0.1
RESTART_WEIGHT = 0.1

csv.field_size_limit(1 << 30)


# ---- data ------------------------------------------------------------------

def load_subjects(path):
    """{subject: [(mixtral_right, gpt4_right), ...]} from the archive."""
    subjects = {}
    with tarfile.open(path) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            base = os.path.basename(m.name)
            if not (m.isfile() and base.startswith("mmlu_") and base.endswith(".csv")):
                continue
            text = tar.extractfile(m).read().decode("utf-8")
            rows = csv.reader(io.StringIO(text, newline=""))
            header = next(rows)
            ix, ig = header.index("mistralai/Mixtral-8x7B-Instruct-v0.1"), \
                header.index("gpt-4-1106-preview")
            subjects[base[5:-4]] = [(r[ix] == "True", r[ig] == "True") for r in rows]
    return subjects


def stream(subjects, seed):
    """Every prompt as (subject, mixtral_right, gpt4_right), shuffled with seed."""
    items = [(s, a, b) for s in sorted(subjects) for (a, b) in subjects[s]]
    random.Random(seed).shuffle(items)
    return items


def drifted(subjects):
    """Subjects in alphabetical order, every sixth from the first."""
    return sorted(subjects)[::6]


# ---- figures ---------------------------------------------------------------

def hull(points):
    """The upper concave hull of points with (0, 0) and (1, 1), left to right."""
    h = []
    for p in sorted(set(list(points) + [(0.0, 0.0), (1.0, 1.0)])):
        while len(h) >= 2 and ((h[-1][0] - h[-2][0]) * (p[1] - h[-2][1]) -
                               (h[-1][1] - h[-2][1]) * (p[0] - h[-2][0])) >= 0:
            h.pop()
        h.append(p)
    return h


def apgr(points):
    h = hull(points)
    return sum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in zip(h, h[1:]))


def cpt(points, pgr):
    """The smallest share at which the hull reaches pgr."""
    h = hull(points)
    for (x1, y1), (x2, y2) in zip(h, h[1:]):
        if y2 >= pgr:
            return x1 if y1 >= pgr else x1 + (pgr - y1) * (x2 - x1) / (y2 - y1)
    return 1.0


def oracle_points(subjects):
    """Whole subjects to GPT-4 in order of their gap, in hindsight."""
    n = sum(len(v) for v in subjects.values())
    mx = sum(a for v in subjects.values() for a, _ in v)
    g4 = sum(b for v in subjects.values() for _, b in v)
    gap = lambda s: sum(b - a for a, b in subjects[s]) / len(subjects[s])
    points, share, right = [], 0, mx
    for s in sorted(subjects, key=lambda s: (-gap(s), s)):
        share += len(subjects[s])
        right += sum(b - a for a, b in subjects[s])
        points.append((share / n, (right - mx) / (g4 - mx)))
    return points


# ---- a daemon and a pipelining client ----------------------------------------

class Daemon:
    """A real outcomed on a socket and database of its own."""

    def __init__(self, binary, workdir, models):
        self.binary, self.dir = binary, workdir
        self.sock = os.path.join(workdir, "outcomed.sock")
        self.db = os.path.join(workdir, "outcomed.db")
        self.conf = os.path.join(workdir, "outcomed.conf")
        with open(self.conf, "w") as f:
            f.write("[daemon]\nlog_level = warn\n")
            for m in models:
                f.write("\n[price:%s]\ninput_per_mtok = %g\noutput_per_mtok = %g\n"
                        % (m, PRICES[m][0], PRICES[m][1]))
        self.proc = None
        self.log = open(os.path.join(workdir, "outcomed.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen([self.binary, "--config", self.conf, "--socket", self.sock,
                                      "--db", self.db], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("outcomed exited with %d (log: %s)"
                                   % (self.proc.returncode, self.log.name))
            try:
                c = Conn(self.sock)
                c.call("ping", {})
                return c
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("outcomed did not answer on " + self.sock)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.proc.wait(timeout=60) != 0:
                raise RuntimeError("outcomed stopped with %d" % self.proc.returncode)
        self.proc = None


class Conn:
    """msgpack-RPC over the socket, with requests pipelined: send many, then
    read their replies in order."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.u = msgpack.Unpacker(raw=False)
        self.out = []
        self.msgid = 0
        self.waiting = 0

    def send(self, method, args):
        self.msgid = (self.msgid + 1) & 0xffffffff
        self.out.append(msgpack.packb([0, self.msgid, method, [args]]))
        self.waiting += 1

    def replies(self):
        """Flush, then read every reply due, in order; raise on an error."""
        if self.out:
            self.s.sendall(b"".join(self.out))
            self.out = []
        got = []
        while len(got) < self.waiting:
            for msg in self.u:
                if msg[2] is not None:
                    raise RuntimeError("%s: %s" % (msg[2]["code"], msg[2]["message"]))
                got.append(msg[3])
                if len(got) == self.waiting:
                    break
            else:
                data = self.s.recv(1 << 16)
                if not data:
                    raise RuntimeError("outcomed closed the connection")
                self.u.feed(data)
        self.waiting = 0
        return got

    def call(self, method, args):
        self.send(method, args)
        return self.replies()[-1]


# ---- one run ---------------------------------------------------------------

def run(job):
    """One replay through a fresh daemon.  job: {row, seed, weight, ...}."""
    subjects = load_subjects(job["data"])
    items = stream(subjects, job["seed"])
    if job.get("limit"):
        items = items[:job["limit"]]
    n = len(items)
    row, w = job["row"], job["weight"]
    drift = set(drifted(subjects)) if row == "drift" else set()
    censor = random.Random(1000003 * job["seed"] + 17)
    models = [MIXTRAL, GPT4] + ([NEWCOMER] if row == "cold" else [])
    workdir = tempfile.mkdtemp(prefix="outcomed-replay-", dir=job.get("tmp"))
    d = Daemon(job["binary"], workdir, models)
    decisions = []
    try:
        c = d.start()
        delayed = []  # (due prompt index, trace id, kind)
        for i, (subject, mx_right, g4_right) in enumerate(items):
            if row == "restart" and i == n // 2:
                c.replies()  # every report answered, then SIGTERM
                d.stop()
                c = d.start()
            cands = [MIXTRAL, GPT4] + ([NEWCOMER] if row == "cold" and i >= n // 3 else [])
            args = {"task": "reasoning", "domain": subject, "candidates": cands,
                    "cost_weight": w, "seed": i + 1}
            if job.get("strategy"):
                args["strategy"] = job["strategy"]
            c.send("rank", args)
            model = c.replies()[-1]["ranked"][0]["model"]
            decisions.append(models.index(model))
            right = mx_right if model == MIXTRAL else g4_right
            if model == GPT4 and subject in drift and i >= n // 2:
                right = False
            tid = "r%d" % i
            c.send("start", {"model": model, "task": "reasoning", "domain": subject,
                             "trace_id": tid})
            c.send("complete", {"trace_id": tid, "latency_ms": 100, "input_tokens": 400,
                                "output_tokens": 50})
            kind = "accepted" if right else "rejected"
            if row == "delayed":
                delayed.append((i + DELAY, tid, kind))
                while delayed and delayed[0][0] <= i:
                    c.send("outcome", {"trace_id": delayed[0][1], "kind": delayed[0][2],
                                       "confidence": 1})
                    delayed.pop(0)
            elif row == "censored" and censor.random() < CENSORED:
                pass  # never reported: the trace stays pending
            else:
                c.send("outcome", {"trace_id": tid, "kind": kind, "confidence": 1})
            # The replies of this prompt's reports come with the next rank's.
        for _, tid, kind in delayed:
            c.send("outcome", {"trace_id": tid, "kind": kind, "confidence": 1})
        c.replies()
        d.stop()
    finally:
        if d.proc:
            d.proc.kill()
            d.proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"row": row, "seed": job["seed"], "weight": w, "decisions": decisions,
            "n": n}


def point(subjects, res):
    """(share to GPT-4, PGR) of a run on the stationary stream."""
    items = stream(subjects, res["seed"])[:res["n"]]
    mx = sum(a for _, a, _ in items)
    g4 = sum(b for _, _, b in items)
    right = sum((a, b)[d] for (_, a, b), d in zip(items, res["decisions"]))
    share = sum(1 for d in res["decisions"] if d == 1) / len(items)
    return share, (right - mx) / (g4 - mx) if g4 != mx else 0.0


# ---- the plot --------------------------------------------------------------

def svg(curves, path):
    """Quality/cost curves: PGR against the share sent to GPT-4."""
    W, H, L, B, T, R = 640, 440, 60, 50, 20, 170
    pw, ph = W - L - R, H - T - B
    x = lambda v: L + v * pw
    y = lambda v: T + ph - (v / 1.2) * ph
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']
    for t in range(0, 11, 2):
        v = t / 10
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (x(v), y(0), x(v), y(1.2)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>'
                   % (x(v), y(0) + 16, v))
    for t in range(0, 13, 2):
        v = t / 10
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (x(0), y(v), x(1), y(v)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="end">%.1f</text>'
                   % (x(0) - 6, y(v) + 4, v))
    out.append('<text x="%.1f" y="%d" text-anchor="middle">share of prompts sent to GPT-4 '
               '(cost)</text>' % (x(0.5), H - 12))
    out.append('<text transform="translate(16,%.1f) rotate(-90)" text-anchor="middle">'
               'PGR (quality)</text>' % y(0.6))
    for k, (label, colour, pts, dashed) in enumerate(curves):
        h = hull(pts)
        d = " ".join("%.1f,%.1f" % (x(a), y(b)) for a, b in h)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                   % (d, colour, ' stroke-dasharray="5,4"' if dashed else ""))
        for a, b in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (x(a), y(b), colour))
        ly = T + 14 + 20 * k
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                   % (W - R + 12, ly - 4, W - R + 36, ly - 4, colour,
                      ' stroke-dasharray="5,4"' if dashed else ""))
        out.append('<text x="%d" y="%d">%s</text>' % (W - R + 42, ly, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---- main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description="Replay RouteLLM's MMLU results through real outcomed daemons and print "
                    "how well they route (APGR, CPT) beside random routing and the hindsight "
                    "subject oracle.",
        epilog="Targets (printed, not enforced): stationary APGR >= 0.66, CPT(50%%) <= 0.30, "
               "CPT(80%%) <= 0.60; drift <= 20%%; cold start >= 80%%; delayed and censored "
               "APGR within 0.03 of stationary; restart identical.")
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build", "daemon", "outcomed"),
                    help="the outcomed binary (default: ./build/daemon/outcomed)")
    ap.add_argument("--data", default=os.path.join(HERE, "data", "mmlu.tar.xz"))
    ap.add_argument("--seeds", default="1,2,3", help="stream shuffles (default 1,2,3)")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="rows to run (default all: %s)" % ",".join(ROWS))
    ap.add_argument("--weights", default=",".join(str(w) for w in WEIGHTS),
                    help="the cost_weight sweep")
    ap.add_argument("--strategy", help="rank's strategy (default: the daemon's default)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="runs at once, each with its own daemon (default: one per core)")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the first N prompts of each stream (a smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "routing"),
                    help="where results.json and curves.svg go (default build/routing)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the restart row's decisions are identical (a smoke "
                         "test of the tool and of the daemon's state across a restart)")
    a = ap.parse_args()

    if not os.access(a.daemon, os.X_OK):
        sys.exit("replay: no daemon at %s (build it: ./tools/setup.sh)" % a.daemon)
    seeds = [int(s) for s in a.seeds.split(",")]
    weights = [float(w) for w in a.weights.split(",")]
    rows = a.rows.split(",")
    for r in rows:
        if r not in ROWS:
            sys.exit("replay: unknown row '%s' (one of %s)" % (r, ", ".join(ROWS)))
    subjects = load_subjects(a.data)
    base = {"data": a.data, "binary": os.path.abspath(a.daemon), "strategy": a.strategy,
            "limit": a.limit}
    jobs = []
    for seed in seeds:
        for row in ("stationary", "delayed", "censored"):
            if row in rows or (row == "stationary" and "restart" in rows):
                jobs += [dict(base, row=row, seed=seed, weight=w) for w in weights]
        if "drift" in rows:
            jobs.append(dict(base, row="drift", seed=seed, weight=0.0))
        if "cold" in rows:
            jobs.append(dict(base, row="cold", seed=seed, weight=COLD_WEIGHT))
        if "restart" in rows:
            jobs.append(dict(base, row="restart", seed=seed, weight=RESTART_WEIGHT))
            if RESTART_WEIGHT not in weights:
                jobs.append(dict(base, row="stationary", seed=seed, weight=RESTART_WEIGHT))

    t0 = time.monotonic()
    results = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=a.jobs) as ex:
        futs = [ex.submit(run, j) for j in jobs]
        for k, f in enumerate(concurrent.futures.as_completed(futs), 1):
            results.append(f.result())
            print("replay: %d of %d runs done (%.0f s)" % (k, len(jobs), time.monotonic() - t0),
                  file=sys.stderr, flush=True)

    def runs(row, seed=None, weight=None):
        return [r for r in results if r["row"] == row and (seed is None or r["seed"] == seed)
                and (weight is None or r["weight"] == weight)]

    report = {"seeds": seeds, "weights": weights, "strategy": a.strategy or "default",
              "prompts": len(stream(subjects, 1)[:a.limit or None])}
    lines = []
    fmt = "%-12s %6s %9s %9s   %s"
    lines.append(fmt % ("row", "APGR", "CPT(50%)", "CPT(80%)", "notes"))
    rp = [(0.0, 0.0), (1.0, 1.0)]
    op = oracle_points(subjects)
    lines.append(fmt % ("random", "%.3f" % apgr(rp), "%.3f" % cpt(rp, 0.5), "%.3f" % cpt(rp, 0.8),
                        ""))
    lines.append(fmt % ("oracle", "%.3f" % apgr(op), "%.3f" % cpt(op, 0.5), "%.3f" % cpt(op, 0.8),
                        "whole subjects to GPT-4 by their gap, in hindsight"))
    sweeps = {}
    for row in ("stationary", "delayed", "censored"):
        if row not in rows:
            continue
        per_seed, mean_pts = [], []
        for seed in seeds:
            pts = [point(subjects, runs(row, seed, w)[0]) for w in weights]
            per_seed.append((apgr(pts), cpt(pts, 0.5), cpt(pts, 0.8), pts))
        for k, w in enumerate(weights):
            mean_pts.append((sum(p[3][k][0] for p in per_seed) / len(seeds),
                             sum(p[3][k][1] for p in per_seed) / len(seeds)))
        m = [sum(p[i] for p in per_seed) / len(seeds) for i in range(3)]
        sweeps[row] = {"apgr": m[0], "cpt50": m[1], "cpt80": m[2], "points": mean_pts,
                       "per_seed": [{"apgr": p[0], "cpt50": p[1], "cpt80": p[2],
                                     "points": p[3]} for p in per_seed]}
        if row == "stationary":
            note = "targets >= 0.66, <= 0.30, <= 0.60: %s" % (
                "met" if m[0] >= 0.66 and m[1] <= 0.30 and m[2] <= 0.60 else "MISSED")
        else:
            base_apgr = sweeps.get("stationary", {}).get("apgr")
            note = ("%+.3f beside stationary (target within 0.03: %s)"
                    % (m[0] - base_apgr, "met" if abs(m[0] - base_apgr) <= 0.03 else "MISSED")
                    if base_apgr is not None else "")
        spread = max(p[0] for p in per_seed) - min(p[0] for p in per_seed)
        lines.append(fmt % (row, "%.3f" % m[0], "%.3f" % m[1], "%.3f" % m[2],
                            note + ("; APGR spread %.3f over seeds" % spread
                                    if len(seeds) > 1 else "")))
    report["sweeps"] = sweeps
    if "drift" in rows:
        shares = []
        for r in runs("drift"):
            items = stream(subjects, r["seed"])[:r["n"]]
            ds = set(drifted(subjects))
            after = [d for i, ((s, _, _), d) in enumerate(zip(items, r["decisions"]))
                     if s in ds and i >= r["n"] // 2]
            shares.append(sum(1 for d in after if d == 1) / max(1, len(after)))
        v = sum(shares) / len(shares)
        report["drift"] = {"share": v, "per_seed": shares}
        lines.append("%-12s %s" % ("drift", "%.1f%% of the drifted subjects' prompts after the "
                                   "flip still sent to GPT-4 (target <= 20%%: %s)"
                                   % (100 * v, "met" if v <= 0.20 else "MISSED")))
    if "cold" in rows:
        shares = []
        for r in runs("cold"):
            last = r["decisions"][2 * r["n"] // 3:]
            strong = [d for d in last if d in (1, 2)]
            shares.append(sum(1 for d in strong if d == 2) / max(1, len(strong)))
        v = sum(shares) / len(shares)
        report["cold"] = {"share": v, "per_seed": shares}
        lines.append("%-12s %s" % ("cold start", "the newcomer took %.1f%% of the last third's "
                                   "strong-bound traffic (target >= 80%%: %s)"
                                   % (100 * v, "met" if v >= 0.80 else "MISSED")))
    if "restart" in rows:
        same = []
        for seed in seeds:
            a_ = runs("restart", seed)[0]["decisions"]
            b_ = runs("stationary", seed, RESTART_WEIGHT)[0]["decisions"]
            same.append(a_ == b_)
        report["restart"] = {"identical": same}
        lines.append("%-12s %s" % ("restart", "decisions identical to an uninterrupted run's in "
                                   "%d of %d seeds (cost_weight %g)"
                                   % (sum(same), len(same), RESTART_WEIGHT)))
    if "stationary" in sweeps:
        lines.append("")
        lines.append("stationary points, mean of the seeds (cost_weight: share to GPT-4, PGR):")
        lines.append("  " + "  ".join("%g: %.2f, %.2f" % (w, p[0], p[1]) for w, p in
                                      zip(weights, sweeps["stationary"]["points"])))
    print("\n".join(lines))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    curves = [("oracle (hindsight)", "#888888", op, True), ("random", "#bbbbbb", rp, True)]
    colours = {"stationary": "#1f77b4", "delayed": "#2ca02c", "censored": "#d62728"}
    for row in ("stationary", "delayed", "censored"):
        if row in sweeps:
            curves.append(("%s %.3f" % (row, sweeps[row]["apgr"]), colours[row],
                           sweeps[row]["points"], False))
    svg(curves, os.path.join(a.out, "curves.svg"))
    print("replay: %d runs in %.0f s; results.json and curves.svg in %s"
          % (len(jobs), time.monotonic() - t0, a.out), file=sys.stderr)
    if a.check and "restart" in report and not all(report["restart"]["identical"]):
        sys.exit("replay: a restart changed the decisions")


if __name__ == "__main__":
    main()

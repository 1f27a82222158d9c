#!/usr/bin/python3
"""scan-bench.py - how long a git scan takes, and whether the loop keeps
answering meanwhile (the git scanner's speed targets; a benchmark, not a test).

Builds a repository of FILES tracked files (default 50,000, in directories
of 100, committed once; kept in CACHE_DIR between runs), starts a fresh
outcomed watching it, and for each count of changed files in CHANGED
(default "1 10 100"):
  - starts and completes one code trace per changed file (the file is its
    `files`), edits each file (half pasted as suggested, half a body edit),
    and times the `scan` that judges them: the daemon's duration_ms and the
    round trip seen by the client, best of REPEAT runs (a fresh set of
    traces each run; the files are written back in between, so the index
    stays as it is: a scan after a commit or `git add` also reads the index
    again, which is the part of the cost that grows with the repository);
  - meanwhile a second connection pings in a loop: the round trips of the
    pings sent while scans ran (p50, p99, max).
Then the same with the edits staged (`git add`: the scan reads the index
again, which grows with the repository), and with the traces naming no
files (the whole working tree is walked), for contrast.

Targets: a scan of 50,000 tracked files with 10 changed under 1 s, its cost
growing with the changed files; ping within 1 ms during a scan.

    bench/scan-bench.sh                  (builds build-release/ first)
    /usr/bin/python3 bench/scan-bench.py --bin build-release/daemon/outcomed
Settings (environment): FILES, CHANGED, REPEAT (default 5), CACHE_DIR
(default /tmp/outcomed-scan-bench), KEEP=1 to keep the repository.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness  # noqa: E402

FILES = int(os.environ.get("FILES", "50000"))
CHANGED = [int(x) for x in os.environ.get("CHANGED", "1 10 100").split()]
REPEAT = int(os.environ.get("REPEAT", "5"))
CACHE = os.environ.get("CACHE_DIR", "/tmp/outcomed-scan-bench")

GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="b",
               GIT_AUTHOR_EMAIL="b@example.org", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@example.org")


def git(repo, *args):
    return subprocess.run(["git", "-C", repo] + list(args), check=True, env=GIT_ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()


def path_of(i):
    return "d%03d/m%05d.py" % (i // 100, i)


def body(i):
    return ("class Item%d:\n    def __init__(self, n):\n        self.n = n\n\n"
            "    def value(self):\n        return self.n * %d\n\n\n"
            "def helper_%d(x):\n    return x + %d\n" % (i, i, i, i))


def make_repo():
    repo = os.path.join(CACHE, "repo-%d" % FILES)
    if os.path.exists(os.path.join(repo, ".git", "bench-ready")):
        git(repo, "clean", "-qfd")
        reset(repo)
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(repo)
    t0 = time.monotonic()
    git(repo, "init", "-q", "-b", "main")
    for i in range(FILES):
        p = os.path.join(repo, path_of(i))
        if i % 100 == 0:
            os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(body(i))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    reset(repo)
    open(os.path.join(repo, ".git", "bench-ready"), "w").close()
    print("built a repository of %d files in %.0f s: %s" % (FILES, time.monotonic() - t0, repo))
    return repo


SUGGESTION = ("    def total(self, items):\n"
              "        result = 0\n"
              "        for item in items:\n"
              "            result += item.price * self.n\n"
              "        return result\n")


PINGER = r"""
import socket, struct, sys, time
sys.path.insert(0, sys.argv[3])
import msgpack
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
out = open(sys.argv[2], "w")
u = msgpack.Unpacker(raw=False)
msgid = 0
while True:
    msgid += 1
    t0 = time.monotonic()
    s.sendall(msgpack.packb([0, msgid, "ping", []]))
    got = None
    while got is None:
        data = s.recv(65536)
        if not data:
            sys.exit(0)
        u.feed(data)
        for m in u:
            got = m
    t1 = time.monotonic()
    out.write("%.9f %.9f\n" % (t0, t1 - t0))
    out.flush()
"""


class Pinger:
    """A process of its own pinging on its own connection, so that the
    figures are not the bench's own threads waiting on each other; the
    round trips of the pings sent during a scan are picked afterwards."""

    def __init__(self, d):
        self.log = os.path.join(d.tmpdir, "pings.txt")
        self.proc = subprocess.Popen([sys.executable, "-c", PINGER, d.socket_path, self.log, HERE])
        self.windows = []

    def during(self, t0, t1):
        self.windows.append((t0, t1))

    def rtts(self, since):
        out = []
        with open(self.log) as f:
            for line in f:
                t, dt = (float(x) for x in line.split())
                if any(a <= t <= b for a, b in self.windows[since:]):
                    out.append(dt)
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def one_round(d, c, repo, n, with_files, pinger, staged=False):
    """n traces on n files, edited (and staged: the index changed);
    returns (duration_ms, round trip s)."""
    ids, edited = [], []
    for i in range(n):
        rel = path_of((i * 7919) % FILES)
        edited.append(rel)
        args = {"model": "bench", "task": "code", "repo": repo}
        if with_files:
            args["files"] = [rel]
        t = c.call("start", args)["trace_id"]
        out = SUGGESTION if i % 2 == 0 else "something else entirely\n"
        c.call("complete", trace_id=t, latency_ms=1, output=out)
        with open(os.path.join(repo, rel), "a") as f:
            f.write(SUGGESTION if i % 2 == 0 else "# an edit\n")
        ids.append(t)
    if staged:
        git(repo, "add", "--", *edited)
    t0 = time.monotonic()
    r = c.call("scan")
    rt = time.monotonic() - t0
    pinger.during(t0, t0 + rt)
    judged = {j["trace_id"] for j in r["judged"]}
    if not set(ids) <= judged:
        raise SystemExit("scan judged %d of %d traces" % (len(set(ids) & judged), n))
    # Undo the edits as an editor would: the index stays as it is (a
    # commit or `git add` would make the next scan read it again).
    if staged:
        git(repo, "reset", "-q", "--", *edited)
    for rel in edited:
        with open(os.path.join(repo, rel), "w") as f:
            f.write(body(int(rel[-8:-3])))
    return r["duration_ms"], rt


def reset(repo):
    """Back to the base commit, with an index that is not racy: files
    written in the second the index was written would be hashed again by
    every diff, which a working copy that an editor or `git status` has
    seen since does not suffer."""
    git(repo, "reset", "-q", "--hard", "base")
    time.sleep(1.1)
    git(repo, "update-index", "-q", "--really-refresh")


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")


def main():
    repo = make_repo()
    d = harness.Daemon(config="[git]\nrepo = %s\nsettle_s = 0\nscan_interval_s = 86400\n" % repo)
    d.start()
    c = d.client(timeout=600)
    pinger = Pinger(d)
    # Warm up: the scanner opens the repository and reads its index once.
    one_round(d, c, repo, 1, True, pinger)
    t0 = time.monotonic()
    time.sleep(2)
    pinger.during(t0, time.monotonic())
    idle = pinger.rtts(1)
    print("%d tracked files; best of %d scans each; pings during the scans:" % (FILES, REPEAT))
    print("%-8s %-8s %12s %14s %12s %12s %12s" % ("files", "changed", "scan ms", "round trip ms",
                                                 "ping p50 ms", "ping p99 ms", "ping max ms"))
    print("%-8s %-8s %12s %14s %12.3f %12.3f %12.3f" % ("(idle)", "-", "-", "-",
                                                       statistics.median(idle) * 1000,
                                                       pct(idle, 0.99) * 1000, max(idle) * 1000))
    try:
        for mode in ("given", "staged", "none"):
            with_files = mode != "none"
            for n in CHANGED:
                if mode != "given" and n > 10:
                    continue
                since = len(pinger.windows)
                durs, rts = [], []
                for _ in range(REPEAT):
                    dur, rt = one_round(d, c, repo, n, with_files, pinger, mode == "staged")
                    durs.append(dur)
                    rts.append(rt)
                p = pinger.rtts(since)
                print("%-8s %-8d %12d %14.1f %12.3f %12.3f %12.3f"
                      % (mode, n, min(durs), min(rts) * 1000,
                         statistics.median(p) * 1000 if p else float("nan"),
                         pct(p, 0.99) * 1000, max(p) * 1000 if p else float("nan")))
                sys.stdout.flush()
    finally:
        pinger.stop()
        d.stop()
        d.cleanup()
        if not os.environ.get("KEEP"):
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()

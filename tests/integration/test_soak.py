#!/usr/bin/python3
"""Soak: well-behaved routers beside hostile clients, for a bounded time,
against one real outcomed.

For SOAK_SECONDS (default 20), at once:
  - well-behaved clients (one thread each, their own models) run seeded
    random sessions: start, complete, fail, outcomes single and in
    sequence, queries; the test keeps its own model of what their profiles
    and pending traces must be (the contract's rules);
  - hostile clients: bytes that are not msgpack, malformed requests and
    arguments, messages over the size limit (sent whole, or only declared),
    half messages left hanging or cut by a close, clients that pipeline
    large queries and never read the replies, and connection storms past
    the connection limit.
At the end: every well-behaved profile and pending trace exactly as the
model says (floats to 1e-9), the daemon still answering, its resident
memory back near where it was before the hostility (not checked under
ASan or valgrind, whose own memory dominates), and its file descriptors
back to their count before it (none leaked).

    /usr/bin/python3 tests/integration/test_soak.py [--bin PATH]
    SOAK_SECONDS=60 /usr/bin/python3 tests/integration/test_soak.py
"""

import math
import os
import random
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import pack  # noqa: E402

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
WORKERS = 4
RSS_SLACK_KB = 24 * 1024      # resident memory allowed to stay after the storm
BULK = 30                     # pending traces with long reasons: large query replies

CONFIG = """[limits]
connections = 64
reply_buffer_bytes = 2097152
"""

TASKS = harness.TASKS
KINDS = {   # kind -> (quality(c) or None, success or None)
    "accepted": (lambda c: c, True),
    "accepted_with_edits": (lambda c: 0.7 * c, True),
    "rejected": (lambda c: 0.3 * (1.0 - c), False),
    "inconclusive": (None, None),
    "applied": (lambda c: 1.0, True),
    "signature_changed": (lambda c: 0.8, True),
    "body_modified": (lambda c: 0.7, True),
    "symbol_added": (lambda c: 0.7, True),
    "modified": (lambda c: 0.6, True),
    "ignored": (lambda c: 0.1, False),
}
ALPHA = 0.2


# --------------------------------------------------------------------------
# The model of the well-behaved clients' state


class Model:
    """Profiles and pending traces as the contract computes them."""

    def __init__(self):
        self.profiles = {}
        self.pending = {}     # trace id -> {"model", "task", "completed", "latency_ms"}

    def profile(self, model):
        p = self.profiles.get(model)
        if p is None:
            p = self.profiles[model] = {"total_calls": 0, "success_count": 0, "fail_count": 0,
                                        "total_latency_ms": 0, "ema_quality": 0.5, "tasks": {}}
        return p

    @staticmethod
    def task(p, task):
        t = p["tasks"].get(task)
        if t is None:
            t = p["tasks"][task] = {"calls": 0, "successes": 0, "failures": 0,
                                    "avg_latency_ms": 0.0, "ema_quality": 0.5}
        return t

    def start(self, tid, model, task):
        self.pending[tid] = {"model": model, "task": task, "completed": False, "latency_ms": 0}

    def complete(self, tid, latency):
        tr = self.pending[tid]
        tr["completed"], tr["latency_ms"] = True, latency
        p = self.profile(tr["model"])
        p["total_calls"] += 1
        p["total_latency_ms"] += latency
        t = self.task(p, tr["task"])
        t["calls"] += 1
        t["avg_latency_ms"] += (latency - t["avg_latency_ms"]) / t["calls"]

    def fail(self, tid):
        tr = self.pending.pop(tid)
        p = self.profile(tr["model"])
        p["fail_count"] += 1
        p["ema_quality"] = p["ema_quality"] * (1.0 - ALPHA)
        t = self.task(p, tr["task"])
        t["failures"] += 1
        t["ema_quality"] = t["ema_quality"] * (1.0 - ALPHA)

    def outcome(self, tid, kind, conf):
        tr = self.pending.pop(tid)
        qf, success = KINDS[kind]
        p = self.profile(tr["model"])
        if qf is None:
            return None, None
        q = qf(conf)
        t = self.task(p, tr["task"])
        p["ema_quality"] = p["ema_quality"] * (1.0 - ALPHA) + q * ALPHA
        t["ema_quality"] = t["ema_quality"] * (1.0 - ALPHA) + q * ALPHA
        if success:
            p["success_count"] += 1
            t["successes"] += 1
        else:
            p["fail_count"] += 1
            t["failures"] += 1
        return q, success

    @staticmethod
    def infer(actions, i):
        """The action-sequence rule of the Rust tracker outcomed grew out of:
        (kind, confidence)."""
        _, success, conf, output = actions[i]
        if not success:
            return "rejected", conf
        next_ok = actions[i + 1][1] if i + 1 < len(actions) else True
        if output.strip() == "":
            return "inconclusive", conf
        return ("accepted", conf) if next_ok else ("accepted_with_edits", 0.7 * conf)


# --------------------------------------------------------------------------
# Clients


class Stop:
    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.event = threading.Event()

    def __bool__(self):
        return self.event.is_set() or time.monotonic() > self.deadline


def connect(d, timeout=10.0):
    """A connection the daemon accepted (a storm may hold every slot for a
    moment: a refused one answers `overloaded` and closes, and is tried
    again, as a router would)."""
    deadline = time.monotonic() + timeout * harness.TIMEOUT_SCALE
    while True:
        c = d.client(timeout=30 * harness.TIMEOUT_SCALE)
        try:
            c.call("ping")
            return c
        except (harness.RPCError, harness.ConnectionClosed, OSError):
            c.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def well_behaved(d, n, stop, model, lock, stats):
    rnd = random.Random(1000 + n)
    c = connect(d)
    models = ["soak-w%d-m%d" % (n, k) for k in range(3)]
    mine = []          # trace ids of mine still pending
    seq = 0
    try:
        while not stop:
            op = rnd.random()
            if op < 0.30 or not mine:
                seq += 1
                tid = "w%d-%d" % (n, seq)
                m, task = rnd.choice(models), rnd.choice(TASKS)
                got = c.call("start", model=m, task=task, trace_id=tid,
                             reason=rnd.choice(["", "cheapest", "fallback \u00e9"]))["trace_id"]
                assert got == tid, (got, tid)
                with lock:
                    model.start(tid, m, task)
                mine.append(tid)
            elif op < 0.55:
                tid = rnd.choice(mine)
                lat = rnd.randrange(0, 5000)
                with lock:
                    done = model.pending[tid]["completed"]
                err, res = c.request("complete", {"trace_id": tid, "latency_ms": lat,
                                                  "input_tokens": rnd.randrange(100)})
                if done:
                    assert err and err["code"] == "already_completed", (tid, err)
                else:
                    assert err is None, (tid, err)
                    with lock:
                        model.complete(tid, lat)
            elif op < 0.65:
                tid = mine.pop(rnd.randrange(len(mine)))
                c.call("fail", trace_id=tid, error="timeout")
                with lock:
                    model.fail(tid)
            elif op < 0.85:
                tid = mine.pop(rnd.randrange(len(mine)))
                kind = rnd.choice(sorted(KINDS))
                conf = round(rnd.random(), 6)
                args = {"trace_id": tid, "kind": kind}
                if kind in ("accepted", "accepted_with_edits", "rejected"):
                    args["confidence"] = conf
                r = c.call("outcome", args)
                with lock:
                    q, success = model.outcome(tid, kind, conf)
                assert r["success"] == success, (r, success)
                assert (r["quality"] is None) == (q is None) and (
                    q is None or math.isclose(r["quality"], q, rel_tol=1e-12)), (r, q)
            elif op < 0.95:
                k = rnd.randrange(1, 4)
                picked = [mine.pop(rnd.randrange(len(mine))) for _ in range(min(k, len(mine)))]
                acts = [(tid, rnd.random() < 0.7, round(rnd.random(), 6),
                         rnd.choice(["", " ", "code", "x y"])) for tid in picked]
                if rnd.random() < 0.3:
                    acts.insert(rnd.randrange(len(acts) + 1), ("", True, 0.5, "z"))
                r = c.call("outcome", actions=[{"trace_id": a[0], "success": a[1],
                                                "confidence": a[2], "output": a[3]}
                                               for a in acts])
                want = []
                with lock:
                    for i, a in enumerate(acts):
                        if a[0]:
                            kind, cc = Model.infer(acts, i)
                            model.outcome(a[0], kind, cc)
                            want.append((a[0], kind))
                assert [(x["trace_id"], x["kind"]) for x in r["results"]] == want, (r, want)
            else:
                c.call("query", model=rnd.choice(models))
            stats["ops"] += 1
    finally:
        c.close()


def hostile_garbage(d, n, stop, stats):
    """Bytes that are not msgpack, malformed messages and arguments."""
    rnd = random.Random(2000 + n)
    bad = [
        pack([0, 7, "ping"]), pack([1, 9, "ping", []]), pack([0, 13, 5, []]),
        pack([0, 16, "ping", {}]), pack([0, 21, "ping", [{}, {}]]), pack([0, -1, "ping", []]),
        pack([2, "ping", 5]), pack([0, 30, "start", [{5: "m", "task": "generate"}]]),
        pack([0, 31, "start", [{"model": "hostile", "task": "generate", "modle": "x"}]]),
        pack([0, 32, "complete", [{"trace_id": "a b", "latency_ms": -1}]]),
        pack([0, 33, "outcome", [{"trace_id": "w0-1", "kind": "accepted", "confidence": 2.0}]]),
        pack([0, 34, "fail", [{"trace_id": "w0-1", "eror": "x"}]]),
        pack([0, 35, "nosuch", []]), pack([2, "complete", [{"trace_id": "nope", "latency_ms": 1}]]),
    ]
    while not stop:
        try:
            with d.client(timeout=5) as c:
                if rnd.random() < 0.5:
                    c.send_raw(b"".join(rnd.choice(bad) for _ in range(rnd.randrange(1, 20))))
                    c.send_raw(pack([0, 99, "ping", []]))
                    while c.recv_response()[0] != 99:
                        pass
                else:
                    c.send_raw(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))))
                    c.sock.shutdown(socket.SHUT_WR)
                    try:
                        while True:
                            c.recv()
                    except harness.ConnectionClosed:
                        pass
            stats["garbage"] += 1
        except (OSError, TimeoutError, harness.ConnectionClosed, ValueError):
            stats["garbage_cut"] += 1


def hostile_huge(d, n, stop, stats):
    """Messages over the size limit: sent whole, or only declared."""
    rnd = random.Random(3000 + n)
    body = b"x" * ((4 << 20) + 1024)
    while not stop:
        try:
            with d.client(timeout=10) as c:
                if rnd.random() < 0.3:
                    c.send_raw(pack([0, 1, "start", [{"model": "hostile", "task": "generate",
                                                       "reason": body.decode()}]]))
                else:
                    c.send_raw(b"\x94\x00\x01\xa5start\x91\x81\xa5model\xdb"
                               + (100 << 20).to_bytes(4, "big") + b"x" * 1000)
                err = c.recv_response()[1]
                # (or refused at connect while a storm holds every slot)
                assert err and err["code"] in ("too_large", "overloaded"), err
            stats["huge" if err["code"] == "too_large" else "huge_refused"] += 1
        except (OSError, TimeoutError, harness.ConnectionClosed):
            stats["huge_cut"] += 1


def hostile_half(d, n, stop, stats):
    """Half a message, then a close, or left hanging a while."""
    rnd = random.Random(4000 + n)
    msg = pack([0, 1, "start", [{"model": "hostile", "task": "code", "reason": "r" * 200}]])
    held = []
    while not stop:
        c = None
        try:
            c = d.client(timeout=5)
            c.send_raw(msg[:rnd.randrange(1, len(msg))])
            if rnd.random() < 0.5:
                c.close()
            else:
                held.append(c)
                if len(held) > 8:
                    held.pop(0).close()
            stats["half"] += 1
        except OSError:
            if c is not None:
                c.close()
            stats["half_cut"] += 1
        time.sleep(0.01)
    for c in held:
        c.close()


def hostile_no_read(d, n, stop, stats):
    """Pipelines large queries and never reads the replies."""
    while not stop:
        c = None
        try:
            c = d.client(timeout=5)
            c.sock.setblocking(False)
            req = pack([0, 1, "query", [{"pending": True}]])
            sent = 0
            t0 = time.monotonic()
            while not stop and time.monotonic() - t0 < 2.0:
                try:
                    c.sock.send(req * 50)
                    sent += 50
                except BlockingIOError:
                    time.sleep(0.05)
                except OSError:
                    break     # dropped by the daemon
            c.close()
            stats["noread"] += 1
            stats["noread_sent"] += sent
        except OSError:
            if c is not None:
                c.close()
            stats["noread_cut"] += 1


def hostile_storm(d, n, stop, stats):
    """Bursts of connections, past the connection limit, then all closed."""
    while not stop:
        socks = []
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(d.socket_path)
                socks.append(s)
            except OSError:
                s.close()
                break
        for s in socks[::3]:
            try:
                s.sendall(pack([0, 1, "ping", []]))
            except OSError:
                pass
        time.sleep(0.1)
        for s in socks:
            s.close()
        stats["storm"] += 1
        stats["storm_conns"] += len(socks)
        time.sleep(0.2)


# --------------------------------------------------------------------------
# The test


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def instrumented(pid):
    """True under ASan or valgrind: their memory is not the daemon's."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return True
    return "libasan" in maps or "vgpreload" in maps or bool(harness.WRAPPER)


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


class SoakTest(harness.DaemonTestCase):
    config = CONFIG

    def test_soak(self):
        d = self.d
        pid = d.proc.pid
        obs = connect(d)
        self.addCleanup(obs.close)
        for i in range(BULK):   # large `query pending` replies for the non-readers
            obs.call("start", model="soak-bulk", task="generate", reason="b" * 4096,
                     trace_id="bulk-%d" % i)
        # Warm up once (allocator arenas, SQLite caches) before the baseline.
        for _ in range(3):
            obs.call("query", pending=True)
        time.sleep(0.5)
        base_rss, base_fds = vm_rss_kb(pid), fd_count(pid)

        stop = Stop(SOAK_SECONDS)
        model, lock = Model(), threading.Lock()
        stats = _Counter()
        errors = []

        def guard(fn, *args):
            def run():
                try:
                    fn(*args)
                except BaseException:  # noqa: B902
                    errors.append("%s: %s" % (fn.__name__, traceback.format_exc()))
                    stop.event.set()
            th = threading.Thread(target=run, daemon=True)
            th.start()
            return th

        threads = [guard(well_behaved, d, n, stop, model, lock, stats) for n in range(WORKERS)]
        threads += [guard(hostile_garbage, d, n, stop, stats) for n in range(2)]
        threads += [guard(hostile_huge, d, 0, stop, stats)]
        threads += [guard(hostile_half, d, 0, stop, stats)]
        threads += [guard(hostile_no_read, d, n, stop, stats) for n in range(2)]
        threads += [guard(hostile_storm, d, 0, stop, stats)]
        while not stop:
            time.sleep(0.2)
            if not d.running():
                stop.event.set()
        for th in threads:
            th.join(60 * harness.TIMEOUT_SCALE)
        self.assertFalse([th for th in threads if th.is_alive()], "client threads hung")
        d.check_alive()
        self.assertEqual(errors, [], "client errors:\n" + "\n".join(errors))
        sys.stderr.write("soak: %.0fs, %s\n" % (SOAK_SECONDS, dict(sorted(stats.items()))))
        self.assertGreater(stats["ops"], 20, "the well-behaved clients barely ran")
        for k in ("garbage", "huge", "half", "noread", "storm"):
            self.assertGreater(stats[k], 0, "no %s client got through" % k)

        # Every connection but the observer's is gone on the daemon's side.
        self.assertTrue(harness.wait_until(lambda: obs.call("stats")["connections"] == 1,
                                           timeout=15 * harness.TIMEOUT_SCALE),
                        "connections still open: %r" % obs.call("stats")["connections"])

        # The well-behaved clients' state, exactly.
        got = {p["model"]: p for p in obs.call("query")["profiles"]
               if p["model"].startswith("soak-w")}
        self.assertEqual(sorted(got), sorted(model.profiles))
        for m, want in sorted(model.profiles.items()):
            p = got[m]
            for k in ("total_calls", "success_count", "fail_count", "total_latency_ms"):
                self.assertEqual(p[k], want[k], "%s %s" % (m, k))
            self.assertTrue(close(p["ema_quality"], want["ema_quality"]),
                            "%s ema_quality %r, want %r" % (m, p["ema_quality"], want["ema_quality"]))
            self.assertEqual(sorted(p["tasks"]), sorted(want["tasks"]), m)
            for t, wt in want["tasks"].items():
                pt = p["tasks"][t]
                for k in ("calls", "successes", "failures"):
                    self.assertEqual(pt[k], wt[k], "%s %s %s" % (m, t, k))
                for k in ("avg_latency_ms", "ema_quality"):
                    self.assertTrue(close(pt[k], wt[k]), "%s %s %s: %r, want %r"
                                    % (m, t, k, pt[k], wt[k]))
        pend = obs.call("query", pending=True, limit=100000)["pending"]
        mine = {x["trace_id"]: x for x in pend if x["model"].startswith("soak-w")}
        self.assertEqual(sorted(mine), sorted(model.pending))
        for tid, want in model.pending.items():
            x = mine[tid]
            self.assertEqual((x["model"], x["task"], x["completed"], x["latency_ms"]),
                             (want["model"], want["task"], want["completed"], want["latency_ms"]),
                             tid)
        self.assertEqual(len([x for x in pend if x["model"] == "soak-bulk"]), BULK)

        # Resources: descriptors back to the baseline, memory near it.
        self.assertTrue(harness.wait_until(lambda: fd_count(pid) <= base_fds, timeout=10),
                        "file descriptors: %d after the soak, %d before" % (fd_count(pid), base_fds))
        rss = vm_rss_kb(pid)
        sys.stderr.write("soak: VmRSS %d kB before, %d kB after; fds %d before, %d after\n"
                         % (base_rss, rss, base_fds, fd_count(pid)))
        if not instrumented(pid):
            self.assertLess(rss - base_rss, RSS_SLACK_KB,
                            "resident memory grew from %d to %d kB" % (base_rss, rss))


class _Counter(dict):
    def __missing__(self, key):
        return 0

    def __setitem__(self, key, value):
        with _Counter.lock:
            dict.__setitem__(self, key, value)


_Counter.lock = threading.Lock()


if __name__ == "__main__":
    harness.main()

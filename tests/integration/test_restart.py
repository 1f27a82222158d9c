#!/usr/bin/python3
"""Persistence and process lifecycle of outcomed: restarts, SIGKILL after the
timer flush, unique trace ids across restarts, the socket (busy, stale,
too long, mode), a database newer than the binary, the command line.

    /usr/bin/python3 tests/integration/test_restart.py [--bin PATH]
"""

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402


def start(c, model="m", task="generate", **kw):
    args = {"model": model, "task": task}
    args.update(kw)
    return c.call("start", args)["trace_id"]


def populate(c):
    """Some profiles and pending traces of every shape."""
    for i, (model, task) in enumerate([("alpha", "code"), ("alpha", "generate"),
                                       ("beta/b:q4", "embed"), ("gamma-\u00fc", "reasoning"),
                                       ("beta/b:q4", "classify")]):
        t = start(c, model=model, task=task, reason="r%d" % i)
        c.call("complete", trace_id=t, latency_ms=100 + i, input_tokens=10 * i, output_tokens=i)
        c.call("outcome", trace_id=t, kind="accepted", confidence=0.3 + 0.1 * i)
    t = start(c, model="alpha", task="classify")
    c.call("fail", trace_id=t, error="boom")
    t = start(c, model="delta", task="code")
    c.call("outcome", trace_id=t, kind="ignored")
    c.call("outcome", trace_id=start(c, model="eps", task="generate"), kind="inconclusive")
    # left pending: one completed, one not, one with a client id
    t = start(c, model="alpha", task="code", reason="pending completed")
    c.call("complete", trace_id=t, latency_ms=7, input_tokens=8, output_tokens=9,
           output="fn main() {}")
    start(c, model="beta/b:q4", task="generate", reason="pending")
    start(c, model="zeta", task="embed", trace_id="client:id-1.x", reason="client chosen")


def snapshot(c):
    """The exact bytes of the query replies (all profiles, all pending)."""
    out = []
    for args in (None, {"pending": True}):
        msgid = c.send_request("query", args, msgid=4242)
        obj, raw = c.recv_raw()
        harness.check_response_shape(obj)
        assert obj[1] == msgid and obj[2] is None, obj
        out.append((obj[3], raw))
    return out


class RestartTest(harness.DaemonTestCase):
    def test_state_survives_sigterm(self):
        with self.d.client() as c:
            populate(c)
            before = snapshot(c)
        self.assertGreater(len(before[1][0]["pending"]), 0)
        self.d.restart()
        with self.d.client() as c:
            after = snapshot(c)
        self.assertEqual(after[0][0], before[0][0], "profiles differ after SIGTERM + restart")
        self.assertEqual(after[1][0], before[1][0], "pending traces differ after SIGTERM + restart")
        self.assertEqual(after[0][1], before[0][1], "query reply not byte-identical after restart")
        self.assertEqual(after[1][1], before[1][1],
                         "query {pending: true} reply not byte-identical after restart")
        # The pending traces are usable after the restart.
        with self.d.client() as c:
            pend = c.call("query", pending=True)["pending"]
            done = [p for p in pend if p["completed"]][0]
            c.call("outcome", trace_id=done["trace_id"], kind="applied")
            c.call("complete", trace_id="client:id-1.x", latency_ms=1)
            err, _ = c.request("complete", {"trace_id": done["trace_id"], "latency_ms": 1})
            self.assertEqual(err and err["code"], "unknown_trace")

    def test_sigterm_with_busy_connections(self):
        # Open connections (idle, mid-message, with unread replies) must not
        # keep the daemon from a clean, prompt exit, and the state is written.
        with self.d.client() as c:
            populate(c)
            before = snapshot(c)
        idle = self.d.client()
        partial = self.d.client()
        unread = self.d.client()
        for s in (idle, partial, unread):
            self.addCleanup(s.close)
        idle.call("ping")
        partial.send_raw(harness.pack([0, 1, "start", [{"model": "x", "task": "code"}]])[:9])
        unread.send_many([("query", None)] * 200)
        t0 = time.monotonic()
        self.d.stop()
        self.assertLess(time.monotonic() - t0, 5, "SIGTERM took too long with open connections")
        self.d.start()
        with self.d.client() as c:
            after = snapshot(c)
        self.assertEqual(after[0][0], before[0][0])
        self.assertEqual(after[1][0], before[1][0])

    def test_sigint_exits_cleanly(self):
        with self.d.client() as c:
            populate(c)
            before = snapshot(c)
        self.d.stop(sig=signal.SIGINT)
        self.d.start()
        with self.d.client() as c:
            self.assertEqual(snapshot(c)[0][0], before[0][0])

    def test_timer_flush_survives_sigkill(self):
        with self.d.client() as c:
            populate(c)
            before = snapshot(c)
        time.sleep(2.0)    # the 1 s timer has flushed
        self.d.kill()
        self.d.start()
        with self.d.client() as c:
            after = snapshot(c)
        self.assertEqual(after[0][0], before[0][0], "profiles lost or changed after the timer "
                         "flush and SIGKILL")
        self.assertEqual(after[1][0], before[1][0], "pending traces lost or changed after the "
                         "timer flush and SIGKILL")

    def test_generated_ids_unique_across_quick_restarts(self):
        ids = []
        t0 = time.monotonic()
        for i in range(3):
            if i:
                self.d.restart()
            with self.d.client() as c:
                ids.append(start(c, model="ids"))
                ids.append(start(c, model="ids"))
        elapsed = time.monotonic() - t0
        self.assertEqual(len(set(ids)), len(ids), "generated trace ids repeat across restarts: %r"
                         % ids)
        for t in ids:
            self.assertLessEqual(len(t.encode()), harness.GEN_TRACE_ID_MAX, "trace id %r too long" % t)
            self.assertGreater(len(t), 0)
        with self.d.client() as c:
            self.assertEqual(sorted(p["trace_id"] for p in c.call("query", pending=True)["pending"]),
                             sorted(ids))
        if elapsed > 3.0:
            sys.stderr.write("note: the three runs took %.1fs, not within ~1s each\n" % elapsed)


class SocketTest(unittest.TestCase):
    def daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.cleanup)
        return d

    def test_refuses_when_another_daemon_answers(self):
        a = self.daemon().start()
        b = self.daemon(socket_path=a.socket_path)
        b.spawn()
        rc, err = b.wait_exit()
        self.assertNotEqual(rc, 0, "a second daemon on a live socket must refuse to start")
        self.assertTrue(err.strip(), "the refusal must say why on stderr")
        low = err.lower()
        self.assertTrue(a.socket_path in err or any(w in low for w in
                        ("in use", "already", "running", "another", "answer")),
                        "stderr does not explain the refusal: %r" % err)
        # The first one is untouched.
        self.assertTrue(os.path.exists(a.socket_path), "the refused daemon removed the live socket")
        self.assertIsInstance(a.ping(), str)
        a.stop()

    def test_removes_stale_socket(self):
        d = self.daemon()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.socket_path)
        s.close()    # a socket file with nobody listening
        self.assertTrue(os.path.exists(d.socket_path))
        d.start()
        self.assertIsInstance(d.ping(), str)
        d.stop()

    def test_socket_path_too_long(self):
        d = self.daemon()
        base = os.path.join(d.tmpdir, "")
        long_path = base + "s" * (harness.SOCKET_PATH_MAX + 1 - len(base))
        self.assertEqual(len(long_path.encode()), harness.SOCKET_PATH_MAX + 1)
        d.socket_path = long_path
        d.spawn()
        rc, err = d.wait_exit()
        self.assertNotEqual(rc, 0, "a 108-byte socket path must be refused")
        low = err.lower()
        self.assertTrue(any(w in low for w in ("long", "107", "108")),
                        "stderr does not say the socket path is too long: %r" % err)
        self.assertFalse(os.path.lexists(long_path))
        self.assertFalse(os.path.lexists(long_path[:harness.SOCKET_PATH_MAX]),
                         "the path was silently truncated")

    def test_socket_path_of_107_bytes_works(self):
        d = self.daemon()
        base = os.path.join(d.tmpdir, "")
        d.socket_path = base + "s" * (harness.SOCKET_PATH_MAX - len(base))
        self.assertEqual(len(d.socket_path.encode()), harness.SOCKET_PATH_MAX)
        d.start()
        self.assertIsInstance(d.ping(), str)
        d.stop()

    def test_socket_mode(self):
        d = self.daemon().start()
        mode = harness.socket_mode(d.socket_path)
        if os.geteuid() == 0:
            self.assertEqual(mode & 0o007, 0, "socket mode %o gives access to others" % mode)
        else:
            self.assertEqual(mode & 0o077, 0, "a user's socket must be 0600, is %o" % mode)
        d.stop()


def file_digest(path):
    h = hashlib.sha256()
    for p in (path, path + "-wal", path + "-journal"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                h.update(p.encode() + b"\0" + f.read())
    return h.hexdigest()


class DatabaseTest(unittest.TestCase):
    def test_refuses_newer_database(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        with d.client() as c:
            start(c, model="keep")
        d.stop()
        con = sqlite3.connect(d.db_path)
        con.execute("PRAGMA user_version = 999")
        con.commit()
        con.close()
        digest = file_digest(d.db_path)
        mtime = os.stat(d.db_path).st_mtime_ns
        d.spawn()
        rc, err = d.wait_exit()
        self.assertNotEqual(rc, 0, "a database newer than the binary must be refused")
        low = err.lower()
        self.assertTrue(any(w in low for w in ("newer", "999", "version")),
                        "stderr does not explain the refusal: %r" % err)
        self.assertEqual(file_digest(d.db_path), digest, "the refused database was changed")
        self.assertEqual(os.stat(d.db_path).st_mtime_ns, mtime, "the refused database was written")
        con = sqlite3.connect(d.db_path)
        self.assertEqual(con.execute("PRAGMA user_version").fetchone()[0], 999)
        con.close()
        self.assertFalse(os.path.lexists(d.socket_path), "a refused daemon must not leave a socket")

    def test_creates_missing_database(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.db_path = os.path.join(d.tmpdir, "sub", "dir", "state.db")
        d.start()
        with d.client() as c:
            t = start(c, model="fresh")
            c.call("complete", trace_id=t, latency_ms=3)
        d.stop()
        self.assertTrue(os.path.exists(d.db_path))
        d.start()
        with d.client() as c:
            p = c.call("query", model="fresh")["profiles"]
            self.assertEqual(p[0]["total_latency_ms"], 3)
        d.stop()


class CommandLineTest(unittest.TestCase):
    def run_bin(self, *args):
        b = harness.daemon_binary()
        if not os.access(b, os.X_OK):
            self.skipTest("no daemon binary at %s" % b)
        return subprocess.run([b] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=10)

    def test_version(self):
        r = self.run_bin("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"0.", r.stdout + r.stderr)

    def test_help(self):
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"--socket", r.stdout + r.stderr)

    def test_unknown_option(self):
        r = self.run_bin("--no-such-option")
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_bad_config_refused(self):
        d = Daemon(config="[daemon]\nthis line is not ini\n")
        self.addCleanup(d.cleanup)
        d.spawn()
        rc, err = d.wait_exit()
        self.assertNotEqual(rc, 0, "an unparsable config must be refused")
        self.assertTrue(err.strip())

    def test_missing_config_refused(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        os.unlink(d.config_path)
        d.spawn()
        rc, err = d.wait_exit()
        self.assertNotEqual(rc, 0, "an explicit --config that does not exist must be refused")
        self.assertIn(d.config_path, err)


if __name__ == "__main__":
    harness.main()

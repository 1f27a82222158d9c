#!/usr/bin/python3
"""Store faults on a real filesystem: a small tmpfs that fills up,
a read-only remount, a database locked by another process.  While the
database cannot be written, changes answer `unavailable` and change nothing,
reads are answered, the daemon keeps running and logs the cause once;
nothing acknowledged before the fault is lost; once the disk takes writes
again the daemon notices by itself (a probe every second, stats.writable)
and accepts changes.

The tmpfs lives in a private mount namespace (`unshare -m`, as root): a
holder process keeps the namespace, and the daemon is started in it through
`nsenter -t HOLDER -m` (the harness's launcher), so it can be SIGKILLed and
restarted on the same filesystem.  Without root or unshare the tests skip.

    /usr/bin/python3 tests/integration/test_faults.py [--bin PATH] [unittest args]
"""

import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402
import test_durability as dur  # noqa: E402

FAULT_LINE = re.compile(r"error: write to .* failed")


class MountNS:
    """A private mount namespace holding a tmpfs of `size` at self.fs."""

    def __init__(self, tc, size="4m"):
        if not harness.is_root():
            raise unittest.SkipTest("needs root (mount namespaces, tmpfs)")
        for tool in ("unshare", "nsenter", "mount", "dd"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s is not installed" % tool)
        self.dir = tempfile.mkdtemp(prefix="outcomed-fs-", dir="/tmp")
        tc.addCleanup(shutil.rmtree, self.dir, True)
        self.fs = os.path.join(self.dir, "fs")
        os.mkdir(self.fs)
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=%s,mode=0755 tmpfs "$1" && echo mounted && exec sleep 3600'
             % size, "sh", self.fs],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        tc.addCleanup(self.close)
        line = self.holder.stdout.readline()   # bounded: sh prints or exits
        if line.strip() != b"mounted":
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.poll() is not None else ""
            raise unittest.SkipTest("cannot mount a tmpfs in a private mount namespace: %s" % err)
        self.enter = ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def close(self):
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(10)
        for f in (self.holder.stdout, self.holder.stderr):
            f.close()

    def path(self, name):
        return os.path.join(self.fs, name)

    def run(self, argv, check=True):
        r = subprocess.run(self.enter + argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                      r.stderr.decode(errors="replace")))
        return r

    def fill(self):
        """Write a filler file until the tmpfs is full."""
        r = self.run(["dd", "if=/dev/zero", "of=" + self.path("filler"), "bs=4k"], check=False)
        err = r.stderr.decode(errors="replace")
        if "No space left" not in err:
            raise AssertionError("dd did not fill the tmpfs: %s" % err)

    def free(self):
        self.run(["rm", "-f", self.path("filler")])

    def sha256(self, name):
        out = self.run(["sha256sum", self.path(name)]).stdout.decode()
        return out.split()[0]

    def remount(self, opts):
        return self.run(["mount", "-o", "remount," + opts, self.fs], check=False)


def state(c):
    return dur.daemon_state(c)


def sim_state(sim):
    return sim.profile_view(), sim.pending_view()


class FaultTestCase(unittest.TestCase):
    def assert_state(self, c, sim, what):
        want, got = sim_state(sim), state(c)
        dur.assert_same(self, got, want, what)

    def assert_reads_work(self, c):
        self.assertIsInstance(c.call("ping")["version"], str)
        c.call("query")
        c.call("query", pending=True)
        return c.call("stats")

    def assert_changes_refused(self, c, sim, pending_id):
        """Every kind of change answers unavailable and changes nothing."""
        before = state(c)
        changes = [
            ("start", {"model": "refused", "task": "generate"}),
            ("start", {"model": "alpha", "task": "code", "trace_id": "refused:1"}),
            ("complete", {"trace_id": pending_id, "latency_ms": 5}),
            ("fail", {"trace_id": pending_id}),
            ("outcome", {"trace_id": pending_id, "kind": "accepted", "confidence": 1}),
            ("outcome", {"actions": [{"trace_id": pending_id, "success": True, "confidence": 1,
                                      "output": "x"}]}),
            ("forget", {"model": "alpha"}),
            ("import", {"profiles": [{"model": "imp", "total_calls": 1, "success_count": 1,
                                      "fail_count": 0, "total_latency_ms": 1,
                                      "ema_quality": 0.9}]}),
        ]
        ids = c.send_many(changes + [("ping", None)])
        replies = c.recv_many(len(ids))
        self.assertEqual([r[0] for r in replies], ids)
        for (method, _), (_, err, _) in zip(changes, replies):
            self.assertIsNotNone(err, "%s accepted while the database cannot be written" % method)
            self.assertEqual(err["code"], "unavailable", method)
        self.assertIsNone(replies[-1][1])
        c.notify("start", {"model": "refused-notify", "task": "embed"})
        self.assertEqual(state(c), before, "a refused change changed the state in memory")
        self.assertEqual(sim_state(sim), before)

    def wait_writable(self, c, timeout=4.0):
        t0 = time.monotonic()
        ok = harness.wait_until(lambda: c.call("stats")["writable"], timeout=timeout, interval=0.05)
        self.assertTrue(ok, "stats.writable still false %.1fs after the disk took writes again"
                        % timeout)
        return time.monotonic() - t0


class DiskFullTest(FaultTestCase):
    def setUp(self):
        self.ns = MountNS(self, size="4m")
        self.d = Daemon(db_path=self.ns.path("outcomed.db"), launcher=self.ns.enter)
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def test_full_tmpfs(self):
        d, ns = self.d, self.ns
        sim = dur.Sim()
        c = d.client()
        self.addCleanup(c.close)
        r = dur.Recorder(c, sim)
        dur.drive_mix(r, None, tag="pre")
        self.assertTrue(c.call("stats")["writable"])
        self.assert_state(c, sim, "before the fault")

        ns.fill()
        # Four clients pipeline changes into the full disk.
        models = [["full-%d" % i] for i in range(4)]
        ops = [dur.gen_client_ops(random.Random(i), "full%d" % i, models[i], 1500, notify_rate=0.0)
               for i in range(4)]
        cls = [dur.Pipeliner(d.socket_path, ops[i], random.Random(10 + i), keep_going=True)
               for i in range(4)]
        for cl in cls:
            cl.start()
        for i, cl in enumerate(cls):
            self.assertTrue(cl.join(30), "client %d hung" % i)
            self.assertIsNone(cl.reader_exc)
            self.assertEqual(cl.order, [])
            self.assertTrue(cl.finished, "client %d: %d of %d replies (the daemon must answer "
                            "every request)" % (i, cl.replies, len(cl.expected)))
            codes = {e["code"] for _, e in cl.log if e}
            self.assertEqual(codes, {"unavailable"}, "client %d: error codes %r" % (i, codes))
            # Once refused, refused: the acknowledged changes are a prefix.
            first = min(k for k, e in cl.log if e)
            late_ok = [k for k, e in cl.log if e is None and k > first]
            self.assertEqual(late_ok, [], "client %d: changes acknowledged after the first "
                             "unavailable (op %d) while the disk was still full" % (i, first))
            for (_, m, a) in cl.ops[:cl.acked]:
                sim.apply(m, a)
        self.assertLess(sum(cl.acked for cl in cls), sum(len(cl.ops) for cl in cls))

        d.check_alive()
        s = self.assert_reads_work(c)
        self.assertFalse(s["writable"], "stats.writable is true on a full disk")
        self.assertGreaterEqual(s["commit_errors_total"], 1)
        self.assertGreater(s["unavailable_total"], 0)
        self.assert_state(c, sim, "after the fault: acknowledged changes lost, or refused ones kept")
        pending_id = "pre:client.id-1"
        self.assertIn(pending_id, sim.pending)
        self.assert_changes_refused(c, sim, pending_id)
        # New connections are served too.
        with d.client() as c2:
            self.assert_reads_work(c2)
        # Still full after two probes: still refused, the cause logged once.
        time.sleep(2.2)
        d.check_alive()
        self.assertFalse(c.call("stats")["writable"])
        faults = FAULT_LINE.findall(d.stderr())
        self.assertEqual(len(faults), 1, "the cause should be logged once:\n" + d.stderr())
        self.assertRegex(d.stderr(), r"write to .* failed: .*(full|space)")

        ns.free()
        dt = self.wait_writable(c)
        sys.stderr.write("writable again %.2fs after the space was freed\n" % dt)
        self.assertIn("can be written again", d.stderr())
        # Changes are accepted again, and all of it survives SIGKILL.
        dur.drive_mix(r, None, tag="post")
        self.assert_state(c, sim, "after recovery")
        c.close()
        d.kill()
        d.start()
        with d.client() as c3:
            self.assert_state(c3, sim, "after SIGKILL + restart")
            self.assertTrue(c3.call("stats")["writable"])
        d.stop()

    def test_sigterm_while_full(self):
        """A clean stop while the disk is full exits 0 and loses nothing
        acknowledged; the daemon starts again once there is room."""
        d, ns = self.d, self.ns
        sim = dur.Sim()
        with d.client() as c:
            r = dur.Recorder(c, sim)
            dur.drive_mix(r, None)
            ns.fill()
            for i in range(2000):
                args = {"model": "st", "task": "embed", "trace_id": "st:%d" % i}
                err, _ = c.request("start", args)
                if err:
                    break
                sim.apply("start", args)
            self.assertEqual(err["code"], "unavailable")
        d.stop()   # exit 0, socket removed
        ns.free()
        d.start()
        with d.client() as c:
            self.assert_state(c, sim, "after SIGTERM on a full disk")
        d.stop()

    def test_read_behind_a_lost_change(self):
        """A read held behind a change whose commit fails must not show that
        change: the change answers `unavailable` ("it was not recorded"), so
        a query answered after it on the same connection cannot list it."""
        d, ns = self.d, self.ns
        c = d.client()
        self.addCleanup(c.close)
        c.call("start", model="rb", task="embed", trace_id="rb:0")
        ns.fill()
        for i in range(1, 2000):
            tid = "rb:%d" % i
            ids = c.send_many([("start", {"model": "rb", "task": "embed", "trace_id": tid}),
                               ("query", {"pending": True, "model": "rb"})])
            (m1, e1, _), (m2, e2, res) = c.recv_many(2)
            self.assertEqual([m1, m2], ids)
            if e1 is not None:
                break
        self.assertEqual(e1["code"], "unavailable")
        now = [t["trace_id"] for t in c.call("query", pending=True, model="rb")["pending"]]
        self.assertNotIn(tid, now)
        if e2 is None:
            listed = [t["trace_id"] for t in res["pending"]]
            self.assertNotIn(tid, listed, "the query after the lost start listed it as pending")
        else:
            self.assertEqual(e2["code"], "unavailable")
        ns.free()
        self.wait_writable(c)
        d.stop()

    def test_quiet_while_waiting(self):
        """While the disk stays full the daemon probes every second; that is
        not news: nothing more is logged, and the state it serves is not
        rebuilt again and again (a rebuild reads the whole database on the
        loop thread)."""
        d, ns = self.d, self.ns
        with d.client() as c:
            for i in range(20):
                c.call("start", model="q", task="embed", trace_id="q:%d" % i)
            ns.fill()
            for i in range(200):
                err, _ = c.request("start", {"model": "q", "task": "embed"})
                if err:
                    break
            self.assertEqual(err["code"], "unavailable")
            time.sleep(0.3)
            lines = d.stderr().splitlines()
            time.sleep(2.5)   # two or three failed probes
            later = d.stderr().splitlines()[len(lines):]
            self.assertFalse(c.call("stats")["writable"])
        self.assertEqual(later, [], "lines logged every second while the disk stays full")
        ns.free()
        with d.client() as c:
            self.wait_writable(c)
        d.stop()


class ReadOnlyTest(FaultTestCase):
    def setUp(self):
        self.ns = MountNS(self, size="8m")
        self.d = Daemon(db_path=self.ns.path("outcomed.db"), launcher=self.ns.enter)
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def test_remount_read_only_while_running(self):
        d, ns = self.d, self.ns
        sim = dur.Sim()
        c = d.client()
        self.addCleanup(c.close)
        r = dur.Recorder(c, sim)
        dur.drive_mix(r, None, tag="pre")
        res = ns.remount("ro")
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace").strip()
            self.addCleanup(d.stop)
            if "busy" in err:
                # Linux refuses a read-only remount while a file on the
                # filesystem is open for writing (sb_prepare_remount_readonly),
                # and the daemon keeps its database open: this fault cannot
                # be made while it runs.  test_read_only_at_start covers it.
                self.skipTest("the kernel refuses remount,ro while outcomed holds its database "
                              "open for writing (EBUSY): %s" % err)
            self.fail("remount,ro failed: %s" % err)
        self.addCleanup(ns.remount, "rw")
        for i in range(50):
            err, _ = c.request("start", {"model": "ro", "task": "embed", "trace_id": "ro:%d" % i})
            if err:
                break
            sim.apply("start", {"model": "ro", "task": "embed", "trace_id": "ro:%d" % i})
        self.assertEqual(err and err["code"], "unavailable")
        s = self.assert_reads_work(c)
        self.assertFalse(s["writable"])
        self.assert_state(c, sim, "after the remount")
        self.assert_changes_refused(c, sim, "pre:client.id-1")
        self.assertEqual(len(FAULT_LINE.findall(d.stderr())), 1, d.stderr())
        self.assertEqual(ns.remount("rw").returncode, 0)
        self.wait_writable(c)
        dur.drive_mix(r, None, tag="post")
        d.kill()
        d.start()
        with d.client() as c2:
            self.assert_state(c2, sim, "after SIGKILL + restart")
        d.stop()

    def start_read_only(self, sim):
        """Stop, remount read-only, try to start: (exit code, stderr)."""
        d, ns = self.d, self.ns
        with d.client() as c:
            dur.drive_mix(dur.Recorder(c, sim), None)
        d.stop()
        res = ns.remount("ro")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.addCleanup(ns.remount, "rw")
        digest = ns.sha256("outcomed.db")
        d.spawn()
        rc, err = d.wait_exit()
        self.assertEqual(rc, 1, "outcomed started on a read-only filesystem:\n" + err)
        self.assertIn(d.db_path, err)
        self.assertEqual(ns.sha256("outcomed.db"), digest)
        return rc, err

    def test_read_only_at_start_says_so(self):
        _, err = self.start_read_only(dur.Sim())
        self.assertRegex(err, r"(?i)read-only|readonly|EROFS",
                         "the refusal does not say that the filesystem is read-only")
        self.assertNotIn("not a usable SQLite database", err)

    def test_read_only_at_start(self):
        """On a filesystem remounted read-only the daemon refuses to start
        and writes nothing; back to rw it starts with every change."""
        d, ns = self.d, self.ns
        sim = dur.Sim()
        self.start_read_only(sim)
        self.assertEqual(ns.remount("rw").returncode, 0)
        d.start()
        with d.client() as c:
            self.assert_state(c, sim, "after the read-only period")
            c.call("start", model="after", task="embed")
        d.stop()


class LockedTest(FaultTestCase):
    """Another process holds the database's write lock: the commit waits the
    busy timeout (5 s), then the batch answers unavailable; once the lock is
    gone the daemon recovers by itself."""

    def test_locked_database(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        sim = dur.Sim()
        c = d.client()
        self.addCleanup(c.close)
        r = dur.Recorder(c, sim)
        dur.drive_mix(r, None, tag="pre")
        con = sqlite3.connect(d.db_path, isolation_level=None, timeout=1)
        self.addCleanup(con.close)
        con.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        ids = c.send_many([("start", {"model": "locked", "task": "code", "trace_id": "lk:1"}),
                           ("ping", None)])
        # Reads on another connection are not held up by the waiting commit.
        with d.client() as c2:
            time.sleep(0.2)
            t1 = time.monotonic()
            s = c2.call("stats")
            self.assertLess(time.monotonic() - t1, 0.5, "a read waited for the locked commit")
            self.assertTrue(s["writable"])
            # Its change joins the batch filling behind the waiting one.
            ids2 = c2.send_many([("start", {"model": "locked", "task": "code", "trace_id": "lk:2"})])
            (m2, err2, _), = c2.recv_many(1, timeout=15)
        replies = c.recv_many(2, timeout=15)
        dt = time.monotonic() - t0
        self.assertEqual([x[0] for x in replies], ids)
        self.assertEqual(m2, ids2[0])
        self.assertIsNotNone(replies[0][1], "a change was acknowledged while the database was "
                             "locked by another process")
        self.assertEqual(replies[0][1]["code"], "unavailable")
        self.assertIsNone(replies[1][1])
        self.assertEqual(err2 and err2["code"], "unavailable")
        self.assertGreaterEqual(dt, 4.0, "the commit did not wait for the lock")
        s = self.assert_reads_work(c)
        self.assertFalse(s["writable"])
        self.assert_state(c, sim, "while locked")
        self.assert_changes_refused(c, sim, "pre:client.id-1")
        self.assertEqual(len(FAULT_LINE.findall(d.stderr())), 1, d.stderr())
        self.assertRegex(d.stderr(), r"(?i)write to .* failed: .*(locked|busy)")
        con.execute("ROLLBACK")
        dt = self.wait_writable(c, timeout=8)
        sys.stderr.write("writable again %.2fs after the lock was released\n" % dt)
        dur.drive_mix(r, None, tag="post")
        self.assert_state(c, sim, "after the lock")
        c.close()
        d.kill()
        d.start()
        with d.client() as c3:
            self.assert_state(c3, sim, "after SIGKILL + restart")
        d.stop()


if __name__ == "__main__":
    harness.main()

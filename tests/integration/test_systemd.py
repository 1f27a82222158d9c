#!/usr/bin/python3
"""outcomed under a service manager, without one running as PID 1:

- socket activation: started by systemd-socket-activate, and by a test that
  holds the listening socket itself (LISTEN_FDS, LISTEN_PID) across two
  daemons, as the socket unit does across restarts; the passed socket is
  never removed, and bad LISTEN_FDS stop the daemon with a clear message;
- sd_notify: a NOTIFY_SOCKET datagram socket of the test sees READY=1 (once
  the state is loaded and the socket listens), STATUS= kept current,
  WATCHDOG=1 with WATCHDOG_USEC, RELOADING=1 / READY=1 on SIGHUP and
  STOPPING=1 on SIGTERM.

Every test runs against OUTCOMED_BIN and, when meson built it (libsystemd
found), OUTCOMED_FALLBACK_BIN: the same daemon without libsystemd, which
speaks both protocols itself.

    /usr/bin/python3 tests/integration/test_systemd.py [--bin PATH]
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, wait_until  # noqa: E402

SSA = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
UNIT_UID = 61020  # stands for the outcomed system user

# Put the listening socket at fd 3, say it is ours, run the daemon.
PASS_FD = ("import os, sys\n"
           "fd = int(sys.argv[1])\n"
           "if fd != 3:\n"
           "    os.dup2(fd, 3)\n"
           "    os.close(fd)\n"
           "os.set_inheritable(3, True)\n"
           "os.environ['LISTEN_FDS'] = sys.argv[2]\n"
           "os.environ['LISTEN_PID'] = sys.argv[3] or str(os.getpid())\n"
           "os.execv(sys.argv[4], sys.argv[4:])\n")


def binaries():
    out = [("libsystemd" if os.environ.get("OUTCOMED_FALLBACK_BIN") else "default",
            harness.daemon_binary())]
    if os.environ.get("OUTCOMED_FALLBACK_BIN"):
        out.append(("fallback", os.environ["OUTCOMED_FALLBACK_BIN"]))
    return out


class BinaryCase(unittest.TestCase):
    binary = None  # set by the per-binary subclasses below

    def daemon(self, **kw):
        d = Daemon(binary=self.binary, **kw)
        self.addCleanup(d.cleanup)
        return d

    def stop_keeping_socket(self, d):
        """SIGTERM; exit 0; the passed socket is still there."""
        d.proc.send_signal(signal.SIGTERM)
        rc, err = d.wait_exit(harness.STOP_TIMEOUT)
        self.assertEqual(rc, 0, "exit status after SIGTERM; stderr:\n" + err)
        st = os.lstat(d.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode),
                        "the socket the service manager passed was removed")
        return err


# --------------------------------------------------------------------------


class SocketActivationTests(BinaryCase):

    def test_systemd_socket_activate(self):
        """systemd-socket-activate binds, waits for the first client, execs
        outcomed with the socket: the daemon serves on it and leaves it."""
        if not os.access(SSA, os.X_OK):
            self.skipTest("no systemd-socket-activate")
        d = self.daemon()
        d.launcher = [SSA, "--listen=" + d.socket_path]
        d.spawn(["--log-level", "debug"])
        # The socket exists before outcomed runs; the first connection
        # starts it and is served.
        self.assertTrue(wait_until(lambda: os.path.exists(d.socket_path), 10))
        with d.client() as c:
            tid = c.call("start", model="m1", task="code")["trace_id"]
            c.call("complete", trace_id=tid, latency_ms=12)
            c.call("outcome", trace_id=tid, kind="accepted", confidence=1.0)
            prof = c.call("query", model="m1")["profiles"]
            self.assertEqual(prof[0]["total_calls"], 1)
        err = self.stop_keeping_socket(d)
        self.assertIn("passed by the service manager", err)
        self.assertNotIn("stale socket", err)

    def _listening_socket(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def _activated(self, d, lsock, nfds="1", pid=""):
        d.launcher = [sys.executable, "-c", PASS_FD, str(lsock.fileno()), nfds, pid]
        d.pass_fds = (lsock.fileno(),)

    def test_socket_outlives_the_daemon(self):
        """As with a socket unit: the socket stays open across a restart,
        a client that connects while no daemon runs is answered by the next
        one, and the state is kept."""
        d = self.daemon()
        lsock = self._listening_socket(d.socket_path)
        os.chmod(d.socket_path, 0o640)
        self._activated(d, lsock)
        d.start()
        with d.client() as c:
            tid = c.call("start", model="m2", task="generate", trace_id="keep:1")["trace_id"]
        self.stop_keeping_socket(d)
        self.assertEqual(stat.S_IMODE(os.lstat(d.socket_path).st_mode), 0o640,
                         "the daemon changed the passed socket's mode")
        # Nobody serves now; the kernel still queues the connection.
        early = d.client()
        self.addCleanup(early.close)
        msgid = early.send_request("query", {"pending": True})
        d.start()
        got, err, res = early.recv_response()
        self.assertEqual(got, msgid)
        self.assertIsNone(err)
        self.assertEqual([p["trace_id"] for p in res["pending"]], [tid])
        self.stop_keeping_socket(d)

    def test_bad_passed_sockets(self):
        d = self.daemon()
        lsock = self._listening_socket(d.socket_path)
        # Two sockets announced: outcomed wants one.
        self._activated(d, lsock, nfds="2")
        d.spawn()
        rc, err = d.wait_exit()
        self.assertEqual(rc, 1, err)
        self.assertIn("LISTEN_FDS", err)
        # A datagram socket is no stream listener.
        dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(dg.close)
        self._activated(d, dg)
        d.spawn()
        rc, err = d.wait_exit()
        self.assertEqual(rc, 1, err)
        self.assertIn("LISTEN_FDS", err)

    def test_like_the_system_unit(self):
        """ExecStart=outcomed with no arguments, as the units run it: the
        socket passed, the database in $STATE_DIRECTORY, the configuration
        in $CONFIGURATION_DIRECTORY, no HOME nor XDG_RUNTIME_DIR, and (as
        root) another user with no new privileges, like User=outcomed."""
        tmp = tempfile.mkdtemp(prefix="outcomed-unit-", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        state, conf = os.path.join(tmp, "state"), os.path.join(tmp, "etc")
        os.mkdir(state, 0o700)
        os.mkdir(conf)
        with open(os.path.join(conf, "outcomed.conf"), "w") as f:
            f.write("[limits]\npending = 77\n")
        path = os.path.join(tmp, "outcomed.sock")
        lsock = self._listening_socket(path)
        os.chmod(path, 0o666)
        n = Notifications(self, os.path.join(tmp, "notify.sock"))
        os.chmod(n.path, 0o666)
        prefix = []
        if os.geteuid() == 0 and shutil.which("setpriv"):
            os.chown(state, UNIT_UID, UNIT_UID)
            prefix = ["setpriv", "--reuid=%d" % UNIT_UID, "--regid=%d" % UNIT_UID,
                      "--clear-groups", "--no-new-privs"]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STATE_DIRECTORY": state,
               "CONFIGURATION_DIRECTORY": conf, "NOTIFY_SOCKET": n.path,
               "WATCHDOG_USEC": "30000000"}
        log = open(os.path.join(tmp, "stderr.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(prefix + [sys.executable, "-c", PASS_FD, str(lsock.fileno()), "1",
                                          "", self.binary or harness.daemon_binary()],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(lsock.fileno(),))

        def stderr():
            with open(log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")

        def reap():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(reap)
        ready = n.wait_for(lambda m: "READY" in m)
        self.assertIsNotNone(ready, "no READY=1; stderr:\n" + stderr())
        with harness.Client(path) as c:
            st = c.call("stats")
            self.assertEqual(st["config"]["file"], os.path.join(conf, "outcomed.conf"))
            self.assertEqual(st["config"]["limits"]["pending"], 77)
            c.call("start", model="m", task="code")
        self.assertTrue(os.path.exists(os.path.join(state, "outcomed.db")), stderr())
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(harness.STOP_TIMEOUT), 0, stderr())
        self.assertTrue(os.path.exists(path), "the passed socket was removed")
        self.assertIsNotNone(n.wait_for(lambda m: "STOPPING" in m, 2), "no STOPPING=1")

    def test_listen_pid_of_another_process(self):
        """LISTEN_FDS meant for another pid are ignored: the daemon binds
        its own socket (and removes it at exit)."""
        d = self.daemon()
        other = os.path.join(d.tmpdir, "other.sock")
        lsock = self._listening_socket(other)
        self._activated(d, lsock, pid="1")
        d.start()
        self.assertIsInstance(d.ping(), str)
        d.stop()  # checks that its own socket is gone
        self.assertTrue(os.path.exists(other))


# --------------------------------------------------------------------------


class Notifications:
    """The test's end of NOTIFY_SOCKET: collects the datagrams."""

    def __init__(self, tc, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        tc.addCleanup(self.sock.close)
        self.messages = []  # [{VAR: VALUE}] in arrival order

    def poll(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        msg = {}
        for line in data.decode().split("\n"):
            if line:
                k, _, v = line.partition("=")
                msg[k] = v
        self.messages.append(msg)
        return msg

    def wait_for(self, pred, timeout=10.0):
        """The first message from now on for which pred is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            msg = self.poll(left)
            if msg is not None and pred(msg):
                return msg

    def count(self, key, seconds):
        """How many messages with key arrive within seconds."""
        n = 0
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return n
            msg = self.poll(left)
            if msg is not None and key in msg:
                n += 1


class NotifyTests(BinaryCase):

    def notified_daemon(self, abstract=False, **env):
        d = self.daemon()
        if abstract:
            name = "outcomed-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            n = Notifications(self, "\0" + name)
            env["NOTIFY_SOCKET"] = "@" + name
        else:
            n = Notifications(self, os.path.join(d.tmpdir, "notify.sock"))
            env["NOTIFY_SOCKET"] = n.path
        d.env = env
        return d, n

    def test_ready_status_watchdog_reload_stopping(self):
        d, n = self.notified_daemon(WATCHDOG_USEC="200000")
        # A first run leaves a pending trace in the database.
        d.env = None
        d.start()
        with d.client() as c:
            c.call("start", model="m", task="embed", trace_id="kept:1")
        d.stop()
        d.env = {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "200000"}
        d.spawn()
        ready = n.wait_for(lambda m: "READY" in m)
        self.assertIsNotNone(ready, "no READY=1; stderr:\n" + d.stderr())
        self.assertEqual(ready["READY"], "1")
        # READY=1 means loaded and listening: the socket answers at once and
        # the status counts the trace loaded from the database.
        self.assertIn("1 pending traces", ready.get("STATUS", ""))
        self.assertIn("0 connections", ready["STATUS"])
        self.assertIn("last write", ready["STATUS"])
        self.assertIsInstance(d.ping(), str)
        # The watchdog: every 100 ms (half of 200 ms).
        self.assertGreaterEqual(n.count("WATCHDOG", 1.0), 4)
        self.assertTrue(all(m["WATCHDOG"] == "1" for m in n.messages if "WATCHDOG" in m))
        # STATUS= follows the connections and the pending traces.
        c1, c2 = d.client(), d.client()
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        c1.call("start", model="m", task="embed", trace_id="new:1")
        st = n.wait_for(lambda m: "2 connections, 2 pending traces" in m.get("STATUS", ""), 5)
        self.assertIsNotNone(st, "STATUS= not updated: %r" % n.messages[-5:])
        c2.close()
        self.assertIsNotNone(
            n.wait_for(lambda m: m.get("STATUS", "").startswith("1 connections"), 5))
        # SIGHUP: RELOADING=1, then READY=1 again.
        d.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(n.wait_for(lambda m: m.get("RELOADING") == "1", 5))
        self.assertIsNotNone(n.wait_for(lambda m: m.get("READY") == "1", 5))
        # SIGTERM: STOPPING=1.
        c1.close()
        d.stop()
        self.assertIsNotNone(n.wait_for(lambda m: "STOPPING" in m, 2), "no STOPPING=1")

    def test_no_watchdog_without_watchdog_usec(self):
        d, n = self.notified_daemon()
        d.spawn()
        self.assertIsNotNone(n.wait_for(lambda m: "READY" in m))
        self.assertEqual(n.count("WATCHDOG", 1.5), 0)
        # STATUS= is still kept current (a timer of one second).
        with d.client():
            self.assertIsNotNone(
                n.wait_for(lambda m: m.get("STATUS", "").startswith("1 connections"), 5))
        d.stop()

    def test_watchdog_meant_for_another_pid(self):
        d, n = self.notified_daemon(WATCHDOG_USEC="100000", WATCHDOG_PID="1")
        d.spawn()
        self.assertIsNotNone(n.wait_for(lambda m: "READY" in m))
        self.assertEqual(n.count("WATCHDOG", 1.0), 0)
        d.stop()

    def test_abstract_notify_socket(self):
        d, n = self.notified_daemon(abstract=True)
        d.spawn()
        self.assertIsNotNone(n.wait_for(lambda m: "READY" in m), "no READY=1 on @socket")
        d.stop()

    def test_no_notify_socket(self):
        """Without NOTIFY_SOCKET nothing is sent and nothing breaks."""
        d = self.daemon()
        d.start()
        self.assertIsInstance(d.ping(), str)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in d.stderr(), 5), d.stderr())
        d.stop()


# One copy of each test class per daemon binary.
for _label, _bin in binaries():
    for _base in (SocketActivationTests, NotifyTests):
        _name = "%s_%s" % (_base.__name__, _label)
        globals()[_name] = type(_name, (_base,), {"binary": _bin})
del SocketActivationTests, NotifyTests, BinaryCase, _base, _label, _bin, _name

if __name__ == "__main__":
    harness.main()

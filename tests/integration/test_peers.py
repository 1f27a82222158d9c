#!/usr/bin/python3
"""Who may connect, and whose traces: clients of other uids, run as root.

- allow_uids / allow_group: a client of a uid that is not allowed gets one
  `forbidden` reply with msgid 0 before anything it sent is read, then the
  connection closes; root, listed uids and the group's members (primary or
  supplementary) get in; a reload that narrows the list keeps open
  connections;
- connections_per_uid;
- SO_PEERCRED: the uid and pid of each connection are logged at debug level,
  and a second uid cannot complete, fail or judge another uid's trace
  (`forbidden`), while root may;
- the unit's main restrictions without systemd: the daemon runs as an
  unprivileged user (setpriv, no new privileges, no capabilities) in a mount
  namespace (unshare -m) where the file system is read-only but for its
  state directory, and works.

The other uids' clients are small Python processes started with
subprocess's user=/group=/extra_groups= (fork, setgroups, setgid, setuid,
exec); the test makes the daemon's directory and socket reachable for them.

    sudo /usr/bin/python3 tests/integration/test_peers.py [--bin PATH]
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, assert_error, wait_until  # noqa: E402

# Ids no account on a test machine uses.
U1, U2, U3, U4, U5, U6 = 61001, 61002, 61003, 61004, 61005, 61006
G = 61500
SANDBOX_UID = 61010

# The client run as another uid: JSON commands in, JSON answers out.
CHILD = r'''
import json, os, socket, sys
import msgpack
conns = {}
unpackers = {}
msgid = [0]

def recv(i, timeout):
    s, u = conns[i], unpackers[i]
    s.settimeout(timeout)
    while True:
        for obj in u:
            return {"msg": obj}
        try:
            data = s.recv(65536)
        except socket.timeout:
            return {"timeout": True}
        except ConnectionResetError:
            return {"closed": True}
        if not data:
            return {"closed": True}
        u.feed(data)

for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    try:
        if op == "connect":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(cmd["path"])
            i = len(conns)
            conns[i] = s
            unpackers[i] = msgpack.Unpacker(raw=False)
            out = {"c": i}
        elif op == "connect_send":
            # Connect and send at once: the bytes wait in the socket before
            # the daemon even accepts.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(cmd["path"])
            s.sendall(msgpack.packb([0, 1, cmd["method"], [cmd["args"]]]))
            i = len(conns)
            conns[i] = s
            unpackers[i] = msgpack.Unpacker(raw=False)
            out = {"c": i}
        elif op == "send":
            msgid[0] += 1
            conns[cmd["c"]].sendall(msgpack.packb(
                [0, msgid[0], cmd["method"], [cmd["args"]] if cmd["args"] else []]))
            out = {"msgid": msgid[0]}
        elif op == "recv":
            out = recv(cmd["c"], cmd.get("timeout", 10))
        elif op == "close":
            conns.pop(cmd["c"]).close()
            out = {}
        elif op == "id":
            out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                   "pid": os.getpid()}
    except OSError as e:
        out = {"oserror": str(e)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
'''



def git_repo(tmpdir):
    """An empty git repository to watch (skips the test without git)."""
    repo = os.path.join(tmpdir, "repo")
    try:
        subprocess.run(["git", "init", "-q", repo], check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        raise unittest.SkipTest("no git to make a repository with")
    return repo

class Peer:
    """A client process running as uid/gid (with supplementary groups)."""

    def __init__(self, tc, path, uid, gid=None, groups=()):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], user=uid,
                                     group=gid if gid is not None else uid,
                                     extra_groups=list(groups), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        tc.addCleanup(self.quit)
        self.id = self._do(op="id")
        tc.assertEqual(self.id["uid"], uid)

    def _do(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the client process died")
        return json.loads(line)

    def quit(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def connect(self):
        r = self._do(op="connect", path=self.path)
        if "oserror" in r:
            raise AssertionError("connect: " + r["oserror"])
        return r["c"]

    def connect_send(self, method, args):
        r = self._do(op="connect_send", path=self.path, method=method, args=args)
        if "oserror" in r:
            raise AssertionError("connect and send: " + r["oserror"])
        return r["c"]

    def send(self, c, method, args=None):
        return self._do(op="send", c=c, method=method, args=args)["msgid"]

    def recv(self, c, timeout=10):
        return self._do(op="recv", c=c, timeout=timeout)

    def call(self, c, method, args=None):
        """(error, result) of one request."""
        msgid = self.send(c, method, args)
        r = self.recv(c)
        if "msg" not in r:
            raise AssertionError("no reply to %s: %r" % (method, r))
        m = r["msg"]
        assert m[0] == 1 and m[1] == msgid, m
        return m[2], m[3]

    def close(self, c):
        self._do(op="close", c=c)


def need_root(tc):
    if os.geteuid() != 0:
        tc.skipTest("needs root (clients of other uids)")


class PeerTest(unittest.TestCase):
    config = ""

    def setUp(self):
        need_root(self)
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)
        self.d.write_config(self.config)
        os.chmod(self.d.tmpdir, 0o755)
        self.d.start(["--log-level", "debug"])
        os.chmod(self.d.socket_path, 0o666)  # the daemon makes it 0660 root:root

    def tearDown(self):
        if self.d.running():
            self.d.stop()

    def peer(self, uid, gid=None, groups=()):
        return Peer(self, self.d.socket_path, uid, gid, groups)

    def assert_refused(self, p, c, code="forbidden"):
        """One reply with msgid 0, then the connection is closed."""
        r = p.recv(c)
        self.assertIn("msg", r, "expected a %s reply, got %r" % (code, r))
        m = r["msg"]
        self.assertEqual(m[0], 1)
        self.assertEqual(m[1], 0, "refusals carry msgid 0")
        self.assertEqual(m[2]["code"], code, m)
        self.assertIsNone(m[3])
        self.assertEqual(p.recv(c, timeout=5), {"closed": True})

    def assert_allowed(self, p):
        c = p.connect()
        err, res = p.call(c, "ping")
        self.assertIsNone(err)
        self.assertIsInstance(res["version"], str)
        return c

    def pending_ids(self):
        with self.d.client() as c:
            return [t["trace_id"] for t in c.call("query", pending=True)["pending"]]


class AllowUidsTest(PeerTest):
    config = "[daemon]\nallow_uids = %d, %d\n" % (U1, U6)

    def test_listed_uids_get_in_others_are_refused(self):
        p1 = self.peer(U1)
        self.assert_allowed(p1)
        self.assert_allowed(self.peer(U6))
        self.assertIsInstance(self.d.ping(), str)  # root always
        # Refused before any request is read: nothing sent yet...
        p2 = self.peer(U2)
        self.assert_refused(p2, p2.connect())
        # ...or a request sent at once, which is never handled.
        # (The daemon is stopped meanwhile, so that the request is surely in
        # the socket before the connection is even accepted.)
        self.d.proc.send_signal(signal.SIGSTOP)
        try:
            c = p2.connect_send("start", {"model": "m", "task": "code", "trace_id": "sneaky:1"})
        finally:
            self.d.proc.send_signal(signal.SIGCONT)
        self.assert_refused(p2, c)
        self.assertNotIn("sneaky:1", self.pending_ids())
        with self.d.client() as rc:
            self.assertGreaterEqual(rc.call("stats")["connections_refused_total"], 2)
        log = self.d.stderr()
        self.assertIn("from uid %d (pid %d) refused" % (U2, p2.id["pid"]), log)
        # SO_PEERCRED at debug level: uid and pid of every connection.
        self.assertIn("from uid %d, pid %d" % (U1, p1.id["pid"]), log)

    def test_reload_narrowing_keeps_open_connections(self):
        p6 = self.peer(U6)
        c6 = self.assert_allowed(p6)
        self.d.write_config("[daemon]\nallow_uids = %d\n" % U1)
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "SIGHUP: reloaded" in self.d.stderr(), 5))
        err, _ = p6.call(c6, "ping")
        self.assertIsNone(err, "an open connection was dropped by the reload")
        self.assert_refused(p6, p6.connect())
        self.assert_allowed(self.peer(U1))
        # And widening again lets U6 in.
        self.d.write_config("")
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.d.stderr().count("SIGHUP: reloaded") == 2, 5))
        self.assert_allowed(p6)


class AllowGroupTest(PeerTest):
    config = "[daemon]\nallow_group = %d\nallow_uids = %d\n" % (G, U6)

    def test_members_of_the_group(self):
        self.assert_allowed(self.peer(U3, U3, groups=[G]))   # supplementary
        self.assert_allowed(self.peer(U4, G))                # primary
        self.assert_allowed(self.peer(U6))                   # listed
        p5 = self.peer(U5, U5, groups=[G + 1])
        self.assert_refused(p5, p5.connect())


class PerUidLimitTest(PeerTest):
    config = "[limits]\nconnections_per_uid = 2\n"

    def test_connections_per_uid(self):
        p1 = self.peer(U1)
        a = self.assert_allowed(p1)
        self.assert_allowed(p1)
        self.assert_refused(p1, p1.connect(), code="overloaded")
        # Other uids are not affected.
        p2 = self.peer(U2)
        self.assert_allowed(p2)
        self.assert_allowed(p2)
        self.assertIsInstance(self.d.ping(), str)
        # A slot of U1 frees up when one of its connections closes.
        p1.close(a)

        def reconnects():
            c = p1.connect()
            r = p1.recv(c, timeout=0.3)
            if "timeout" in r:  # no refusal came: admitted
                return True
            return False
        self.assertTrue(wait_until(reconnects, 5))


class TraceOwnershipTest(PeerTest):

    def test_another_uid_cannot_touch_a_trace(self):
        p1, p2 = self.peer(U1), self.peer(U2)
        c1, c2 = p1.connect(), p2.connect()
        err, res = p1.call(c1, "start", {"model": "m", "task": "code", "trace_id": "own:1"})
        self.assertIsNone(err)
        err, res = p1.call(c1, "start", {"model": "m", "task": "generate"})
        other = res["trace_id"]
        for method, args in [
                ("complete", {"trace_id": "own:1", "latency_ms": 5}),
                ("fail", {"trace_id": "own:1"}),
                ("outcome", {"trace_id": "own:1", "kind": "accepted", "confidence": 1.0}),
                ("outcome", {"actions": [{"trace_id": "own:1", "success": True,
                                          "confidence": 1.0, "output": "x"}]}),
                ("start", {"model": "m", "task": "code", "trace_id": "own:1"})]:
            err, res = p2.call(c2, method, args)
            self.assertIsNotNone(err, "%s of another uid's trace succeeded" % method)
            self.assertEqual(err["code"], "forbidden", (method, err))
        self.assertEqual(sorted(self.pending_ids()), sorted(["own:1", other]))
        # The owner may; so may root.
        err, _ = p1.call(c1, "complete", {"trace_id": "own:1", "latency_ms": 5})
        self.assertIsNone(err)
        with self.d.client() as rc:
            rc.call("fail", trace_id=other)
            rc.call("outcome", trace_id="own:1", kind="accepted", confidence=0.5)
        self.assertEqual(self.pending_ids(), [])


# --------------------------------------------------------------------------

# In a new mount namespace: the file system read-only (remounted), but for
# the state directory (bound over itself, writable); proof that it is; then
# the daemon as an unprivileged user, without new privileges or
# capabilities.
SANDBOX = r'''
set -eu
state=$1 ro=$2 uid=$3
shift 3
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
        case "$m" in
        /|/etc*|/usr*|/var*|/tmp*|/home*|/root*|/srv*|/opt*|/work*|/run*)
                mount -o remount,bind,ro "$m" 2>/dev/null || true ;;
        esac
done
mount --bind "$state" "$state"
mount -o remount,bind,rw "$state"   # a bind mount starts with its source's ro
if touch "$ro/probe" 2>/dev/null; then
        echo "sandbox: $ro is writable" >&2
        exit 99
fi
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all -- "$@"
'''


class SandboxTest(unittest.TestCase):
    """The unit's main restrictions (ProtectSystem=strict, StateDirectory=,
    User=, NoNewPrivileges=, no capabilities), reproduced without systemd."""

    def setUp(self):
        need_root(self)
        for tool in ("unshare", "setpriv", "mount"):
            if not shutil.which(tool):
                self.skipTest("no %s" % tool)
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("unshare -m does not work here: %s" % probe.stderr.decode().strip())

    def sandboxed(self, db_in_state=True):
        d = Daemon()
        self.addCleanup(d.cleanup)
        os.chmod(d.tmpdir, 0o755)
        state = os.path.join(d.tmpdir, "state")
        os.mkdir(state, 0o700)
        os.chown(state, SANDBOX_UID, SANDBOX_UID)
        repo = git_repo(d.tmpdir)
        d.write_config("[git]\nrepo = %s\n" % repo)
        os.chmod(d.config_path, 0o644)
        d.socket_path = os.path.join(state, "outcomed.sock")
        d.db_path = os.path.join(state if db_in_state else d.tmpdir, "outcomed.db")
        d.launcher = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", SANDBOX,
                      "sandbox", state, d.tmpdir, str(SANDBOX_UID)]
        # As for User=outcomed, whose home is its state directory (sysusers.d).
        d.env = {"HOME": state}
        return d, state, repo

    def test_unprivileged_with_a_read_only_view(self):
        d, state, repo = self.sandboxed()
        d.start()
        pid = d.proc.pid
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        self.assertEqual(status["Uid"].split()[0], str(SANDBOX_UID))
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        self.assertEqual(int(status["CapBnd"], 16), 0)
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % pid), os.readlink("/proc/self/ns/mnt"))
        with d.client() as c:
            t = c.call("start", model="m", task="generate")["trace_id"]
            c.call("complete", trace_id=t, latency_ms=10)
            c.call("outcome", trace_id=t, kind="accepted", confidence=0.9)
            c.call("start", model="m", task="code", repo=repo, files=["a.c"])
            self.assertTrue(wait_until(lambda: c.call("stats")["commits_total"] > 0, 5))
            s = c.call("stats")
            self.assertEqual(s["commit_errors_total"], 0, d.stderr())
            self.assertTrue(s["writable"])
        d.stop()
        st = os.stat(d.db_path)
        self.assertEqual(st.st_uid, SANDBOX_UID)
        # The state survives a restart in the sandbox.
        d.start()
        with d.client() as c:
            self.assertEqual(c.call("query", model="m")["profiles"][0]["total_calls"], 1)
        d.stop()

    def test_nothing_outside_the_state_directory_is_writable(self):
        d, state, repo = self.sandboxed(db_in_state=False)
        d.spawn()
        rc, err = d.wait_exit()
        self.assertEqual(rc, 1, err)
        self.assertIn(d.db_path, err)
        self.assertFalse(os.path.exists(d.db_path))


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""Every limit of the [limits] section (daemon/config.c), set in the
configuration and enforced at exactly its value, against a real outcomed.

test_errors.py already covers the defaults of the request limits (model id,
text, output, files, paths, actions, message size) and, with a small
configuration, `pending`, `models` and `connections`; this file adds what it
lacks:

  - every limit key refused at start outside its range (the file and line
    named), and accepted at both ends of it;
  - message_bytes, model_bytes, text_bytes, output_bytes, files, path_bytes
    and list_entries set small: a value of exactly the limit passes, one byte
    or entry more is refused, and nothing changes; an error message quoting a
    long string cuts it on a character boundary;
  - reply_buffer_bytes: a client that does not read its replies is paused
    (the daemon stops dispatching its requests, and answers them all in
    order once it reads), and past the limit it is dropped, while the others
    carry on;
  - file descriptors running out (a connection storm against a low
    RLIMIT_NOFILE): the daemon stops accepting for a while, does not crash,
    serves the connections it has, and accepts again once some close;
  - unfinished messages: 256 connections each sending all but the last
    byte of a 4 MiB message leave the daemon's RSS under 256 MiB and
    another client served at once (partial_bytes drops the connections
    holding the most), a message not finished within message_timeout_ms
    closes its connection, and a normal large message still goes through.

    /usr/bin/python3 tests/integration/test_limits.py [--bin PATH]
"""

import os
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_error, assert_ok, pack  # noqa: E402

U64_MAX = 2 ** 64 - 1

# [limits] keys: (minimum, maximum) as daemon/config.c's table has them.
LIMIT_RANGES = {
    "message_bytes": (1024, 1 << 30),
    "model_bytes": (1, 65536),
    "text_bytes": (0, 1 << 24),
    "output_bytes": (0, 1 << 30),
    "files": (0, 1 << 20),
    "path_bytes": (1, 65536),
    "list_entries": (1, 1 << 24),
    "models": (1, U64_MAX),
    "pending": (1, U64_MAX),
    "connections": (1, 1 << 24),
    "reply_buffer_bytes": (4096, U64_MAX),
    "partial_bytes": (65536, U64_MAX),
    "message_timeout_ms": (10, 86400000),
}


def start(c, model="m", task="generate", **kw):
    args = {"model": model, "task": task}
    args.update(kw)
    return c.call("start", args)["trace_id"]


def state(c):
    return c.call("query")["profiles"], c.call("query", pending=True)["pending"]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# --------------------------------------------------------------------------
# The configuration


class ConfigRangeTest(unittest.TestCase):
    """Each limit outside its range stops the daemon at start, naming the
    file, the line and the key; each end of every range is accepted."""

    def run_daemon(self, text):
        d = harness.Daemon(config=text)
        self.addCleanup(d.cleanup)
        return d

    def test_out_of_range_refused(self):
        for key, (lo, hi) in sorted(LIMIT_RANGES.items()):
            bad = ["-1", "ten", ""]
            if lo > 0:
                bad.append(str(lo - 1))
            bad.append(str(hi + 1))
            for value in bad:
                with self.subTest(key=key, value=value):
                    d = self.run_daemon("[limits]\n# a comment line\n%s = %s\n" % (key, value))
                    d.spawn()
                    rc, err = d.wait_exit()
                    self.assertNotEqual(rc, 0, "%s = %r was accepted" % (key, value))
                    self.assertIn("%s:3" % d.config_path, err,
                                  "the error should name the file and line: %r" % err)
                    self.assertIn(key, err)
                    self.assertFalse(os.path.exists(d.socket_path))

    def test_range_ends_accepted(self):
        for end in (0, 1):
            text = "[limits]\n" + "".join("%s = %d\n" % (k, r[end])
                                          for k, r in sorted(LIMIT_RANGES.items()))
            with self.subTest(ends="minimums" if end == 0 else "maximums"):
                d = self.run_daemon(text)
                d.start()
                # connections = 1: the start-up probe may hold the one slot
                # for a moment.
                self.assertTrue(harness.wait_until(lambda: _can_ping(d)),
                                "no ping answered with every limit at its %s"
                                % ("minimum" if end == 0 else "maximum"))
                d.stop()


# --------------------------------------------------------------------------
# Request limits, set small


class Base(harness.DaemonTestCase):
    def expect_error(self, c, method, args, code="bad_request", names=None):
        return assert_error(self, c.request(method, args), code, message_contains=names)


class MessageBytesTest(Base):
    config = "[limits]\nmessage_bytes = 2048\n"

    def message_of_size(self, size, msgid):
        def build(n):
            return pack([0, msgid, "start", [{"model": "big", "task": "generate",
                                               "reason": "r" * n}]])
        data = build(size - len(build(1000)) + 1000)
        self.assertEqual(len(data), size)
        return data

    def test_exactly_the_limit_is_answered(self):
        c = self.client()
        c.send_raw(self.message_of_size(2048, 5))
        got, err, res = c.recv_response()
        self.assertEqual(got, 5)
        self.assertIsNone(err, "a 2048-byte message under message_bytes = 2048: %r" % (err,))
        self.assertIn("version", c.call("ping"))

    def test_one_byte_over_closes_after_earlier_replies(self):
        c = self.client()
        head = c.request_bytes("ping", None, 1)[1]
        c.send_raw(head + self.message_of_size(2049, 2) + c.request_bytes("ping", None, 3)[1])
        self.assertEqual(c.recv_response()[:2], (1, None))
        assert_error(self, c.recv_response(), "too_large", msgid=0, message_contains="2048")
        c.expect_closed()
        with self.d.client() as c2:
            self.assertEqual(c2.call("query", pending=True)["pending"], [],
                             "the oversized start must not be applied")

    def test_declared_size_over_limit_refused_early(self):
        # A str header declaring 4096 bytes: refused without the bytes.
        c = self.client()
        c.send_raw(b"\x94\x00\x01\xa5start\x91\x81\xa6reason\xda\x10\x00")
        assert_error(self, c.recv_response(), "too_large", msgid=0)
        c.expect_closed()
        self.assert_alive()

    def test_stats_reports_it(self):
        c = self.client()
        self.assertEqual(c.call("stats")["max_message_bytes"], 2048)


class FieldLimitsTest(Base):
    """model_bytes, text_bytes, output_bytes, files, path_bytes and
    list_entries set small: the limit passes, one more is refused."""

    def make_config(self, tmpdir):
        # A watched repository whose path is exactly path_bytes (16) long.
        self.repo = tempfile.mkdtemp(prefix="ocl", dir="/tmp")
        self.addCleanup(os.rmdir, self.repo)
        self.assertEqual(len(self.repo), 16, self.repo)
        return ("[git]\nrepo = %s\n[limits]\nmodel_bytes = 8\ntext_bytes = 10\n"
                "output_bytes = 16\nfiles = 2\npath_bytes = 16\nlist_entries = 3\n" % self.repo)

    def setUp(self):
        super().setUp()
        self.c = self.client()
        self.t = start(self.c, model="m" * 8, task="code", trace_id="lim-1", reason="r" * 10)

    def refused(self, method, args, names):
        before = state(self.c)
        self.expect_error(self.c, method, args, "bad_request", names)
        self.assertEqual(state(self.c), before, "a refused %s changed state" % method)

    def test_model_bytes(self):
        c = self.c
        start(c, model="\u00e9" * 4)                     # 8 bytes of UTF-8
        self.refused("start", {"model": "m" * 9, "task": "generate"}, "model")
        self.refused("start", {"model": "\u00e9" * 4 + "x", "task": "generate"}, "model")
        self.refused("query", {"model": "m" * 9}, "model")
        self.assertEqual(len(c.call("query", model="m" * 8)["profiles"]), 0)

    def test_text_bytes(self):
        c = self.c
        self.refused("start", {"model": "m", "task": "generate", "reason": "r" * 11}, "reason")
        t = start(c, model="m", reason="\u00e9" * 5)     # 10 bytes
        self.refused("fail", {"trace_id": t, "error": "e" * 11}, "error")
        c.call("fail", trace_id=t, error="e" * 10)

    def test_output_bytes(self):
        c = self.c
        self.refused("complete", {"trace_id": self.t, "latency_ms": 1, "output": "o" * 17},
                     "output")
        self.refused("outcome", {"actions": [{"trace_id": self.t, "success": True,
                                              "confidence": 0.5, "output": "o" * 17}]}, "output")
        c.call("complete", trace_id=self.t, latency_ms=1, output="o" * 16)
        r = c.call("outcome", actions=[{"trace_id": self.t, "success": True, "confidence": 0.5,
                                        "output": "o" * 16}])
        self.assertEqual([x["trace_id"] for x in r["results"]], [self.t])

    def test_files_and_path_bytes(self):
        c = self.c
        args = {"model": "m", "task": "code", "repo": self.repo}
        self.refused("start", dict(args, files=["a.c", "b.c", "c.c"]), "files")
        self.refused("start", dict(args, files=["f" * 17]), "files[0]")
        self.refused("start", dict(args, files=["a.c", "d/" + "f" * 15]), "files[1]")
        self.refused("start", dict(args, repo=self.repo + "/"), "repo")     # 17 bytes
        t = start(c, files=["a.c", "f" * 16], **args)
        p = [x for x in c.call("query", pending=True)["pending"] if x["trace_id"] == t]
        self.assertEqual(p[0]["files"], ["a.c", "f" * 16])
        self.assertEqual(p[0]["repo"], self.repo)

    def test_list_entries(self):
        c = self.c
        act = {"trace_id": "", "success": True, "confidence": 0.5}
        self.refused("outcome", {"actions": [act] * 4}, "actions")
        self.assertEqual(c.call("outcome", actions=[act] * 3)["results"], [])


class QuotedTextTest(Base):
    """An error message that quotes a long client string cuts it on a
    character boundary: replies are valid UTF-8 (the contract's text), or a
    strict client cannot even read the error.  (path_bytes at its default:
    rpc.c quotes at most 200 bytes of an unwatched repo path.)"""

    def test_cut_quote_is_valid_utf8(self):
        for pad in range(4):
            repo = "/" + "x" * pad + "\u00e9" * 125        # 2-byte characters across byte 200
            with self.subTest(pad=pad):
                c = self.client()
                err = assert_error(self, c.request("start", {"model": "m", "task": "code",
                                                             "repo": repo}), "bad_request")
                self.assertIn("repo", err["message"])
        self.assert_alive()


# --------------------------------------------------------------------------
# reply_buffer_bytes: clients that do not read


def fill_pending(c, n, reason_bytes=4096):
    """n pending traces with long reasons: each `query pending` reply is
    then about n * (reason_bytes + 200) bytes."""
    for i in range(n):
        start(c, model="R" * 64, reason="r" * reason_bytes, trace_id="big-%d" % i)


def reply_size(c):
    msgid, data = c.request_bytes("query", {"pending": True})
    c.send_raw(data)
    obj, raw = c.recv_raw()
    return len(raw)


class ReplyBufferPauseTest(Base):
    """Replies piling up unread past the soft mark (min(limit, 4 MiB)): the
    daemon stops dispatching the client's requests (and so stops reading
    them); once the client reads, every request is answered, in order."""

    config = "[limits]\nreply_buffer_bytes = 16777216\n"   # 16 MiB: soft mark 4 MiB

    def test_unread_replies_pause_dispatch(self):
        c = self.client()
        fill_pending(c, 30)
        size = reply_size(c)
        self.assertGreater(size, 100000)
        requests = 200                  # ~25 MB of replies if all were sent
        calls = [0]

        def processed():
            calls[0] += 1               # each stats call is one request of c's
            return c.call("stats")["requests_total"]
        base = processed()
        hog = self.d.client()
        self.addCleanup(hog.close)
        ids = hog.send_many([("query", {"pending": True})] * requests)
        # Let the daemon run until it stops dispatching the hog's requests.
        last, t0 = None, time.monotonic()
        while time.monotonic() - t0 < 20 * harness.TIMEOUT_SCALE:
            time.sleep(0.3)
            now = processed() - calls[0]
            if now == last:
                break
            last = now
        s1 = processed() - calls[0]
        time.sleep(0.5)
        s2 = processed() - calls[0]
        self.assertEqual(s2, s1, "the daemon kept dispatching an unread client's requests")
        answered = s1 - (base - 1)
        self.assertLess(answered, requests * 0.8,
                        "the daemon answered %d of %d requests nobody read" % (answered, requests))
        self.assertEqual(c.call("stats")["connections"], 2, "a paused client must not be dropped")
        # The hog reads: everything comes, in order, complete.
        got = []
        for _ in range(requests):
            msgid, err, res = hog.recv_response(timeout=30 * harness.TIMEOUT_SCALE)
            self.assertIsNone(err)
            self.assertEqual(len(res["pending"]), 30)
            got.append(msgid)
        self.assertEqual(got, ids)
        self.assertIn("version", hog.call("ping"))


class RequestsInFlightTest(Base):
    """requests_in_flight bounds what one connection has read and not yet
    had answered: with slow commits and a pipelined burst, the daemon reads
    it a few at a time, and every request is still answered, in order."""

    config = "[limits]\nrequests_in_flight = 4\n[store]\ndebug_commit_delay_ms = 20\n"

    def test_pipelined_burst_is_read_a_few_at_a_time(self):
        c = self.client()
        calls = [("start", {"model": "f", "task": "embed", "trace_id": "f:%d" % i})
                 for i in range(60)]
        t0 = time.monotonic()
        ids = c.send_many(calls)
        for i in range(20):  # notifications are changes too: marks in flight
            c.notify("start", {"model": "f", "task": "embed", "trace_id": "n:%d" % i})
        got = c.recv_many(len(ids), timeout=30 * harness.TIMEOUT_SCALE)
        self.assertEqual([g[0] for g in got], ids)
        self.assertTrue(all(g[1] is None for g in got), got[:3])
        # At most 4 in flight, each batch waiting 20 ms: at least 60 / 4
        # commits, so the burst took 15 x 20 ms at the very least.
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertGreaterEqual(c.call("stats")["commits_total"], 15)
        pending = c.call("query", pending=True, model="f")["pending"]
        self.assertEqual(len(pending), 80)


class ReplyBufferDropTest(Base):
    """Past reply_buffer_bytes of unread replies the client is dropped; the
    daemon and the other clients carry on."""

    config = "[limits]\nreply_buffer_bytes = 65536\n"

    def test_unread_replies_past_the_limit_drop_the_client(self):
        c = self.client()
        fill_pending(c, 30)
        self.assertGreater(reply_size(c), 65536)
        hog = self.d.client()
        self.addCleanup(hog.close)
        hog.send_many([("query", {"pending": True})] * 50)
        # The hog is gone from the daemon's side while it still holds its
        # end open: only c is connected.
        self.assertTrue(harness.wait_until(lambda: c.call("stats")["connections"] == 1,
                                           timeout=10 * harness.TIMEOUT_SCALE),
                        "a client with more than reply_buffer_bytes unread was not dropped")
        # What it can still read ends early: fewer replies than requests.
        n = 0
        try:
            while True:
                hog.recv_response(timeout=5 * harness.TIMEOUT_SCALE)
                n += 1
        except harness.ConnectionClosed:
            pass
        self.assertLess(n, 50)
        self.assertIn("dropped", self.d.stderr())
        self.assertEqual(len(c.call("query", pending=True)["pending"]), 30)
        self.assert_alive()


# --------------------------------------------------------------------------
# Unfinished messages: partial_bytes and message_timeout_ms


def vm_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS for pid %d" % pid)


def asan(pid):
    """True when the daemon runs under ASan, whose quarantine and shadow
    memory are not the daemon's own."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def big_complete(msgid, trace_id, size):
    """A `complete` of exactly `size` bytes (its output fills it)."""
    def build(n):
        return pack([0, msgid, "complete", [{"trace_id": trace_id, "latency_ms": 1,
                                              "output": "o" * n}]])
    return build(size - len(build(70000)) + 70000)


def raw_socket(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * harness.TIMEOUT_SCALE)
    s.connect(d.socket_path)
    return s


def send_quietly(s, data):
    """sendall, but a connection the daemon dropped meanwhile is fine."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


class StalledMessagesTest(Base):
    """256 connections of one uid, each with all but the last byte of a
    4 MiB message sent: the daemon keeps at most partial_bytes (64 MiB by
    default) of them, dropping the connections that hold the most; its RSS
    stays under 256 MiB (it was over 1 GiB), another connection's ping is
    answered at once, and a whole 4 MiB message still goes through."""

    config = ("[limits]\nconnections_per_uid = 1024\noutput_bytes = 4194304\n"
              "message_timeout_ms = 600000\n")
    N = 256
    SIZE = 4 << 20

    def test_stalled_connections_hold_bounded_memory(self):
        # (Under ASan the RSS checks are skipped, stats' partial_bytes is
        # still checked.)
        if harness.WRAPPER:
            self.skipTest("RSS under a tool wrapping the daemon says nothing")
        c = self.client()
        pid = self.d.proc.pid
        tid = start(c, model="big", trace_id="big-1")
        stalled = big_complete(1, "nobody", self.SIZE)[:-1]
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(self.N):
            s = raw_socket(self.d)
            socks.append(s)
            send_quietly(s, stalled)
        # Every stalled byte is in the daemon or refused by now: sendall
        # returned, and the daemon reads each connection to its end.
        st = c.call("stats")
        self.assertLessEqual(st["partial_bytes"], 64 << 20)
        self.assertGreaterEqual(st["partial_bytes"], (64 << 20) - self.SIZE,
                                "the budget should be nearly full of stalled messages")
        kept = (64 << 20) // self.SIZE
        self.assertGreaterEqual(st["partial_drops_total"], self.N - kept - 1)
        self.assertLessEqual(st["connections"], kept + 2)
        self.assertEqual(st["message_timeouts_total"], 0)
        rss = vm_rss_mib(pid)
        sys.stderr.write("stalled: VmRSS %.0f MiB with %d stalled messages\n" % (rss, self.N))
        if not asan(pid):
            self.assertLess(rss, 256, "RSS %.0f MiB with %d stalled messages" % (rss, self.N))
        # Another connection is served at once.
        with self.d.client() as other:
            t0 = time.monotonic()
            other.call("ping")
            self.assertLess(time.monotonic() - t0, 0.5 * harness.TIMEOUT_SCALE)
        # A dropped connection was told why, with msgid 0.
        told = 0
        for s in socks:
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
            except OSError:
                continue
            told += b"overloaded" in data and b"partial_bytes" in data
        self.assertGreater(told, 0)
        # A whole 4 MiB message still goes through beside them.
        c.send_raw(big_complete(77, tid, self.SIZE))
        got, err, res = c.recv_response()
        self.assertEqual(got, 77)
        self.assertIsNone(err, "a 4 MiB complete beside stalled messages: %r" % (err,))
        self.assertEqual(res["trace_id"], tid)
        if not asan(pid):
            self.assertLess(vm_rss_mib(pid), 256)
        self.assertIn("partial_bytes", self.d.stderr())


class PartialBudgetTest(Base):
    """Past partial_bytes the connection holding the most is dropped with
    `overloaded` (msgid 0); the others keep their bytes and finish."""

    config = "[limits]\nmessage_bytes = 65536\npartial_bytes = 131072\n"

    def test_the_largest_holder_is_dropped(self):
        c = self.client()
        tids = {name: start(c, model="m", trace_id="t-" + name) for name in "abc"}
        msgs = {name: big_complete(i + 1, tids[name], 65000) for i, name in enumerate("abc")}
        cl = {name: self.client() for name in "abc"}
        for name, part in (("a", 60000), ("b", 50000)):
            cl[name].send_raw(msgs[name][:part])
        self.assertTrue(harness.wait_until(lambda: c.call("stats")["partial_bytes"] == 110000),
                        "partial_bytes: %r" % c.call("stats")["partial_bytes"])
        self.assertEqual(c.call("stats")["partial_drops_total"], 0)
        cl["c"].send_raw(msgs["c"][:40000])  # 150,000 > 131,072: a goes
        assert_error(self, cl["a"].recv_response(), "overloaded", msgid=0,
                     message_contains="partial_bytes")
        cl["a"].expect_closed()
        st = c.call("stats")
        self.assertEqual(st["partial_drops_total"], 1)
        self.assertEqual(st["partial_bytes"], 90000)
        # b and c finish their messages and are answered.
        for name, sent in (("b", 50000), ("c", 40000)):
            cl[name].send_raw(msgs[name][sent:])
            got, err, res = cl[name].recv_response()
            self.assertEqual(got, "abc".index(name) + 1)
            self.assertIsNone(err)
            self.assertEqual(res["trace_id"], tids[name])
        self.assertEqual(c.call("stats")["partial_bytes"], 0)


class MessageTimeoutTest(Base):
    """A message must end within message_timeout_ms of its first byte; an
    idle connection (no message begun) is not timed."""

    config = "[limits]\nmessage_timeout_ms = 300\n"

    def test_stalled_message_closes_the_connection(self):
        c = self.client()
        idle = self.client()
        stalled = self.client()
        whole = pack([0, 9, "ping", []])
        t0 = time.monotonic()
        stalled.send_raw(whole + whole[:-1])  # one answered, one stalled
        self.assertEqual(stalled.recv_response()[:2], (9, None))
        assert_error(self, stalled.recv_response(), "too_large", msgid=0,
                     message_contains="message_timeout_ms")
        stalled.expect_closed()
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.29)
        self.assertLess(took, 3 * harness.TIMEOUT_SCALE)
        st = c.call("stats")
        self.assertEqual(st["message_timeouts_total"], 1)
        self.assertEqual(st["partial_bytes"], 0)
        # A connection that began no message was not timed out.
        time.sleep(0.5)
        self.assertIn("version", idle.call("ping"))
        self.assertEqual(c.call("stats")["message_timeouts_total"], 1)

    def test_reload_changes_it(self):
        c = self.client()
        self.d.write_config("[limits]\nmessage_timeout_ms = 60000\npartial_bytes = 1048576\n")
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(
            lambda: c.call("stats")["config"]["limits"]["message_timeout_ms"] == 60000),
            "message_timeout_ms not reloaded")
        self.assertEqual(c.call("stats")["config"]["limits"]["partial_bytes"], 1048576)
        data = pack([0, 4, "ping", []])
        c.send_raw(data[:3])
        time.sleep(0.6)  # twice the old limit
        c.send_raw(data[3:])
        self.assertEqual(c.recv_response()[:2], (4, None))
        self.assertEqual(c.call("stats")["message_timeouts_total"], 0)

    def test_slow_but_finished_in_time_goes_through(self):
        c = self.client()
        data = pack([0, 4, "ping", []])
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            time.sleep(0.02)  # every byte late, the whole within 300 ms
        self.assertEqual(c.recv_response()[:2], (4, None))
        # Each new message has its own clock: ten in a row, 150 ms apart.
        for i in range(10):
            c.send_raw(data[:5])
            time.sleep(0.15)
            c.send_raw(data[5:])
            self.assertEqual(c.recv_response()[:2], (4, None))
        self.assertEqual(c.call("stats")["message_timeouts_total"], 0)


# --------------------------------------------------------------------------
# File descriptors running out


class LowFdDaemon(harness.Daemon):
    """A daemon started under `prlimit --nofile=N`."""

    nofile = 48

    def argv(self, extra=()):
        return ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--"] + \
            super().argv(extra)


class FdExhaustionTest(Base):
    """A connection storm past RLIMIT_NOFILE: accept fails with EMFILE; the
    daemon must neither crash nor spin, must keep serving the connections it
    has, and must accept again once some close.  (The connections limit is
    far above the fd limit here.)"""

    start_daemon = False

    def setUp(self):
        if harness.WRAPPER:
            self.skipTest("a tool wrapping the daemon needs descriptors of its own")
        super().setUp()
        self.d = LowFdDaemon()
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def test_storm_past_the_fd_limit(self):
        pid = self.d.proc.pid
        first = self.client()
        t = start(first, model="fd", trace_id="fd-1")
        base_fds = fd_count(pid)
        storm = []
        for _ in range(LowFdDaemon.nofile + 40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(self.d.socket_path)
            except OSError:
                s.close()
                break
            storm.append(s)
        self.addCleanup(lambda: [s.close() for s in storm])
        for s in storm:
            try:
                s.sendall(pack([0, 1, "ping", []]))
            except OSError:
                pass
        answered = refused = 0
        for s in storm:
            try:
                data = s.recv(256)
                if data:
                    answered += 1
                    refused += b"overloaded" in data
            except OSError:
                pass
        self.d.check_alive()
        # Near its descriptor limit the daemon refuses with `overloaded`
        # (it keeps a reserve for its database); past it libuv closes what
        # it cannot accept.  Either way some of the storm was turned away.
        self.assertTrue(refused or answered < len(storm),
                        "no descriptor ever ran out: raise the storm")
        # The connection it had still works, state changes included.
        self.assertIn("version", first.call("ping"))
        first.call("complete", trace_id=t, latency_ms=5)
        # CPU: the daemon must not spin on a failing accept.
        ticks = cpu_ticks(pid)
        time.sleep(1.0)
        self.assertLess(cpu_ticks(pid) - ticks, 50, "the daemon spins while it cannot accept")
        for s in storm:
            s.close()
        storm.clear()
        # It accepts again, and its descriptors come back to what they were.
        self.assertTrue(harness.wait_until(lambda: _can_ping(self.d), timeout=10),
                        "no new connection accepted after the storm ended")
        self.assertTrue(harness.wait_until(lambda: fd_count(pid) <= base_fds, timeout=10),
                        "descriptors leaked: %d, was %d" % (fd_count(pid), base_fds))
        r = first.call("outcome", trace_id=t, kind="accepted", confidence=1.0)
        self.assertIs(r["success"], True)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def _can_ping(d):
    try:
        d.ping()
        return True
    except Exception:  # noqa: BLE001
        return False


if __name__ == "__main__":
    harness.main()

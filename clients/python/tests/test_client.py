#!/usr/bin/python3
"""The Python client (clients/python/outcomed) against a real outcomed.

Every method end to end, the error classes and codes, the timing context
manager, fail-open mode (no daemon, a daemon that stops or hangs, the
bounded backoff), notifications, socket resolution and sharing a client
between threads.  The daemon is started by tests/integration/harness.py.

    /usr/bin/python3 clients/python/tests/test_client.py [--bin build/daemon/outcomed]

meson runs it with OUTCOMED_BIN set and clients/python on PYTHONPATH.
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.dirname(HERE)
SOURCE_ROOT = os.path.dirname(os.path.dirname(CLIENT_DIR))
sys.path.insert(0, CLIENT_DIR)
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))

import harness  # noqa: E402
import outcomed  # noqa: E402

FAST = 0.05          # the fail-open timeout used here, seconds
# A fail-open call must return in about its timeout; this is the slack
# allowed for a loaded machine (or a daemon under valgrind).
SLACK = 0.5 * harness.TIMEOUT_SCALE


def wait_for(pred, timeout=5.0 * harness.TIMEOUT_SCALE):
    """Poll pred until it is truthy (bounded); return its last value."""
    return harness.wait_until(pred, timeout=timeout, interval=0.02)


def profile(c, model):
    ps = c.query(model)
    return ps[0] if ps else None


class ClientTestCase(harness.DaemonTestCase):
    """A fresh daemon per test and a client on it (self.c)."""

    def setUp(self):
        super().setUp()
        self.c = self.new_client()

    def new_client(self, **kw):
        c = outcomed.Client(self.d.socket_path, **kw)
        self.addCleanup(c.close)
        return c


# --------------------------------------------------------------------------
# Every method


class MethodsTest(ClientTestCase):
    def test_ping_and_stats(self):
        version = self.c.ping()
        self.assertIsInstance(version, str)
        s = self.c.stats()
        self.assertEqual(s["version"], version)
        for k in ("uptime_s", "connections", "requests_total", "errors_total",
                  "notify_errors_total", "pending", "profiles"):
            self.assertIn(k, s)
        self.assertEqual(s["connections"], 1)     # one connection, reused

    def test_start_complete_outcome_query(self):
        t = self.c.start("m1", "code", "cheapest fit")
        self.assertIsInstance(t, str)
        self.assertLessEqual(len(t), 64)
        self.assertEqual(self.c.complete(t, 812, 900, 240), t)
        pending = self.c.query_pending()
        self.assertEqual(len(pending), 1)
        p = pending[0]
        self.assertEqual((p["trace_id"], p["model"], p["task"], p["reason"], p["completed"],
                          p["latency_ms"], p["input_tokens"], p["output_tokens"]),
                         (t, "m1", "code", "cheapest fit", True, 812, 900, 240))
        r = self.c.outcome(t, "accepted", 0.9)
        self.assertEqual(r, {"trace_id": t, "kind": "accepted", "quality": 0.9, "success": True})
        self.assertEqual(self.c.query_pending(), [])
        [prof] = self.c.query()
        self.assertEqual(prof["model"], "m1")
        self.assertEqual((prof["total_calls"], prof["success_count"], prof["fail_count"],
                          prof["total_latency_ms"]), (1, 1, 0, 812))
        self.assertAlmostEqual(prof["ema_quality"], 0.5 * 0.8 + 0.9 * 0.2)
        self.assertEqual(prof["tasks"]["code"]["calls"], 1)

    def test_history(self):
        t = self.c.start("m1", "code")
        self.c.complete(t, 200, 10, 20)
        self.c.outcome(t, "accepted", 0.9)
        h = self.c.history("m1", bucket_s=86400)
        self.assertEqual((h["bucket_s"], h["points"]), (86400, 1))
        [s] = h["series"]
        self.assertEqual((s["model"], s["task"], s["calls"], s["successes"], s["judged"]),
                         ("m1", "code", [1], [1], [1]))
        self.assertAlmostEqual(s["quality"][0], 0.9)
        self.assertEqual(self.c.history(task="embed")["series"], [])
        with self.assertRaises(outcomed.BadRequest) as e:
            self.c.history(bucket_s=61)
        self.assertIn("bucket_s", str(e.exception))

    def test_float_latency_and_output(self):
        t = self.c.start("m1", "generate")
        self.c.complete(t, 12.5, output="some text")
        self.assertEqual(self.c.query_pending()[0]["latency_ms"], 13)   # rounded half up

    def test_client_trace_id(self):
        self.assertEqual(self.c.start("m1", "embed", trace_id="router1:42"), "router1:42")
        # Starting it again with the same model and task changes nothing.
        self.assertEqual(self.c.start("m1", "embed", trace_id="router1:42"), "router1:42")
        self.assertEqual(len(self.c.query_pending()), 1)

    def test_fail(self):
        t = self.c.start("m1", "generate")
        self.assertEqual(self.c.fail(t, "timeout"), t)
        prof = profile(self.c, "m1")
        self.assertEqual((prof["fail_count"], prof["success_count"]), (1, 0))
        self.assertAlmostEqual(prof["ema_quality"], 0.4)
        self.assertEqual(self.c.query_pending(), [])
        t2 = self.c.start("m1", "generate")
        self.assertEqual(self.c.fail(t2), t2)                    # error is optional

    def test_outcome_kinds(self):
        for kind, conf, quality, success in (("rejected", 0.5, 0.15, False),
                                             ("inconclusive", None, None, None),
                                             ("applied", None, 1.0, True)):
            t = self.c.start("m1", "code")
            r = self.c.outcome(t, kind, conf)
            self.assertEqual(r["kind"], kind)
            if quality is None:
                self.assertIsNone(r["quality"])
            else:
                self.assertAlmostEqual(r["quality"], quality)
            self.assertIs(r["success"], success)

    def test_outcome_actions(self):
        a = self.c.start("m1", "code")
        b = self.c.start("m1", "code")
        x = self.c.start("m2", "code")
        results = self.c.outcome(actions=[
            {"trace_id": a, "success": True, "confidence": 1.0, "output": "def f(): pass"},
            outcomed.Action(trace_id=b, success=True, confidence=0.5, output="x = 1"),
            {"trace_id": "", "success": False, "confidence": 1.0},
            {"trace_id": x, "success": False, "confidence": 0.5},
            {"trace_id": "never-started", "success": True, "confidence": 1.0, "output": "y"},
        ])
        self.assertEqual([(r["trace_id"], r["kind"]) for r in results],
                         [(a, "accepted"), (b, "accepted_with_edits"), (x, "rejected")])
        self.assertAlmostEqual(results[1]["quality"], 0.49 * 0.5)
        self.assertAlmostEqual(results[2]["quality"], 0.15)
        self.assertEqual(self.c.query_pending(), [])
        self.assertEqual(self.c.outcome(actions=[]), [])

    def test_query_filters(self):
        for model, task in (("b", "code"), ("a", "embed"), ("a", "code")):
            t = self.c.start(model, task)
            self.c.complete(t, 10)
        self.assertEqual([p["model"] for p in self.c.query()], ["a", "b"])
        self.assertEqual(self.c.query("nope"), [])
        [a] = self.c.query("a", "embed")
        self.assertEqual(list(a["tasks"]), ["embed"])
        self.assertEqual([p["model"] for p in self.c.query(task="code")], ["a", "b"])
        # degraded = fail_count > success_count + degrade_threshold
        t = self.c.start("a", "code")
        self.c.fail(t)
        self.assertFalse(profile(self.c, "a")["degraded"])
        self.assertTrue(self.c.query("a", degrade_threshold=0)[0]["degraded"])

    def test_query_pending_filters(self):
        ids = [self.c.start("m%d" % (i % 2), "generate" if i < 3 else "embed")
               for i in range(5)]
        self.assertEqual([p["trace_id"] for p in self.c.query_pending()], ids)   # oldest first
        self.assertEqual([p["trace_id"] for p in self.c.query_pending(limit=2)], ids[:2])
        self.assertEqual([p["trace_id"] for p in self.c.query_pending("m1")], ids[1::2])
        self.assertEqual([p["trace_id"] for p in self.c.query_pending(task="embed")], ids[3:])

    def test_forget(self):
        t = self.c.start("m1", "generate")
        self.c.outcome(t, "accepted", 1.0)
        self.assertIs(self.c.forget("m1"), True)
        self.assertEqual(self.c.query(), [])
        self.assertIs(self.c.forget("m1"), False)

    def test_rank(self):
        for model, kind in (("good", "accepted"), ("bad", "rejected")):
            t = self.c.start(model, "code")
            self.c.outcome(t, kind, 1.0)
        try:
            r = self.c.rank("code")
        except outcomed.UnknownMethod as e:
            # A daemon without rank yet: its unknown_method comes back
            # cleanly, and the connection stays usable.
            self.assertEqual(e.code, "unknown_method")
            self.assertIn("rank", e.message)
            self.assertIsInstance(self.c.ping(), str)
            return
        # No strategy sent: the daemon's default, kg (the posterior mean,
        # Beta(2, 1) and Beta(1, 2) here, with exploration).
        self.assertEqual((r["task"], r["strategy"]), ("code", "kg"))
        self.assertEqual([i["model"] for i in r["ranked"]], ["good", "bad"])
        self.assertAlmostEqual(r["ranked"][0]["mean"], 2 / 3)
        r = self.c.rank("code", strategy="ema")
        self.assertEqual((r["task"], r["strategy"]), ("code", "ema"))
        self.assertEqual([(i["model"], i["prior"]) for i in r["ranked"]],
                         [("good", False), ("bad", False)])
        self.assertAlmostEqual(r["ranked"][0]["score"], 0.6)
        self.assertAlmostEqual(r["ranked"][1]["score"], 0.4)
        # An unknown candidate ranks with the prior, flagged.
        r = self.c.rank("code", candidates=["bad", "new", "good"], strategy="ema")
        self.assertEqual([(i["model"], i["prior"]) for i in r["ranked"]],
                         [("good", False), ("new", True), ("bad", False)])
        # Degraded models are left out unless asked for (kg leaves nobody
        # out unless asked).
        r = self.c.rank("code", degrade_threshold=0, strategy="ema")
        self.assertEqual(([i["model"] for i in r["ranked"]], r["excluded"]), (["good"], ["bad"]))
        r = self.c.rank("code", degrade_threshold=0, strategy="ema", exclude_degraded=False)
        self.assertEqual([i["model"] for i in r["ranked"]], ["good", "bad"])
        r = self.c.rank("code", degrade_threshold=0)
        self.assertEqual(([i["model"] for i in r["ranked"]], r["excluded"]), (["good", "bad"], []))
        r = self.c.rank("code", degrade_threshold=0, exclude_degraded=True)
        self.assertEqual(r["excluded"], ["bad"])
        for strategy in ("mean", "lcb", "thompson"):
            r = self.c.rank("code", strategy=strategy, latency_weight=0.5, cost_weight=1, seed=7)
            self.assertEqual((r["strategy"], len(r["ranked"])), (strategy, 2))
        with self.assertRaises(outcomed.BadRequest):
            self.c.rank("code", strategy="dice")

    def test_raw_request_and_notify(self):
        self.assertEqual(self.c.request("ping")["version"], self.c.ping())
        self.assertTrue(self.c.notify("start", {"model": "raw", "task": "embed",
                                                "trace_id": "raw-1"}))
        self.assertEqual(self.c.query_pending("raw")[0]["trace_id"], "raw-1")

    def test_connect_and_close(self):
        self.assertFalse(self.c.connected)        # opened on first use
        self.c.connect()
        self.assertTrue(self.c.connected)
        self.c.close()
        self.assertFalse(self.c.connected)
        self.assertIsInstance(self.c.ping(), str)   # and reopened
        with outcomed.Client(self.d.socket_path) as c2:
            c2.ping()
        self.assertFalse(c2.connected)


# --------------------------------------------------------------------------
# Errors


class ErrorsTest(ClientTestCase):
    config = "[limits]\nmessage_bytes = 4096\npending = 3\n"

    def assert_code(self, cls, code, fn, *args, **kw):
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        e = cm.exception
        self.assertIsInstance(e, outcomed.OutcomedError)
        self.assertNotIsInstance(e, ConnectionError)
        self.assertEqual(e.code, code)
        self.assertIsInstance(e.message, str)
        self.assertTrue(e.message)
        return e

    def test_codes(self):
        c = self.c
        self.assert_code(outcomed.UnknownTrace, "unknown_trace", c.complete, "nope", 10)
        self.assert_code(outcomed.UnknownTrace, "unknown_trace", c.fail, "nope")
        self.assert_code(outcomed.UnknownTrace, "unknown_trace", c.outcome, "nope", "accepted", 1.0)
        t = c.start("m1", "generate")
        c.complete(t, 10)
        self.assert_code(outcomed.AlreadyCompleted, "already_completed", c.complete, t, 10)
        c.start("m1", "generate", trace_id="dup")
        self.assert_code(outcomed.DuplicateTrace, "duplicate_trace", c.start, "m2", "generate",
                         trace_id="dup")
        e = self.assert_code(outcomed.BadRequest, "bad_request", c.start, "m1", "painting")
        self.assertIn("task", e.message)
        self.assert_code(outcomed.BadRequest, "bad_request", c.outcome, t, "accepted", 1.5)
        self.assert_code(outcomed.BadRequest, "bad_request", c.outcome, t, "accepted")
        self.assert_code(outcomed.BadRequest, "bad_request", c.start, "m1", "code",
                         trace_id="bad id!")
        self.assert_code(outcomed.BadRequest, "bad_request", c.query_pending, limit=-1)
        self.assert_code(outcomed.BadRequest, "bad_request", c.request, "ping", {"typo": 1})
        self.assert_code(outcomed.UnknownMethod, "unknown_method", c.request, "nosuch")
        # pending = 3: the fourth pending trace is refused.
        c.start("m1", "embed")
        self.assert_code(outcomed.Overloaded, "overloaded", c.start, "m1", "embed")
        # Error replies leave the connection usable.
        self.assertIsInstance(c.ping(), str)
        self.assertEqual(c.stats()["connections"], 1)

    def test_too_large_closes_and_reconnects(self):
        t = self.c.start("m1", "code")
        self.assert_code(outcomed.TooLarge, "too_large", self.c.complete, t, 10,
                         output="x" * 8192)
        self.assertFalse(self.c.connected)
        self.assertEqual(self.c.complete(t, 10, output="small"), t)

    def test_overloaded_in_fail_open_is_none(self):
        c = self.new_client(fail_open=True, timeout=5)
        for _ in range(3):
            c.start("m1", "embed")
        self.assertIsNone(c.start("m1", "embed"))
        self.assertEqual(c.fail_open_count, 1)
        self.assertIsInstance(c.last_error, outcomed.Overloaded)
        # Mistakes are still raised in fail-open mode.
        self.assert_code(outcomed.UnknownTrace, "unknown_trace", c.fail, "nope")
        self.assertEqual(c.fail_open_count, 1)

    def test_unavailable_is_a_connection_error(self):
        self.d.stop()
        with self.assertRaises(outcomed.OutcomedUnavailable) as cm:
            self.c.ping()
        self.assertIsInstance(cm.exception, ConnectionError)
        self.assertNotIsInstance(cm.exception, outcomed.OutcomedError)

    def test_error_classes(self):
        self.assertEqual(set(outcomed.ERROR_CODES), set(harness.ERROR_CODES))
        for code in harness.ERROR_CODES:
            e = outcomed.error_from_reply({"code": code, "message": "m"})
            self.assertEqual((e.code, e.message, type(e).CODE), (code, "m", code))
        e = outcomed.error_from_reply({"code": "from_the_future", "message": "m"})
        self.assertIs(type(e), outcomed.OutcomedError)


# --------------------------------------------------------------------------
# The context manager


class CallTest(ClientTestCase):
    def test_success_reports_complete(self):
        with self.c.call("m1", "code", "cheapest fit") as call:
            self.assertIsNotNone(call.trace_id)
            pend = self.c.query_pending()
            self.assertEqual((pend[0]["trace_id"], pend[0]["completed"], pend[0]["reason"]),
                             (call.trace_id, False, "cheapest fit"))
            time.sleep(0.06)
            call.tokens(900, 240)
        self.assertGreaterEqual(call.latency_ms, 60)
        [p] = self.c.query_pending()
        self.assertEqual((p["trace_id"], p["completed"], p["input_tokens"], p["output_tokens"]),
                         (call.trace_id, True, 900, 240))
        self.assertGreaterEqual(p["latency_ms"], 60)
        self.assertLess(p["latency_ms"], 60 + 5000)
        prof = profile(self.c, "m1")
        self.assertEqual((prof["total_calls"], prof["fail_count"]), (1, 0))
        self.assertEqual(prof["total_latency_ms"], p["latency_ms"])
        # The outcome, later.
        r = call.outcome("accepted", 1.0)
        self.assertEqual((r["trace_id"], r["success"]), (call.trace_id, True))
        self.assertAlmostEqual(profile(self.c, "m1")["ema_quality"], 0.6)
        self.assertEqual(self.c.query_pending(), [])

    def test_exception_reports_fail_and_reraises(self):
        boom = RuntimeError("model said no")
        with self.assertRaises(RuntimeError) as cm:
            with self.c.call("m1", "generate") as call:
                raise boom
        self.assertIs(cm.exception, boom)
        self.assertEqual(call.error, "RuntimeError: model said no")
        prof = profile(self.c, "m1")
        self.assertEqual((prof["fail_count"], prof["success_count"], prof["total_calls"]),
                         (1, 0, 0))
        self.assertAlmostEqual(prof["ema_quality"], 0.4)
        self.assertEqual(self.c.query_pending(), [])      # fail resolves the trace

    def test_error_text_is_made_acceptable(self):
        # A NUL and more than 4096 bytes: sent cleaned and cut, not refused.
        with self.assertRaises(ValueError):
            with self.c.call("m1", "generate") as call:
                raise ValueError("a\0b" + "é" * 5000)
        self.assertLessEqual(len(call.error.encode()), outcomed.TEXT_MAX)
        self.assertEqual(profile(self.c, "m1")["fail_count"], 1)

    def test_handled_failure(self):
        with self.c.call("m1", "generate") as call:
            call.fail("HTTP 500")
        self.assertEqual(profile(self.c, "m1")["fail_count"], 1)
        self.assertEqual(self.c.query_pending(), [])

    def test_interrupt_resolves_inconclusive(self):
        with self.assertRaises(KeyboardInterrupt):
            with self.c.call("m1", "generate"):
                raise KeyboardInterrupt
        self.assertEqual(self.c.query_pending(), [])
        prof = profile(self.c, "m1")
        self.assertEqual((prof["fail_count"], prof["success_count"], prof["tasks"]), (0, 0, {}))

    def test_report_failure_does_not_hide_the_exception(self):
        with self.assertRaises(ValueError) as cm:
            with self.c.call("m1", "generate"):
                self.d.stop()
                raise ValueError("the model's error")
        self.assertEqual(str(cm.exception), "the model's error")
        self.assertIn("outcomed could not report", "\n".join(cm.exception.__notes__))

    def test_client_trace_id_and_code_files(self):
        with self.c.call("m1", "code", trace_id="r:1") as call:
            pass
        self.assertEqual(call.trace_id, "r:1")
        self.assertEqual(self.c.query_pending()[0]["trace_id"], "r:1")


class CodeTraceTest(ClientTestCase):
    def make_config(self, tmpdir):
        return "[git]\nrepo = %s\n" % tmpdir

    def test_repo_and_files(self):
        with self.c.call("m1", "code", repo=self.d.tmpdir, files=["src/a.c"]) as call:
            call.output = "int f(void);"
        [p] = self.c.query_pending()
        self.assertEqual((p["trace_id"], p["repo"], p["files"], p["completed"]),
                         (call.trace_id, self.d.tmpdir, ["src/a.c"], True))
        # Git judges code traces with a repo: an explicit outcome is deferred.
        r = call.outcome("accepted", 1.0)
        self.assertEqual((r["deferred"], r["quality"], r["success"]), (True, None, None))
        self.assertEqual(len(self.c.query_pending()), 1)


# --------------------------------------------------------------------------
# Fail-open


def _missing_socket():
    return "/tmp/outcomed-py-none-%d-%d.sock" % (os.getpid(), time.monotonic_ns())


class FailOpenNoDaemonTest(unittest.TestCase):
    """No daemon at all: every call returns None at once, counted."""

    def test_every_method_returns_none_fast(self):
        c = outcomed.Client(_missing_socket(), fail_open=True, timeout=FAST)
        t0 = time.monotonic()
        with self.assertLogs("outcomed", "WARNING") as logs:
            results = self.every_method(c)
        self.assertEqual(len(logs.records), 1, "one warning per outage, not per call")
        self.assertEqual(results, [None] * len(results))
        self.assertFalse(c.notify("ping"))
        self.assertEqual(c.fail_open_count, len(results) + 1)
        self.assertIsInstance(c.last_error, outcomed.OutcomedUnavailable)
        # The trace id None that start gave makes the reports no-ops (not counted again).
        self.assertIsNone(c.complete(None, 10))
        self.assertIsNone(c.fail(None))
        self.assertIsNone(c.outcome(None, "accepted", 1.0))
        self.assertEqual(c.fail_open_count, len(results) + 1)
        self.assertLess(time.monotonic() - t0, SLACK)

    @staticmethod
    def every_method(c):
        return [
            c.start("m1", "code", "r"),
            c.start("m1", "code", notify=True),
            c.complete("t-1", 10, 1, 2),
            c.complete("t-1", 10, notify=True),
            c.fail("t-1", "x"),
            c.outcome("t-1", "accepted", 1.0),
            c.outcome(actions=[{"trace_id": "t-1", "success": True, "confidence": 1.0}]),
            c.query(),
            c.query_pending(),
            c.rank("code"),
            c.ping(),
            c.stats(),
            c.forget("m1"),
            c.request("ping"),
        ]

    def test_context_manager_carries_on(self):
        c = outcomed.Client(_missing_socket(), fail_open=True, timeout=FAST)
        ran = []
        with c.call("m1", "code") as call:
            ran.append(1)
            call.tokens(1, 2)
        self.assertEqual(ran, [1])
        self.assertIsNone(call.trace_id)
        self.assertIsNone(call.outcome("accepted", 1.0))
        self.assertEqual(c.fail_open_count, 1)
        with self.assertRaises(RuntimeError):       # the router's own errors still go on
            with c.call("m1", "code"):
                raise RuntimeError("x")

    def test_no_socket_found_by_default(self):
        with mock.patch.dict(os.environ, {"XDG_RUNTIME_DIR": "/nonexistent-outcomed-test"}):
            os.environ.pop("OUTCOMED_SOCKET", None)
            c = outcomed.Client(fail_open=True, timeout=FAST)
            if os.path.exists(outcomed.SYSTEM_SOCKET):
                self.skipTest("this machine has a daemon at " + outcomed.SYSTEM_SOCKET)
            self.assertIsNone(c.ping())
            self.assertIn("no outcomed socket found", str(c.last_error))

    def test_strict_mode_raises(self):
        c = outcomed.Client(_missing_socket(), timeout=FAST)
        for fn in (c.ping, lambda: c.start("m1", "code"),
                   lambda: c.start("m1", "code", notify=True)):
            with self.assertRaises(outcomed.OutcomedUnavailable) as cm:
                fn()
            self.assertIsInstance(cm.exception, ConnectionError)
        with self.assertRaises(outcomed.OutcomedUnavailable):
            c.connect()


class FailOpenBackoffTest(unittest.TestCase):
    """A socket that accepts and never answers (a hung daemon): each call
    returns after the timeout; reconnection waits for a bounded backoff."""

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="outcomed-py-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.path = os.path.join(self.tmpdir, "outcomed.sock")

    def listen(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(self.path)
        s.listen(16)
        s.setblocking(False)
        return s

    def accepted(self, listener):
        n = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return n
            self.addCleanup(conn.close)
            n += 1

    def timed(self, fn):
        t0 = time.monotonic()
        r = fn()
        return r, time.monotonic() - t0

    def test_backoff(self):
        b = 0.5 * harness.TIMEOUT_SCALE      # the first backoff; then 2b, the most
        c = outcomed.Client(self.path, fail_open=True, timeout=FAST,
                            backoff_initial=b, backoff_max=2 * b)
        self.addCleanup(c.close)
        self.assertIsNone(c.ping())                  # no socket yet: backoff b
        listener = self.listen()
        r, dt = self.timed(c.ping)                   # within the backoff: not even tried
        self.assertIsNone(r)
        self.assertEqual(self.accepted(listener), 0)
        time.sleep(b + 0.05)
        r, dt = self.timed(c.ping)                   # tried: connects, no reply in time
        self.assertIsNone(r)
        self.assertGreaterEqual(dt, FAST * 0.9)
        self.assertLess(dt, FAST + SLACK)
        self.assertIsInstance(c.last_error, outcomed.OutcomedTimeout)
        self.assertEqual(self.accepted(listener), 1)
        self.assertIsNone(c.ping())                  # backoff 2b now
        self.assertEqual(self.accepted(listener), 0)
        for _ in range(2):                           # doubling stops at backoff_max
            time.sleep(2 * b + 0.05)
            self.assertIsNone(c.ping())
            self.assertEqual(self.accepted(listener), 1)
        self.assertEqual(c.fail_open_count, 6)

        # A real daemon takes the socket's place: the client comes back by itself.
        listener.close()
        os.unlink(self.path)
        d = harness.Daemon(tmpdir=self.tmpdir, socket_path=self.path)
        self.addCleanup(d.cleanup)
        d.start()
        self.assertIsInstance(wait_for(c.ping), str)
        self.assertGreaterEqual(c.fail_open_count, 6)    # and the pings during the backoff
        c.timeout = 5.0 * harness.TIMEOUT_SCALE     # answered calls are not counted
        n = c.fail_open_count
        self.assertEqual(c.query(), [])
        self.assertEqual(c.fail_open_count, n)
        d.stop()

    def test_notifications_time_out_too(self):
        # A peer that never reads: notifications fill the socket buffer and
        # then time out instead of blocking the router.
        listener = self.listen()
        c = outcomed.Client(self.path, fail_open=True, timeout=FAST, backoff_initial=0.01)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        sent = 0
        while c.fail_open_count == 0 and time.monotonic() - t0 < 20:
            if c.start("m", "generate", "x" * 4000, notify=True):
                sent += 1
        self.assertEqual(c.fail_open_count, 1)
        self.assertGreater(sent, 0)
        self.assertIsInstance(c.last_error, outcomed.OutcomedTimeout)
        self.accepted(listener)


class FailOpenDaemonTest(ClientTestCase):
    """A daemon that goes away, or hangs, while a fail-open client uses it."""

    def fail_open_client(self, timeout):
        # Not too short: under `ack` a change's reply waits for its commit.
        return self.new_client(fail_open=True, timeout=timeout * harness.TIMEOUT_SCALE,
                               backoff_initial=0.05, backoff_max=0.2)

    def test_daemon_stops_mid_way(self):
        c = self.fail_open_client(5.0)
        t = c.start("m1", "code")
        self.assertIsNotNone(t)
        self.d.stop()
        t0 = time.monotonic()
        self.assertIsNone(c.complete(t, 10))
        with c.call("m1", "code") as call:
            pass
        self.assertIsNone(call.trace_id)
        self.assertIsNone(c.query())
        self.assertLess(time.monotonic() - t0, SLACK)
        self.assertEqual(c.fail_open_count, 3)
        self.d.start()                               # same socket and database
        self.assertIsInstance(wait_for(c.ping), str)
        self.assertEqual(c.complete(t, 10), t)       # the trace survived the restart
        n = c.fail_open_count
        self.assertEqual(c.outcome(t, "accepted", 1.0)["success"], True)
        self.assertEqual(c.fail_open_count, n)

    def test_daemon_hangs(self):
        c = self.fail_open_client(0.2)
        self.assertIsInstance(c.ping(), str)
        self.d.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            self.assertIsNone(c.start("m1", "code"))
            dt = time.monotonic() - t0
            self.assertIsNone(c.query())              # within the backoff: at once
        finally:
            self.d.proc.send_signal(signal.SIGCONT)
        self.assertGreaterEqual(dt, c.timeout * 0.9)
        self.assertLess(dt, c.timeout + SLACK)
        self.assertIsInstance(c.last_error, outcomed.OutcomedUnavailable)
        self.assertEqual(c.fail_open_count, 2)
        self.assertIsInstance(wait_for(c.ping), str)
        # The timed-out start may still have been applied (it was sent).
        self.assertLessEqual(len(c.query_pending()), 1)

    def test_strict_client_reconnects_after_restart(self):
        self.assertIsInstance(self.c.ping(), str)
        self.d.restart()
        # The old connection is dead; the request is re-sent on a new one.
        self.assertIsInstance(self.c.ping(), str)
        t = self.c.start("m1", "code")
        self.d.restart()
        self.assertEqual(self.c.complete(t, 10), t)   # applied exactly once
        with self.assertRaises(outcomed.AlreadyCompleted):
            self.c.complete(t, 10)


# --------------------------------------------------------------------------
# Notifications


class NotifyTest(ClientTestCase):
    def test_fire_and_forget(self):
        c = self.c
        t = c.start("n1", "code", "r", notify=True)
        self.assertRegex(t, r"^py-[0-9a-f]{32}$")
        self.assertEqual(c.start("n1", "embed", trace_id="mine:1", notify=True), "mine:1")
        self.assertEqual(c.complete(t, 40, 5, 6, notify=True), t)
        self.assertIsNone(c.outcome(t, "accepted", 1.0, notify=True))
        self.assertEqual(c.fail("mine:1", "x", notify=True), "mine:1")
        prof = wait_for(lambda: (lambda p: p if p and p["fail_count"] == 1
                                 and p["success_count"] == 1 else None)(profile(c, "n1")))
        self.assertIsNotNone(prof, "the notifications never showed in query")
        self.assertEqual((prof["total_calls"], prof["total_latency_ms"]), (1, 40))
        self.assertAlmostEqual(prof["tasks"]["code"]["ema_quality"], 0.6)
        self.assertEqual(c.query_pending(), [])
        self.assertEqual(c.stats()["notify_errors_total"], 0)

    def test_actions_notification(self):
        a = self.c.start("n1", "code", notify=True)
        self.c.outcome(actions=[{"trace_id": a, "success": False, "confidence": 1.0}],
                       notify=True)
        self.assertTrue(wait_for(lambda: (profile(self.c, "n1") or {}).get("fail_count") == 1))

    def test_context_manager(self):
        with self.c.call("n2", "generate", notify=True) as call:
            call.tokens(7, 8)
        self.assertTrue(call.trace_id.startswith("py-"))
        call.outcome("rejected", 1.0)
        with self.assertRaises(OSError):
            with self.c.call("n2", "generate", notify=True):
                raise OSError("refused")
        prof = wait_for(lambda: (lambda p: p if p and p["fail_count"] == 2 else None)(
            profile(self.c, "n2")))
        self.assertIsNotNone(prof)
        self.assertEqual(prof["total_calls"], 1)

    def test_failed_notification_is_silent_and_counted(self):
        self.assertEqual(self.c.complete("nope", 1, notify=True), "nope")
        self.assertTrue(wait_for(lambda: self.c.stats()["notify_errors_total"] == 1))
        self.assertIsInstance(self.c.ping(), str)


# --------------------------------------------------------------------------
# rank on the wire (the daemon has no rank yet: a stand-in answers)


class RankWireTest(unittest.TestCase):
    def test_arguments_and_result(self):
        tmpdir = tempfile.mkdtemp(prefix="outcomed-py-", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmpdir, True)
        path = os.path.join(tmpdir, "fake.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.listen(1)
        got = []
        answer = {"task": "code", "ranking": [{"model": "a", "score": 0.7}]}

        def serve():
            conn, _ = listener.accept()
            with conn:
                u = harness.msgpack.Unpacker(raw=False)
                while not got:
                    u.feed(conn.recv(65536))
                    got.extend(u)
                conn.sendall(harness.pack([1, got[0][1], None, answer]))

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        with outcomed.Client(path, timeout=5) as c:
            self.assertEqual(c.rank("code", ["a", "b"], strategy="lcb", latency_weight=1,
                                    exclude_degraded=False), answer)
        th.join(5)
        self.assertEqual(got, [[0, 1, "rank", [{
            "task": "code", "candidates": ["a", "b"], "strategy": "lcb",
            "latency_weight": 1.0, "cost_weight": 0.0, "exclude_degraded": False}]]])
        self.assertIs(type(got[0][3][0]["latency_weight"]), float)

    def test_older_daemon(self):
        # A daemon without rank answers unknown_method: raised cleanly, in
        # fail-open mode too, and the connection stays usable.
        self.fake_server([{"code": "unknown_method", "message": "no such method: 'rank'"},
                          None])
        for fail_open in (False, True):
            with outcomed.Client(self.path, timeout=5, fail_open=fail_open) as c:
                with self.assertRaises(outcomed.UnknownMethod) as cm:
                    c.rank("code")
                self.assertIsInstance(cm.exception, outcomed.OutcomedError)
                self.assertEqual(cm.exception.code, "unknown_method")
                self.assertEqual(cm.exception.message, "no such method: 'rank'")
                self.assertEqual(c.ping(), "0.0.1")
                self.assertEqual(c.fail_open_count, 0)

    def fake_server(self, replies):
        """A stand-in daemon at self.path answering each request with
        replies[i % len(replies)] (an error map, or None: a ping's result)."""
        tmpdir = tempfile.mkdtemp(prefix="outcomed-py-", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmpdir, True)
        self.path = os.path.join(tmpdir, "fake.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(self.path)
        listener.listen(4)
        listener.settimeout(10)

        def serve():
            n = 0
            try:
                while True:
                    conn, _ = listener.accept()
                    with conn:
                        u = harness.msgpack.Unpacker(raw=False)
                        while data := conn.recv(65536):
                            u.feed(data)
                            for msg in u:
                                err = replies[n % len(replies)]
                                n += 1
                                conn.sendall(harness.pack([1, msg[1], err, None if err else
                                                           {"version": "0.0.1"}]))
            except OSError:
                pass

        threading.Thread(target=serve, daemon=True).start()


# --------------------------------------------------------------------------
# Socket resolution


class SocketTest(ClientTestCase):
    def env(self, **kw):
        env = {k: v for k, v in os.environ.items() if k not in ("OUTCOMED_SOCKET", "XDG_RUNTIME_DIR")}
        env.update(kw)
        return mock.patch.dict(os.environ, env, clear=True)

    def test_explicit_then_env_then_xdg(self):
        sock = self.d.socket_path            # <tmpdir>/outcomed.sock
        other = os.path.join(self.d.tmpdir, "other.sock")
        with self.env(OUTCOMED_SOCKET=other, XDG_RUNTIME_DIR=self.d.tmpdir):
            self.assertEqual(outcomed.resolve_socket(sock), sock)
            self.assertEqual(outcomed.resolve_socket(), other)
        with self.env(OUTCOMED_SOCKET="", XDG_RUNTIME_DIR=self.d.tmpdir):   # empty: unset
            self.assertEqual(outcomed.resolve_socket(), sock)
            c = outcomed.Client()
            self.addCleanup(c.close)
            self.assertIsInstance(c.ping(), str)
            self.assertEqual(c.socket_path, sock)
        with self.env(OUTCOMED_SOCKET=sock):
            c = outcomed.Client()
            self.addCleanup(c.close)
            self.assertIsInstance(c.ping(), str)
        with self.env(XDG_RUNTIME_DIR="/nonexistent-outcomed-test"):
            if os.path.exists(outcomed.SYSTEM_SOCKET):
                self.assertEqual(outcomed.resolve_socket(), outcomed.SYSTEM_SOCKET)
            else:
                with self.assertRaises(outcomed.OutcomedUnavailable) as cm:
                    outcomed.resolve_socket()
                self.assertIn("/nonexistent-outcomed-test/outcomed.sock", str(cm.exception))
                self.assertIn(outcomed.SYSTEM_SOCKET, str(cm.exception))

    def test_long_paths_refused(self):
        ok = "/tmp/" + "x" * (107 - 5)
        self.assertEqual(outcomed.resolve_socket(ok), ok)
        outcomed.Client(ok)
        long = ok + "x"
        for make in (lambda: outcomed.resolve_socket(long), lambda: outcomed.Client(long),
                     lambda: outcomed.Client(long, fail_open=True)):
            with self.assertRaises(ValueError) as cm:
                make()
            self.assertIn("108 bytes", str(cm.exception))
        with self.env(OUTCOMED_SOCKET=long):
            with self.assertRaises(ValueError):
                outcomed.Client()
        # Bytes, not characters.
        with self.assertRaises(ValueError):
            outcomed.Client("/tmp/" + "é" * 52)
        with self.assertRaises(ValueError):
            outcomed.Client("")


# --------------------------------------------------------------------------
# Threads


class ThreadsTest(ClientTestCase):
    def test_shared_client(self):
        errors = []

        def work(i):
            try:
                for j in range(25):
                    with self.c.call("m%d" % (i % 3), "generate") as call:
                        call.tokens(i, j)
            except Exception as e:      # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * harness.TIMEOUT_SCALE)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.c.query_pending()), 150)
        self.assertEqual(sum(p["total_calls"] for p in self.c.query()), 150)
        self.assertEqual(self.c.stats()["connections"], 1)


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""outcomectl against a real outcomed: every command, --json, and the exit
statuses (0 success, 1 the daemon answered an error, 2 usage error, 3 the
daemon cannot be reached).

    /usr/bin/python3 tests/integration/test_outcomectl.py [--bin PATH] [--ctl PATH]
"""

import json
import math
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OK, DAEMON_ERROR, USAGE, CONNECT = 0, 1, 2, 3


def approx_equal(a, b):
    """JSON (from outcomectl) against msgpack (from the daemon): numbers to 1e-12."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(approx_equal(x, y) for x, y in zip(a, b))
    return a == b


class OutcomectlTest(harness.DaemonTestCase):
    def setUp(self):
        self.ctl = harness.ctl_binary()
        if not os.access(self.ctl, os.X_OK):
            self.skipTest("no outcomectl at %s (build it, or pass --ctl / OUTCOMECTL_BIN)" % self.ctl)
        super().setUp()
        self.c = self.client()

    def env(self, **extra):
        env = dict(os.environ)
        env.pop("OUTCOMED_SOCKET", None)
        # No fallback to a real user's or the machine's daemon.
        env["XDG_RUNTIME_DIR"] = os.path.join(self.d.tmpdir, "no-runtime-dir")
        env.update(extra)
        return env

    def run_ctl(self, *args, socket_path=None, env=None, want=None, stdin=None):
        """Run outcomectl; --socket is the test daemon's unless socket_path is
        False (none) or another path.  Checks the exit status when want is
        given.  Returns the CompletedProcess with text stdout/stderr."""
        argv = [self.ctl]
        if socket_path is None:
            socket_path = self.d.socket_path
        if socket_path is not False:
            argv += ["--socket", socket_path]
        argv += list(args)
        try:
            r = subprocess.run(argv, capture_output=True, timeout=20, env=env or self.env(),
                               input=stdin, text=True)
        except subprocess.TimeoutExpired:
            self.fail("outcomectl %r did not finish within 20s" % (args,))
        if want is not None:
            self.assertEqual(r.returncode, want, "outcomectl %s: exit %d, want %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), r.returncode, want, r.stdout, r.stderr))
        return r

    def json_ctl(self, *args, want=OK):
        r = self.run_ctl("--json", *args, want=want)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, "--json prints one line of JSON: %r" % r.stdout)
        try:
            return json.loads(lines[0])
        except ValueError as e:
            self.fail("--json output is not JSON (%s): %r" % (e, r.stdout))

    # ---- success paths

    def test_ping_and_version(self):
        r = self.run_ctl("ping", want=OK)
        self.assertTrue(r.stdout.strip())
        j = self.json_ctl("ping")
        self.assertEqual(j, self.c.call("ping"))
        r = self.run_ctl("--version", socket_path=False, want=OK)
        self.assertIn("outcomectl", r.stdout)

    def test_lifecycle(self):
        r = self.run_ctl("start", "--model", "cli-model", "--task", "code", "--reason", "cheapest fit",
                         want=OK)
        tid = r.stdout.strip()
        self.assertTrue(tid and "\n" not in tid, "start prints the trace id alone: %r" % r.stdout)
        pend = self.c.call("query", pending=True)["pending"]
        self.assertEqual([(p["trace_id"], p["model"], p["task"], p["reason"]) for p in pend],
                         [(tid, "cli-model", "code", "cheapest fit")])

        self.run_ctl("complete", tid, "--latency-ms", "812", "--input-tokens", "900",
                     "--output-tokens", "240", want=OK)
        p = self.c.call("query", model="cli-model")["profiles"][0]
        self.assertEqual((p["total_calls"], p["total_latency_ms"]), (1, 812))
        pend = self.c.call("query", pending=True)["pending"][0]
        self.assertEqual((pend["completed"], pend["input_tokens"], pend["output_tokens"]),
                         (True, 900, 240))

        j = self.json_ctl("outcome", tid, "accepted", "--confidence", "0.9")
        self.assertEqual(j["trace_id"], tid)
        self.assertEqual(j["kind"], "accepted")
        self.assertAlmostEqual(j["quality"], 0.9, places=12)
        self.assertIs(j["success"], True)
        p = self.c.call("query", model="cli-model")["profiles"][0]
        self.assertEqual(p["success_count"], 1)
        self.assertEqual(self.c.call("query", pending=True)["pending"], [])

    def test_start_json_and_client_trace_id(self):
        j = self.json_ctl("start", "--model", "m", "--task", "generate", "--trace-id", "cli:1")
        self.assertEqual(j, {"trace_id": "cli:1"})
        # Again with the same model and task: the same id, no change.
        j = self.json_ctl("start", "--model", "m", "--task", "generate", "--trace-id", "cli:1")
        self.assertEqual(j, {"trace_id": "cli:1"})
        self.assertEqual(len(self.c.call("query", pending=True)["pending"]), 1)

    def test_fail(self):
        tid = self.c.call("start", model="f", task="classify")["trace_id"]
        self.run_ctl("fail", tid, "--error", "timeout after 30s", want=OK)
        p = self.c.call("query", model="f")["profiles"][0]
        self.assertEqual(p["fail_count"], 1)
        self.assertEqual(p["tasks"]["classify"]["failures"], 1)
        tid = self.c.call("start", model="f", task="classify")["trace_id"]
        self.assertEqual(self.json_ctl("fail", tid), {"trace_id": tid})

    def test_outcome_code_kind_and_float_latency(self):
        tid = self.c.call("start", model="k", task="code")["trace_id"]
        self.run_ctl("complete", tid, "--latency-ms", "12.6", want=OK)
        self.assertEqual(self.c.call("query", model="k")["profiles"][0]["total_latency_ms"], 13)
        j = self.json_ctl("outcome", tid, "signature_changed")
        self.assertEqual((j["kind"], j["success"]), ("signature_changed", True))
        self.assertAlmostEqual(j["quality"], 0.8, places=12)
        tid = self.c.call("start", model="k", task="code")["trace_id"]
        j = self.json_ctl("outcome", tid, "inconclusive")
        self.assertIsNone(j["quality"])
        self.assertIsNone(j["success"])

    def populate(self):
        for i, (model, task) in enumerate([("alpha-model", "code"), ("alpha-model", "generate"),
                                           ("beta-model", "embed")]):
            t = self.c.call("start", model=model, task=task)["trace_id"]
            self.c.call("complete", trace_id=t, latency_ms=10 * (i + 1))
            self.c.call("outcome", trace_id=t, kind="accepted", confidence=0.25 * (i + 1))
        self.c.call("start", model="beta-model", task="reasoning", reason="left pending")

    def test_query_json_matches_the_daemon(self):
        self.populate()
        for args, call in [((), {}), (("--model", "alpha-model"), {"model": "alpha-model"}),
                           (("--model", "nope"), {"model": "nope"}),
                           (("--task", "code"), {"task": "code"}),
                           (("--pending",), {"pending": True}),
                           (("--pending", "--model", "beta-model"),
                            {"pending": True, "model": "beta-model"})]:
            with self.subTest(args=args):
                j = self.json_ctl("query", *args)
                want = self.c.call("query", call)
                self.assertTrue(approx_equal(j, want), "outcomectl --json query %s:\n%r\nwant\n%r"
                                % (" ".join(args), j, want))

    def test_query_plain(self):
        self.populate()
        r = self.run_ctl("query", want=OK)
        self.assertIn("alpha-model", r.stdout)
        self.assertIn("beta-model", r.stdout)
        r = self.run_ctl("query", "--pending", want=OK)
        self.assertIn(self.c.call("query", pending=True)["pending"][0]["trace_id"], r.stdout)

    def test_stats(self):
        self.run_ctl("stats", want=OK)
        j = self.json_ctl("stats")
        for key in ("version", "uptime_s", "connections", "requests_total", "errors_total",
                    "notify_errors_total", "pending", "profiles"):
            self.assertIn(key, j)

    def test_options_after_command_and_env_socket(self):
        r = subprocess.run([self.ctl, "ping", "--socket", self.d.socket_path], capture_output=True,
                           timeout=20, env=self.env(), text=True)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.run_ctl("ping", socket_path=False, env=self.env(OUTCOMED_SOCKET=self.d.socket_path),
                     want=OK)

    # ---- exit 1: the daemon's errors

    def test_daemon_error_exit_1(self):
        for args, code in [(("complete", "no-such-trace", "--latency-ms", "5"), "unknown_trace"),
                           (("fail", "no-such-trace"), "unknown_trace"),
                           (("outcome", "no-such-trace", "applied"), "unknown_trace")]:
            with self.subTest(args=args):
                r = self.run_ctl(*args, want=DAEMON_ERROR)
                self.assertIn(code, r.stderr)
                self.assertEqual(r.stdout, "")
        tid = self.c.call("start", model="m", task="generate", trace_id="x1")["trace_id"]
        self.run_ctl("complete", tid, "--latency-ms", "5", want=OK)
        r = self.run_ctl("complete", tid, "--latency-ms", "5", want=DAEMON_ERROR)
        self.assertIn("already_completed", r.stderr)
        r = self.run_ctl("start", "--model", "other", "--task", "generate", "--trace-id", "x1",
                         want=DAEMON_ERROR)
        self.assertIn("duplicate_trace", r.stderr)

    # ---- exit 2: usage

    def test_usage_exit_2(self):
        cases = [
            (),
            ("no-such-command",),
            ("start", "--task", "code"),                          # no --model
            ("start", "--model", "m"),                            # no --task
            ("start", "--model", "m", "--task", "code", "--bogus"),
            ("complete", "t1"),                                   # no --latency-ms
            ("complete", "t1", "--latency-ms", "abc"),
            ("complete", "t1", "--latency-ms", "-5"),
            ("complete", "t1", "--latency-ms", "5", "--input-tokens", "4294967296"),
            ("outcome", "t1", "accepted", "--confidence", "1.5"),
            ("outcome", "t1", "accepted", "--confidence", "nan"),
            ("outcome",),
            ("fail",),
            ("--timeout",),
        ]
        for args in cases:
            with self.subTest(args=args):
                r = self.run_ctl(*args, want=USAGE)
                self.assertTrue(r.stderr.strip(), "a usage error says why")
        # Nothing reached the daemon.
        self.assertEqual(self.c.call("query"), {"profiles": []})
        self.assertEqual(self.c.call("query", pending=True), {"pending": []})

    def test_help_exit_0(self):
        r = self.run_ctl("--help", socket_path=False, want=OK)
        self.assertIn("start", r.stdout)
        for cmd in ("start", "complete", "fail", "outcome", "query", "ping", "stats"):
            with self.subTest(cmd=cmd):
                r = self.run_ctl(cmd, "--help", socket_path=False, want=OK)
                self.assertTrue(r.stdout.strip())

    # ---- exit 3: cannot reach the daemon

    def test_unreachable_exit_3(self):
        missing = os.path.join(self.d.tmpdir, "missing.sock")
        r = self.run_ctl("ping", socket_path=missing, want=CONNECT)
        self.assertTrue(r.stderr.strip())
        stale = os.path.join(self.d.tmpdir, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()   # a socket file nobody listens on
        r = self.run_ctl("ping", socket_path=stale, want=CONNECT)
        self.assertTrue(r.stderr.strip())
        r = self.run_ctl("start", "--model", "m", "--task", "code", socket_path=stale, want=CONNECT)
        # No socket given, none in the environment, no default that exists.
        r = self.run_ctl("ping", socket_path=False)
        if not os.path.exists("/run/outcomed/outcomed.sock"):
            self.assertEqual(r.returncode, CONNECT, r.stderr)

    def test_socket_path_too_long_refused(self):
        long_path = "/tmp/" + "s" * 120
        r = self.run_ctl("ping", socket_path=long_path)
        self.assertIn(r.returncode, (USAGE, CONNECT), r.stderr)
        self.assertTrue(any(w in r.stderr.lower() for w in ("long", "107")), r.stderr)


if __name__ == "__main__":
    harness.main()

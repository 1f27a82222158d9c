#!/usr/bin/python3
"""metrics against a real outcomed: known calls give exact counters and
histogram buckets in the Prometheus text, label values are escaped, the
counters live as long as the process (forget and import leave them, a
journal replay does not count again), refusals are counted by limit, past
METRICS_SERIES_MAX pairs the overflow series takes the rest, and
`promtool check metrics` accepts outcomectl's output.

    /usr/bin/python3 tests/integration/test_metrics.py [--bin PATH] [--ctl PATH]
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SERIES_MAX = 1000  # daemon/rpc/metrics.h

DUR_LE = ["0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64", "1.28", "2.56", "5.12",
          "10.24", "20.48", "40.96", "81.92", "+Inf"]
TOK_LE = ["1", "4", "16", "64", "256", "1024", "4096", "16384", "65536", "262144", "1048576",
          "4194304", "16777216", "67108864", "+Inf"]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)",?')


def unescape(v):
    return re.sub(r'\\([\\"n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """{(name, frozenset(labels)): float}, and {family: type}; asserts the
    text's shape: every line a comment or a sample, every sample's family
    typed before it, one sample per label set."""
    samples, types = {}, {}
    assert text.endswith("\n"), "the text must end with a newline"
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in types, "family %s typed twice" % name
            types[name] = typ
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels = m.group(1), {}
        if m.group(3):
            body = m.group(3)
            pos = 0
            for lm in LABEL.finditer(body):
                assert lm.start() == pos, "bad labels in %r" % line
                labels[lm.group(1)] = unescape(lm.group(2))
                pos = lm.end()
            assert pos == len(body), "bad labels in %r" % line
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, "sample before its # TYPE: %r" % line
        key = (name, frozenset(labels.items()))
        assert key not in samples, "duplicate sample %r" % line
        samples[key] = float(m.group(4))
    return samples, types


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class MetricsTest(harness.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.client()

    def metrics(self):
        r = self.c.call("metrics")
        self.assertEqual(set(r), {"text"})
        return parse(r["text"])

    def feed(self):
        """Known calls; returns the odd model id."""
        c = self.c
        # alpha/generate: three completes (5 ms, 15 ms, 3 s), one fail.
        for lat, tin, tout, kind, conf in ((5, 100, 50, "accepted", 0.9),
                                           (15, 2000, 0, "rejected", 0.8),
                                           (3000, 0, 0, "inconclusive", None)):
            t = c.call("start", model="alpha", task="generate")["trace_id"]
            args = {"trace_id": t, "latency_ms": lat}
            if tin:
                args["input_tokens"] = tin
            if tout:
                args["output_tokens"] = tout
            c.call("complete", args)
            args = {"trace_id": t, "kind": kind}
            if conf is not None:
                args["confidence"] = conf
            c.call("outcome", args)
        t = c.call("start", model="alpha", task="generate")["trace_id"]
        c.call("fail", trace_id=t)
        # An id that needs every escape, on embed (an OpenTelemetry operation).
        odd = 'q"uote\\back\nline'
        t = c.call("start", model=odd, task="embed")["trace_id"]
        c.call("complete", trace_id=t, latency_ms=10, input_tokens=4)
        c.call("outcome", trace_id=t, kind="accepted_with_edits", confidence=1.0)
        # Still pending: one code trace.
        c.call("start", model="alpha", task="code")
        return odd

    def test_exact_counters_and_buckets(self):
        s, types = self.metrics()
        self.assertEqual(types["gen_ai_client_operation_duration_seconds"], "histogram")
        self.assertEqual(types["gen_ai_client_token_usage"], "histogram")
        self.assertEqual(types["outcomed_calls_total"], "counter")
        self.assertEqual(types["outcomed_quality"], "gauge")
        self.assertFalse([k for k in s if "gen_ai_request_model" in dict(k[1])],
                         "a fresh daemon has no per-model series")

        odd = self.feed()
        s, _ = self.metrics()
        a = {"gen_ai_request_model": "alpha", "outcomed_task": "generate"}
        self.assertEqual(get(s, "outcomed_calls_total", status="completed", **a), 3)
        self.assertEqual(get(s, "outcomed_calls_total", status="failed", **a), 1)
        for kind, n in (("accepted", 1), ("rejected", 1), ("inconclusive", 1),
                        ("accepted_with_edits", None)):
            self.assertEqual(get(s, "outcomed_outcomes_total", kind=kind, source="conversation",
                                 **a), n, kind)
        # 5 ms and 15 ms and 3 s: cumulative buckets.
        want = [1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3]
        got = [get(s, "gen_ai_client_operation_duration_seconds_bucket", le=le, **a)
               for le in DUR_LE]
        self.assertEqual(got, want)
        self.assertAlmostEqual(get(s, "gen_ai_client_operation_duration_seconds_sum", **a), 3.02)
        self.assertEqual(get(s, "gen_ai_client_operation_duration_seconds_count", **a), 3)
        # Tokens: input 100 and 2000 (the third gave none), output 50.
        inp = dict(a, gen_ai_token_type="input")
        got = [get(s, "gen_ai_client_token_usage_bucket", le=le, **inp) for le in TOK_LE]
        self.assertEqual(got, [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2])
        self.assertEqual(get(s, "gen_ai_client_token_usage_sum", **inp), 2100)
        self.assertEqual(get(s, "gen_ai_client_token_usage_count", **inp), 2)
        out = dict(a, gen_ai_token_type="output")
        self.assertEqual(get(s, "gen_ai_client_token_usage_count", **out), 1)
        self.assertEqual(get(s, "gen_ai_client_token_usage_sum", **out), 50)
        self.assertEqual(get(s, "gen_ai_client_token_usage_bucket", le="64", **out), 1)
        self.assertEqual(get(s, "gen_ai_client_token_usage_bucket", le="16", **out), 0)

        # The odd id comes back whole; embed is OpenTelemetry's embeddings;
        # 10 ms is in le="0.01" (upper bounds are inclusive).
        e = {"gen_ai_operation_name": "embeddings", "gen_ai_request_model": odd,
             "outcomed_task": "embed"}
        self.assertEqual(get(s, "gen_ai_client_operation_duration_seconds_bucket", le="0.01",
                             **e), 1)
        self.assertEqual(get(s, "gen_ai_client_operation_duration_seconds_sum", **e), 0.01)
        self.assertEqual(get(s, "outcomed_outcomes_total", kind="accepted_with_edits",
                             source="conversation", **e), 1)
        self.assertEqual(get(s, "gen_ai_client_token_usage_bucket", le="4",
                             gen_ai_token_type="input", **e), 1)
        self.assertIsNone(get(s, "gen_ai_client_token_usage_count", gen_ai_token_type="output",
                              **e))

        # Gauges agree with query.
        q = self.c.call("query", model="alpha")["profiles"][0]["tasks"]["generate"]
        self.assertAlmostEqual(get(s, "outcomed_quality", **a), q["ema_quality"], places=12)
        self.assertAlmostEqual(get(s, "outcomed_posterior_mean", **a), q["posterior"]["mean"],
                               places=12)
        self.assertAlmostEqual(get(s, "outcomed_posterior_lower", **a), q["posterior"]["lo"],
                               places=12)
        self.assertAlmostEqual(get(s, "outcomed_posterior_upper", **a), q["posterior"]["hi"],
                               places=12)
        self.assertEqual(get(s, "outcomed_pending_traces", outcomed_task="code"), 1)
        self.assertEqual(get(s, "outcomed_pending_traces", outcomed_task="generate"), 0)
        self.assertEqual(get(s, "outcomed_profiles"), 2)
        self.assertEqual(get(s, "outcomed_metrics_series"), 2)
        self.assertEqual(get(s, "outcomed_writable"), 1)
        st = self.c.call("stats")
        self.assertEqual(get(s, "outcomed_connections"), st["connections"])
        self.assertEqual(get(s, "outcomed_journal_rows_total"), st["journal_total"])
        self.assertGreater(get(s, "outcomed_requests_total"), 10)

    def test_counters_outlive_forget_and_import(self):
        self.feed()
        a = {"gen_ai_request_model": "alpha", "outcomed_task": "generate"}
        self.c.call("forget", model="alpha")
        s, _ = self.metrics()
        self.assertEqual(get(s, "outcomed_calls_total", status="completed", **a), 3)
        self.assertEqual(get(s, "gen_ai_client_operation_duration_seconds_count", **a), 3)
        self.assertIsNone(get(s, "outcomed_quality", **a), "no profile, no gauge")
        self.c.call("import", profiles=[{
            "model": "alpha", "total_calls": 500, "success_count": 400, "fail_count": 100,
            "total_latency_ms": 50000, "ema_quality": 0.9,
            "tasks": {"generate": {"calls": 500, "successes": 400, "failures": 100,
                                   "avg_latency_ms": 100.0, "ema_quality": 0.9}}}])
        s, _ = self.metrics()
        self.assertEqual(get(s, "outcomed_calls_total", status="completed", **a), 3)
        self.assertEqual(get(s, "outcomed_quality", **a), 0.9)

    def test_replay_is_not_counted_again(self):
        self.feed()
        self.c.close()
        self.d.kill()  # the journal is replayed at the next start
        self.d.start()
        self.c = self.client()
        s, _ = self.metrics()
        self.assertGreater(self.c.call("stats")["replayed"] + get(s, "outcomed_profiles"), 0)
        self.assertEqual(get(s, "outcomed_metrics_series"), 0)
        self.assertIsNone(get(s, "outcomed_calls_total", status="completed",
                              gen_ai_request_model="alpha", outcomed_task="generate"))
        self.assertIsNotNone(get(s, "outcomed_quality", gen_ai_request_model="alpha",
                                 outcomed_task="generate"), "the profile itself came back")

    def test_overflow_past_the_series_cap(self):
        n = SERIES_MAX + 3
        calls = [("start", {"model": "m%04d" % i, "task": "classify", "trace_id": "o%d" % i})
                 for i in range(n)]
        calls += [("fail", {"trace_id": "o%d" % i}) for i in range(n)]
        self.c.send_many(calls)
        for _, err, _ in self.c.recv_many(len(calls)):
            self.assertIsNone(err)
        s, _ = self.metrics()
        self.assertEqual(get(s, "outcomed_metrics_series"), SERIES_MAX)
        self.assertEqual(get(s, "outcomed_calls_total", otel_metric_overflow="true",
                             status="failed"), 3)
        self.assertEqual(get(s, "outcomed_calls_total", gen_ai_request_model="m0999",
                             outcomed_task="classify", status="failed"), 1)
        self.assertIsNone(get(s, "outcomed_calls_total", gen_ai_request_model="m1000",
                              outcomed_task="classify", status="failed"))
        self.assertEqual(get(s, "outcomed_metrics_omitted"), 3)
        self.assertEqual(sum(1 for k in s if k[0] == "outcomed_quality"), SERIES_MAX)


class RefusalsTest(harness.DaemonTestCase):
    config = "[limits]\nmodels = 2\npending = 3\nconnections_per_uid = 2\n"

    def test_refusals_by_limit(self):
        c = self.client()
        for m in ("a", "b"):  # two profiles: the models limit
            c.call("fail", trace_id=c.call("start", model=m, task="generate")["trace_id"])
        harness.assert_error(self, c.request("start", {"model": "c", "task": "generate"}),
                             "overloaded")
        for task in ("code", "embed", "classify"):  # three pending: the pending limit
            c.call("start", model="a", task=task)
        harness.assert_error(self, c.request("start", {"model": "b", "task": "reasoning"}),
                             "overloaded")
        with self.d.client() as second:
            second.call("ping")
            third = self.d.client()
            try:
                _, err, _ = third.recv_response()
                self.assertEqual(err["code"], "overloaded")
            finally:
                third.close()
        s, _ = parse(c.call("metrics")["text"])
        self.assertEqual(get(s, "outcomed_refusals_total", limit="models"), 1)
        self.assertEqual(get(s, "outcomed_refusals_total", limit="pending"), 1)
        self.assertEqual(get(s, "outcomed_refusals_total", limit="connections_per_uid"), 1)
        self.assertEqual(get(s, "outcomed_refusals_total", limit="connections"), 0)
        self.assertEqual(get(s, "outcomed_refusals_total", limit="message_bytes"), 0)
        self.assertEqual(get(s, "outcomed_pending_traces", outcomed_task="code"), 1)
        self.assertEqual(get(s, "outcomed_pending_traces", outcomed_task="reasoning"), 0)


class OutcomectlMetricsTest(harness.DaemonTestCase):
    def ctl(self, *args):
        ctl = harness.ctl_binary()
        if not os.access(ctl, os.X_OK):
            self.skipTest("no outcomectl at %s" % ctl)
        return subprocess.run([ctl, "--socket", self.d.socket_path] + list(args),
                              capture_output=True, text=True, timeout=20)

    def test_text_and_promtool(self):
        MetricsTest.feed(self)  # uses self.c
        r = self.ctl("metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        s, _ = parse(r.stdout)
        self.assertEqual(get(s, "outcomed_calls_total", gen_ai_request_model="alpha",
                             outcomed_task="generate", status="failed"), 1)
        j = self.ctl("--json", "metrics")
        self.assertEqual(j.returncode, 0, j.stderr)
        self.assertTrue(j.stdout.startswith('{"text":"# HELP '), j.stdout[:80])
        h = self.ctl("metrics", "--help")
        self.assertEqual(h.returncode, 0)
        self.assertIn("Usage: outcomectl metrics", h.stdout)
        self.assertEqual(self.ctl("metrics", "extra").returncode, 2)

        # --output: written whole through a temporary file; left alone when
        # the daemon cannot be reached.
        path = os.path.join(self.d.tmpdir, "outcomed.prom")
        o = self.ctl("metrics", "--output", path)
        self.assertEqual((o.returncode, o.stdout, o.stderr), (0, "", ""))
        with open(path) as f:
            s2, _ = parse(f.read())
        self.assertEqual(get(s2, "outcomed_calls_total", gen_ai_request_model="alpha",
                             outcomed_task="generate", status="completed"), 3)
        self.assertEqual(sorted(os.listdir(self.d.tmpdir)).count("outcomed.prom"), 1)
        self.assertFalse([n for n in os.listdir(self.d.tmpdir) if n.startswith(".outcomed.prom")],
                         "a temporary file was left behind")
        before = os.stat(path)
        gone = subprocess.run([harness.ctl_binary(), "--socket",
                               os.path.join(self.d.tmpdir, "nosuch.sock"), "metrics", "--output",
                               path], capture_output=True, text=True, timeout=20)
        self.assertEqual(gone.returncode, 3, gone.stderr)
        self.assertEqual(os.stat(path).st_ino, before.st_ino)
        self.assertEqual(self.ctl("metrics", "--output", "").returncode, 2)

        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian's prometheus package; "
                          "tools/setup.sh installs it)")
        p = subprocess.run([promtool, "check", "metrics"], input=r.stdout, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool: %s%s" % (p.stdout, p.stderr))
        self.assertEqual((p.stdout + p.stderr).strip(), "", "promtool has remarks")
        # ...and it does find fault with a broken text, so the check means something.
        bad = r.stdout.replace("# TYPE outcomed_calls_total counter",
                               "# TYPE outcomed_calls_total counter\n# TYPE outcomed_calls_total counter")
        p = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, "promtool accepted a family typed twice")

    def setUp(self):
        super().setUp()
        self.c = self.d.client()
        self.addCleanup(self.c.close)


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""query and stats against a real outcomed: the filters (model, task,
pending, limit, degrade_threshold), ordering, and the derived fields, as
the contract's `query` section defines them.

    /usr/bin/python3 tests/integration/test_query.py [--bin PATH]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_error  # noqa: E402

# The evidence beside the numbers of the Rust tracker outcomed grew out of: present on profiles and tasks.
EVIDENCE_KEYS = {"posterior", "latency_p50_ms", "latency_p95_ms", "input_tokens",
                 "output_tokens", "tokens_per_accepted", "cost_per_accepted"}
PROFILE_KEYS = {"model", "total_calls", "success_count", "fail_count", "total_latency_ms",
                "avg_latency_ms", "success_rate", "ema_quality", "degraded", "degraded_since",
                "updated_at", "tasks"} | EVIDENCE_KEYS
TASK_KEYS = {"calls", "successes", "failures", "avg_latency_ms", "ema_quality",
             "success_rate"} | EVIDENCE_KEYS
PENDING_KEYS = {"trace_id", "model", "task", "reason", "started_at", "completed", "latency_ms",
                "input_tokens", "output_tokens"}


def start(c, model="m", task="generate", **kw):
    args = {"model": model, "task": task}
    args.update(kw)
    return c.call("start", args)["trace_id"]


class QueryTest(harness.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.client()

    def resolve(self, model, task, kind, conf=None, latency=None):
        t = start(self.c, model=model, task=task)
        if latency is not None:
            self.c.call("complete", trace_id=t, latency_ms=latency)
        args = {"trace_id": t, "kind": kind}
        if conf is not None:
            args["confidence"] = conf
        return self.c.call("outcome", args)

    def test_empty(self):
        self.assertEqual(self.c.call("query"), {"profiles": []})
        self.assertEqual(self.c.call("query", model="nope"), {"profiles": []})
        self.assertEqual(self.c.call("query", task="code"), {"profiles": []})
        self.assertEqual(self.c.call("query", pending=True), {"pending": []})
        s = self.c.call("stats")
        self.assertEqual((s["pending"], s["profiles"]), (0, 0))

    def test_shapes_and_types(self):
        self.resolve("shape", "code", "accepted", 0.5, latency=10)
        start(self.c, model="shape", task="embed", reason="why")
        p = self.c.call("query")["profiles"][0]
        self.assertEqual(set(p), PROFILE_KEYS)
        self.assertEqual(set(p["tasks"]["code"]), TASK_KEYS)
        for k in ("total_calls", "success_count", "fail_count", "total_latency_ms", "updated_at"):
            self.assertIs(type(p[k]), int, k)
        for k in ("avg_latency_ms", "success_rate", "ema_quality"):
            self.assertIs(type(p[k]), float, k)
        self.assertIs(type(p["degraded"]), bool)
        self.assertIsNone(p["degraded_since"])  # not degraded
        for k in ("calls", "successes", "failures"):
            self.assertIs(type(p["tasks"]["code"][k]), int, k)
        for k in ("avg_latency_ms", "success_rate", "ema_quality"):
            self.assertIs(type(p["tasks"]["code"][k]), float, k)
        pend = self.c.call("query", pending=True)["pending"]
        self.assertEqual(len(pend), 1)
        self.assertTrue(PENDING_KEYS <= set(pend[0]), set(pend[0]))
        self.assertEqual((pend[0]["model"], pend[0]["task"], pend[0]["reason"], pend[0]["completed"],
                          pend[0]["latency_ms"], pend[0]["input_tokens"], pend[0]["output_tokens"]),
                         ("shape", "embed", "why", False, 0, 0, 0))
        self.assertLessEqual(abs(pend[0]["started_at"] - time.time()), 5)

    def test_sorted_bytewise(self):
        models = ["b", "B", "a-1", "a", "\u00e9t\u00e9", "Z", "a_", "a.", "0"]
        for m in models:
            self.resolve(m, "generate", "applied")
        got = [p["model"] for p in self.c.call("query")["profiles"]]
        self.assertEqual(got, sorted(models, key=lambda s: s.encode("utf-8")))

    def test_model_filter(self):
        self.resolve("one", "code", "applied")
        self.resolve("two", "code", "ignored")
        got = self.c.call("query", model="two")["profiles"]
        self.assertEqual([p["model"] for p in got], ["two"])
        self.assertEqual(got[0]["fail_count"], 1)
        self.assertEqual(self.c.call("query", model="three"), {"profiles": []})

    def test_task_filter(self):
        self.resolve("m1", "code", "applied", latency=5)
        self.resolve("m1", "embed", "applied", latency=7)
        self.resolve("m2", "embed", "ignored")
        self.resolve("m3", "generate", "inconclusive")   # profile without tasks
        got = self.c.call("query", task="code")["profiles"]
        self.assertEqual([p["model"] for p in got], ["m1"])
        self.assertEqual(list(got[0]["tasks"]), ["code"], "only the asked task in tasks")
        # The model-level numbers are the whole model's.
        self.assertEqual(got[0]["total_calls"], 2)
        got = self.c.call("query", task="embed")["profiles"]
        self.assertEqual([p["model"] for p in got], ["m1", "m2"])
        self.assertTrue(all(list(p["tasks"]) == ["embed"] for p in got))
        got = self.c.call("query", task="embed", model="m2")["profiles"]
        self.assertEqual([p["model"] for p in got], ["m2"])
        self.assertEqual(self.c.call("query", task="reasoning"), {"profiles": []})
        m3 = self.c.call("query", model="m3")["profiles"][0]
        self.assertEqual(m3["tasks"], {})

    def test_derived_fields(self):
        self.resolve("d", "code", "accepted", 1.0, latency=10)
        self.resolve("d", "code", "rejected", 0.0, latency=21)
        p = self.c.call("query", model="d")["profiles"][0]
        self.assertEqual((p["total_calls"], p["total_latency_ms"]), (2, 31))
        self.assertAlmostEqual(p["avg_latency_ms"], 15.5, places=12)
        self.assertAlmostEqual(p["success_rate"], 0.5, places=12)
        # 0.5 -> 0.5*0.8+1.0*0.2 = 0.6 -> 0.6*0.8+0.3*0.2 = 0.54
        self.assertAlmostEqual(p["ema_quality"], 0.54, places=12)
        ts = p["tasks"]["code"]
        self.assertEqual((ts["calls"], ts["successes"], ts["failures"]), (2, 1, 1))
        self.assertAlmostEqual(ts["avg_latency_ms"], 15.5, places=12)
        self.assertAlmostEqual(ts["ema_quality"], 0.54, places=12)
        self.assertAlmostEqual(ts["success_rate"], 0.5, places=12)
        # A model with calls and no outcome yet: rates at the prior.
        t = start(self.c, model="fresh", task="classify")
        self.c.call("complete", trace_id=t, latency_ms=3)
        p = self.c.call("query", model="fresh")["profiles"][0]
        self.assertEqual((p["success_rate"], p["ema_quality"]), (0.5, 0.5))
        self.assertEqual((p["tasks"]["classify"]["success_rate"], p["tasks"]["classify"]["ema_quality"]),
                         (0.5, 0.5))

    def test_degraded_and_threshold(self):
        for _ in range(4):
            t = start(self.c, model="bad", task="generate")
            self.c.call("fail", trace_id=t, error="x")
        p = self.c.call("query", model="bad")["profiles"][0]
        self.assertIs(p["degraded"], True, "4 failures > 0 successes + 3")
        p = self.c.call("query", model="bad", degrade_threshold=4)["profiles"][0]
        self.assertIs(p["degraded"], False, "4 failures is not > 0 + 4")
        p = self.c.call("query", model="bad", degrade_threshold=0)["profiles"][0]
        self.assertIs(p["degraded"], True)
        self.resolve("bad", "generate", "applied")
        p = self.c.call("query", model="bad")["profiles"][0]
        self.assertIs(p["degraded"], False, "4 failures is not > 1 success + 3")

    def test_pending_order_filters_and_limit(self):
        ids = []
        for i in range(6):
            ids.append(start(self.c, model="pa" if i % 2 == 0 else "pb", task="generate",
                             reason="r%d" % i))
        self.c.call("complete", trace_id=ids[2], latency_ms=9, input_tokens=1, output_tokens=2)
        self.c.call("fail", trace_id=ids[1])
        want = [ids[0], ids[2], ids[3], ids[4], ids[5]]
        pend = self.c.call("query", pending=True)["pending"]
        self.assertEqual([p["trace_id"] for p in pend], want, "oldest first")
        self.assertEqual([p["reason"] for p in pend], ["r0", "r2", "r3", "r4", "r5"])
        self.assertEqual([p["completed"] for p in pend], [False, True, False, False, False])
        self.assertEqual((pend[1]["latency_ms"], pend[1]["input_tokens"], pend[1]["output_tokens"]),
                         (9, 1, 2))
        got = self.c.call("query", pending=True, limit=2)["pending"]
        self.assertEqual([p["trace_id"] for p in got], want[:2])
        got = self.c.call("query", pending=True, limit=0)["pending"]
        self.assertEqual(got, [])
        got = self.c.call("query", pending=True, model="pb")["pending"]
        self.assertEqual([p["trace_id"] for p in got], [ids[3], ids[5]])
        got = self.c.call("query", pending=True, model="pa", limit=1)["pending"]
        self.assertEqual([p["trace_id"] for p in got], [ids[0]])
        # A trace restarted with the same client id keeps its place.
        t = start(self.c, model="pc", task="code", trace_id="keep-place")
        start(self.c, model="pc", task="code", trace_id="keep-place")
        pend = self.c.call("query", pending=True)["pending"]
        self.assertEqual(pend[-1]["trace_id"], t)
        s = self.c.call("stats")
        self.assertEqual(s["pending"], len(pend))

    def test_pending_default_limit_1000(self):
        c = self.c
        calls = [("start", {"model": "many", "task": "embed"}) for _ in range(1005)]
        c.send_many(calls)
        for msgid, err, res in c.recv_many(len(calls), timeout=20):
            self.assertIsNone(err)
        self.assertEqual(len(c.call("query", pending=True)["pending"]), 1000)
        self.assertEqual(len(c.call("query", pending=True, limit=2000)["pending"]), 1005)
        self.assertEqual(c.call("stats")["pending"], 1005)

    def test_large_reply_is_not_limited(self):
        # Replies are not limited by the request limits: a query answer over
        # the 4 MiB message limit is legitimate.
        c = self.c
        model = "L" * harness.MODEL_MAX
        reason = "r" * harness.TEXT_MAX
        n = 1200   # 1200 pending traces of ~4.5 KiB each: > 5 MiB of reply
        for i in range(0, n, 200):
            calls = [("start", {"model": model, "task": "generate", "reason": reason})
                     for _ in range(200)]
            c.send_many(calls)
            for msgid, err, res in c.recv_many(len(calls), timeout=20):
                self.assertIsNone(err)
        c.send_request("query", {"pending": True, "limit": n})
        obj, raw = c.recv_raw(timeout=20)
        harness.check_response_shape(obj)
        self.assertIsNone(obj[2], obj[2])
        self.assertEqual(len(obj[3]["pending"]), n)
        self.assertGreater(len(raw), harness.MESSAGE_MAX)
        self.assertIn("version", c.call("ping"))

    def test_stats_counts(self):
        s0 = self.c.call("stats")
        self.assertIsInstance(s0["version"], str)
        self.assertEqual(s0["version"], self.c.call("ping")["version"])
        for k in ("uptime_s", "connections", "requests_total", "errors_total", "notify_errors_total",
                  "pending", "profiles"):
            self.assertIs(type(s0[k]), int, k)
        self.resolve("s1", "code", "applied")
        self.resolve("s2", "code", "applied")
        start(self.c, model="s3")
        with self.d.client() as other:
            other.call("ping")
            s = self.c.call("stats")
            self.assertGreaterEqual(s["connections"], 2)
        self.assertEqual((s["profiles"], s["pending"]), (2, 1))
        self.assertGreaterEqual(s["requests_total"] - s0["requests_total"], 6)
        assert_error(self, self.c.request("nosuch"), "unknown_method")
        self.assertEqual(self.c.call("stats")["errors_total"] - s["errors_total"], 1)


if __name__ == "__main__":
    harness.main()

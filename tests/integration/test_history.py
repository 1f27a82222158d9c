#!/usr/bin/python3
"""test_history.py - `history` on a real daemon: the columns after real
calls, failures and judged outcomes (counts, quality, EMA and posterior
equal to what `query` says, latency percentiles, tokens, cost at the
configured price); the model, task and domain filters; since, until and
bucket_s and their errors naming the field; the 10,000-point limit (on
weeks of rows written by bench/history-fill through the store); a kill -9
and restart keep every acknowledged change's rows; history_days deletes
older rows; outcomectl history's table and --json.

    /usr/bin/python3 tests/integration/test_history.py [--bin PATH]
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_error, wait_until  # noqa: E402

FILL = os.environ.get("HISTORY_FILL_BIN") or os.path.join(
    harness.SOURCE_ROOT, "build", "bench", "history-fill")
COLUMNS = ["t", "calls", "successes", "failures", "judged", "quality", "ema", "posterior_mean",
           "posterior_lo", "posterior_hi", "latency_p50_ms", "latency_p95_ms", "input_tokens",
           "output_tokens", "cost"]


def fill(db, *args):
    if not os.access(FILL, os.X_OK):
        raise harness.unittest.SkipTest("no history-fill at %s (HISTORY_FILL_BIN)" % FILL)
    subprocess.run([FILL, "--db", db] + [str(a) for a in args], check=True,
                   stdout=subprocess.DEVNULL)


class History(harness.DaemonTestCase):
    config = ("[price:priced]\ninput_per_mtok = 3\noutput_per_mtok = 15\n"
              "[store]\nsnapshot_interval_ms = 3600000\n")

    def setUp(self):
        super().setUp()
        self.c = self.client()

    def cycle(self, model, task, kind=None, conf=0.9, ms=100, tin=100, tout=50, domain=None,
              fail=False):
        args = {"model": model, "task": task}
        if domain:
            args["domain"] = domain
        tid = self.c.call("start", args)["trace_id"]
        if fail:
            self.c.call("fail", {"trace_id": tid})
            return
        self.c.call("complete", {"trace_id": tid, "latency_ms": ms, "input_tokens": tin,
                                 "output_tokens": tout})
        if kind:
            self.c.call("outcome", {"trace_id": tid, "kind": kind, "confidence": conf})

    def history(self, **args):
        return self.c.call("history", args)

    def one(self, **args):
        h = self.history(**args)
        self.assertEqual(len(h["series"]), 1, h)
        return h["series"][0]

    def test_columns_after_real_calls(self):
        t0 = int(time.time())
        self.cycle("priced", "code", "accepted", 0.9, ms=100, tin=1000, tout=2000)
        self.cycle("priced", "code", "rejected", 1.0, ms=400, tin=1000, tout=2000)
        self.cycle("priced", "code", fail=True)
        self.cycle("priced", "code", ms=250)            # completed, not judged yet
        self.cycle("priced", "code", "inconclusive")    # judged nothing
        h = self.history(bucket_s=86400)
        self.assertEqual(set(h), {"bucket_s", "since", "until", "points", "series"})
        self.assertEqual(h["bucket_s"], 86400)
        self.assertEqual(h["since"] % 86400, 0)
        self.assertGreaterEqual(h["until"], t0)
        self.assertEqual(h["points"], 1)
        s = h["series"][0]
        self.assertEqual(set(s), {"model", "task"} | set(COLUMNS))
        self.assertEqual((s["model"], s["task"]), ("priced", "code"))
        for col in COLUMNS:
            self.assertEqual(len(s[col]), 1, col)
        self.assertEqual(s["t"][0], t0 - t0 % 86400)
        self.assertEqual(s["calls"], [4])
        self.assertEqual(s["successes"], [1])
        self.assertEqual(s["failures"], [2])          # the fail and the rejection
        self.assertEqual(s["judged"], [2])
        # accepted 0.9 -> q 0.9; rejected 1.0 -> q 0
        self.assertAlmostEqual(s["quality"][0], 0.45)
        q = self.c.call("query", {"model": "priced"})["profiles"][0]["tasks"]["code"]
        self.assertAlmostEqual(s["ema"][0], q["ema_quality"])
        self.assertAlmostEqual(s["posterior_mean"][0], q["posterior"]["mean"])
        self.assertAlmostEqual(s["posterior_lo"][0], q["posterior"]["lo"])
        self.assertAlmostEqual(s["posterior_hi"][0], q["posterior"]["hi"])
        self.assertAlmostEqual(s["latency_p50_ms"][0], q["latency_p50_ms"])
        self.assertAlmostEqual(s["latency_p95_ms"][0], q["latency_p95_ms"])
        self.assertEqual(s["input_tokens"], [2000 + 200])
        self.assertEqual(s["output_tokens"], [4000 + 100])
        self.assertAlmostEqual(s["cost"][0], (2200 * 3 + 4100 * 15) / 1e6)

    def test_filters(self):
        self.cycle("m1", "code", "accepted", domain="rust")
        self.cycle("m1", "generate", "accepted", domain="prose")
        self.cycle("m2", "code", "rejected", domain="rust")
        self.cycle("m0", "embed", "accepted")
        h = self.history()
        self.assertEqual([(s["model"], s["task"]) for s in h["series"]],
                         [("m0", "embed"), ("m1", "code"), ("m1", "generate"), ("m2", "code")])
        self.assertEqual(h["points"], 4)
        self.assertEqual([(s["model"], s["task"]) for s in self.history(model="m1")["series"]],
                         [("m1", "code"), ("m1", "generate")])
        self.assertEqual([s["model"] for s in self.history(task="code")["series"]], ["m1", "m2"])
        self.assertEqual(self.history(model="m9")["series"], [])
        rust = self.history(domain="rust")
        self.assertEqual([(s["model"], s["task"], s["domain"]) for s in rust["series"]],
                         [("m1", "code", "rust"), ("m2", "code", "rust")])
        m2 = rust["series"][1]
        self.assertEqual((m2["calls"], m2["failures"], m2["judged"]), ([1], [1], [1]))
        self.assertEqual(m2["ema"], [None])
        cell = self.c.call("query", {"model": "m2", "domain": "rust"})
        self.assertIn("rust", json.dumps(cell))
        self.assertEqual(self.history(domain="rust", model="m1", task="code")["points"], 1)
        self.assertEqual(self.history(domain="nowhere")["series"], [])

    def test_arguments_and_their_errors(self):
        self.cycle("m", "code", "accepted")
        now = int(time.time())
        h = self.history(bucket_s=60, since=now - 600, until=now + 60)
        self.assertEqual(h["since"], (now - 600) - (now - 600) % 60)
        self.assertEqual(h["until"], now + 60)
        self.assertEqual(h["series"][0]["t"], [now - now % 60])
        # Nothing in a window that ends before the call, or starts after it.
        self.assertEqual(self.history(since=now - 7200, until=now - 3600)["series"], [])
        self.assertEqual(self.history(since=now + 3600, until=now + 7200)["series"], [])
        # Defaults: until now, since 7 days before, an hour's buckets.
        d = self.history()
        self.assertEqual(d["bucket_s"], 3600)
        self.assertLessEqual(abs(d["until"] - now), 5)
        self.assertEqual(d["since"], (d["until"] - 7 * 86400) // 3600 * 3600)
        cases = [
            ({"bucket_s": 59}, "bucket_s:"), ({"bucket_s": 90}, "bucket_s:"),
            ({"bucket_s": 0}, "bucket_s:"), ({"bucket_s": 31 * 86400 + 60}, "bucket_s:"),
            ({"bucket_s": "hour"}, "bucket_s:"), ({"since": -1}, "since:"),
            ({"since": 1.5}, "since:"), ({"until": "now"}, "until:"),
            ({"since": 200, "until": 100}, "since:"), ({"task": "sing"}, "task:"),
            ({"model": ""}, "model:"), ({"model": 7}, "model:"),
            ({"domain": "a\nb"}, "domain:"), ({"domain": ""}, "domain:"),
            ({"colour": "red"}, "colour"),
        ]
        for args, field in cases:
            err, res = self.c.request("history", args)
            assert_error(self, (err, res), "bad_request", message_contains=field)
        self.assertEqual(self.history(bucket_s=31 * 86400)["bucket_s"], 31 * 86400)

    def test_point_limit_on_weeks_of_rows(self):
        self.d.stop()
        end = int(time.time()) // 3600 * 3600   # whole buckets of 120 s and of an hour
        fill(self.d.db_path, "--days", 8, "--models", 1, "--tasks", 1, "--end", end)
        self.d.start()
        self.c = self.client()
        since = end - 8 * 86400
        err, res = self.c.request("history", {"bucket_s": 60, "since": since, "until": end})
        assert_error(self, (err, res), "bad_request",
                     message_contains="history: 11520 points over the limit of 10000; "
                                      "narrow since/until or raise bucket_s")
        # Exactly at the limit: answered whole (about 1 MB of msgpack).
        h = self.history(bucket_s=60, since=end - 10000 * 60, until=end)
        self.assertEqual(h["points"], 10000)
        self.assertEqual(len(h["series"][0]["cost"]), 10000)
        h = self.history(bucket_s=120, since=since, until=end)
        self.assertEqual(h["points"], 5760)
        self.assertEqual(len(h["series"][0]["t"]), 5760)
        h = self.history(bucket_s=3600, since=since, until=end)
        self.assertEqual(h["points"], 8 * 24)
        self.assertEqual(sum(h["series"][0]["calls"]),
                         sum(self.history(bucket_s=86400, since=since, until=end)
                             ["series"][0]["calls"]))
        # Other clients are answered while big reads run.
        for _ in range(3):
            self.c.send_request("history", {"bucket_s": 120, "since": since, "until": end})
        other = self.client()
        self.assertIsInstance(other.call("ping"), (str, dict))
        for _ in range(3):
            self.assertIsNone(self.c.recv_response()[1])

    def test_kill_keeps_what_was_acknowledged(self):
        for i in range(20):
            self.cycle("k", "reasoning", "accepted" if i % 3 else "rejected", ms=10 * i)
        before = self.history(bucket_s=60)
        self.d.kill()
        self.d.start()
        self.c = self.client()
        after = self.history(bucket_s=60)
        self.assertEqual(before["series"], after["series"])
        self.assertEqual(sum(after["series"][0]["calls"]), 20)

    def test_history_days_deletes_older_rows(self):
        self.d.stop()
        now = int(time.time())
        # 2 days of rows ending 3 days ago, 1 day ending now.
        fill(self.d.db_path, "--days", 2, "--models", 1, "--tasks", 1, "--every", 60,
             "--end", now - 3 * 86400)
        fill(self.d.db_path, "--days", 1, "--models", 1, "--tasks", 1, "--every", 60,
             "--end", now)
        self.d.write_config("[store]\nhistory_days = 2\nsnapshot_interval_ms = 100\n")
        self.d.start()
        self.c = self.client()
        args = {"bucket_s": 86400, "since": now - 10 * 86400}

        def days():
            return [t for t in self.history(**args)["series"][0]["t"]]
        self.assertLess(min(days()), now - 4 * 86400)
        self.cycle("model-00", "generate", "accepted")  # a change: snapshots follow
        first_kept = (now - 86400) // 86400 * 86400   # the day the recent fill starts in
        self.assertTrue(wait_until(lambda: min(days()) >= first_kept, 10), days())
        self.assertEqual(days()[0], first_kept)
        kept = self.history(bucket_s=3600, since=now - 2 * 86400)["series"][0]
        self.assertGreaterEqual(sum(kept["calls"]), 24)

    def test_outcomectl_history(self):
        ctl = harness.ctl_binary()
        if not os.access(ctl, os.X_OK):
            self.skipTest("no outcomectl")
        self.cycle("priced", "code", "accepted", ms=120)
        self.cycle("other", "embed", "rejected", ms=30)
        run = lambda *a: subprocess.run([ctl, "--socket", self.d.socket_path, "history"] +  # noqa
                                        list(a), capture_output=True, text=True, timeout=30)
        p = run("--json", "--bucket", "1d")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["bucket_s"], 86400)
        self.assertEqual([s["model"] for s in j["series"]], ["other", "priced"])
        p = run("--model", "priced", "--since", "2h", "--bucket", "10m")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("priced", p.stdout)
        self.assertIn("code", p.stdout)
        self.assertNotIn("other", p.stdout)
        for head in ("TIME", "CALLS", "OK", "FAIL", "QUALITY", "EMA", "P50", "COST"):
            self.assertIn(head, p.stdout)
        p = run("--bucket", "59s")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("--bucket", p.stderr)
        p = run("--task", "sing")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("task", p.stderr)


if __name__ == "__main__":
    harness.main()

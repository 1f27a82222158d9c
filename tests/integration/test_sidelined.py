#!/usr/bin/python3
"""test_sidelined.py - why a model is degraded or excluded, on a real daemon:
rank's `excluded_why` and each degraded item's `degraded_why` (failures,
successes, the threshold in force, since when), query's `degraded_since`,
the time kept across a clean restart, a kill -9 (journal replay), a reload
that changes the threshold, a restart under another threshold, import, and
outcomectl's rank and query output.

    /usr/bin/python3 tests/integration/test_sidelined.py [--bin PATH]
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

WHY_KEYS = {"model", "failures", "successes", "threshold", "since"}


class Sidelined(harness.DaemonTestCase):
    # No snapshot but the first and the last: what a kill -9 leaves is
    # rebuilt from the journal.
    config = "[store]\nsnapshot_interval_ms = 3600000\n"

    def setUp(self):
        super().setUp()
        self.c = self.client()

    def failed(self, model, task="code"):
        tid = self.c.call("start", {"model": model, "task": task})["trace_id"]
        self.c.call("fail", {"trace_id": tid})

    def accept(self, model, task="code"):
        tid = self.c.call("start", {"model": model, "task": task})["trace_id"]
        self.c.call("outcome", {"trace_id": tid, "kind": "applied"})

    def since(self, model):
        return self.c.call("query", {"model": model})["profiles"][0]["degraded_since"]

    def make_broken(self):
        """"broken": 1 ok, then 4 failures (not degraded: 4 > 1 + 3 is
        false), a pause, and the 5th failure that crosses; "good": 2 ok.
        Returns the unix seconds just before the 5th failure."""
        self.accept("good")
        self.accept("good")
        self.accept("broken")
        for _ in range(4):
            self.failed("broken")
        self.assertIsNone(self.since("broken"), "4 fail, 1 ok is not degraded under 3")
        time.sleep(1.1)  # the crossing's second is later than the other changes'
        before = int(time.time())
        self.failed("broken")
        return before

    def reconnect(self):
        self.c.close()
        self.c = self.client()

    def test_rank_excluded_why(self):
        before = self.make_broken()
        since = self.since("broken")
        self.assertIsInstance(since, int)
        self.assertGreaterEqual(since, before)
        self.assertLessEqual(since, int(time.time()))
        p = self.c.call("query", {"model": "broken"})["profiles"][0]
        self.assertLess(p["updated_at"] - 10, since)
        self.assertEqual(since, p["updated_at"], "the 5th failure is the last change")

        r = self.c.call("rank", {"task": "code", "strategy": "mean"})
        self.assertEqual([x["model"] for x in r["ranked"]], ["good"])
        self.assertEqual(r["excluded"], ["broken"])
        self.assertEqual(r["excluded_why"], [{"model": "broken", "failures": 5, "successes": 1,
                                              "threshold": 3, "since": since}])
        self.assertIsNone(r["ranked"][0]["degraded_why"])

        # exclude_degraded: true asked of kg too
        r = self.c.call("rank", {"task": "code", "exclude_degraded": True})
        self.assertEqual(r["excluded"], ["broken"])
        self.assertEqual(r["excluded_why"][0]["since"], since)

        # kg (the default) keeps degraded models in: the reason is on the item
        r = self.c.call("rank", {"task": "code"})
        self.assertEqual(r["strategy"], "kg")
        self.assertEqual((r["excluded"], r["excluded_why"]), ([], []))
        items = {x["model"]: x for x in r["ranked"]}
        self.assertTrue(items["broken"]["degraded"])
        self.assertEqual(items["broken"]["degraded_why"],
                         {"model": "broken", "failures": 5, "successes": 1, "threshold": 3,
                          "since": since})
        self.assertFalse(items["good"]["degraded"])
        self.assertIsNone(items["good"]["degraded_why"])

        r = self.c.call("rank", {"task": "code", "strategy": "ema", "exclude_degraded": False})
        items = {x["model"]: x for x in r["ranked"]}
        self.assertEqual(set(items["broken"]["degraded_why"]), WHY_KEYS)
        self.assertEqual(items["broken"]["degraded_why"]["failures"], 5)

    def test_request_threshold(self):
        self.make_broken()
        since = self.since("broken")
        # Not degraded under 10: no reason anywhere.
        r = self.c.call("rank", {"task": "code", "strategy": "mean", "degrade_threshold": 10})
        self.assertEqual((r["excluded"], r["excluded_why"]), ([], []))
        for it in r["ranked"]:
            self.assertFalse(it["degraded"])
            self.assertIsNone(it["degraded_why"])
        # Under 0 "good" is fine (0 fail) and "broken" says threshold 0, its
        # time being the configured threshold's.
        r = self.c.call("rank", {"task": "code", "strategy": "mean", "degrade_threshold": 0})
        self.assertEqual(r["excluded_why"], [{"model": "broken", "failures": 5, "successes": 1,
                                              "threshold": 0, "since": since}])
        # A model degraded only under the request's threshold: since is nil.
        self.failed("shaky")
        r = self.c.call("rank", {"task": "code", "strategy": "mean", "degrade_threshold": 0,
                                 "candidates": ["shaky"]})
        self.assertEqual(r["excluded_why"], [{"model": "shaky", "failures": 1, "successes": 0,
                                              "threshold": 0, "since": None}])
        # query's degraded follows the request; degraded_since the configuration.
        p = self.c.call("query", {"model": "shaky", "degrade_threshold": 0})["profiles"][0]
        self.assertIs(p["degraded"], True)
        self.assertIsNone(p["degraded_since"])
        p = self.c.call("query", {"model": "broken", "degrade_threshold": 10})["profiles"][0]
        self.assertIs(p["degraded"], False)
        self.assertEqual(p["degraded_since"], since)

    def test_leaves_and_crosses_again(self):
        self.make_broken()
        first = self.since("broken")
        self.accept("broken")  # 5 > 2 + 3 is false: out
        self.assertIsNone(self.since("broken"))
        r = self.c.call("rank", {"task": "code", "strategy": "mean"})
        self.assertEqual(r["excluded_why"], [])
        time.sleep(1.1)
        self.failed("broken")  # 6 > 5: in again, later
        again = self.since("broken")
        self.assertGreater(again, first)
        r = self.c.call("rank", {"task": "code", "strategy": "mean"})
        self.assertEqual(r["excluded_why"][0]["since"], again)
        self.assertEqual(r["excluded_why"][0]["failures"], 6)
        self.assertEqual(r["excluded_why"][0]["successes"], 2)

    def profiles(self):
        return self.c.call("query", {})["profiles"]

    def test_survives_restart_and_kill(self):
        self.make_broken()
        before = self.profiles()
        since = self.since("broken")
        self.c.close()
        self.d.stop()
        self.d.start()
        self.c = self.client()
        self.assertEqual(self.profiles(), before)
        self.assertEqual(self.c.call("stats")["replayed"], 0, "a clean stop snapshots")

        # Changes after the snapshot, then kill -9: the journal's replay
        # must cross at the same time, and leave at the same change.
        self.failed("broken")
        time.sleep(1.1)
        self.failed("other")
        for _ in range(4):
            self.failed("other")  # 5 > 0 + 3: crosses at the 4th
        other = self.since("other")
        self.assertIsNotNone(other)
        self.accept("good")
        before = self.profiles()
        self.c.close()
        self.d.kill()
        self.d.start()
        self.c = self.client()
        self.assertGreater(self.c.call("stats")["replayed"], 0, "the state came from the journal")
        after = self.profiles()
        self.assertEqual(after, before)
        self.assertEqual(self.since("broken"), since)
        self.assertEqual(self.since("other"), other)

    def test_import(self):
        self.make_broken()
        exported = self.profiles()
        since = self.since("broken")
        self.c.call("forget", {"model": "broken"})
        self.assertEqual(self.c.call("import", {"profiles": exported, "mode": "replace"})
                         ["imported"], 2)
        self.assertEqual(self.since("broken"), since, "an export imported keeps the time")
        # A degraded model from a file without the field takes its updated_at.
        p = dict(exported[0], model="older")
        p.pop("degraded_since")
        self.c.call("import", {"profiles": [p]})
        self.assertEqual(self.since("older"), p["updated_at"])
        # The time of a healthy profile is dropped.
        q = dict(exported[1])
        self.assertEqual(q["model"], "good")
        q.update(model="healthy", degraded_since=12345)
        self.c.call("import", {"profiles": [q]})
        self.assertIsNone(self.since("healthy"))
        bad = dict(q, degraded_since="yesterday")
        assert_error(self, self.c.request("import", {"profiles": [bad]}), "bad_request",
                     message_contains="profiles[0].degraded_since")


class ThresholdChange(harness.DaemonTestCase):
    """The stored time is for the configured threshold: a reload or a
    restart under another one reconciles every profile."""

    config = "[query]\ndegrade_threshold = 3\n[store]\nsnapshot_interval_ms = 3600000\n"

    def reload(self, c, threshold):
        n = c.call("stats")["config"]["reloads_total"]
        self.d.write_config("[query]\ndegrade_threshold = %d\n"
                            "[store]\nsnapshot_interval_ms = 3600000\n" % threshold)
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: c.call("stats")["config"]["reloads_total"] == n + 1))
        self.assertEqual(c.call("stats")["config"]["degrade_threshold"], threshold)

    def profile(self, c, model):
        return c.call("query", {"model": model})["profiles"][0]

    def test_reload_and_restart(self):
        c = self.client()
        # Failures at three different seconds: under 1 the 2nd would cross,
        # under 3 none does.
        for i in range(3):
            if i:
                time.sleep(1.1)
            tid = c.call("start", {"model": "m", "task": "generate"})["trace_id"]
            c.call("fail", {"trace_id": tid})
        p = self.profile(c, "m")
        self.assertIsNone(p["degraded_since"], "3 > 0 + 3 is false")
        time.sleep(1.1)  # the reload's second is not the last change's
        snaps = c.call("stats")["snapshots_total"]

        self.reload(c, 1)  # 3 > 1: degraded since its last change
        p = self.profile(c, "m")
        self.assertIs(p["degraded"], True)
        self.assertEqual(p["degraded_since"], p["updated_at"])
        self.assertLess(p["degraded_since"], int(time.time()))
        r = c.call("rank", {"task": "generate", "strategy": "mean"})
        self.assertEqual(r["excluded_why"], [{"model": "m", "failures": 3, "successes": 0,
                                              "threshold": 1, "since": p["updated_at"]}])
        # The reload's snapshot holds the new time: a kill -9 keeps it
        # (a replay of the journal under 1 would say the 2nd failure's).
        self.assertTrue(wait_until(lambda: c.call("stats")["snapshots_total"] > snaps))
        c.close()
        self.d.kill()
        self.d.start()
        c = self.client()
        self.assertEqual(self.profile(c, "m")["degraded_since"], p["updated_at"])

        self.reload(c, 5)  # 3 > 5 is false: cleared
        self.assertIsNone(self.profile(c, "m")["degraded_since"])
        self.assertIs(self.profile(c, "m")["degraded"], False)
        self.reload(c, 1)
        self.assertEqual(self.profile(c, "m")["degraded_since"], p["updated_at"])

        # A restart under another threshold: corrected as it loads.
        c.close()
        self.d.stop()
        self.d.write_config("[query]\ndegrade_threshold = 7\n")
        self.d.start()
        c = self.client()
        self.assertIsNone(self.profile(c, "m")["degraded_since"])


class Outcomectl(harness.DaemonTestCase):
    def setUp(self):
        self.ctl = harness.ctl_binary()
        if not os.access(self.ctl, os.X_OK):
            self.skipTest("no outcomectl at %s" % self.ctl)
        super().setUp()
        self.c = self.client()

    def run_ctl(self, *args):
        env = dict(os.environ, TZ="UTC")
        env.pop("OUTCOMED_SOCKET", None)
        r = subprocess.run([self.ctl, "--socket", self.d.socket_path] + list(args),
                           capture_output=True, text=True, timeout=20, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_rank_and_query_show_why(self):
        tid = self.c.call("start", {"model": "good", "task": "code"})["trace_id"]
        self.c.call("outcome", {"trace_id": tid, "kind": "applied"})
        for _ in range(4):
            tid = self.c.call("start", {"model": "broken", "task": "code"})["trace_id"]
            self.c.call("fail", {"trace_id": tid})
        since = self.c.call("query", {"model": "broken"})["profiles"][0]["degraded_since"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since))

        out = self.run_ctl("rank", "--task", "code", "--strategy", "mean")
        line = [x for x in out.splitlines() if "broken" in x]
        self.assertEqual(len(line), 1, out)
        self.assertIn("excluded: degraded (4 fail > 0 ok + 3, since %s)" % when, line[0])

        out = self.run_ctl("rank", "--task", "code", "--include-degraded")
        line = [x for x in out.splitlines() if "broken" in x][0]
        self.assertIn("degraded (4 fail > 0 ok + 3, since %s)" % when, line)
        self.assertTrue(line.startswith("1 ") or line.startswith("2 "), line)

        out = self.run_ctl("query")
        line = [x for x in out.splitlines() if x.startswith("broken")][0]
        self.assertIn("since %s" % when, line)
        line = [x for x in out.splitlines() if x.startswith("good")][0]
        self.assertNotIn("since", line)

        r = json.loads(self.run_ctl("--json", "rank", "--task", "code", "--strategy", "mean"))
        self.assertEqual(r["excluded_why"], [{"model": "broken", "failures": 4, "successes": 0,
                                              "threshold": 3, "since": since}])
        q = json.loads(self.run_ctl("--json", "query", "--model", "broken"))
        self.assertEqual(q["profiles"][0]["degraded_since"], since)


if __name__ == "__main__":
    harness.main()

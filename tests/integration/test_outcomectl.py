#!/usr/bin/python3
"""outcomectl against a real outcomed: every command, --json, and the exit
statuses (0 success, 1 the daemon answered an error or a file could not be
read, parsed or written, 2 usage error, 3 the daemon cannot be reached);
forget, and export/import of profiles between daemons.

    /usr/bin/python3 tests/integration/test_outcomectl.py [--bin PATH] [--ctl PATH]
"""

import json
import math
import os
import re
import socket
import struct
import subprocess
import sys
import time

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


def exactly_equal(a, b):
    """Equal values of equal types, floats bit for bit (ints stay ints)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(exactly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(exactly_equal(x, y) for x, y in zip(a, b))
    return a == b


# What an import does not carry over: the latency sketches behind the
# percentiles are not part of a profile, so they start afresh.  (updated_at
# is checked on its own: a model new to the daemon keeps the file's, one
# merged or replaced gets the time of the import.)
NOT_CARRIED = ("updated_at", "latency_p50_ms", "latency_p95_ms")


def carried(profile):
    """A profile without the fields an import does not carry over."""
    out = {k: v for k, v in profile.items() if k not in NOT_CARRIED}
    if isinstance(out.get("tasks"), dict):
        out["tasks"] = {t: {k: v for k, v in ts.items() if k not in NOT_CARRIED}
                        for t, ts in out["tasks"].items()}
    return out


def export_doc(profiles, version=1, fmt="outcomed-profiles"):
    return json.dumps({"format": fmt, "version": version, "exported_at": int(time.time()),
                       "profiles": profiles})


def profile(model, calls, ok, fail, total_ms, ema, tasks=None, updated_at=None):
    """A PROFILE of the export format, by hand."""
    p = {"model": model, "total_calls": calls, "success_count": ok, "fail_count": fail,
         "total_latency_ms": total_ms, "ema_quality": ema, "tasks": tasks or {}}
    if updated_at is not None:
        p["updated_at"] = updated_at
    return p


def task(calls, ok, fail, avg_ms, ema):
    return {"calls": calls, "successes": ok, "failures": fail, "avg_latency_ms": avg_ms,
            "ema_quality": ema}


def wmean(a, wa, b, wb):
    """The documented merge of two means: weighted, equal weights at 0/0."""
    if wa + wb == 0:
        return (a + b) / 2.0
    return (a * wa + b * wb) / (wa + wb)


IMPORTED = re.compile(r"^imported (\d+) profiles? \((\d+) new\) in (\d+) calls?$")


class OutcomectlTest(harness.CtlTestCase):

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

    # ---- forget

    def test_forget(self):
        self.populate()
        r = self.run_ctl("forget", "alpha-model", want=OK)
        self.assertEqual(r.stdout, "forgot alpha-model\n")
        self.assertEqual(self.c.call("query", model="alpha-model"), {"profiles": []})
        self.assertEqual([p["model"] for p in self.c.call("query")["profiles"]], ["beta-model"])
        r = self.run_ctl("forget", "alpha-model", want=OK)
        self.assertEqual(r.stdout, "no profile for alpha-model\n")
        self.assertEqual(self.json_ctl("forget", "alpha-model"),
                         {"model": "alpha-model", "forgotten": False})
        self.assertEqual(self.json_ctl("forget", "beta-model"),
                         {"model": "beta-model", "forgotten": True})
        self.assertEqual(self.c.call("query"), {"profiles": []})
        # Its pending trace is still there.
        self.assertEqual(len(self.c.call("query", pending=True)["pending"]), 1)
        for args in (("forget",), ("forget", "a", "b"), ("forget", "")):
            with self.subTest(args=args):
                self.run_ctl(*args, want=USAGE)

    # ---- export and import

    def other_daemon(self, config=""):
        """A second daemon, stopped and checked at the end of the test."""
        d = harness.Daemon(config=config)
        self.addCleanup(d.cleanup)
        d.start()
        self.addCleanup(lambda: d.stop() if d.running() else None)
        return d

    def populate_rich(self):
        """Profiles with every task, failures, awkward floats, a model with
        judged outcomes but no calls, and names that need JSON escapes."""
        confs = [0.1, 1 / 3, 0.7, 0.9999, 0.123456789, 0.5]
        models = ["rich-a", "rich-b", 'quo"te\\back\tslash', "mod\u00e8le-\u00fc-\u65e5\u672c-\U0001f600"]
        n = 0
        for m, model in enumerate(models):
            for k, task_name in enumerate(harness.TASKS):
                for j in range(1 + (m + k) % 3):
                    n += 1
                    t = self.c.call("start", model=model, task=task_name)["trace_id"]
                    if (n % 5) == 4:
                        self.c.call("fail", trace_id=t, error="x")
                        continue
                    self.c.call("complete", trace_id=t, latency_ms=7 * n + j, input_tokens=n,
                                output_tokens=2 * n)
                    kind = ("accepted", "rejected", "accepted_with_edits")[n % 3]
                    self.c.call("outcome", trace_id=t, kind=kind, confidence=confs[n % len(confs)])
        t = self.c.call("start", model="judged-only", task="classify")["trace_id"]
        self.c.call("outcome", trace_id=t, kind="accepted", confidence=0.3)
        return len(models) + 1

    def test_export_import_round_trip(self):
        n = self.populate_rich()
        # Some domain cells too (version 2 carries them in each profile).
        for i, dom in enumerate(["law", "math", "law", "art history"]):
            t = self.c.call("start", model="m%d" % (i % 2), task="reasoning",
                            domain=dom)["trace_id"]
            self.c.call("complete", trace_id=t, latency_ms=10 + i, input_tokens=i,
                        output_tokens=1)
            self.c.call("outcome", trace_id=t, kind="accepted", confidence=0.25 * (i + 1))
        n = len(self.c.call("query")["profiles"])
        want = self.c.call("query", domains=True)["profiles"]
        self.assertEqual(sum(len(d) for p in want for d in p["domains"].values()), 3)
        self.assertEqual(len(want), n)
        path = os.path.join(self.d.tmpdir, "profiles.json")
        before = time.time()
        r = self.run_ctl("export", path, want=OK)
        self.assertEqual(r.stdout, "exported %d profiles to %s\n" % (n, path))
        # No temporary file left beside it.
        self.assertEqual([f for f in os.listdir(self.d.tmpdir) if "profiles" in f], ["profiles.json"])
        with open(path) as f:
            doc = json.load(f)
        self.assertEqual(sorted(doc), ["exported_at", "format", "profiles", "version"])
        self.assertEqual((doc["format"], doc["version"]), ("outcomed-profiles", 2))
        self.assertIsInstance(doc["exported_at"], int)
        self.assertLessEqual(abs(doc["exported_at"] - before), 5)
        # The file holds query's answer exactly: floats bit for bit, ints as ints.
        self.assertTrue(exactly_equal(doc["profiles"], want),
                        "export differs from query:\n%r\nwant\n%r" % (doc["profiles"], want))
        # Standard output gives the same document.
        for args in (("export",), ("export", "-")):
            out = json.loads(self.run_ctl(*args, want=OK).stdout)
            self.assertTrue(exactly_equal(out["profiles"], want))

        d2 = self.other_daemon()
        r = self.run_ctl("import", path, socket_path=d2.socket_path, want=OK)
        self.assertEqual(r.stdout, "imported %d profiles (%d new) and 3 domain cells (3 new) "
                         "in 2 calls\n" % (n, n))
        with d2.client() as c2:
            got = c2.call("query", domains=True)["profiles"]
        self.assertEqual([p["model"] for p in got], [p["model"] for p in want])
        for g, w in zip(got, want):
            with self.subTest(model=w["model"]):
                self.assertTrue(exactly_equal(carried(g), carried(w)),
                                "imported profile differs:\n%r\nwant\n%r" % (carried(g), carried(w)))
                self.assertEqual(g["updated_at"], w["updated_at"], "a new model keeps its time")

        # Again through standard input, --replace: nothing changes but updated_at.
        # The daemon's time(2) is the kernel's coarse clock, which may still be
        # a tick behind this process's at a second's boundary: one second of slack.
        before = int(time.time()) - 1
        with open(path) as f:
            r = self.run_ctl("--json", "import", "-", "--replace", socket_path=d2.socket_path,
                             stdin=f.read(), want=OK)
        self.assertEqual(json.loads(r.stdout),
                         {"imported": n, "created": 0, "cells": 3, "cells_created": 3,
                          "calls": 2, "mode": "replace"})
        with d2.client() as c2:
            again = c2.call("query", domains=True)["profiles"]
        self.assertTrue(exactly_equal([carried(p) for p in again], [carried(p) for p in got]))
        for p in again:
            self.assertGreaterEqual(p["updated_at"], before, "a replaced model changed now")

    def test_import_merge_arithmetic(self):
        # The daemon's side, from real calls.
        for latency, conf in ((100, 0.9), (300, 0.4)):
            t = self.c.call("start", model="m", task="code")["trace_id"]
            self.c.call("complete", trace_id=t, latency_ms=latency)
            self.c.call("outcome", trace_id=t, kind="accepted", confidence=conf)
        t = self.c.call("start", model="m", task="generate")["trace_id"]
        self.c.call("complete", trace_id=t, latency_ms=50)
        self.c.call("fail", trace_id=t)
        # A model with judged outcomes and no calls.
        t = self.c.call("start", model="z", task="classify")["trace_id"]
        self.c.call("outcome", trace_id=t, kind="accepted", confidence=0.9)
        self.c.call("start", model="keep", task="embed", trace_id="k1")
        self.c.call("complete", trace_id="k1", latency_ms=5)
        old = {p["model"]: p for p in self.c.call("query")["profiles"]}

        future = int(time.time()) + 100000
        fm = profile("m", 7, 5, 1, 2100, 0.25, {
            "code": task(4, 3, 1, 275.5, 0.3125),
            "reasoning": task(3, 2, 0, 333.0, 0.75),
        }, updated_at=1)
        fm.update(posterior={"alpha": 2.5, "beta": 1.25, "judged": 6.0}, input_tokens=70,
                  output_tokens=140)
        fz = profile("z", 0, 2, 1, 0, 0.2, {"classify": task(0, 2, 1, 0.0, 0.2)},
                     updated_at=future)
        fn = profile("new-model", 2, 1, 1, 30, 1, {"embed": task(2, 1, 1, 15.0, 0)})
        fo = profile("new-old-model", 1, 1, 0, 3, 0.5, updated_at=1000)
        path = os.path.join(self.d.tmpdir, "merge.json")
        with open(path, "w") as f:
            f.write(export_doc([fm, fz, fn, fo]))
        before = int(time.time())
        r = self.run_ctl("import", path, "--merge", want=OK)
        after = int(time.time())
        self.assertEqual(r.stdout, "imported 4 profiles (2 new) in 1 call\n")
        got = {p["model"]: p for p in self.c.call("query")["profiles"]}

        def check(model, mine, theirs, by_judged=False):
            a, b = old[model], theirs
            g = got[model]
            for k in ("total_calls", "success_count", "fail_count", "total_latency_ms"):
                self.assertEqual(g[k], a[k] + b[k], "%s.%s" % (model, k))
            wa, wb = a["total_calls"], b["total_calls"]
            if by_judged:
                wa, wb = a["success_count"] + a["fail_count"], b["success_count"] + b["fail_count"]
            self.assertTrue(math.isclose(g["ema_quality"], wmean(a["ema_quality"], wa,
                                                                 b["ema_quality"], wb),
                                         rel_tol=1e-12), "%s.ema_quality" % model)
            for name in set(a["tasks"]) | set(b["tasks"]):
                ta, tb, tg = a["tasks"].get(name), b["tasks"].get(name), g["tasks"][name]
                if ta is None or tb is None:
                    only = ta or tb
                    for k in ("calls", "successes", "failures", "avg_latency_ms", "ema_quality"):
                        self.assertEqual(tg[k], only[k], "%s.%s.%s" % (model, name, k))
                    continue
                for k in ("calls", "successes", "failures"):
                    self.assertEqual(tg[k], ta[k] + tb[k], "%s.%s.%s" % (model, name, k))
                self.assertTrue(math.isclose(tg["avg_latency_ms"],
                                             wmean(ta["avg_latency_ms"], ta["calls"],
                                                   tb["avg_latency_ms"], tb["calls"]),
                                             rel_tol=1e-12), "%s.%s.avg_latency_ms" % (model, name))
                wa, wb = ta["calls"], tb["calls"]
                if wa + wb == 0:
                    wa, wb = ta["successes"] + ta["failures"], tb["successes"] + tb["failures"]
                self.assertTrue(math.isclose(tg["ema_quality"], wmean(ta["ema_quality"], wa,
                                                                      tb["ema_quality"], wb),
                                             rel_tol=1e-12), "%s.%s.ema_quality" % (model, name))
            self.assertEqual(sorted(g["tasks"]), sorted(set(a["tasks"]) | set(b["tasks"])))
            # The evidence adds up too (no half-life configured: nothing fades).
            for k in ("input_tokens", "output_tokens"):
                if k in g:
                    self.assertEqual(g[k], a[k] + b.get(k, 0), "%s.%s" % (model, k))
            if "posterior" in g:
                for k in ("alpha", "beta", "judged"):
                    self.assertTrue(math.isclose(g["posterior"][k], a["posterior"][k]
                                                 + b.get("posterior", {}).get(k, 0.0),
                                                 rel_tol=1e-12), "%s.posterior.%s" % (model, k))

        check("m", old["m"], fm)
        check("z", old["z"], fz, by_judged=True)
        # A new model is taken as it is (an integer ema_quality is fine).
        n = got["new-model"]
        self.assertEqual((n["total_calls"], n["success_count"], n["fail_count"],
                          n["total_latency_ms"], n["ema_quality"]), (2, 1, 1, 30, 1.0))
        self.assertEqual({k: n["tasks"]["embed"][k] for k in task(0, 0, 0, 0, 0)},
                         task(2, 1, 1, 15.0, 0.0))
        # updated_at: a merged model changed now, whatever the file says; a
        # new one keeps the file's time (now when the file has none).
        for model in ("m", "z", "new-model"):
            self.assertTrue(before <= got[model]["updated_at"] <= after, model)
        self.assertEqual(got["new-old-model"]["updated_at"], 1000)
        # A model not in the file is untouched.
        self.assertTrue(exactly_equal(got["keep"], old["keep"]))

    def test_import_replace(self):
        self.populate()
        old = {p["model"]: p for p in self.c.call("query")["profiles"]}
        fa = profile("alpha-model", 9, 4, 5, 900, 0.125, {"embed": task(9, 4, 5, 100.0, 0.125)})
        path = os.path.join(self.d.tmpdir, "replace.json")
        with open(path, "w") as f:
            f.write(export_doc([fa]))
        r = self.run_ctl("import", "--replace", path, want=OK)
        self.assertEqual(r.stdout, "imported 1 profile (0 new) in 1 call\n")
        got = {p["model"]: p for p in self.c.call("query")["profiles"]}
        a = got["alpha-model"]
        self.assertEqual((a["total_calls"], a["success_count"], a["fail_count"],
                          a["total_latency_ms"], a["ema_quality"], a["degraded"]),
                         (9, 4, 5, 900, 0.125, False))
        self.assertEqual(sorted(a["tasks"]), ["embed"], "replace drops the tasks not in the file")
        self.assertEqual({k: a["tasks"]["embed"][k] for k in task(0, 0, 0, 0, 0)},
                         task(9, 4, 5, 100.0, 0.125))
        self.assertTrue(exactly_equal(got["beta-model"], old["beta-model"]))

    def assert_refused(self, text, *messages, args=(), want=DAEMON_ERROR):
        """Import `text`: refused with exit `want`, stderr holding each of
        messages, and nothing changed in the daemon."""
        before = self.c.call("query")
        path = os.path.join(self.d.tmpdir, "bad.json")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        r = self.run_ctl("import", path, *args, want=want)
        self.assertEqual(r.stdout, "")
        for m in messages:
            self.assertIn(m, r.stderr)
        self.assertEqual(self.c.call("query"), before, "a refused import changes nothing")
        return r

    def test_import_bad_files(self):
        self.populate()
        good = profile("g", 1, 1, 0, 10, 0.5)
        # Not JSON: the place is named as FILE:LINE:COLUMN.
        r = self.assert_refused('{"format": "outcomed-profiles",\n "version": 1,\n "profiles": [,]}',
                                "bad.json:3:15:")
        self.assertIn("unexpected ','", r.stderr)
        self.assert_refused('{"format": "outcomed-profiles", "version": 1, "profiles": []} x',
                            "bad.json:1:", "after the JSON value")
        self.assert_refused("", "bad.json:1:1:")
        self.assert_refused('{"a": 1, "a": 2}', "given twice")
        self.assert_refused('[1e999]', "out of range")
        self.assert_refused('"\udcff"', "invalid UTF-8")
        self.assert_refused("[" * 100 + "]" * 100, "deeper")
        # JSON, but not an export of this format and version.
        self.assert_refused("[]", "not an outcomed profile export")
        self.assert_refused(export_doc([good], fmt="something-else"), "not an outcomed profile export")
        self.assert_refused(export_doc([good], version=3), "version 3")
        self.assert_refused(export_doc([dict(good, domains={"reasoning": {"": {}}})], version=2),
                            "profiles[0].domains.reasoning")
        self.assert_refused(export_doc([dict(good, domains={"dance": {}})], version=2),
                            "profiles[0].domains")
        self.assert_refused(export_doc([good], version="1"), "version")
        self.assert_refused(json.dumps({"format": "outcomed-profiles", "version": 1}), "profiles")
        # A bad profile deep in the file: nothing at all is imported, even
        # though the profiles before it would fill whole chunks.
        many = [profile("p%04d" % i, i, 0, 0, i, 0.5) for i in range(2500)]
        bad = [dict(p) for p in many]
        bad[2100]["total_calls"] = -1
        self.assert_refused(export_doc(bad), "profiles[2100].total_calls")
        bad = [dict(p) for p in many]
        bad[1999]["ema_quality"] = 1.5
        self.assert_refused(export_doc(bad), "profiles[1999].ema_quality")
        bad = [dict(p) for p in many]
        bad[2400]["tasks"] = {"cooking": task(1, 1, 0, 1.0, 0.5)}
        self.assert_refused(export_doc(bad), "profiles[2400].tasks", "cooking")
        bad = [dict(p) for p in many]
        del bad[1500]["success_count"]
        self.assert_refused(export_doc(bad), "profiles[1500].success_count: required")
        self.assert_refused(export_doc(many + [profile("p0007", 1, 1, 0, 1, 0.5)]),
                            "profiles[2500].model", "p0007", "profiles[7]")
        self.assert_refused(export_doc([good, 5]), "profiles[1]")
        # A key the daemon does not know is its to refuse (first chunk: nothing changes).
        self.assert_refused(export_doc([dict(good, colour="blue")]), "bad_request", "colour")
        # Files that cannot be read.
        r = self.run_ctl("import", os.path.join(self.d.tmpdir, "missing.json"), want=DAEMON_ERROR)
        self.assertIn("missing.json", r.stderr)
        r = self.run_ctl("import", self.d.tmpdir, want=DAEMON_ERROR)
        self.assertIn("directory", r.stderr.lower())
        # Usage errors.
        for args in (("import",), ("import", "a.json", "b.json"),
                     ("import", "a.json", "--merge", "--replace"), ("import", "a.json", "--bogus"),
                     ("export", "a.json", "b.json")):
            with self.subTest(args=args):
                self.run_ctl(*args, want=USAGE)

    def test_export_errors(self):
        self.populate()
        r = self.run_ctl("export", os.path.join(self.d.tmpdir, "no-such-dir", "p.json"),
                         want=DAEMON_ERROR)
        self.assertIn("no-such-dir", r.stderr)
        r = self.run_ctl("export", self.d.tmpdir + "/", want=DAEMON_ERROR)
        # Over an existing file: replaced whole.
        path = os.path.join(self.d.tmpdir, "old.json")
        with open(path, "w") as f:
            f.write("old contents\n" * 1000)
        self.assertEqual(self.json_ctl("export", path), {"exported": 2, "file": path})
        with open(path) as f:
            self.assertEqual(len(json.load(f)["profiles"]), 2)

    def test_import_chunks(self):
        n = 2500
        profiles = [profile("gen-%05d" % i, i, i // 2, i // 3, 7 * i, (i % 101) / 100, {
            harness.TASKS[i % 5]: task(i, i // 2, i // 3, 7.0 + i / 3, (i % 7) / 7)})
            for i in range(n)]
        path = os.path.join(self.d.tmpdir, "many.json")
        with open(path, "w") as f:
            f.write(export_doc(profiles))
        r = self.run_ctl("import", path, want=OK)
        m = IMPORTED.match(r.stdout.strip())
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (n, n))
        self.assertGreaterEqual(int(m.group(3)), 3)
        got = self.c.call("query")["profiles"]
        self.assertEqual(len(got), n)
        for g, w in zip(got, profiles):
            self.assertEqual(g["model"], w["model"])
            self.assertEqual(g["total_calls"], w["total_calls"])
            self.assertTrue(exactly_equal(g["ema_quality"], float(w["ema_quality"])))
            (name, t), = w["tasks"].items()
            self.assertTrue(exactly_equal(g["tasks"][name]["avg_latency_ms"], t["avg_latency_ms"]))

        # A daemon with small limits: the chunks follow them.
        d2 = self.other_daemon("[limits]\nmessage_bytes = 65536\nlist_entries = 100\n")
        r = self.run_ctl("import", path, socket_path=d2.socket_path, want=OK)
        self.assertEqual(r.stdout, "imported %d profiles (%d new) in 25 calls\n" % (n, n))
        d3 = self.other_daemon("[limits]\nmessage_bytes = 32768\n")
        r = self.run_ctl("--json", "import", path, socket_path=d3.socket_path, want=OK)
        j = json.loads(r.stdout)
        packed = sum(len(harness.pack(p)) for p in profiles)
        self.assertGreaterEqual(j["calls"], math.ceil(packed / (0.9 * 32768)))
        self.assertEqual((j["imported"], j["created"]), (n, n))
        for d in (d2, d3):
            with d.client() as c:
                st = c.call("stats")
                self.assertEqual(st["profiles"], n)
                self.assertEqual(st["errors_total"], 0)

    def test_import_cells_in_chunks(self):
        # Version 2: 3 profiles with 250 domain cells each; a daemon taking
        # 100 entries a call gets them in 1 + 8 calls (cells never share a
        # call with profiles), and every cell arrives exactly.
        cell = lambda i: {"calls": i, "successes": i // 2, "failures": i - i // 2,
                          "recent": {"alpha": i / 3, "beta": 0.5},
                          "window": {"alpha": i / 7, "beta": 1.25},
                          "posterior": {"alpha": i / 2, "beta": i / 5, "judged": float(i)},
                          "input_tokens": 10 * i, "output_tokens": i, "updated_at": 1000 + i}
        profiles = [dict(profile("m%d" % k, 1, 1, 0, 10, 0.5),
                         domains={"reasoning": {"subject %03d" % i: cell(i) for i in range(250)}})
                    for k in range(3)]
        path = os.path.join(self.d.tmpdir, "cells.json")
        with open(path, "w") as f:
            f.write(export_doc(profiles, version=2))
        d2 = self.other_daemon("[limits]\nlist_entries = 100\n")
        r = self.run_ctl("import", path, socket_path=d2.socket_path, want=OK)
        self.assertEqual(r.stdout, "imported 3 profiles (3 new) and 750 domain cells (750 new) "
                         "in 9 calls\n")
        with d2.client() as c:
            got = c.call("query", domains=True)["profiles"]
            self.assertEqual(c.call("stats")["domain_cells"], 750)
        for g in got:
            cells = g["domains"]["reasoning"]
            self.assertEqual(len(cells), 250)
            for i in (0, 7, 249):
                want, have = cell(i), cells["subject %03d" % i]
                for k in ("calls", "successes", "failures", "input_tokens", "output_tokens",
                          "updated_at", "recent", "window"):
                    self.assertEqual(have[k], want[k], k)
                self.assertEqual(have["posterior"]["alpha"], want["posterior"]["alpha"])

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
        for cmd in ("start", "complete", "fail", "outcome", "forget", "export", "import"):
            self.assertRegex(r.stdout, r"\n  %s +\S" % cmd, "--help lists %s" % cmd)
        for cmd in ("start", "complete", "fail", "outcome", "query", "forget", "export", "import",
                    "ping", "stats"):
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

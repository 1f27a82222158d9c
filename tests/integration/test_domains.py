#!/usr/bin/python3
"""test_domains.py - evidence per (model, task, domain) on a real daemon:
`domain` through start, rank, query and forget, its checks, the cells in
query, the [limits] domains cap, import of cells, and the cells and the
pending traces' domains surviving a restart (snapshot) and a kill -9
(journal replay)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_error  # noqa: E402


class DomainTest(harness.DaemonTestCase):
    config = """
[price:cheap]
input_per_mtok = 0.5
output_per_mtok = 0.5

[price:dear]
input_per_mtok = 10
output_per_mtok = 30
"""

    def setUp(self):
        super().setUp()
        self.c = self.client()

    def cycle(self, model, domain, kind, task="reasoning", tokens=(400, 50)):
        args = {"model": model, "task": task}
        if domain is not None:
            args["domain"] = domain
        tid = self.c.call("start", args)["trace_id"]
        self.c.call("complete", {"trace_id": tid, "latency_ms": 100,
                                 "input_tokens": tokens[0], "output_tokens": tokens[1]})
        return self.c.call("outcome", {"trace_id": tid, "kind": kind, "confidence": 1})

    def cells(self, model, **kw):
        args = {"model": model, "domains": True}
        args.update(kw)
        ps = self.c.call("query", args)["profiles"]
        return ps[0].get("domains") if ps else None

    # ---- the argument -------------------------------------------------------

    def test_bad_domains_are_refused_naming_the_field(self):
        for bad in ["", "x" * 129, "a\nb", "tab\there", "del\x7f"]:
            for method, args in [("start", {"model": "m", "task": "code"}),
                                 ("rank", {"task": "code"}),
                                 ("query", {}),
                                 ("forget", {"model": "m", "task": "code"})]:
                args = dict(args, domain=bad)
                reply = self.c.request(method, args)
                assert_error(self, reply, "bad_request", message_contains="domain")
        # Nothing was started.
        self.assertEqual(self.c.call("stats")["pending"], 0)
        # 128 bytes of UTF-8 with spaces are fine, and so is any script.
        ok = "é" * 64
        self.assertEqual(len(ok.encode()), 128)
        self.c.call("start", {"model": "m", "task": "code", "domain": ok})
        self.c.call("start", {"model": "m", "task": "code", "domain": "computer science"})
        self.assertEqual(self.c.call("stats")["pending"], 2)

    def test_query_lists_cells_only_when_asked(self):
        self.cycle("m", "law", "accepted")
        self.cycle("m", "law", "rejected")
        self.cycle("m", "math", "accepted")
        self.cycle("m", None, "accepted")
        plain = self.c.call("query", {"model": "m"})["profiles"][0]
        self.assertNotIn("domains", plain)
        # The task's numbers count every call, with or without a domain.
        self.assertEqual(plain["tasks"]["reasoning"]["calls"], 4)
        self.assertEqual(plain["tasks"]["reasoning"]["successes"], 3)
        cells = self.cells("m")
        self.assertEqual(list(cells), ["reasoning"])
        self.assertEqual(sorted(cells["reasoning"]), ["law", "math"])
        law = cells["reasoning"]["law"]
        self.assertEqual((law["calls"], law["successes"], law["failures"]), (2, 1, 1))
        self.assertEqual(law["posterior"]["alpha"], 1.0)
        self.assertEqual(law["posterior"]["beta"], 1.0)
        self.assertEqual((law["input_tokens"], law["output_tokens"]), (800, 100))
        self.assertIsNone(law["latency_p50_ms"])  # the task keeps the latency
        self.assertAlmostEqual(law["success_rate"], 0.5)
        # Recent evidence forgets per observation: the older rejection...
        # no: the older acceptance weighs less than the newer rejection.
        self.assertLess(law["recent"]["alpha"], 1.0)
        self.assertEqual(law["recent"]["beta"], 1.0)
        # One domain only.
        only = self.cells("m", domain="math")
        self.assertEqual(list(only["reasoning"]), ["math"])
        # pending lists are not mixed with cells.
        assert_error(self, self.c.request("query", {"pending": True, "domains": True}),
                     "bad_request", message_contains="domains")

    def test_fail_counts_in_the_cell(self):
        tid = self.c.call("start", {"model": "m", "task": "code", "domain": "rust"})["trace_id"]
        self.c.call("fail", {"trace_id": tid, "error": "timeout"})
        cell = self.cells("m")["code"]["rust"]
        self.assertEqual((cell["calls"], cell["failures"]), (0, 1))
        self.assertEqual(cell["posterior"]["beta"], 1.0)

    # ---- rank -----------------------------------------------------------------

    def test_rank_follows_the_domain(self):
        # a is right on law and wrong on math; b the other way round.
        for _ in range(30):
            self.cycle("a", "law", "accepted")
            self.cycle("a", "math", "rejected")
            self.cycle("b", "law", "rejected")
            self.cycle("b", "math", "accepted")
        for strategy in ("mean", "lcb", "thompson"):
            for domain, best in (("law", "a"), ("math", "b")):
                args = {"task": "reasoning", "candidates": ["a", "b"], "domain": domain,
                        "seed": 5}
                if strategy:
                    args["strategy"] = strategy
                r = self.c.call("rank", args)
                self.assertEqual(r["ranked"][0]["model"], best, (strategy, domain, r))
        # Without a domain the two are even at task level (30 right each).
        r = self.c.call("rank", {"task": "reasoning", "candidates": ["a", "b"],
                                 "strategy": "mean"})
        self.assertAlmostEqual(r["ranked"][0]["mean"], r["ranked"][1]["mean"])

    def test_a_new_domain_starts_from_the_task(self):
        for d in ("d1", "d2", "d3", "d4", "d5"):
            for _ in range(10):
                self.cycle("good", d, "accepted")
                self.cycle("bad", d, "rejected")
        r = self.c.call("rank", {"task": "reasoning", "candidates": ["bad", "good"],
                                 "domain": "never-seen", "strategy": "mean",
                                 "exclude_degraded": False})
        self.assertEqual(r["ranked"][0]["model"], "good")
        self.assertGreater(r["ranked"][0]["mean"], 0.8)
        self.assertLess(r["ranked"][1]["mean"], 0.2)

    def test_untried_candidate_is_not_free(self):
        # Both right every time on the task; "dear" is untried on it.
        for _ in range(20):
            self.cycle("cheap", "d", "accepted")
        r = self.c.call("rank", {"task": "reasoning", "candidates": ["cheap", "dear"],
                                 "domain": "d", "cost_weight": 0.5, "strategy": "mean"})
        items = {i["model"]: i for i in r["ranked"]}
        self.assertTrue(items["dear"]["prior"])
        self.assertGreater(items["dear"]["cost_penalty"], 0.4)
        self.assertLess(items["cheap"]["cost_penalty"], 0.1)
        self.assertEqual(r["ranked"][0]["model"], "cheap")

    # ---- forget -----------------------------------------------------------

    def test_forget_one_cell_or_the_model(self):
        self.cycle("m", "law", "accepted")
        self.cycle("m", "math", "accepted")
        assert_error(self, self.c.request("forget", {"model": "m", "domain": "law"}),
                     "bad_request", message_contains="task")
        r = self.c.call("forget", {"model": "m", "task": "reasoning", "domain": "law"})
        self.assertEqual(r, {"model": "m", "task": "reasoning", "domain": "law",
                             "forgotten": True})
        self.assertEqual(sorted(self.cells("m")["reasoning"]), ["math"])
        r = self.c.call("forget", {"model": "m", "task": "reasoning", "domain": "law"})
        self.assertFalse(r["forgotten"])
        # The task's numbers stay.
        p = self.c.call("query", {"model": "m"})["profiles"][0]
        self.assertEqual(p["tasks"]["reasoning"]["calls"], 2)
        self.assertTrue(self.c.call("forget", {"model": "m"})["forgotten"])
        self.assertEqual(self.c.call("stats")["domain_cells"], 0)
        # A restart brings nothing back.
        self.d.restart()
        self.c = self.client()
        self.assertEqual(self.c.call("query", {"model": "m"})["profiles"], [])
        self.assertEqual(self.c.call("stats")["domain_cells"], 0)

    # ---- durability -------------------------------------------------------

    def state(self):
        ps = self.c.call("query", {"domains": True})["profiles"]
        pend = self.c.call("query", {"pending": True})["pending"]
        return ps, pend

    def test_cells_and_pending_domains_survive_restart_and_kill(self):
        for i in range(5):
            self.cycle("m", "law", "accepted" if i % 2 else "rejected")
            self.cycle("n", "art history", "accepted")
        self.c.call("start", {"model": "m", "task": "reasoning", "domain": "law",
                              "trace_id": "open-1"})
        before = self.state()
        self.d.restart()            # SIGTERM: the snapshot
        self.c = self.client()
        self.assertEqual(self.state(), before)
        # The pending trace kept its domain: resolving it now counts there.
        self.c.call("complete", {"trace_id": "open-1", "latency_ms": 5})
        self.c.call("outcome", {"trace_id": "open-1", "kind": "accepted", "confidence": 1})
        self.assertEqual(self.cells("m")["reasoning"]["law"]["calls"], 6)
        before = self.state()
        self.d.kill()  # the journal's replay
        self.d.start()
        self.c = self.client()
        self.assertEqual(self.state(), before)

    # ---- import -----------------------------------------------------------

    def test_import_cells(self):
        self.cycle("m", "law", "accepted")
        export = self.c.call("query", {"domains": True})["profiles"]
        cell = dict(export[0]["domains"]["reasoning"]["law"], model="m", task="reasoning",
                    domain="law")
        r = self.c.call("import", {"cells": [cell]})
        self.assertEqual((r["cells"], r["cells_created"]), (1, 0))
        law = self.cells("m")["reasoning"]["law"]
        self.assertEqual((law["calls"], law["successes"]), (2, 2))   # merged: added
        r = self.c.call("import", {"cells": [cell], "mode": "replace"})
        self.assertEqual(self.cells("m")["reasoning"]["law"]["calls"], 1)
        # A profile and its cells in one call; replacing a profile drops its
        # other cells.
        prof = {k: v for k, v in export[0].items() if k != "domains"}
        new = dict(cell, domain="new")
        r = self.c.call("import", {"profiles": [prof], "cells": [new], "mode": "replace"})
        self.assertEqual(sorted(self.cells("m")["reasoning"]), ["new"])
        # Checks: a cell without a profile, twice, a bad domain; nothing changes.
        before = self.state()
        assert_error(self, self.c.request("import", {"cells": [dict(cell, model="nobody")]}),
                     "bad_request", message_contains="cells[0].model")
        assert_error(self, self.c.request("import", {"cells": [new, new]}), "bad_request",
                     message_contains="twice")
        assert_error(self, self.c.request("import", {"cells": [dict(cell, domain="")]}),
                     "bad_request", message_contains="cells[0].domain")
        assert_error(self, self.c.request("import", {}), "bad_request",
                     message_contains="profiles")
        self.assertEqual(self.state(), before)
        # Journaled: a kill -9 replays the imports.
        self.d.kill()
        self.d.start()
        self.c = self.client()
        self.assertEqual(self.state(), before)


class DomainLimitTest(harness.DaemonTestCase):
    config = """
[limits]
domains = 2
"""

    def test_past_the_limit_counts_at_task_level(self):
        c = self.client()
        for d in ("a", "b", "c", "c"):
            tid = c.call("start", {"model": "m", "task": "code", "domain": d})["trace_id"]
            c.call("complete", {"trace_id": tid, "latency_ms": 1})
            r = c.call("outcome", {"trace_id": tid, "kind": "accepted", "confidence": 1})
            self.assertTrue(r["success"])  # no error for the router
        st = c.call("stats")
        self.assertEqual(st["domain_cells"], 2)
        self.assertEqual(st["config"]["limits"]["domains"], 2)
        # "c" was refused at complete and at outcome, twice.
        self.assertEqual(st["domain_cells_refused_total"], 4)
        p = c.call("query", {"model": "m", "domains": True})["profiles"][0]
        self.assertEqual(sorted(p["domains"]["code"]), ["a", "b"])
        self.assertEqual(p["tasks"]["code"]["calls"], 4)
        # An import past it is refused whole.
        cell = dict(p["domains"]["code"]["a"], model="m", task="code", domain="z")
        assert_error(self, c.request("import", {"cells": [cell]}), "overloaded",
                     message_contains="domain cells")


if __name__ == "__main__":
    harness.main()

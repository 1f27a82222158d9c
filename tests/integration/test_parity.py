#!/usr/bin/python3
"""Seed parity: replay every tests/data/parity/*.ops script against a fresh
outcomed through the wire protocol, then compare `query` with the .json the
seed (the in-process Rust tracker outcomed grew out of) produced (integers equal, floats to 1e-9 relative, the same models and
task maps, the same number of pending traces).

    /usr/bin/python3 tests/integration/test_parity.py [--bin PATH] [--parity-dir DIR]
"""

import glob
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DEGRADE_THRESHOLD = 3  # the contract's default

# kind -> (quality(c), success), the contract's table
KIND_TABLE = {
    "accepted": (lambda c: c, True),
    "accepted_with_edits": (lambda c: 0.7 * c, True),
    "rejected": (lambda c: 0.3 * (1.0 - c), False),
    "inconclusive": (None, None),
    "applied": (lambda c: 1.0, True),
    "signature_changed": (lambda c: 0.8, True),
    "body_modified": (lambda c: 0.7, True),
    "symbol_added": (lambda c: 0.7, True),
    "modified": (lambda c: 0.6, True),
    "ignored": (lambda c: 0.1, False),
}

INT_FIELDS = {"total_calls", "success_count", "fail_count", "total_latency_ms",
              "calls", "successes", "failures"}


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# --------------------------------------------------------------------------
# Script parsing


class Op:
    def __init__(self, line, op, fields):
        self.line = line
        self.op = op
        self.f = fields

    def __repr__(self):
        return "line %d: %s" % (self.line, "\t".join([self.op] + self.f))


def field(fields, i, default=""):
    return fields[i] if len(fields) > i else default


def parse_ops(path):
    ops = []
    seq = None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            op, fields = parts[0], parts[1:]
            if op == "seq":
                if seq is not None:
                    raise ValueError("%s:%d: nested seq" % (path, n))
                seq = Op(n, "seq", [])
                seq.actions = []
            elif op == "act":
                if seq is None:
                    raise ValueError("%s:%d: act outside seq" % (path, n))
                seq.actions.append((field(fields, 0), field(fields, 1) == "1",
                                    float(field(fields, 2)), field(fields, 3)))
            elif op == "endseq":
                ops.append(seq)
                seq = None
            elif op in ("start", "complete", "fail", "inferred", "code"):
                ops.append(Op(n, op, fields))
            else:
                raise ValueError("%s:%d: unknown operation %r" % (path, n, op))
    if seq is not None:
        raise ValueError("%s: seq without endseq" % path)
    return ops


def infer_action(actions, i):
    """The seed's infer_outcomes_from_action_sequence for action i: (kind, confidence)."""
    name, success, conf, output = actions[i]
    if not success:
        return "rejected", conf
    next_ok = actions[i + 1][1] if i + 1 < len(actions) else True
    has_output = output.strip() != ""
    if has_output and next_ok:
        return "accepted", conf
    if has_output:
        return "accepted_with_edits", conf * 0.7
    return "inconclusive", conf


# --------------------------------------------------------------------------
# Replay


class Replay:
    def __init__(self, tc, client, script):
        self.tc = tc
        self.c = client
        self.script = script
        self.ids = {}         # NAME -> trace id
        self.pending = {}     # NAME -> completed?

    def fail(self, op, msg):
        self.tc.fail("%s %r: %s" % (self.script, op, msg))

    def call(self, op, method, args):
        try:
            return self.c.request(method, args)
        except (harness.ConnectionClosed, TimeoutError, AssertionError) as e:
            self.fail(op, "%s %r: %s" % (method, args, e))

    def expect_ok(self, op, method, args):
        err, res = self.call(op, method, args)
        if err is not None:
            self.fail(op, "%s %r failed: %r" % (method, args, err))
        if not isinstance(res, dict):
            self.fail(op, "%s result is not a map: %r" % (method, res))
        return res

    def expect_unknown(self, op, method, args):
        err, res = self.call(op, method, args)
        if err is None or err.get("code") != "unknown_trace":
            self.fail(op, "%s on a trace that is not pending: want unknown_trace, got error=%r "
                      "result=%r" % (method, err, res))

    def trace(self, op, name):
        if name not in self.ids:
            self.fail(op, "script names trace %r before starting it" % name)
        return self.ids[name]

    def check_outcome_result(self, op, res, tid, kind, conf):
        qf, succ = KIND_TABLE[kind]
        if res.get("trace_id") != tid:
            self.fail(op, "outcome result trace_id %r, want %r" % (res.get("trace_id"), tid))
        if res.get("kind") != kind:
            self.fail(op, "outcome result kind %r, want %r" % (res.get("kind"), kind))
        if res.get("deferred"):
            self.fail(op, "outcome deferred for a trace started without a repo: %r" % res)
        if qf is None:
            if res.get("quality") is not None or res.get("success") is not None:
                self.fail(op, "inconclusive must give nil quality and success: %r" % res)
        else:
            q = res.get("quality")
            if not isinstance(q, float) or not close(q, qf(conf)):
                self.fail(op, "quality %r, want %r" % (q, qf(conf)))
            if res.get("success") is not succ:
                self.fail(op, "success %r, want %r" % (res.get("success"), succ))

    def run(self, ops):
        for op in ops:
            getattr(self, "op_" + op.op)(op)

    def op_start(self, op):
        name, model, task = op.f[0], op.f[1], op.f[2]
        reason = field(op.f, 3)
        res = self.expect_ok(op, "start", {"model": model, "task": task, "reason": reason})
        tid = res.get("trace_id")
        if not isinstance(tid, str) or not tid or len(tid.encode()) > harness.GEN_TRACE_ID_MAX:
            self.fail(op, "start returned a bad trace id %r" % (tid,))
        if tid in self.ids.values():
            self.fail(op, "start returned trace id %r twice" % tid)
        self.ids[name] = tid
        self.pending[name] = False

    def op_complete(self, op):
        name = op.f[0]
        tid = self.trace(op, name)
        args = {"trace_id": tid, "latency_ms": int(op.f[1]), "input_tokens": int(op.f[2]),
                "output_tokens": int(op.f[3])}
        if name not in self.pending:
            return self.expect_unknown(op, "complete", args)
        if self.pending[name]:
            err, res = self.call(op, "complete", args)
            if err is None or err.get("code") != "already_completed":
                self.fail(op, "second complete: want already_completed, got %r %r" % (err, res))
            return
        res = self.expect_ok(op, "complete", args)
        if res.get("trace_id") != tid:
            self.fail(op, "complete result %r, want trace_id %r" % (res, tid))
        self.pending[name] = True

    def op_fail(self, op):
        name = op.f[0]
        tid = self.trace(op, name)
        args = {"trace_id": tid, "error": field(op.f, 1)}
        if name not in self.pending:
            return self.expect_unknown(op, "fail", args)
        res = self.expect_ok(op, "fail", args)
        if res.get("trace_id") != tid:
            self.fail(op, "fail result %r, want trace_id %r" % (res, tid))
        del self.pending[name]

    def op_inferred(self, op):
        name, kind = op.f[0], op.f[1]
        conf = float(op.f[2]) if len(op.f) > 2 and op.f[2] != "" else None
        tid = self.trace(op, name)
        args = {"trace_id": tid, "kind": kind}
        if kind != "inconclusive":
            args["confidence"] = conf
        if name not in self.pending:
            return self.expect_unknown(op, "outcome", args)
        res = self.expect_ok(op, "outcome", args)
        self.check_outcome_result(op, res, tid, kind, conf if conf is not None else 0.0)
        del self.pending[name]

    def op_code(self, op):
        name, kind = op.f[0], op.f[1]
        tid = self.trace(op, name)
        args = {"trace_id": tid, "kind": kind}
        if name not in self.pending:
            return self.expect_unknown(op, "outcome", args)
        res = self.expect_ok(op, "outcome", args)
        self.check_outcome_result(op, res, tid, kind, 0.0)
        del self.pending[name]

    def op_seq(self, op):
        actions = []
        expected = []
        for i, (name, success, conf, output) in enumerate(op.actions):
            if name and name not in self.ids:
                self.fail(op, "act names trace %r before starting it" % name)
            tid = self.ids[name] if name else ""
            actions.append({"trace_id": tid, "success": success, "confidence": conf,
                            "output": output})
        for i, (name, success, conf, output) in enumerate(op.actions):
            if name and name in self.pending:
                kind, c = infer_action(op.actions, i)
                expected.append((name, self.ids[name], kind, c))
                del self.pending[name]
        res = self.expect_ok(op, "outcome", {"actions": actions})
        results = res.get("results")
        if not isinstance(results, list):
            self.fail(op, "sequence result has no results list: %r" % res)
        got_ids = [r.get("trace_id") if isinstance(r, dict) else r for r in results]
        want_ids = [e[1] for e in expected]
        if got_ids != want_ids:
            self.fail(op, "sequence resolved %r, want %r (the pending ones, in order)"
                      % (got_ids, want_ids))
        for r, (name, tid, kind, c) in zip(results, expected):
            self.check_outcome_result(op, r, tid, kind, c)


# --------------------------------------------------------------------------
# Comparison


def compare_profiles(got, want, t0, t1):
    """A list of human-readable differences between the daemon's profiles and
    the seed's."""
    diffs = []
    gm = {}
    for p in got:
        if not isinstance(p, dict) or not isinstance(p.get("model"), str):
            diffs.append("profile is not a map with a model: %r" % (p,))
            continue
        if p["model"] in gm:
            diffs.append("model %r listed twice" % p["model"])
        gm[p["model"]] = p
    models = [p.get("model") for p in got if isinstance(p, dict)]
    if models != sorted(models, key=lambda m: m.encode("utf-8")):
        diffs.append("profiles are not sorted by model id: %r" % models)
    wm = {p["model"]: p for p in want}
    missing = sorted(set(wm) - set(gm))
    extra = sorted(set(gm) - set(wm))
    if missing:
        diffs.append("models missing from query: %r" % missing)
    if extra:
        diffs.append("models in query that the seed does not have: %r" % extra)

    def cmp_field(where, key, g, w):
        if key in INT_FIELDS or (isinstance(w, int) and not isinstance(w, bool)):
            if not isinstance(g, int) or isinstance(g, bool):
                diffs.append("%s.%s: got %r (%s), want integer %r" % (where, key, g, type(g).__name__, w))
            elif g != w:
                diffs.append("%s.%s: got %r, want %r" % (where, key, g, w))
        elif isinstance(w, float):
            if not isinstance(g, float):
                diffs.append("%s.%s: got %r (%s), want float %r" % (where, key, g, type(g).__name__, w))
            elif not close(g, w):
                diffs.append("%s.%s: got %r, want %r (rel diff %.3g)"
                             % (where, key, g, w, abs(g - w) / max(abs(w), 1e-300)))
        elif g != w:
            diffs.append("%s.%s: got %r, want %r" % (where, key, g, w))

    for m in sorted(set(gm) & set(wm)):
        g, w = gm[m], wm[m]
        where = "model %r" % m
        for key, wv in w.items():
            if key == "tasks":
                continue
            if key not in g:
                diffs.append("%s: field %r missing" % (where, key))
                continue
            cmp_field(where, key, g[key], wv)
        # degraded and updated_at are not in the seed's output: check them against
        # the contract.
        if all(isinstance(g.get(k), int) for k in ("fail_count", "success_count")):
            want_deg = g["fail_count"] > g["success_count"] + DEGRADE_THRESHOLD
            if g.get("degraded") is not want_deg:
                diffs.append("%s.degraded: got %r, want %r (fail_count > success_count + 3)"
                             % (where, g.get("degraded"), want_deg))
        ua = g.get("updated_at")
        if not isinstance(ua, int) or isinstance(ua, bool) or not (t0 - 1 <= ua <= t1 + 1):
            diffs.append("%s.updated_at: %r is not unix seconds of this run [%d, %d]"
                         % (where, ua, t0, t1))
        gt, wt = g.get("tasks"), w.get("tasks", {})
        if not isinstance(gt, dict):
            diffs.append("%s.tasks: not a map: %r" % (where, gt))
            continue
        if set(gt) != set(wt):
            diffs.append("%s.tasks: keys %r, want %r" % (where, sorted(gt), sorted(wt)))
        for task in sorted(set(gt) & set(wt)):
            tw = "%s.tasks.%s" % (where, task)
            if not isinstance(gt[task], dict):
                diffs.append("%s: not a map: %r" % (tw, gt[task]))
                continue
            for key, wv in wt[task].items():
                if key not in gt[task]:
                    diffs.append("%s: field %r missing" % (tw, key))
                    continue
                cmp_field(tw, key, gt[task][key], wv)
    return diffs


class ParityTest(harness.DaemonTestCase):
    """One test per parity case; added below from the parity directory."""

    def run_case(self, ops_path):
        json_path = ops_path[:-len(".ops")] + ".json"
        name = os.path.basename(ops_path)
        with open(json_path, encoding="utf-8") as f:
            want = json.load(f)
        ops = parse_ops(ops_path)
        t0 = int(time.time())
        c = self.client()
        rp = Replay(self, c, name)
        rp.run(ops)

        err, res = c.request("query")
        self.assertIsNone(err, "%s: query failed: %r" % (name, err))
        self.assertIsInstance(res, dict, "%s: query result" % name)
        self.assertIsInstance(res.get("profiles"), list, "%s: query has no profiles list" % name)
        t1 = int(time.time())
        diffs = compare_profiles(res["profiles"], want["profiles"], t0, t1)

        err, pres = c.request("query", {"pending": True})
        self.assertIsNone(err, "%s: query pending failed: %r" % (name, err))
        pend = pres.get("pending") if isinstance(pres, dict) else None
        self.assertIsInstance(pend, list, "%s: query {pending: true} has no pending list: %r"
                              % (name, pres))
        if len(pend) != want["pending"]:
            diffs.append("pending: %d traces pending, the seed has %d" % (len(pend), want["pending"]))
        want_ids = {rp.ids[n] for n in rp.pending}
        got_ids = {p.get("trace_id") for p in pend if isinstance(p, dict)}
        if got_ids != want_ids:
            diffs.append("pending trace ids: extra %r, missing %r"
                         % (sorted(got_ids - want_ids), sorted(want_ids - got_ids)))
        if diffs:
            self.fail("%s: %d difference(s) from the seed:\n  %s"
                      % (name, len(diffs), "\n  ".join(diffs)))


def _add_cases():
    paths = sorted(glob.glob(os.path.join(harness.parity_dir(), "*.ops")))
    if not paths:
        def test_no_cases(self):
            self.fail("no parity cases (*.ops) in %s" % harness.parity_dir())
        ParityTest.test_no_cases = test_no_cases
    for p in paths:
        base = os.path.basename(p)[:-len(".ops")]
        meth = "test_" + base.replace("-", "_")

        def t(self, p=p):
            self.run_case(p)
        t.__doc__ = "parity: %s" % base
        setattr(ParityTest, meth, t)


_add_cases()

if __name__ == "__main__":
    harness.main()

#!/usr/bin/env python3
"""test_fleet.py - [fleet]: three real outcomed daemons as three hosts share
their evidence through a real PostgreSQL 15 cluster this test starts
(pg.py).  After a sync every host's fleet-scope rank and posterior are
identical and are the sums of the hosts' host-scope evidence; kills of a
daemon during a sync and of PostgreSQL, PostgreSQL stopped for 10 s, a
restart with PostgreSQL down, and the refusals (bad conninfo, wrong
password, missing database, newer schema, duplicate host_id) each end as
the docs say.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

import harness
import pg

sys.path.insert(0, os.path.join(harness.SOURCE_ROOT, "clients", "python"))
import outcomed  # noqa: E402  (the Python client)

SYNC_MS = 200
MODELS = ("m-alpha", "m-beta", "m-gamma")
DOMAINS = ("billing", "legal", None)


def fleet_config(cluster, host, dbname="fleet", extra=""):
    return ("[fleet]\nconninfo = %s\nhost_id = %s\nsync_interval_ms = %d\n%s"
            % (cluster.conninfo(dbname), host, SYNC_MS, extra))


def call(d, method, **kw):
    """One request on a connection of its own, closed after."""
    with d.client() as c:
        return c.call(method, **kw)


def random_ops(d, rng, n):
    """n traces: start, then complete and an outcome, or a failure."""
    with d.client() as client:
        _random_ops(client, rng, n)


def _random_ops(client, rng, n):
    for _ in range(n):
        args = {"model": rng.choice(MODELS), "task": rng.choice(("generate", "classify"))}
        dom = rng.choice(DOMAINS)
        if dom:
            args["domain"] = dom
        tid = client.call("start", **args)["trace_id"]
        if rng.random() < 0.15:
            client.call("fail", trace_id=tid)
            continue
        client.call("complete", trace_id=tid, latency_ms=rng.randint(1, 3000),
                    input_tokens=rng.randint(1, 500), output_tokens=rng.randint(1, 500))
        kind = rng.choice(("accepted", "accepted_with_edits", "rejected"))
        client.call("outcome", trace_id=tid, kind=kind, confidence=round(rng.random(), 3))


def host_profiles(d):
    return {p["model"]: p for p in call(d, "query", scope="host")["profiles"]}


def expected_sums(daemons):
    """The fleet sums, from each host's own evidence, in host_id order."""
    out = {}
    for d in sorted(daemons, key=lambda d: d.host_id):
        for m, p in host_profiles(d).items():
            e = out.setdefault(m, {"alpha": 0.0, "beta": 0.0, "judged": 0.0, "calls": 0,
                                   "tasks": {}})
            e["alpha"] += p["posterior"]["alpha"]
            e["beta"] += p["posterior"]["beta"]
            e["judged"] += p["posterior"]["judged"]
            e["calls"] += p["total_calls"]
            for t, ts in p["tasks"].items():
                te = e["tasks"].setdefault(t, {"alpha": 0.0, "beta": 0.0, "calls": 0})
                te["alpha"] += ts["posterior"]["alpha"]
                te["beta"] += ts["posterior"]["beta"]
                te["calls"] += ts["calls"]
    return out


def fleet_sums(d):
    out = {}
    for p in call(d, "query", scope="fleet")["profiles"]:
        out[p["model"]] = {
            "alpha": p["posterior"]["alpha"], "beta": p["posterior"]["beta"],
            "judged": p["posterior"]["judged"], "calls": p["total_calls"],
            "tasks": {t: {"alpha": ts["posterior"]["alpha"], "beta": ts["posterior"]["beta"],
                          "calls": ts["calls"]} for t, ts in p["tasks"].items()}}
    return out


def fleet_answers(d):
    c = d.client()
    ranks = [c.call("rank", task=t, strategy=s, seed=42, exclude_degraded=False, scope="fleet")
             for t in ("generate", "classify") for s in ("mean", "thompson")]
    dom = c.call("rank", task="generate", domain="billing", strategy="mean",
                 exclude_degraded=False, scope="fleet")
    q = c.call("query", scope="fleet", domains=True)
    for prof in q["profiles"]:
        # The seed's EMA stays per host (docs): not compared.
        prof.pop("ema_quality")
        for ts in prof["tasks"].values():
            ts.pop("ema_quality")
    c.close()
    return ranks, dom, q


class FleetBase(unittest.TestCase):
    def setUp(self):
        self.pg = pg.Cluster()
        self.addCleanup(self.pg.cleanup)
        self.pg.start()
        self.pg.createdb("fleet")
        self.daemons = []

    def daemon(self, host, extra="", dbname="fleet", config=None, start=True):
        d = harness.Daemon(config=config if config is not None
                           else fleet_config(self.pg, host, dbname, extra))
        d.host_id = host
        self.addCleanup(d.cleanup)
        self.addCleanup(self._stop, d)
        if start:
            d.start()
        self.daemons.append(d)
        return d

    @staticmethod
    def _stop(d):
        if d.running():
            d.stop()
        d.assert_no_sanitizer_report()

    def converge(self, daemons, timeout=15.0):
        """Wait until every host's fleet sums equal the hosts' own, summed."""
        last = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            want = expected_sums(daemons)
            got = [fleet_sums(d) for d in daemons]
            if all(g == want for g in got):
                return want
            last = (want, got)
            time.sleep(0.1)
        self.fail("fleet sums did not converge within %.0fs:\nwant %r\ngot  %r"
                  % (timeout, last[0], last[1]))

    def stats(self, d):
        return call(d, "stats")["fleet"]


class TestFleetSums(FleetBase):
    def test_three_hosts_converge_bit_identical(self):
        rng = random.Random(15)
        ds = [self.daemon("host-%d" % i) for i in range(3)]
        for d in ds:
            random_ops(d, rng, 25)
        want = self.converge(ds)
        answers = [fleet_answers(d) for d in ds]
        for a in answers[1:]:
            self.assertEqual(a, answers[0])  # ranks, domain rank, posteriors: bit-identical
        # The fleet rank's posterior is the sums' (mean = (1 + a) / (2 + a + b)).
        for item in answers[0][0][0]["ranked"]:
            t = want[item["model"]]["tasks"]["generate"]
            self.assertEqual(item["mean"], (1 + t["alpha"]) / (2 + t["alpha"] + t["beta"]))
        # host scope is each host's own; the default is fleet.
        c = ds[0].client()
        self.addCleanup(c.close)
        self.assertEqual(c.call("rank", task="generate", strategy="mean", seed=1,
                                exclude_degraded=False),
                         c.call("rank", task="generate", strategy="mean", seed=1,
                                exclude_degraded=False, scope="fleet"))
        own = host_profiles(ds[0])
        self.assertTrue(all(want[m]["calls"] >= p["total_calls"] for m, p in own.items()))
        self.assertGreater(sum(w["calls"] for w in want.values()),
                           sum(p["total_calls"] for p in own.values()))
        st = self.stats(ds[0])
        self.assertEqual(st["state"], "ok")
        self.assertEqual(st["hosts_seen"], 3)
        self.assertGreater(st["rows_sent_total"], 0)
        self.assertGreater(st["rows_read_total"], 0)
        hosts = c.call("hosts")
        self.assertEqual([h["host_id"] for h in hosts["hosts"]], ["host-0", "host-1", "host-2"])
        self.assertEqual([h["self"] for h in hosts["hosts"]], [True, False, False])
        # outcomectl: hosts, and --scope
        ctl = harness.ctl_binary()
        out = subprocess.run([ctl, "-s", ds[0].socket_path, "hosts"], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("this host: host-0 (ok)", out.stdout)
        self.assertIn("host-2", out.stdout)
        out = subprocess.run([ctl, "-s", ds[0].socket_path, "--json", "rank", "--task",
                              "generate", "--strategy", "mean", "--include-degraded",
                              "--scope", "host"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout),
                         json.loads(json.dumps(c.call("rank", task="generate", strategy="mean",
                                                      exclude_degraded=False, scope="host"))))
        # the Python client passes scope and lists the hosts
        py = outcomed.Client(ds[1].socket_path)
        self.addCleanup(py.close)
        self.assertEqual(py.rank("generate", strategy="mean", exclude_degraded=False,
                                 scope="host"),
                         call(ds[1], "rank", task="generate", strategy="mean",
                              exclude_degraded=False, scope="host"))
        self.assertEqual(py.query(scope="fleet"), call(ds[1], "query")["profiles"])
        self.assertEqual(py.hosts()["host_id"], "host-1")
        with self.assertRaises(harness.RPCError) as e:
            c.call("rank", task="generate", scope="galaxy")
        self.assertEqual(e.exception.code, "bad_request")
        self.assertIn("scope", e.exception.message)
        # forget with fleet scope (the default): a tombstone every host applies.
        c.call("forget", model="m-alpha")
        self.converge(ds)
        for d in ds:
            self.assertNotIn("m-alpha", host_profiles(d))
            self.assertNotIn("m-alpha", fleet_sums(d))
        self.assertIn("as host 'host-0' asked", ds[2].stderr())
        # with host scope only this host's evidence leaves the sums.
        c.call("forget", model="m-beta", scope="host")
        want = self.converge(ds)
        self.assertNotIn("m-beta", host_profiles(ds[0]))
        self.assertIn("m-beta", host_profiles(ds[1]))
        self.assertIn("m-beta", want)

    def test_kill9_daemon_during_sync_and_postgres(self):
        rng = random.Random(16)
        # host-1 holds each batch open 1.5 s before COMMIT: a kill lands in it.
        ds = [self.daemon("host-0"), self.daemon("host-1", "debug_sync_delay_ms = 1500\n"),
              self.daemon("host-2")]
        for d in ds:
            random_ops(d, rng, 10)
        self.converge(ds)
        random_ops(ds[1], rng, 5)
        acked = host_profiles(ds[1])
        open_batch = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                      "'outcomed' AND state = 'idle in transaction'")
        self.assertTrue(harness.wait_until(lambda: self.pg.psql(open_batch) == "1", timeout=5))
        ds[1].kill()  # during its sync: the batch is rolled back
        ds[1].start()
        self.assertEqual(host_profiles(ds[1]), acked)  # nothing acknowledged lost
        random_ops(ds[0], rng, 5)
        self.converge(ds)
        # PostgreSQL killed -9 mid-run: the hosts serve, then catch up.
        self.pg.kill9()
        random_ops(ds[2], rng, 5)
        for d in ds:
            self.assertTrue(harness.wait_until(lambda: self.stats(d)["state"] == "down",
                                               timeout=5))
            self.assertIsNotNone(call(d, "rank", task="generate"))
        self.pg.start()
        self.converge(ds)
        self.assertIn("PostgreSQL is unreachable", ds[0].stderr())

    def test_postgres_stopped_10s_and_restart_with_it_down(self):
        rng = random.Random(17)
        ds = [self.daemon("host-%d" % i) for i in range(2)]
        for d in ds:
            random_ops(d, rng, 10)
        before = self.converge(ds)
        self.pg.stop()
        t0 = time.monotonic()
        random_ops(ds[0], rng, 5)
        # Still the last fleet evidence, and one warning however long it lasts.
        self.assertEqual(fleet_sums(ds[1]), before)
        # A restart with PostgreSQL down serves the last fleet evidence (SQLite).
        ds[1].restart()
        self.assertEqual(fleet_sums(ds[1]), before)
        time.sleep(max(0.0, 10 - (time.monotonic() - t0)))
        self.assertEqual(ds[0].stderr().count("PostgreSQL is unreachable"), 1)
        self.pg.start()
        self.converge(ds)


    def test_hosts_past_ttl_leave_the_sums(self):
        rng = random.Random(18)
        ds = [self.daemon("host-%d" % i, "host_ttl_days = 2\n") for i in range(2)]
        for d in ds:
            random_ops(d, rng, 6)
        self.converge(ds)
        ds[1].stop()
        # host-1 was last seen three days ago: past host_ttl_days
        self.pg.psql("UPDATE fleet_hosts SET seen_at = now() - interval '3 days' "
                     "WHERE host_id = 'host-1'", dbname="fleet")
        want = expected_sums(ds[:1])
        self.assertTrue(harness.wait_until(lambda: fleet_sums(ds[0]) == want, timeout=10))
        self.assertEqual([h["host_id"] for h in call(ds[0], "hosts")["hosts"]], ["host-0"])


    def test_reload(self):
        d = self.daemon("host-r")
        self.assertTrue(harness.wait_until(lambda: self.stats(d)["state"] == "ok", timeout=10))
        d.write_config(fleet_config(self.pg, "renamed", extra="sync_interval_ms = 100\n")
                       .replace("sync_interval_ms = %d\n" % SYNC_MS, ""))
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: "SIGHUP: reloaded" in d.stderr(), timeout=10))
        self.assertIn("[fleet] host_id changed, which takes a restart", d.stderr())
        self.assertIn("[fleet] sync_interval_ms", d.stderr())
        self.assertEqual(self.stats(d)["host_id"], "host-r")
        random_ops(d, random.Random(4), 3)
        self.assertTrue(harness.wait_until(lambda: fleet_sums(d) == expected_sums([d]),
                                           timeout=10))


class TestFleetRefusals(FleetBase):
    def assert_host_only(self, d, log):
        self.assertTrue(harness.wait_until(lambda: log in d.stderr(), timeout=10), d.stderr())
        self.assertEqual(d.stderr().count(log), 1, d.stderr())
        c = d.client()
        self.addCleanup(c.close)
        _random_ops(c, random.Random(1), 3)
        st = self.stats(d)
        self.assertIn(st["state"], ("host_only", "duplicate_host_id"))
        self.assertFalse(st["serving_fleet"])
        self.assertEqual(c.call("rank", task="generate", strategy="mean", seed=3, scope="fleet"),
                         c.call("rank", task="generate", strategy="mean", seed=3, scope="host"))

    def test_bad_conninfo_password_database_schema(self):
        bad = self.daemon("bad", config="[fleet]\nconninfo = host=/nowhere port=oops =\n")
        self.assert_host_only(bad, "conninfo cannot be parsed")
        inline = self.daemon("inline", config="[fleet]\nconninfo = %s password=secret\n"
                             % self.pg.conninfo("fleet"))
        self.assert_host_only(inline, "conninfo holds a password")
        self.assertNotIn("secret", inline.stderr())
        self.pg.add_password_role("router", "right-password")
        passfile = os.path.join(self.pg.dir, "pgpass")
        with open(passfile, "w") as f:
            f.write("*:*:*:router:wrong-password\n")
        os.chmod(passfile, 0o600)
        wrong = self.daemon("wrong", config="[fleet]\nconninfo = %s passfile=%s\n"
                            % (self.pg.conninfo("fleet", user="router"), passfile))
        self.assert_host_only(wrong, "password authentication failed")
        self.assertNotIn("wrong-password", wrong.stderr())
        missing = self.daemon("missing", dbname="nodb")
        self.assert_host_only(missing, 'database "nodb" does not exist')
        # A schema newer than this binary.
        ok = self.daemon("ok")
        self.assertTrue(harness.wait_until(lambda: self.stats(ok)["state"] == "ok", timeout=10))
        self.pg.psql("UPDATE outcomed_fleet_schema SET version = 99", dbname="fleet")
        newer = self.daemon("newer")
        self.assert_host_only(newer, "newer than this outcomed knows")

    def test_duplicate_host_id(self):
        a = self.daemon("twin")
        random_ops(a, random.Random(2), 5)
        self.assertTrue(harness.wait_until(lambda: self.stats(a)["state"] == "ok", timeout=10))
        b = self.daemon("twin")
        self.assert_host_only(b, "another outcomed publishes as host_id 'twin'")
        # Only a's evidence is in the sums.
        want = expected_sums([a])
        self.assertTrue(harness.wait_until(lambda: fleet_sums(a) == want, timeout=10))
        self.assertEqual([h["host_id"] for h in call(a, "hosts")["hosts"]], ["twin"])


if __name__ == "__main__":
    harness.main()

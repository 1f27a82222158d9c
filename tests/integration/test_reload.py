#!/usr/bin/python3
"""SIGHUP reloads the configuration (systemctl reload): new values show in
`stats` (its "config" map) without dropping a connection or losing state; a
file that does not load is refused with a log line and the running
configuration stays; a limit lowered below what is in use keeps what exists
and refuses what is new; keys that take a restart keep their running
value; flags still override the file.

    /usr/bin/python3 tests/integration/test_reload.py [--bin PATH]
"""

import grp
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, assert_error, wait_until  # noqa: E402



def git_repo(tmpdir):
    """An empty git repository to watch (skips the test without git)."""
    repo = os.path.join(tmpdir, "repo")
    try:
        subprocess.run(["git", "init", "-q", repo], check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        raise unittest.SkipTest("no git to make a repository with")
    return repo

class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)

    def tearDown(self):
        if self.d.running():
            self.d.stop()

    def client(self):
        c = self.d.client()
        self.addCleanup(c.close)
        return c

    def config(self, c):
        return c.call("stats")["config"]

    def reload(self, c, text=None, errors=0):
        """Write text (unless None), SIGHUP, wait until stats shows the
        reload (or the refusal, with errors=1); returns the config map."""
        before = self.config(c)
        if text is not None:
            self.d.write_config(text)
        self.d.proc.send_signal(signal.SIGHUP)
        key = "reload_errors_total" if errors else "reloads_total"
        ok = wait_until(lambda: self.config(c)[key] == before[key] + 1, 5)
        self.assertTrue(ok, "no %s after SIGHUP; stderr:\n%s" % (key, self.d.stderr()))
        return self.config(c)

    # ----------------------------------------------------------------------

    def test_new_values_apply_on_the_same_connection(self):
        repo = git_repo(self.d.tmpdir)
        self.d.write_config("[limits]\npending = 100\nconnections = 50\n"
                            "[query]\ndegrade_threshold = 3\n")
        self.d.start()
        c = self.client()
        cfg = self.config(c)
        self.assertEqual(cfg["limits"]["pending"], 100)
        self.assertEqual(cfg["limits"]["connections"], 50)
        self.assertEqual(cfg["limits"]["connections_per_uid"], 256)
        self.assertEqual(cfg["degrade_threshold"], 3)
        self.assertEqual(cfg["log_level"], "info")
        self.assertEqual(cfg["watched_repos"], [])
        self.assertEqual(cfg["file"], self.d.config_path)
        tid = c.call("start", model="m", task="generate")["trace_id"]
        # A repository not watched yet.
        err, _ = c.request("start", {"model": "m", "task": "code", "repo": repo})
        self.assertEqual(err["code"], "bad_request")
        # A model degraded at threshold 3 but not at 5.
        for _ in range(4):
            t = c.call("start", model="flaky", task="generate")["trace_id"]
            c.call("fail", trace_id=t)
        self.assertTrue(c.call("query", model="flaky")["profiles"][0]["degraded"])

        cfg = self.reload(c, "[daemon]\nlog_level = debug\n"
                          "[store]\nflush_interval_ms = 500\n"
                          "[query]\ndegrade_threshold = 5\n"
                          "[git]\nrepo = %s\n"
                          "[limits]\npending = 200\nconnections = 60\n"
                          "connections_per_uid = 7\nmodel_bytes = 32\n" % repo)
        self.assertEqual(cfg["limits"]["pending"], 200)
        self.assertEqual(cfg["limits"]["connections"], 60)
        self.assertEqual(cfg["limits"]["connections_per_uid"], 7)
        self.assertEqual(cfg["limits"]["model_bytes"], 32)
        self.assertEqual(cfg["flush_interval_ms"], 500)
        self.assertEqual(cfg["degrade_threshold"], 5)
        self.assertEqual(cfg["log_level"], "debug")
        self.assertEqual(cfg["watched_repos"], [os.path.realpath(repo)])
        self.assertEqual(cfg["reload_errors_total"], 0)
        # The state and the connection are still there, and the new values act.
        pending = c.call("query", pending=True)["pending"]
        self.assertEqual([p["trace_id"] for p in pending], [tid])
        self.assertFalse(c.call("query", model="flaky")["profiles"][0]["degraded"])
        c.call("start", model="m", task="code", repo=repo)
        err, _ = c.request("start", {"model": "x" * 33, "task": "code"})
        self.assertEqual(err["code"], "bad_request")
        self.assertIsInstance(self.d.ping(), str)
        log = self.d.stderr()
        self.assertIn("SIGHUP: reloaded %s" % self.d.config_path, log)
        for key in ("[daemon] log_level", "[store] flush_interval_ms", "[query] degrade_threshold",
                    "[git] repo", "[limits] pending", "[limits] connections_per_uid"):
            self.assertIn(key, log)
        # log_level = debug took effect: new connections are logged.
        self.assertTrue(wait_until(lambda: "debug: connection" in self.d.stderr(), 5))

        # Reloading the same file changes nothing.
        self.reload(c)
        self.assertIn("nothing changed", self.d.stderr())

    def test_broken_file_keeps_the_running_configuration(self):
        self.d.write_config("[limits]\npending = 100\n")
        self.d.start()
        c = self.client()
        c.call("start", model="m", task="embed", trace_id="t:1")
        bad = [
            ("[limits]\npending = 5\nthis is not ini\n", ":3: "),
            ("[limits]\npending = 5\nno_such_key = 1\n", "unknown key 'no_such_key'"),
            ("[limits]\npending = -1\n", "pending: must be a whole number"),
            ("[limits]\npending = 5\n[nowhere]\nx = 1\n", "unknown section [nowhere]"),
            ("[limits]\npending = 5\n[git]\nrepo = /no/such/repository\n", "repo: cannot resolve"),
            ("[daemon]\nallow_group = no-such-group-outcomed\n", "no group named"),
            ("[daemon]\nallow_uids = 12x\n", "allow_uids"),
        ]
        errors = 0
        for text, what in bad:
            cfg = self.reload(c, text, errors=1)
            errors += 1
            self.assertEqual(cfg["reload_errors_total"], errors)
            self.assertEqual(cfg["reloads_total"], 0)
            self.assertEqual(cfg["limits"]["pending"], 100, "a bad file was applied: %r" % text)
            log = self.d.stderr()
            self.assertIn("configuration not reloaded, the running one stays", log)
            self.assertIn(what, log.splitlines()[-1])
        # A file that is gone (--config was given: it must exist).
        os.remove(self.d.config_path)
        cfg = self.reload(c, errors=1)
        self.assertIn("cannot open", self.d.stderr().splitlines()[-1])
        self.assertEqual(cfg["limits"]["pending"], 100)
        # The daemon is fine; a good file applies.
        self.assertEqual([p["trace_id"] for p in c.call("query", pending=True)["pending"]],
                         ["t:1"])
        cfg = self.reload(c, "[limits]\npending = 5\n")
        self.assertEqual(cfg["limits"]["pending"], 5)

    def test_lowered_limits_keep_what_exists(self):
        self.d.write_config("[limits]\npending = 10\nmodels = 10\nconnections = 10\n")
        self.d.start()
        # Four connections; two models with profiles; three pending traces.
        cs = []
        while len(cs) < 4:
            c = self.client()
            c.call("ping")
            cs.append(c)
        ids = [cs[0].call("start", model=m, task="generate")["trace_id"]
               for m in ("m0", "m1", "m0")]
        cs[0].call("complete", trace_id=ids[0], latency_ms=5)
        cs[0].call("complete", trace_id=ids[1], latency_ms=5)
        self.reload(cs[0], "[limits]\npending = 2\nmodels = 1\nconnections = 2\n")
        # What exists stays: every connection, every trace, every model.
        for c in cs:
            self.assertIsInstance(c.call("ping")["version"], str)
        self.assertEqual(len(cs[1].call("query", pending=True)["pending"]), 3)
        self.assertEqual(len(cs[1].call("query")["profiles"]), 2)
        cs[2].call("complete", trace_id=ids[2], latency_ms=7)
        # What is new is refused: a trace, a connection, a model.
        assert_error(self, cs[1].request("start", {"model": "m0", "task": "code"}), "overloaded")
        extra = self.d.client()
        self.addCleanup(extra.close)
        assert_error(self, extra.recv_response(), "overloaded", msgid=0)
        extra.expect_closed()
        # Under the pending limit again, new traces of known models are taken.
        cs[3].call("fail", trace_id=ids[1])
        cs[3].call("outcome", trace_id=ids[2], kind="accepted", confidence=1.0)
        cs[3].call("start", model="m1", task="code")
        assert_error(self, cs[3].request("start", {"model": "m9", "task": "code"}), "overloaded")
        self.assertEqual(len(cs[3].call("query")["profiles"]), 2)

    def test_restart_keys_and_flags(self):
        groups = [g.gr_name for g in grp.getgrall()]
        if len(groups) < 2:
            self.skipTest("needs two groups")
        g0, g1 = groups[0], groups[1]
        self.d.write_config("[daemon]\nsocket_group = %s\nlog_level = info\n" % g0)
        self.d.start(["--log-level", "warn"])
        c = self.client()
        self.assertEqual(self.config(c)["log_level"], "warn")
        other_sock = os.path.join(self.d.tmpdir, "other.sock")
        cfg = self.reload(c, "[daemon]\nsocket_group = %s\nsocket = %s\nlog_level = debug\n"
                          "[store]\ndb = %s\n"
                          % (g1, other_sock, os.path.join(self.d.tmpdir, "other.db")))
        # --log-level beats the file on a reload too.
        self.assertEqual(cfg["log_level"], "warn")
        log = self.d.stderr()
        self.assertIn("[daemon] socket_group changed, which takes a restart", log)
        # --socket and --db beat the file: they did not change at all.
        self.assertNotIn("[daemon] socket,", log)
        self.assertNotIn("[store] db", log)
        self.assertFalse(os.path.exists(other_sock))
        self.assertIsInstance(self.d.ping(), str)


if __name__ == "__main__":
    harness.main()

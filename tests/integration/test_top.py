#!/usr/bin/python3
"""outcomectl top against a real outcomed: the snapshot printed when stdout
is not a terminal (rows, calls, success %, EMA, posterior, pending), --json,
--help, usage errors, an unreachable daemon, and (when tmux is installed) the
live screen in a tmux pane: a row, 'q' and SIGTERM, the terminal restored.

    /usr/bin/python3 tests/integration/test_top.py [--bin PATH] [--ctl PATH]
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_outcomectl as oc  # noqa: E402

OK, USAGE, CONNECT = oc.OK, oc.USAGE, oc.CONNECT
LONG = "a-very-long-model-name-that-cannot-fit-in-eighty-columns-with-the-numbers"
COLUMNS = ["model", "task", "rate", "calls", "succ", "ema", "posterior", "p50", "p95", "pend"]


class TopTest(harness.CtlTestCase):
    def feed(self):
        """alpha-model/code: 3 calls (2 accepted, 1 rejected) and 1 pending;
        beta-model/generate: 1 pending trace, no calls; LONG/code: 1 call."""
        for i, kind in enumerate(["accepted", "accepted", "rejected"]):
            t = self.c.call("start", model="alpha-model", task="code")["trace_id"]
            self.c.call("complete", trace_id=t, latency_ms=100 * (i + 1))
            self.c.call("outcome", trace_id=t, kind=kind, confidence=1.0)
        self.c.call("start", model="alpha-model", task="code")
        self.c.call("start", model="beta-model", task="generate")
        t = self.c.call("start", model=LONG, task="code")["trace_id"]
        self.c.call("complete", trace_id=t, latency_ms=50)
        self.c.call("outcome", trace_id=t, kind="accepted", confidence=1.0)
        prof = self.c.call("query", model="alpha-model")["profiles"][0]["tasks"]["code"]
        return prof

    def rows(self, text):
        """The table rows of a plain snapshot, by (model, task)."""
        lines = text.splitlines()
        head = [i for i, l in enumerate(lines) if l.startswith("MODEL ")]
        self.assertEqual(len(head), 1, text)
        out = {}
        for line in lines[head[0] + 1:]:
            self.assertLessEqual(len(line), 80, "fits 80 columns: %r" % line)
            cells = line.split()
            self.assertEqual(len(cells), len(COLUMNS), line)
            row = dict(zip(COLUMNS, cells))
            out[(row["model"], row["task"])] = row
        return out

    def test_snapshot_not_a_terminal(self):
        task = self.feed()
        r = self.run_ctl("top", "--interval", "0.1", want=OK)
        self.assertTrue(r.stdout.startswith("outcomed "), r.stdout)
        self.assertIn("journal rows", r.stdout)
        self.assertIn("pending traces 2", r.stdout)
        rows = self.rows(r.stdout)
        a = rows[("alpha-model", "code")]
        self.assertEqual((a["calls"], a["succ"], a["pend"], a["rate"]), ("3", "66.7", "1", "0.0"))
        self.assertEqual(a["ema"], "%.2f" % task["ema_quality"])
        self.assertEqual(a["posterior"], "%.2f-%.2f" % (task["posterior"]["lo"], task["posterior"]["hi"]))
        self.assertEqual(a["p50"], "%.0f" % task["latency_p50_ms"])
        b = rows[("beta-model", "generate")]
        self.assertEqual((b["calls"], b["succ"], b["ema"], b["pend"]), ("-", "-", "-", "1"))
        longs = [k for k in rows if k[0].endswith("~")]
        self.assertEqual(len(longs), 1, rows.keys())
        self.assertTrue(LONG.startswith(longs[0][0][:-1]))
        self.assertEqual(rows[longs[0]]["calls"], "1")
        # Sorted by calls/s (all 0 here), then model.
        self.assertEqual([k[0] for k in rows], sorted(k[0] for k in rows))

    def test_rates_and_sort(self):
        """Calls made between the two polls show as calls/s, busiest first."""
        self.feed()
        p = subprocess.Popen([self.ctl, "--socket", self.d.socket_path, "--json", "top",
                              "--interval", "1.5"], stdout=subprocess.PIPE, text=True,
                             env=self.env())
        time.sleep(0.5)
        for _ in range(3):
            t = self.c.call("start", model="zeta-model", task="classify")["trace_id"]
            self.c.call("complete", trace_id=t, latency_ms=5)
        out, _ = p.communicate(timeout=20)
        self.assertEqual(p.returncode, OK)
        j = oc.json.loads(out)
        first = j["rows"][0]
        self.assertEqual((first["model"], first["task"], first["calls"]), ("zeta-model", "classify", 3))
        self.assertGreater(first["calls_per_s"], 0.5)
        self.assertLess(first["calls_per_s"], 3.0 / 1.4)
        self.assertGreater(j["daemon"]["commits_per_s"], 0)

    def test_json_snapshot(self):
        task = self.feed()
        j = self.json_ctl("top", "--interval", "0.1")
        self.assertEqual(set(j), {"interval_s", "daemon", "pending_limit", "pending_truncated", "rows"})
        self.assertEqual(set(j["daemon"]), {"version", "uptime_s", "connections", "commits_total",
                                            "commits_per_s", "journal_total", "writable", "pending"})
        self.assertEqual(j["daemon"]["pending"], 2)
        self.assertIs(j["daemon"]["writable"], True)
        self.assertEqual((j["pending_limit"], j["pending_truncated"]), (1000, False))
        rows = {(r["model"], r["task"]): r for r in j["rows"]}
        self.assertEqual(set(rows), {("alpha-model", "code"), ("beta-model", "generate"), (LONG, "code")})
        a = rows[("alpha-model", "code")]
        self.assertEqual((a["calls"], a["pending"], a["calls_per_s"]), (3, 1, 0.0))
        self.assertAlmostEqual(a["success_rate"], 2 / 3, places=12)
        self.assertAlmostEqual(a["ema_quality"], task["ema_quality"], places=12)
        self.assertAlmostEqual(a["posterior_lo"], task["posterior"]["lo"], places=12)
        self.assertAlmostEqual(a["posterior_hi"], task["posterior"]["hi"], places=12)
        self.assertAlmostEqual(a["latency_p95_ms"], task["latency_p95_ms"], places=9)
        b = rows[("beta-model", "generate")]
        self.assertEqual((b["calls"], b["pending"], b["success_rate"], b["latency_p50_ms"]), (0, 1, None, None))

    def test_help_and_usage(self):
        r = self.run_ctl("top", "--help", socket_path=False, want=OK)
        for word in ("--interval", "CALLS/S", "PEND", "1000", "not a terminal"):
            self.assertIn(word, r.stdout)
        r = self.run_ctl("--help", socket_path=False, want=OK)
        self.assertRegex(r.stdout, r"\n  top +\S")
        for bad in ("0", "-1", "abc", "0.05", "3601", "1s", "nan", ""):
            with self.subTest(interval=bad):
                r = self.run_ctl("top", "--interval", bad, want=USAGE)
                self.assertIn("--interval", r.stderr)
        self.run_ctl("top", "extra", want=USAGE)
        self.run_ctl("top", "--interval", want=USAGE)

    def test_unreachable(self):
        r = self.run_ctl("top", socket_path=os.path.join(self.d.tmpdir, "missing.sock"), want=CONNECT)
        self.assertTrue(r.stderr.strip())

    # ---- the live screen, in a tmux pane

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-S", self.tmux_sock] + list(args), capture_output=True,
                              text=True, check=check, env=self.env(TERM="xterm"))

    def start_pane(self, done):
        if shutil.which("tmux") is None:
            self.skipTest("no tmux (apt-get install tmux)")
        self.tmux_sock = os.path.join(self.d.tmpdir, "tmux.sock")
        self.addCleanup(self.tmux, "kill-server", check=False)
        stty = os.path.join(self.d.tmpdir, "stty.txt")
        script = ('"$0" --socket "$1" top --interval 0.2; echo "exit $?" > "$2"; stty -a > "$3"; '
                  'sleep 30')
        self.tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
                  "sh", "-c", script, self.ctl, self.d.socket_path, done, stty)
        return stty

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def wait_row(self):
        def row():
            text = self.screen()
            return text if "alpha-model" in text else None
        return harness.wait_until(row, timeout=10)

    @staticmethod
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_done(self, done):
        harness.wait_until(lambda: self.read(done).endswith("\n"), timeout=10)
        return self.read(done).strip()

    def test_tmux_screen_q_quits(self):
        self.feed()
        done = os.path.join(self.d.tmpdir, "done.txt")
        stty = self.start_pane(done)
        text = self.wait_row()
        self.assertTrue(text, "no alpha-model row on the screen:\n%s" % self.screen())
        line = [l for l in text.splitlines() if l.startswith("alpha-model")][0]
        self.assertEqual(line.split()[3:5], ["3", "66.7"], text)
        self.assertIn("q: quit", text)
        self.assertTrue(all(len(l) <= 80 for l in text.splitlines()))
        # Calls made now show as a rate on a later screen.
        t = self.c.call("start", model="alpha-model", task="code")["trace_id"]
        self.c.call("complete", trace_id=t, latency_ms=5)
        self.assertTrue(harness.wait_until(lambda: any(l.startswith("alpha-model") and l.split()[3] == "4"
                                                       for l in self.screen().splitlines()), timeout=10),
                        self.screen())
        self.tmux("send-keys", "-t", "top", "q")
        self.assertEqual(self.wait_done(done), "exit 0")
        harness.wait_until(lambda: self.read(stty), timeout=5)
        modes = self.read(stty).split()
        self.assertIn("icanon", modes, "canonical mode restored")
        self.assertIn("echo", modes, "echo restored")
        self.assertNotIn("alpha-model", self.screen(), "the alternate screen was left")

    def test_tmux_sigterm_restores(self):
        self.feed()
        done = os.path.join(self.d.tmpdir, "done.txt")
        stty = self.start_pane(done)
        self.wait_row()
        sh = int(self.tmux("display-message", "-p", "-t", "top", "#{pane_pid}").stdout)
        with open("/proc/%d/task/%d/children" % (sh, sh)) as f:
            child = int(f.read().split()[0])
        os.kill(child, signal.SIGTERM)
        self.assertEqual(self.wait_done(done), "exit 0")
        harness.wait_until(lambda: self.read(stty), timeout=5)
        modes = self.read(stty).split()
        self.assertIn("icanon", modes)
        self.assertIn("echo", modes)


    def test_tmux_daemon_lost(self):
        """The daemon going away: the terminal restored, then why, exit 3."""
        self.feed()
        done = os.path.join(self.d.tmpdir, "done.txt")
        stty = self.start_pane(done)
        self.assertTrue(self.wait_row(), self.screen())
        self.d.stop()
        self.assertEqual(self.wait_done(done), "exit 3")
        harness.wait_until(lambda: self.read(stty), timeout=5)
        modes = self.read(stty).split()
        self.assertIn("icanon", modes)
        self.assertIn("echo", modes)
        self.assertIn("outcomectl:", self.screen(), "the error is on the normal screen")

if __name__ == "__main__":
    harness.main()

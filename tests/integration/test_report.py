#!/usr/bin/python3
"""outcomectl report against a real outcomed, opened in a real browser:
headless Chromium (Debian's chromium) loads the page from disk, runs its
scripts with no network, and the test reads the DOM it leaves: no script
error, the ranking and the sidelined models the daemon gives, and every plot
holding the points of the daemon's `history` (or, from a daemon without
`history`, plots that say so).  A screenshot at 1280 px goes to
BUILD/tests/report.png (and the page to report.html beside it) for a person
to look at.  Also: --since and its buckets, usage errors, an unreachable
daemon, the atomic write, and model names that try to end the page's
<script>.

The browser tests skip when chromium is not installed (tools/setup.sh
installs it).

    /usr/bin/python3 tests/integration/test_report.py [--bin PATH] [--ctl PATH]
"""

import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OK, DAEMON, USAGE, CONNECT = 0, 1, 2, 3
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HISTORY_PLOTS = ("quality", "calls", "latency", "cost")
HOSTILE = "</script><script>document.title='pwned'</script><!--"

CONFIG = """[price:alpha-model]
input_per_mtok = 2.5
output_per_mtok = 10
[price:gamma-model]
input_per_mtok = 0.5
output_per_mtok = 1.5
"""


def out_dir():
    """BUILD/tests, where the screenshot and the page are left for a person."""
    build = os.environ.get("MESON_BUILD_DIR") or os.path.join(harness.SOURCE_ROOT, "build")
    d = os.path.join(build, "tests")
    os.makedirs(d, exist_ok=True)
    return d


class DomReader(html.parser.HTMLParser):
    """The plots (elements with data-plot), their text, and every script
    element, from Chromium's --dump-dom."""

    def __init__(self):
        super().__init__()
        self.plots = []        # dicts of the attributes, plus "text"
        self.scripts = 0
        self.errors = []       # text of <pre class="error">
        self.title = ""
        self._stack = []       # open elements: (tag, plot dict or None, is_error, is_title)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        plot = None
        if "data-plot" in a:
            plot = dict(a, text="")
            self.plots.append(plot)
        if tag == "script":
            self.scripts += 1
        is_error = tag == "pre" and "error" in (a.get("class") or "").split()
        if is_error:
            self.errors.append("")
        if tag not in ("br", "meta", "link", "img", "input", "hr"):
            self._stack.append((tag, plot, is_error, tag == "title"))

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, plot, is_error, is_title in self._stack:
            if plot is not None:
                plot["text"] += data
            if is_error:
                self.errors[-1] += data
            if is_title:
                self.title += data


def page_height(dom):
    """About how tall the page is at 1280 px, from its plots: a screenshot
    of that height shows it whole (headless Chromium shoots the window)."""
    height = 560
    for p in dom.plots:
        if p["data-plot"] == "ranking":
            height += 150 + 42 * int(p["data-points"])
        elif p["data-plot"] in ("quality", "latency"):   # the first of each row of two
            height += 130 if "empty" in p.get("class", "").split() else 305
    return height


class ReportTest(harness.CtlTestCase):
    config = CONFIG

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="outcomed-report-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    # ---- the daemon's evidence

    def call(self, model, task, latency, kind=None, tokens=(900, 240), domain=None):
        args = {"model": model, "task": task}
        if domain:
            args["domain"] = domain
        t = self.c.call("start", **args)["trace_id"]
        if kind == "fail":
            self.c.call("fail", trace_id=t, error="timeout")
            return
        self.c.call("complete", trace_id=t, latency_ms=latency, input_tokens=tokens[0],
                    output_tokens=tokens[1])
        if kind:
            self.c.call("outcome", trace_id=t, kind=kind, confidence=0.9)

    def feed(self, extra_models=()):
        """alpha and beta on code (beta degraded: 5 failures), gamma on
        generate (priced) and code, delta on classify, and extra models on
        reasoning."""
        for i, kind in enumerate(["accepted", "accepted", "accepted_with_edits", "rejected"]):
            self.call("alpha-model", "code", 400 + 100 * i, kind)
        self.call("beta-model", "code", 900, "accepted")
        for _ in range(5):
            self.call("beta-model", "code", 0, "fail")
        for i in range(3):
            self.call("gamma-model", "generate", 1200 + 300 * i, "accepted", domain="poetry")
        self.call("gamma-model", "code", 700, "rejected")
        self.call("delta-model", "classify", 80, "accepted", tokens=(50, 2))
        for m in extra_models:
            self.call(m, "reasoning", 1500, "accepted")

    def daemon_has_history(self):
        try:
            self.c.call("history", bucket_s=3600)
        except harness.RPCError as e:
            if e.code == "unknown_method":
                return False
            raise
        return True

    # ---- the browser

    def chromium(self, *args, timeout=60):
        if CHROMIUM is None:
            self.skipTest("chromium is not installed (tools/setup.sh installs it)")
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
                "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
                "--force-device-scale-factor=1"] + list(args)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               env=dict(os.environ, HOME=profile))
        except subprocess.TimeoutExpired:
            self.fail("chromium did not finish within %ds: %s" % (timeout, argv))
        return r

    def open_page(self, path, screenshot=None):
        """The page's DOM after its scripts ran, checking that it logged
        nothing to the console (it logs nothing when all is well); with
        screenshot, a PNG of the whole page at 1280 px wide."""
        url = "file://" + os.path.abspath(path)
        r = self.chromium("--window-size=1280,1000", "--dump-dom", url)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
        self.assertEqual(console, [], "the page logged to the console (a script error?)")
        dom = DomReader()
        dom.feed(r.stdout)
        self.assertEqual(dom.errors, [], "the page says it could not be drawn")
        if screenshot:
            s = self.chromium("--window-size=1280,%d" % page_height(dom), "--screenshot=" + screenshot,
                              url)
            self.assertEqual(s.returncode, 0, s.stderr[-3000:])
            self.assertTrue(os.path.getsize(screenshot) > 10000, "a screenshot with something in it")
        return dom

    def report(self, path, *args):
        j = self.json_ctl("report", "--html", path, *args)
        self.assertEqual(j["file"], path)
        return j

    # ---- what a plot must hold

    def expected_points(self, hist):
        """{(task, plot): points}: per task, the (model, bucket) points that
        have a value to draw in each plot, by the rules of report.js."""
        want = {}
        for s in hist["series"]:
            n = len(s["t"])
            for col in ("t", "calls", "ema", "posterior_mean", "latency_p50_ms", "cost"):
                self.assertEqual(len(s[col]), n, "history columns of equal length")
            counts = {
                "quality": sum(1 for i in range(n) if s["posterior_mean"][i] is not None
                               or s["ema"][i] is not None),
                "calls": sum(1 for i in range(n) if s["calls"][i] is not None
                             or s["failures"][i] is not None),
                "latency": sum(1 for i in range(n) if s["latency_p50_ms"][i] is not None
                               or s["latency_p95_ms"][i] is not None),
                "cost": sum(1 for i in range(n) if (s["cost"][i] or 0) > 0
                            and (s["successes"][i] or 0) > 0),
            }
            for plot, k in counts.items():
                want[(s["task"], plot)] = want.get((s["task"], plot), 0) + k
        return want

    # ---- the tests

    def test_report_in_chromium(self):
        """The whole page in a real browser: rankings, the degraded model and
        why, and each plot with the history's points (or 'no history')."""
        self.feed()
        page = os.path.join(out_dir(), "report.html")
        j = self.report(page)
        self.assertEqual((j["models"], j["tasks"]), (4, 3))
        with open(page, encoding="utf-8") as f:
            text = f.read()
        # Self-contained: nothing to fetch, and a policy that forbids it.
        self.assertIsNone(re.search(r"""<(script|link|img|iframe)[^>]*\s(src|href)\s*=""", text, re.I))
        self.assertIn("default-src 'none'", text)
        self.assertIn("uPlot", text)

        dom = self.open_page(page, screenshot=os.path.join(out_dir(), "report.png"))
        plots = {(p["data-task"], p["data-plot"]): p for p in dom.plots}
        tasks = {"code", "generate", "classify"}
        self.assertEqual({t for t, _ in plots}, tasks)

        for task in tasks:
            ranked = self.c.call("rank", task=task)["ranked"]
            self.assertEqual(int(plots[(task, "ranking")]["data-points"]), len(ranked), task)
            for it in ranked:
                self.assertIn(it["model"], plots[(task, "ranking")]["text"])
        code = plots[("code", "ranking")]["text"]
        self.assertIn("degraded: 5 failures > 1 success + threshold 3, since", code)

        if j["history"]:
            hist = self.c.call("history", since=j["since"], until=j["until"], bucket_s=j["bucket_s"])
            self.assertEqual(hist["points"], j["points"])
            want = self.expected_points(hist)
            for task in tasks:
                for plot in HISTORY_PLOTS:
                    got = int(plots[(task, plot)]["data-points"])
                    self.assertEqual(got, want.get((task, plot), 0), (task, plot))
            # What the test sent: each model it fed has a point in its
            # task's quality and calls plots, and latency where it
            # completed calls; cost only for the priced models.
            for task, fed in (("code", 3), ("generate", 1), ("classify", 1)):
                self.assertGreaterEqual(int(plots[(task, "quality")]["data-points"]), fed)
                self.assertGreaterEqual(int(plots[(task, "calls")]["data-points"]), fed)
                self.assertGreaterEqual(int(plots[(task, "latency")]["data-points"]), fed)
            self.assertGreaterEqual(int(plots[("generate", "cost")]["data-points"]), 1)
            self.assertEqual(int(plots[("classify", "cost")]["data-points"]), 0)
        else:
            self.assertFalse(self.daemon_has_history())
            for task in tasks:
                for plot in HISTORY_PLOTS:
                    p = plots[(task, plot)]
                    self.assertEqual(p["data-points"], "0", (task, plot))
                    self.assertIn("no history from this daemon", p["text"])

    def test_sidelined_and_hostile_names(self):
        """A model id that tries to close the data's <script> stays text:
        the page runs its own three scripts only, shows the name, and lists
        the degraded model with its numbers."""
        self.feed(extra_models=[HOSTILE])
        page = os.path.join(self.tmp, "hostile.html")
        self.report(page, "--since", "36h")
        with open(page, encoding="utf-8") as f:
            raw = f.read()
        self.assertNotIn(HOSTILE, raw)
        self.assertEqual(raw.count("<script"), 3)
        dom = self.open_page(page)
        self.assertEqual(dom.scripts, 3)
        self.assertEqual(dom.title, "outcomed report")
        plots = {(p["data-task"], p["data-plot"]): p for p in dom.plots}
        self.assertIn(HOSTILE, plots[("reasoning", "ranking")]["text"])

    def test_since_picks_the_buckets(self):
        self.feed()
        for since, span, bucket in (("90m", 5400, 60), ("36h", 129600, 600), ("7d", 604800, 3600),
                                    ("2w", 1209600, 7200)):
            j = self.report(os.path.join(self.tmp, "r.html"), "--since", since)
            self.assertEqual(j["until"] - j["since"], span, since)
            if j["history"]:
                self.assertEqual(j["bucket_s"], bucket, since)
        j = self.report(os.path.join(self.tmp, "r.html"))
        self.assertEqual(j["until"] - j["since"], 7 * 86400, "default 7d")

    def test_plain_output_and_atomic_write(self):
        self.feed()
        page = os.path.join(self.tmp, "report.html")
        with open(page, "w") as f:
            f.write("old")
        r = self.run_ctl("report", "--html", page, want=OK)
        self.assertRegex(r.stdout, r"^wrote %s: 4 models, 3 tasks" % re.escape(page))
        with open(page, encoding="utf-8") as f:
            self.assertTrue(f.read().startswith("<!DOCTYPE html>"))
        self.assertEqual(os.listdir(self.tmp), ["report.html"], "no temporary file left")

    def test_usage_errors(self):
        page = os.path.join(self.tmp, "r.html")
        for args, msg in (
                ((), "--html FILE is required"),
                (("--html", ""), "--html: FILE must not be empty"),
                (("--html", page, "--since", "7"), "--since is too short: '7'"),
                (("--html", page, "--since", "-1d"), "not '-1d'"),
                (("--html", page, "--since", "3y"), "not '3y'"),
                (("--html", page, "--since", "0d"), "--since is too short: '0d'"),
                (("--html", page, "--since", "30s"), "--since is too short: '30s'"),
                (("--html", page, "--since", "400d"), "--since is too long: '400d'"),
                (("--html", page, "extra"), "unexpected argument 'extra'"),
                (("--html",), "option '--html' needs a value"),
                (("--html", page, "--bogus"), "'--bogus'")):
            r = self.run_ctl("report", *args, want=USAGE)
            self.assertIn(msg, r.stderr, args)
        self.assertFalse(os.path.exists(page))
        r = self.run_ctl("report", "--help", want=OK)
        self.assertIn("--since DURATION", r.stdout)

    def test_unwritable_and_unreachable(self):
        r = self.run_ctl("report", "--html", os.path.join(self.tmp, "no", "such", "dir.html"),
                         want=DAEMON)
        self.assertIn("cannot create a temporary file", r.stderr)
        page = os.path.join(self.tmp, "r.html")
        r = self.run_ctl("report", "--html", page, socket_path=os.path.join(self.tmp, "none.sock"),
                         want=CONNECT)
        self.assertIn("none.sock", r.stderr)
        self.assertFalse(os.path.exists(page), "nothing written when the daemon is unreachable")

    # ---- weeks of history, written by bench/history-fill

    def fill(self, *args):
        """Stop the daemon, write history rows into its database with
        history-fill, start it again.  Skips without history-fill or a
        daemon with `history`."""
        if not self.daemon_has_history():
            self.skipTest("this daemon has no history method")
        fill = os.environ.get("HISTORY_FILL_BIN") or os.path.join(
            os.environ.get("MESON_BUILD_DIR") or os.path.join(harness.SOURCE_ROOT, "build"),
            "bench", "history-fill")
        if not os.access(fill, os.X_OK):
            self.skipTest("no history-fill at %s" % fill)
        self.c.close()
        self.d.stop()
        r = subprocess.run([fill, "--db", self.d.db_path] + list(args), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.d.start()
        self.c = self.client()

    def test_weeks_of_history_in_chromium(self):
        """8 days of rows for 4 models x 3 tasks, a row every 5 minutes: the
        7d report's plots hold every hourly bucket of every model; its
        screenshot is BUILD/tests/report-history.png."""
        self.fill("--days", "8", "--models", "4", "--tasks", "3", "--every", "5")
        self.feed()
        page = os.path.join(out_dir(), "report-history.html")
        j = self.report(page)
        self.assertTrue(j["history"])
        self.assertEqual((j["models"], j["tasks"], j["bucket_s"]), (8, 4, 3600))
        hist = self.c.call("history", since=j["since"], until=j["until"], bucket_s=j["bucket_s"])
        self.assertEqual(hist["points"], j["points"])
        want = self.expected_points(hist)
        dom = self.open_page(page, screenshot=os.path.join(out_dir(), "report-history.png"))
        plots = {(p["data-task"], p["data-plot"]): p for p in dom.plots}
        for task in ("generate", "embed", "classify", "code"):
            for plot in HISTORY_PLOTS:
                self.assertEqual(int(plots[(task, plot)]["data-points"]), want.get((task, plot), 0),
                                 (task, plot))
        # A filled series has a row in every hour of the 7 days.
        for task in ("generate", "embed", "classify"):
            self.assertGreaterEqual(int(plots[(task, "calls")]["data-points"]), 4 * 7 * 24)

    def test_buckets_widen_past_the_point_limit(self):
        """100 series over 3 days in 30-minute buckets would be 14,400
        points, over the daemon's 10,000: the report asks again in hours."""
        self.fill("--days", "3", "--models", "20", "--tasks", "5", "--every", "30")
        j = self.report(os.path.join(self.tmp, "r.html"), "--since", "3d")
        self.assertEqual(j["bucket_s"], 3600)
        self.assertLessEqual(j["points"], 10000)
        self.assertGreater(j["points"], 6000)
        self.assertEqual((j["models"], j["series"]), (20, 100))

    def test_empty_daemon(self):
        page = os.path.join(self.tmp, "empty.html")
        j = self.report(page)
        self.assertEqual((j["models"], j["tasks"]), (0, 0))
        if CHROMIUM is None:
            self.skipTest("chromium is not installed (tools/setup.sh installs it)")
        dom = self.open_page(page)
        self.assertEqual(dom.plots, [])


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""Ground truth from git against a real outcomed: temporary repositories
made here with the git CLI, code traces started on them, and the `scan`
method's judgements: one scenario per outcome kind, the language x
structural kind matrix, pasted as is (staged, unstaged, committed before
the scan), two traces on two files, an unwatched repository refused, a
trace judged once across many scans, settle and deadline, the base kept
across a crash, the timer, and the `scan` reply's shape and order.

    /usr/bin/python3 tests/integration/test_git.py [--bin PATH] [--ctl PATH]
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_error  # noqa: E402

QUALITY = {"applied": 1.0, "signature_changed": 0.8, "body_modified": 0.7, "symbol_added": 0.7,
           "modified": 0.6, "ignored": 0.1}

# An unrelated suggestion: structural evidence decides, not the text.
UNRELATED = "# a suggestion that was not taken\nprint('nothing to see here')\n"

# Per language: the base file, then the same file with a signature
# changed, with a body changed, and with a function added.
LANGS = {
    "c": ("src/f.c",
          "int f(int a)\n{\n        return a;\n}\n",
          "int f(long a)\n{\n        return a;\n}\n",
          "int f(int a)\n{\n        return a + 1;\n}\n",
          "int f(int a)\n{\n        return a;\n}\n\nint g(void)\n{\n        return 0;\n}\n"),
    "cpp": ("src/f.cpp",
            "namespace n {\nclass C {\npublic:\n    int f(int a) { return a; }\n};\n}\n",
            "namespace n {\nclass C {\npublic:\n    int f(int a, int b) { return a; }\n};\n}\n",
            "namespace n {\nclass C {\npublic:\n    int f(int a) { return -a; }\n};\n}\n",
            "namespace n {\nclass C {\npublic:\n    int f(int a) { return a; }\n    void g() {}\n};\n}\n"),
    "python": ("pkg/f.py",
               "class K:\n    def f(self, a):\n        return a\n",
               "class K:\n    def f(self, a, b=0):\n        return a\n",
               "class K:\n    def f(self, a):\n        return a * 2\n",
               "class K:\n    def f(self, a):\n        return a\n\n    def g(self):\n        return 1\n"),
    "rust": ("src/f.rs",
             "struct S;\nimpl S {\n    fn f(&self) -> u8 { 1 }\n}\n",
             "struct S;\nimpl S {\n    fn f(&self) -> u16 { 1 }\n}\n",
             "struct S;\nimpl S {\n    fn f(&self) -> u8 { 2 }\n}\n",
             "struct S;\nimpl S {\n    fn f(&self) -> u8 { 1 }\n    fn g() {}\n}\n"),
    "javascript": ("web/f.js",
                   "class C {\n  f(a) { return a; }\n}\n",
                   "class C {\n  f(a, b) { return a; }\n}\n",
                   "class C {\n  f(a) { return a * 2; }\n}\n",
                   "class C {\n  f(a) { return a; }\n  g() { return 1; }\n}\n"),
    "typescript": ("web/f.ts",
                   "export function f(a: number): number {\n  return a;\n}\n",
                   "export function f(a: number): string {\n  return a;\n}\n",
                   "export function f(a: number): number {\n  return a + 1;\n}\n",
                   "export function f(a: number): number {\n  return a;\n}\n"
                   "export function g(): void {}\n"),
    "tsx": ("web/f.tsx",
            "export const F = (p: P) => <div>{p.a}</div>;\n",
            "export const F = (p: Q) => <div>{p.a}</div>;\n",
            "export const F = (p: P) => <span>{p.a}</span>;\n",
            "export const F = (p: P) => <div>{p.a}</div>;\nexport const G = () => <p />;\n"),
    "go": ("geo/f.go",
           "package geo\n\nfunc F(a int) int {\n\treturn a\n}\n",
           "package geo\n\nfunc F(a int, b int) int {\n\treturn a\n}\n",
           "package geo\n\nfunc F(a int) int {\n\treturn a * 2\n}\n",
           "package geo\n\nfunc F(a int) int {\n\treturn a\n}\n\nfunc G() {}\n"),
    "java": ("src/F.java",
             "class F {\n    int f(int a) { return a; }\n}\n",
             "class F {\n    long f(int a) { return a; }\n}\n",
             "class F {\n    int f(int a) { return a + 1; }\n}\n",
             "class F {\n    int f(int a) { return a; }\n    void g() {}\n}\n"),
}

SUGGESTION = ("def total(items):\n"
              "    result = 0\n"
              "    for item in items:\n"
              "        result += item.price * item.count\n"
              "    return result\n")


class Repo:
    """A git repository made with the git CLI, private to one test."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.env = dict(os.environ, HOME=os.path.dirname(path), GIT_CONFIG_NOSYSTEM="1",
                        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
                        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
        self.git("init", "-q", "-b", "main")

    def git(self, *args):
        return subprocess.run(["git", "-C", self.path] + list(args), check=True, timeout=30,
                              env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE).stdout.decode()

    def write(self, rel, text):
        p = os.path.join(self.path, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def append(self, rel, text):
        with open(os.path.join(self.path, rel), "a") as f:
            f.write(text)

    def commit(self, msg="change"):
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", msg)

    def head(self):
        return self.git("rev-parse", "HEAD").strip()


def have_git():
    return shutil.which("git") is not None


class GitCase(harness.DaemonTestCase):
    """A daemon watching one repository (self.repo), with settle_s and
    deadline_s as the class says, and no timer scans unless it says so."""

    settle_s = 0
    deadline_s = 3600
    scan_interval_s = 3600
    extra_config = ""

    def make_config(self, tmpdir):
        if not have_git():
            self.skipTest("no git command")
        self.repo = Repo(os.path.join(tmpdir, "repo"))
        self.seed_repo(self.repo)
        return ("[git]\nrepo = %s\nsettle_s = %d\ndeadline_s = %d\nscan_interval_s = %d\n%s"
                % (self.repo.path, self.settle_s, self.deadline_s, self.scan_interval_s,
                   self.extra_config))

    def seed_repo(self, repo):
        repo.write("README.md", "a repository for outcomed's tests\n")
        repo.write("app/a.py", "def a():\n    return 1\n")
        repo.write("app/b.py", "def b():\n    return 2\n")
        repo.commit("init")

    def setUp(self):
        super().setUp()
        self.c = self.client()

    def code_trace(self, files, output=SUGGESTION, model="coder", complete=True, **kw):
        args = {"model": model, "task": "code", "repo": self.repo.path, "files": list(files)}
        args.update(kw)
        t = self.c.call("start", args)["trace_id"]
        if complete:
            self.c.call("complete", trace_id=t, latency_ms=100, output=output)
        return t

    def scan(self):
        r = self.c.call("scan")
        self.assertEqual(set(r), {"repos", "judged", "duration_ms"}, r)
        return r

    def judged(self, r):
        """{trace_id: (kind, evidence)} of a scan reply."""
        out = {}
        for j in r["judged"]:
            self.assertEqual(set(j), {"trace_id", "kind", "evidence"}, j)
            self.assertNotIn(j["trace_id"], out, "judged twice in one scan")
            out[j["trace_id"]] = (j["kind"], j["evidence"])
        return out

    def pending_ids(self):
        return {p["trace_id"] for p in self.c.call("query", pending=True)["pending"]}


class ScanMethodTest(GitCase):
    def test_reply_shape(self):
        r = self.scan()
        self.assertEqual(r["repos"], 0)
        self.assertEqual(r["judged"], [])
        self.assertIsInstance(r["duration_ms"], int)
        t = self.code_trace(["app/a.py"])
        r = self.scan()
        self.assertEqual((r["repos"], r["judged"]), (1, []))
        self.assertIn(t, self.pending_ids())
        assert_error(self, self.c.request("scan", {"repo": self.repo.path}), "bad_request",
                     message_contains="repo")
        s = self.c.call("stats")
        self.assertGreaterEqual(s["scans_total"], 2)
        self.assertEqual(s["git_judged_total"], 0)

    def test_reply_keeps_its_place(self):
        # Pipelined: the replies after a scan wait for it, in order.
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        calls = [("ping", None), ("scan", None), ("ping", None), ("query", {"pending": True}),
                 ("scan", None), ("stats", None)]
        ids = self.c.send_many(calls)
        replies = self.c.recv_many(len(calls))
        self.assertEqual([r[0] for r in replies], ids)
        for r in replies:
            self.assertIsNone(r[1], r)
        first_scan, pending, second_scan = replies[1][2], replies[3][2], replies[4][2]
        self.assertEqual(self.judged(first_scan), {t: ("applied", first_scan["judged"][0]["evidence"])})
        self.assertEqual(pending["pending"], [])  # answered after the judgement
        self.assertEqual(second_scan["judged"], [])

    def test_notification_runs_a_scan(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", SUGGESTION)
        self.c.notify("scan")
        ok = harness.wait_until(lambda: t not in self.pending_ids(), timeout=10)
        self.assertTrue(ok, "a notified scan judged nothing")

    def test_many_clients_scan_at_once(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", SUGGESTION)
        clients = [self.client() for _ in range(5)]
        for c in clients:
            c.send_request("scan")
        replies = [c.recv_response() for c in clients]
        for r in replies:
            self.assertIsNone(r[1], r)
            # Asked at once, they may share a scan: each reports what its
            # scan did; the trace is still judged once.
            self.assertIn([j["trace_id"] for j in r[2]["judged"]], ([], [t]))
        self.assertNotIn(t, self.pending_ids())
        self.assertEqual(self.c.call("stats")["git_judged_total"], 1)
        p = self.c.call("query", model="coder")["profiles"][0]
        self.assertEqual(p["success_count"], 1)


class TextEvidenceTest(GitCase):
    def check_applied(self, t, r):
        j = self.judged(r)
        self.assertIn(t, j, r)
        kind, evidence = j[t]
        self.assertEqual(kind, "applied")
        self.assertIn("5 of 5 suggested lines", evidence)
        p = self.c.call("query", model="coder")["profiles"][0]
        self.assertEqual((p["success_count"], p["fail_count"]), (1, 0))
        self.assertAlmostEqual(p["ema_quality"], 0.8 * 0.5 + 0.2 * 1.0)
        self.assertNotIn(t, self.pending_ids())

    def test_pasted_unstaged(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.check_applied(t, self.scan())

    def test_pasted_staged(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.repo.git("add", "app/a.py")
        self.check_applied(t, self.scan())

    def test_pasted_then_committed(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.repo.commit("took the suggestion")
        self.repo.write("app/b.py", "def b():\n    return 3\n")  # and more commits after it
        self.repo.commit("unrelated")
        self.check_applied(t, self.scan())

    def test_pasted_into_a_new_untracked_file(self):
        t = self.code_trace(["app/new/total.py"])
        self.repo.write("app/new/total.py", SUGGESTION)
        self.check_applied(t, self.scan())

    def test_reindented_and_fenced(self):
        # Indentation is trimmed; markdown fences and short or
        # punctuation-only lines do not count.
        fenced = "```python\n" + SUGGESTION + "}\n);\n```\n"
        t = self.code_trace(["app/a.py"], output=fenced)
        self.repo.append("app/a.py", "\n" + "\n".join("        " + l for l in SUGGESTION.split("\n")))
        self.check_applied(t, self.scan())

    def test_below_the_threshold_waits_for_settle(self):
        # 2 of 5 lines: no text verdict, and settle_s is not over (see
        # SettleTest): here settle_s = 0, so the structure decides at once.
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\ndef total(items):\n    return result\n")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "symbol_added")
        self.assertIn("total", evidence)

    def test_multiset(self):
        # A line suggested twice must be added twice.
        sugg = "x = compute_value(1)\nx = compute_value(1)\ny = other_thing(2)\nz = third_one(3)\n"
        t = self.code_trace(["README.md"], output=sugg)
        self.repo.append("README.md", "x = compute_value(1)\ny = other_thing(2)\nz = third_one(3)\n")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "modified")  # 3 of 4 = 75% < 80%; no grammar for .md
        self.assertIn("3 of 4", evidence)


class StructuralTest(GitCase):
    def seed_repo(self, repo):
        super().seed_repo(repo)
        for lang, (path, base, _sig, _body, _added) in LANGS.items():
            for kind in ("sig", "body", "added"):
                repo.write(self.variant(path, kind), base)
        repo.write("docs/notes.txt", "some notes\n")
        repo.commit("the matrix")

    @staticmethod
    def variant(path, kind):
        d, f = os.path.split(path)
        return os.path.join(d, kind + "_" + f)

    def test_language_matrix(self):
        want = {}
        for lang, (path, _base, sig, body, added) in LANGS.items():
            for kind, text, expect in (("sig", sig, "signature_changed"),
                                       ("body", body, "body_modified"),
                                       ("added", added, "symbol_added")):
                rel = self.variant(path, kind)
                t = self.code_trace([rel], output=UNRELATED, model="m-" + lang)
                self.repo.write(rel, text)
                want[t] = (lang, kind, expect)
        r = self.scan()
        self.assertEqual(r["repos"], 1)
        got = self.judged(r)
        wrong = []
        for t, (lang, kind, expect) in want.items():
            k = got.get(t, (None, None))[0]
            if k != expect:
                wrong.append("%s %s: %s, want %s (%s)" % (lang, kind, k, expect, got.get(t)))
        self.assertEqual(wrong, [])
        for t, (lang, kind, expect) in want.items():
            evidence = got[t][1]
            self.assertIn({"signature_changed": "signature changed", "body_modified": "body changed",
                           "symbol_added": "added"}[expect], evidence)
        self.assertEqual(self.pending_ids(), set())
        for lang in LANGS:
            p = self.c.call("query", model="m-" + lang)["profiles"][0]
            self.assertEqual((p["success_count"], p["fail_count"]), (3, 0), lang)

    def test_new_file_is_an_addition(self):
        t = self.code_trace(["geo/new.go"], output=UNRELATED)
        self.repo.write("geo/new.go", "package geo\n\nfunc New() {}\n")
        self.repo.git("add", "geo/new.go")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "symbol_added")
        self.assertIn("new file geo/new.go", evidence)

    def test_removed_symbol_is_a_signature_change(self):
        path = self.variant(LANGS["python"][0], "sig")
        t = self.code_trace([path], output=UNRELATED)
        self.repo.write(path, "class K:\n    pass\n")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "signature_changed")
        self.assertIn("removed K.f", evidence)

    def test_comments_only_is_modified(self):
        path = self.variant(LANGS["c"][0], "body")
        t = self.code_trace([path], output=UNRELATED)
        self.repo.write(path, "/* f: the identity */\nint f(int a)\n{\n        return a; // as is\n}\n")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "modified")
        self.assertIn("no structural difference", evidence)

    def test_unknown_language_is_modified(self):
        t = self.code_trace(["docs/notes.txt"], output=UNRELATED)
        self.repo.append("docs/notes.txt", "more notes\n")
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "modified")
        self.assertIn("docs/notes.txt", evidence)

    def test_two_traces_on_two_files(self):
        a = self.code_trace(["app/a.py"], model="ma")
        b = self.code_trace(["app/b.py"], output=UNRELATED, model="mb")
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        got = self.judged(self.scan())
        self.assertEqual(got[a][0], "applied")
        self.assertNotIn(b, got)  # b.py is untouched: b waits
        self.assertEqual(self.pending_ids(), {b})
        self.repo.write("app/b.py", "def b():\n    return 20\n")
        got = self.judged(self.scan())
        self.assertEqual(list(got), [b])
        self.assertEqual(got[b][0], "body_modified")
        self.assertEqual(self.c.call("query", model="ma")["profiles"][0]["success_count"], 1)
        self.assertEqual(self.c.call("query", model="mb")["profiles"][0]["success_count"], 1)

    def test_judged_once(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        seen = 0
        for _ in range(6):
            r = self.scan()
            seen += sum(1 for j in r["judged"] if j["trace_id"] == t)
            self.repo.append("app/a.py", "# more\n")
        self.assertEqual(seen, 1)
        p = self.c.call("query", model="coder")["profiles"][0]
        self.assertEqual(p["success_count"] + p["fail_count"], 1)
        self.assertEqual(self.c.call("stats")["git_judged_total"], 1)

    def test_conversation_outcome_is_deferred(self):
        t = self.code_trace(["app/a.py"])
        res = self.c.call("outcome", trace_id=t, kind="rejected", confidence=0.9)
        self.assertTrue(res.get("deferred"))
        self.assertIn(t, self.pending_ids())
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.assertEqual(self.judged(self.scan())[t][0], "applied")
        p = self.c.call("query", model="coder")["profiles"][0]
        self.assertEqual((p["success_count"], p["fail_count"]), (1, 0))

    def test_only_completed_traces(self):
        t = self.code_trace(["app/a.py"], complete=False)
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.assertEqual(self.scan()["judged"], [])
        self.c.call("complete", trace_id=t, latency_ms=5, output=SUGGESTION)
        self.assertEqual(self.judged(self.scan())[t][0], "applied")

    def test_files_not_given_means_the_whole_repository(self):
        t = self.code_trace([])
        self.repo.write("elsewhere/x.py", SUGGESTION)
        self.assertEqual(self.judged(self.scan())[t][0], "applied")

    def test_whole_repository_traces_share_a_scan(self):
        # Traces naming no files share one diff of the working tree; each is
        # still judged on its own suggestion.
        a = self.code_trace([])
        b = self.code_trace([], output=UNRELATED)
        c = self.code_trace([], output="def other_function(arg):\n    return arg\n")
        self.repo.write("elsewhere/x.py", SUGGESTION)
        got = self.judged(self.scan())
        self.assertEqual(got[a][0], "applied")
        self.assertEqual(got[b][0], "symbol_added")
        self.assertEqual(got[c][0], "symbol_added")
        self.assertIn("new file elsewhere/x.py", got[b][1])


class RefusalTest(GitCase):
    def test_unwatched_repository_refused(self):
        other = Repo(os.path.join(self.d.tmpdir, "other"))
        other.write("a.py", "x = 1\n")
        other.commit()
        for repo in (other.path, self.repo.path + "/app", "/nonexistent/repo"):
            assert_error(self, self.c.request("start", {"model": "m", "task": "code", "repo": repo,
                                                        "files": ["a.py"]}),
                         "bad_request", message_contains="repo")
        for files in (["../a.py"], ["/etc/passwd"], ["app/../../x"]):
            assert_error(self, self.c.request("start", {"model": "m", "task": "code",
                                                        "repo": self.repo.path, "files": files}),
                         "bad_request", message_contains="files[0]")
        # Through a symbolic link, the same repository is watched.
        link = os.path.join(self.d.tmpdir, "link")
        os.symlink(self.repo.path, link)
        t = self.c.call("start", model="m", task="code", repo=link, files=["app/a.py"])["trace_id"]
        pend = self.c.call("query", pending=True)["pending"]
        self.assertEqual([p["repo"] for p in pend if p["trace_id"] == t], [self.repo.path])


class DeadlineTest(GitCase):
    settle_s = 1
    deadline_s = 2

    def test_ignored_past_the_deadline(self):
        t = self.code_trace(["app/a.py"], model="lazy")
        self.assertEqual(self.scan()["judged"], [])
        time.sleep(3.2)  # past deadline_s after complete (whole seconds)
        kind, evidence = self.judged(self.scan())[t]
        self.assertEqual(kind, "ignored")
        self.assertIn("no change to app/a.py", evidence)
        p = self.c.call("query", model="lazy")["profiles"][0]
        self.assertEqual((p["success_count"], p["fail_count"]), (0, 1))
        self.assertAlmostEqual(p["ema_quality"], 0.8 * 0.5 + 0.2 * 0.1)

    def test_structure_waits_for_settle(self):
        t = self.code_trace(["app/b.py"], output=UNRELATED)
        self.repo.write("app/b.py", "def b():\n    return 22\n")
        self.assertEqual(self.scan()["judged"], [])  # still settling
        time.sleep(2.2)
        self.assertEqual(self.judged(self.scan())[t][0], "body_modified")

    def test_text_evidence_does_not_wait(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.assertEqual(self.judged(self.scan())[t][0], "applied")


class TimerTest(GitCase):
    scan_interval_s = 1

    def test_timer_scans(self):
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        ok = harness.wait_until(lambda: t not in self.pending_ids(), timeout=10)
        self.assertTrue(ok, "the timer's scans judged nothing")
        self.assertGreaterEqual(self.c.call("stats")["scans_total"], 1)


class RestartTest(GitCase):
    def test_base_survives_a_crash(self):
        # The suggestion was already committed when the trace started: no
        # change since its base, whatever the restart does.
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.repo.commit("already there")
        t = self.code_trace(["app/a.py"])
        applied = self.code_trace(["app/b.py"], model="other")
        self.repo.append("app/b.py", "\n" + SUGGESTION)
        self.assertEqual(self.judged(self.scan()).get(applied, ("",))[0], "applied")
        self.d.kill()  # SIGKILL: the journal is replayed
        self.d.start()
        self.c = self.client()
        self.assertEqual(self.pending_ids(), {t})
        self.assertEqual(self.c.call("query", model="other")["profiles"][0]["success_count"], 1)
        self.assertEqual(self.scan()["judged"], [])  # base kept: nothing new in a.py
        self.repo.append("app/a.py", "\ndef extra(self):\n    return extra_value\n")
        self.assertEqual(self.judged(self.scan())[t][0], "symbol_added")

    def test_repository_without_commits(self):
        shutil.rmtree(os.path.join(self.repo.path, ".git"))
        self.repo.git("init", "-q", "-b", "main")
        t = self.code_trace(["app/a.py"])
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        self.assertEqual(self.judged(self.scan())[t][0], "applied")


class OutcomectlScanTest(GitCase):
    def ctl(self, *args):
        ctl = harness.ctl_binary()
        if not os.access(ctl, os.X_OK):
            self.skipTest("no outcomectl at %s" % ctl)
        p = subprocess.run([ctl, "--socket", self.d.socket_path] + list(args), timeout=30,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_scan_subcommand(self):
        t = self.code_trace(["app/a.py"])
        rc, out, err = self.ctl("scan")
        self.assertEqual(rc, 0, err)
        self.assertIn("judged 0", out)
        self.repo.append("app/a.py", "\n" + SUGGESTION)
        rc, out, err = self.ctl("--json", "scan")
        self.assertEqual(rc, 0, err)
        r = json.loads(out)
        self.assertEqual([j["trace_id"] for j in r["judged"]], [t])
        self.assertEqual(r["judged"][0]["kind"], "applied")
        rc, out, err = self.ctl("scan", "extra")
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""The Python client as a router installs it, and the README's example router.

Once for the class: a copy of clients/python is installed, with no network,
into a fresh venv that sees Debian's packages, exactly as the README says:

    /usr/bin/python3 -m venv --system-site-packages V
    V/bin/pip install --no-index --no-build-isolation ./clients/python

(pip's configuration and PIP_* variables left out, in a network namespace of
its own when unshare -n works).  Then, with the venv's python and no
PYTHONPATH: outcomed is imported from the venv, does a round trip against a
real daemon, and examples/route.py routes by rank (a degraded model with the
best EMA is passed over); and the README shows examples/route.py verbatim.

    /usr/bin/python3 clients/python/tests/test_install.py [--bin build/daemon/outcomed]
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.dirname(HERE)
SOURCE_ROOT = os.path.dirname(os.path.dirname(CLIENT_DIR))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))

import harness  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
EXAMPLE = os.path.join(CLIENT_DIR, "examples", "route.py")
README = os.path.join(CLIENT_DIR, "README.md")
STEP_TIMEOUT = 120 * harness.TIMEOUT_SCALE


def clean_env(**extra):
    """The environment without anything that points Python or pip elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "OUTCOMED_SOCKET"))}
    env["PIP_CONFIG_FILE"] = os.devnull         # no pip.conf (find-links, index)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def no_network_prefix():
    """unshare -n when it works (root): pip then cannot reach any network."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode == 0:
        return [unshare, "-n"]
    return []


def run(argv, **kw):
    kw.setdefault("env", clean_env())
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=STEP_TIMEOUT, **kw)
    return p.returncode, p.stdout


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="outcomed-pip-")
        # A copy: pip builds in the source tree (build/, *.egg-info).
        cls.src = os.path.join(cls.tmp, "clients", "python")
        shutil.copytree(CLIENT_DIR, cls.src, ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__"))
        cls.venv = os.path.join(cls.tmp, "V")
        cls.python = os.path.join(cls.venv, "bin", "python")
        rc, out = run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", cls.venv],
                      cwd=cls.tmp)
        if rc != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("python3 -m venv failed (Debian: python3-venv):\n" + out)
        cls.netns = bool(no_network_prefix())
        rc, cls.pip_out = run(no_network_prefix() +
                              [os.path.join(cls.venv, "bin", "pip"), "install", "--no-index",
                               "--no-build-isolation", "./clients/python"], cwd=cls.tmp)
        if rc != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("pip install failed (Debian: python3-setuptools, python3-wheel, "
                                 "python3-msgpack):\n" + cls.pip_out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def venv_python(self, code_or_path, *args, env=None):
        """Run the venv's python on code (or a file), cwd the temp dir; (rc, output)."""
        argv = [self.python] + ([code_or_path] if code_or_path.endswith(".py")
                                else ["-c", code_or_path]) + list(args)
        return run(argv, cwd=self.tmp, env=env or clean_env())

    def daemon(self):
        d = harness.Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        self.addCleanup(lambda: d.running() and d.stop())
        return d

    # ------------------------------------------------------------------

    def test_installed_into_the_venv(self):
        self.assertIn("Successfully installed outcomed-", self.pip_out)
        rc, out = self.venv_python(
            "import importlib.metadata as m, json, os, outcomed, msgpack\n"
            "print(json.dumps({'file': outcomed.__file__, 'version': outcomed.__version__,\n"
            "  'dist': m.version('outcomed'), 'requires': m.requires('outcomed'),\n"
            "  'typed': os.path.exists(os.path.join(os.path.dirname(outcomed.__file__),\n"
            "                                       'py.typed')),\n"
            "  'msgpack': msgpack.__file__}))")
        self.assertEqual(rc, 0, out)
        info = json.loads(out)
        site = os.path.join(self.venv, "lib")
        self.assertTrue(info["file"].startswith(site + os.sep), info)   # not the source tree
        self.assertEqual(info["dist"], info["version"])                 # dynamic version
        self.assertTrue(info["typed"], info)
        self.assertEqual([re.sub(r"[ ()]", "", r) for r in info["requires"]], ["msgpack>=1.0"])
        self.assertTrue(info["msgpack"].startswith("/usr/lib/python3/dist-packages/"), info)
        # The tests themselves are not installed.
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(info["file"]), "tests")))

    def test_round_trip_from_the_venv(self):
        d = self.daemon()
        rc, out = self.venv_python(
            "import json, sys, outcomed\n"
            "c = outcomed.Client(sys.argv[1])\n"
            "t = c.start('venv-model', 'code', 'from a venv')\n"
            "c.complete(t, 321, 10, 20)\n"
            "r = c.outcome(t, 'accepted', 0.9)\n"
            "print(json.dumps({'ping': c.ping(), 'trace': t, 'outcome': r,\n"
            "                  'profiles': c.query('venv-model')}))",
            d.socket_path)
        self.assertEqual(rc, 0, out)
        got = json.loads(out)
        self.assertEqual(got["ping"], d.ping())
        self.assertEqual(got["outcome"]["trace_id"], got["trace"])
        self.assertEqual(got["outcome"]["kind"], "accepted")
        self.assertTrue(got["outcome"]["success"])
        [p] = got["profiles"]
        self.assertEqual((p["model"], p["total_calls"], p["success_count"]), ("venv-model", 1, 1))
        self.assertEqual(p["tasks"]["code"]["avg_latency_ms"], 321.0)
        # ...and the daemon itself agrees.
        with d.client() as c:
            [q] = c.call("query", model="venv-model")["profiles"]
            self.assertEqual(q["success_count"], 1)
            self.assertEqual(c.call("query", pending=True)["pending"], [])

    def test_example_routes_by_rank(self):
        d = self.daemon()
        with d.client() as c:
            # gpt-4o: the best EMA for code, but degraded (failures elsewhere);
            # qwen3-4b: a lower EMA, healthy.  Picking by highest EMA, or the
            # first of the list, would take gpt-4o; rank leaves it out.
            def trace(model, task, kind=None, confidence=None):
                t = c.call("start", model=model, task=task)["trace_id"]
                if kind is None:
                    c.call("fail", trace_id=t, error="HTTP 500")
                else:
                    c.call("complete", trace_id=t, latency_ms=100)
                    c.call("outcome", trace_id=t, kind=kind, confidence=confidence)
            for _ in range(2):
                trace("gpt-4o", "code", "accepted", 1.0)
            for _ in range(6):
                trace("gpt-4o", "generate")
            trace("qwen3-4b", "code", "accepted", 0.6)
            profiles = {p["model"]: p for p in c.call("query")["profiles"]}
            self.assertTrue(profiles["gpt-4o"]["degraded"])
            self.assertGreater(profiles["gpt-4o"]["tasks"]["code"]["ema_quality"],
                               profiles["qwen3-4b"]["tasks"]["code"]["ema_quality"])

            # The example as a script, from the venv, finding the socket in
            # $OUTCOMED_SOCKET.  It is fail-open with a 50 ms timeout: on a
            # loaded machine a run may get no answer (trace None); try again.
            env = clean_env(OUTCOMED_SOCKET=d.socket_path)
            for _ in range(5):
                rc, out = self.venv_python(EXAMPLE, env=env)
                self.assertEqual(rc, 0, out)
                m = re.fullmatch(r"(\S+) (\S+)\n", out)
                self.assertIsNotNone(m, out)
                if m.group(2) != "None":
                    break
            model, trace_id = m.groups()
            self.assertNotEqual(trace_id, "None", "no answer from the daemon in 5 runs")
            self.assertEqual(model, "qwen3-4b")

            [q] = c.call("query", model="qwen3-4b")["profiles"]
            self.assertEqual(q["tasks"]["code"]["calls"], 2)
            self.assertEqual(q["tasks"]["code"]["successes"], 2)
            [g] = c.call("query", model="gpt-4o")["profiles"]
            self.assertEqual(g["tasks"]["code"]["calls"], 2)            # untouched
            self.assertEqual(c.call("query", pending=True)["pending"], [])  # outcome recorded

    def test_readme_shows_the_example(self):
        with open(README) as f:
            readme = f.read()
        with open(EXAMPLE) as f:
            example = f.read()
        section = readme.split("\n## An example router\n", 1)
        self.assertEqual(len(section), 2, "README.md has no '## An example router' section")
        m = re.search(r"^```python\n(.*?)^```$", section[1], re.S | re.M)
        self.assertIsNotNone(m, "no python block in the README's example section")
        self.assertEqual(m.group(1), example,
                         "the README's example router is not examples/route.py verbatim")
        self.assertIn("client.rank(", example)


if __name__ == "__main__":
    harness.main()

#!/usr/bin/python3
"""The installed tree: `meson install` of this build into a DESTDIR, then

- every file in its place: outcomed, outcomectl, the system and user units,
  the sysusers.d entry, the man pages, the example configuration;
- `systemd-analyze verify` of every unit: the system units in the DESTDIR
  tree as root directory (--root, with the host's targets and kill(1)
  copied in, and MANPATH so that Documentation= is checked too), the user
  units with --user (their ExecStart= pointed at the DESTDIR's outcomed,
  the one change); any warning fails;
- `systemd-analyze security --offline=true`: the system service's exposure
  is at most 2.0, and so is the metrics timer's service's;
- the units say what the daemon relies on (Type=notify, the socket unit owns
  /run/outcomed, ...); the sysusers.d entry creates the outcomed user;
- the man pages render without warnings; the example configuration, every
  key uncommented, is accepted; every key of daemon/config.c's table is in
  the example and in outcomed.conf(5).

meson sets MESON_BUILD_DIR, MESON_CMD and the INSTALL_* directories.  By
hand:
    MESON_BUILD_DIR=build /usr/bin/python3 tests/integration/test_units.py
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402

SOURCE = os.environ.get("MESON_SOURCE_DIR") or harness.SOURCE_ROOT
BUILD = os.environ.get("MESON_BUILD_DIR") or os.path.join(SOURCE, "build")
MESON = os.environ.get("MESON_CMD") or shutil.which("meson") or "meson"
ANALYZE = shutil.which("systemd-analyze")
EXPOSURE_MAX = 2.0


def env_dir(name, default):
    return os.environ.get("INSTALL_" + name) or default


PREFIX = env_dir("PREFIX", "/usr/local")
SBINDIR = env_dir("SBINDIR", PREFIX + "/sbin")
BINDIR = env_dir("BINDIR", PREFIX + "/bin")
MANDIR = env_dir("MANDIR", PREFIX + "/share/man")
DATADIR = env_dir("DATADIR", PREFIX + "/share")
SYSTEM_UNITS = env_dir("SYSTEMDSYSTEMUNITDIR", "/lib/systemd/system")
USER_UNITS = env_dir("SYSTEMDUSERUNITDIR", "/usr/lib/systemd/user")
SYSUSERS = env_dir("SYSUSERSDIR", "/usr/lib/sysusers.d")
HAVE_MAN = os.environ.get("HAVE_MAN", "1") == "1"


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120, **kw)


def parse_unit(path):
    """{section: [(key, value)...]}"""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                out.setdefault(section, [])
                continue
            k, _, v = line.partition("=")
            out[section].append((k.strip(), v.strip()))
    return out


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


class InstalledTree(unittest.TestCase):
    """One DESTDIR install for the whole class."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(BUILD, "build.ninja")):
            raise unittest.SkipTest("no meson build directory at %s (set MESON_BUILD_DIR)" % BUILD)
        cls.tmp = tempfile.mkdtemp(prefix="outcomed-units-", dir="/tmp")
        cls.dest = os.path.join(cls.tmp, "dest")
        r = run([MESON, "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", cls.dest])
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("meson install --destdir failed:\n" + r.stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def staged(self, path):
        return os.path.join(self.dest, path.lstrip("/"))

    def system_unit(self, name):
        if SYSTEM_UNITS == "no":
            self.skipTest("built with -Dsystemdsystemunitdir=no")
        return self.staged(os.path.join(SYSTEM_UNITS, name))

    def user_unit(self, name):
        if USER_UNITS == "no":
            self.skipTest("built with -Dsystemduserunitdir=no")
        return self.staged(os.path.join(USER_UNITS, name))

    # ---- the files
    def test_files_in_place(self):
        want = [os.path.join(SBINDIR, "outcomed"), os.path.join(BINDIR, "outcomectl"),
                os.path.join(DATADIR, "doc", "outcomed", "outcomed.conf.example")]
        for d, names in ((SYSTEM_UNITS, ("outcomed.service", "outcomed.socket",
                                         "outcomed-metrics.service", "outcomed-metrics.timer")),
                         (USER_UNITS, ("outcomed.service", "outcomed.socket")),
                         (SYSUSERS, ("outcomed.conf",))):
            if d != "no":
                want += [os.path.join(d, n) for n in names]
        if HAVE_MAN:
            want += [os.path.join(MANDIR, "man8", "outcomed.8"),
                     os.path.join(MANDIR, "man1", "outcomectl.1"),
                     os.path.join(MANDIR, "man5", "outcomed.conf.5")]
        missing = [p for p in want if not os.path.isfile(self.staged(p))]
        self.assertEqual(missing, [], "not installed")
        for exe in (SBINDIR + "/outcomed", BINDIR + "/outcomectl"):
            self.assertTrue(os.access(self.staged(exe), os.X_OK), exe)
        r = run([self.staged(SBINDIR + "/outcomed"), "--version"])
        self.assertEqual(r.returncode, 0, r.stdout)

    # ---- what the units say
    def test_system_units_content(self):
        svc = parse_unit(self.system_unit("outcomed.service"))
        sock = parse_unit(self.system_unit("outcomed.socket"))
        self.assertEqual(values(svc, "Service", "Type"), ["notify"])
        self.assertEqual(values(svc, "Service", "ExecStart"), [SBINDIR + "/outcomed"])
        self.assertTrue(values(svc, "Service", "ExecReload"))
        self.assertTrue(values(svc, "Service", "WatchdogSec"))
        self.assertEqual(values(svc, "Service", "StateDirectory"), ["outcomed"])
        self.assertEqual(values(svc, "Service", "User"), ["outcomed"])
        # The socket unit owns /run/outcomed: no RuntimeDirectory= in the
        # service, which would be removed with the socket in it.
        self.assertEqual(values(svc, "Service", "RuntimeDirectory"), [])
        self.assertEqual(values(svc, "Service", "ProtectSystem"), ["strict"])
        self.assertEqual(values(svc, "Service", "ProtectHome"), ["read-only"])
        self.assertEqual(values(svc, "Service", "RestrictAddressFamilies"), ["AF_UNIX"])
        self.assertEqual(values(sock, "Socket", "ListenStream"), ["/run/outcomed/outcomed.sock"])
        self.assertEqual(values(sock, "Socket", "SocketMode"), ["0660"])
        self.assertEqual(values(sock, "Socket", "SocketGroup"), ["outcomed"])

    def test_metrics_units_content(self):
        """The metrics timer's service: outcomectl as node-exporter's user,
        into its textfile directory through --output (temporary file and
        rename), writing nothing else."""
        svc = parse_unit(self.system_unit("outcomed-metrics.service"))
        timer = parse_unit(self.system_unit("outcomed-metrics.timer"))
        textdir = "/var/lib/prometheus/node-exporter"
        self.assertEqual(values(svc, "Service", "Type"), ["oneshot"])
        self.assertEqual(values(svc, "Service", "ExecStart"),
                         [BINDIR + "/outcomectl --socket /run/outcomed/outcomed.sock --timeout 10 "
                          "metrics --output " + textdir + "/outcomed.prom"])
        self.assertEqual(values(svc, "Service", "User"), ["prometheus"])
        self.assertEqual(values(svc, "Service", "SupplementaryGroups"), ["outcomed"])
        self.assertEqual(values(svc, "Service", "ProtectSystem"), ["strict"])
        self.assertEqual(values(svc, "Service", "ReadWritePaths"), [textdir])
        self.assertEqual(values(svc, "Service", "RestrictAddressFamilies"), ["AF_UNIX"])
        self.assertEqual(values(svc, "Unit", "ConditionPathIsDirectory"), [textdir])
        self.assertEqual(values(timer, "Timer", "OnUnitActiveSec"), ["15s"])
        self.assertEqual(values(timer, "Install", "WantedBy"), ["timers.target"])

    def test_user_units_content(self):
        svc = parse_unit(self.user_unit("outcomed.service"))
        sock = parse_unit(self.user_unit("outcomed.socket"))
        self.assertEqual(values(svc, "Service", "Type"), ["notify"])
        self.assertEqual(values(svc, "Service", "ExecStart"), [SBINDIR + "/outcomed"])
        self.assertEqual(values(svc, "Service", "StateDirectory"), ["outcomed"])
        self.assertEqual(values(svc, "Service", "User"), [])
        self.assertEqual(values(sock, "Socket", "ListenStream"), ["%t/outcomed.sock"])
        self.assertEqual(values(sock, "Socket", "SocketMode"), ["0600"])

    # ---- systemd-analyze
    def root_for_verify(self):
        """The DESTDIR plus what verify needs of a system: the targets the
        units hang off, and kill(1) for ExecReload=."""
        root = os.path.join(self.tmp, "root")
        if os.path.isdir(root):
            return root
        shutil.copytree(self.dest, root, symlinks=True)
        units = os.path.join(root, "usr", "lib", "systemd", "system")
        os.makedirs(units, exist_ok=True)
        for host in ("/lib/systemd/system", "/usr/lib/systemd/system"):
            for t in glob.glob(os.path.join(host, "*.target")) + glob.glob(host + "/*.slice"):
                dst = os.path.join(units, os.path.basename(t))
                if not os.path.lexists(dst) and os.path.isfile(t):
                    shutil.copy(t, dst)
        os.makedirs(os.path.join(root, "usr", "bin"), exist_ok=True)
        for d in ("bin", "sbin", "lib"):
            if not os.path.lexists(os.path.join(root, d)):
                os.symlink("usr/" + d, os.path.join(root, d))
        kill = shutil.which("kill") or "/bin/kill"
        dst = os.path.join(root, "usr", "bin", "kill")
        if not os.path.exists(dst):
            shutil.copy(os.path.realpath(kill), dst)
        return root

    def need_analyze(self):
        if not ANALYZE:
            self.skipTest("no systemd-analyze")

    def test_verify_system_units(self):
        self.need_analyze()
        self.system_unit("outcomed.service")  # skips when not installed
        root = self.root_for_verify()
        units = [os.path.join(SYSTEM_UNITS, u) for u in ("outcomed.socket", "outcomed.service",
                                                          "outcomed-metrics.timer",
                                                          "outcomed-metrics.service")]
        env = dict(os.environ)
        man = "--man=no"
        if HAVE_MAN and shutil.which("man"):
            env["MANPATH"] = os.path.join(root, MANDIR.lstrip("/"))
            man = "--man=yes"
        r = run([ANALYZE, "verify", man, "--root=" + root] + units, env=env)
        self.assertEqual((r.returncode, r.stdout), (0, ""), "systemd-analyze verify")

    def test_verify_user_units(self):
        self.need_analyze()
        work = os.path.join(self.tmp, "user-units")
        os.makedirs(work, exist_ok=True)
        rt = os.path.join(self.tmp, "xdg-runtime")
        os.makedirs(rt, mode=0o700, exist_ok=True)
        exe = self.staged(SBINDIR + "/outcomed")
        for name in ("outcomed.socket", "outcomed.service"):
            with open(self.user_unit(name)) as f:
                text = f.read()
            with open(os.path.join(work, name), "w") as f:
                f.write(text.replace("ExecStart=" + SBINDIR + "/outcomed", "ExecStart=" + exe))
        env = dict(os.environ, XDG_RUNTIME_DIR=rt, HOME=self.tmp)
        r = run([ANALYZE, "verify", "--user", "--man=no", "outcomed.socket", "outcomed.service"],
                cwd=work, env=env)
        self.assertEqual((r.returncode, r.stdout), (0, ""), "systemd-analyze verify --user")

    def test_security_exposure(self):
        self.need_analyze()
        self.system_unit("outcomed.service")  # skips when not installed
        root = self.root_for_verify()
        unit = os.path.join(SYSTEM_UNITS, "outcomed.service")
        r = run([ANALYZE, "security", "--offline=true", "--root=" + root,
                 "--threshold=%d" % int(EXPOSURE_MAX * 10), unit])
        m = re.search(r"Overall exposure level for outcomed\.service: ([0-9.]+) (\w+)", r.stdout)
        self.assertIsNotNone(m, "no exposure level in:\n" + r.stdout)
        score = float(m.group(1))
        sys.stderr.write("systemd-analyze security: outcomed.service exposure %.1f %s\n"
                         % (score, m.group(2)))
        self.assertLessEqual(score, EXPOSURE_MAX, r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_fleet_remote_drop_in(self):
        """The documented drop-in for a remote PostgreSQL ([fleet]) verifies,
        opens only AF_INET/AF_INET6 and one address, and keeps the exposure
        within the bound."""
        self.need_analyze()
        self.system_unit("outcomed.service")  # skips when not installed
        src = self.staged(os.path.join(DATADIR, "doc", "outcomed", "fleet-remote.conf"))
        self.assertTrue(os.path.isfile(src), "fleet-remote.conf not installed")
        root = os.path.join(self.tmp, "root-fleet")
        if not os.path.isdir(root):
            shutil.copytree(self.root_for_verify(), root, symlinks=True)
        d = os.path.join(root, "etc", "systemd", "system", "outcomed.service.d")
        os.makedirs(d, exist_ok=True)
        shutil.copy(src, os.path.join(d, "fleet-remote.conf"))
        unit = os.path.join(SYSTEM_UNITS, "outcomed.service")
        r = run([ANALYZE, "verify", "--man=no", "--root=" + root,
                 os.path.join(SYSTEM_UNITS, "outcomed.socket"), unit])
        self.assertEqual((r.returncode, r.stdout), (0, ""), "systemd-analyze verify")
        with open(src) as f:
            text = "\n".join(l for l in f.read().splitlines() if not l.startswith("#"))
        self.assertIn("IPAddressAllow=", text)
        self.assertIn("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", text)
        self.assertNotIn("IPAddressDeny=", text)  # the unit's any stays
        r = run([ANALYZE, "security", "--offline=true", "--root=" + root,
                 "--threshold=%d" % int(EXPOSURE_MAX * 10), unit])
        m = re.search(r"Overall exposure level for outcomed\.service: ([0-9.]+) (\w+)", r.stdout)
        self.assertIsNotNone(m, "no exposure level in:\n" + r.stdout)
        sys.stderr.write("systemd-analyze security: outcomed.service with fleet-remote.conf "
                         "exposure %s %s\n" % (m.group(1), m.group(2)))
        self.assertLessEqual(float(m.group(1)), EXPOSURE_MAX, r.stdout)

    def test_metrics_service_exposure(self):
        """The metrics service is sandboxed as tightly as the daemon."""
        self.need_analyze()
        self.system_unit("outcomed-metrics.service")  # skips when not installed
        root = self.root_for_verify()
        unit = os.path.join(SYSTEM_UNITS, "outcomed-metrics.service")
        r = run([ANALYZE, "security", "--offline=true", "--root=" + root,
                 "--threshold=%d" % int(EXPOSURE_MAX * 10), unit])
        m = re.search(r"Overall exposure level for outcomed-metrics\.service: ([0-9.]+) (\w+)",
                      r.stdout)
        self.assertIsNotNone(m, "no exposure level in:\n" + r.stdout)
        sys.stderr.write("systemd-analyze security: outcomed-metrics.service exposure %s %s\n"
                         % (m.group(1), m.group(2)))
        self.assertLessEqual(float(m.group(1)), EXPOSURE_MAX, r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_sysusers_entry(self):
        tool = shutil.which("systemd-sysusers")
        if not tool:
            self.skipTest("no systemd-sysusers")
        if SYSUSERS == "no":
            self.skipTest("built with -Dsysusersdir=no")
        root = os.path.join(self.tmp, "sysusers-root")
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        r = run([tool, "--root=" + root, self.staged(os.path.join(SYSUSERS, "outcomed.conf"))])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("ignoring", r.stdout)
        with open(os.path.join(root, "etc", "passwd")) as f:
            users = {line.split(":")[0]: line.strip().split(":") for line in f}
        with open(os.path.join(root, "etc", "group")) as f:
            groups = [line.split(":")[0] for line in f]
        self.assertIn("outcomed", users)
        self.assertIn("outcomed", groups)
        self.assertEqual(users["outcomed"][5], "/var/lib/outcomed")
        self.assertLess(int(users["outcomed"][2]), 1000, "a system user")

    # ---- documentation
    def test_man_pages_render(self):
        if not HAVE_MAN:
            self.skipTest("built without man pages (no scdoc)")
        groff = shutil.which("groff")
        for page, section in (("outcomed", "8"), ("outcomectl", "1"), ("outcomed.conf", "5")):
            path = self.staged(os.path.join(MANDIR, "man" + section, page + "." + section))
            with open(path) as f:
                text = f.read()
            self.assertRegex(text, r'\.TH "%s" "%s"' % (re.escape(page), section))
            self.assertIn(".SH NAME", text)
            if groff:
                r = run([groff, "-man", "-Tutf8", "-ww", "-z", path])
                self.assertEqual((r.returncode, r.stdout), (0, ""), "groff warnings for " + path)

    def test_example_configuration_is_accepted(self):
        with open(self.staged(os.path.join(DATADIR, "doc", "outcomed",
                                           "outcomed.conf.example"))) as f:
            example = f.read()
        d = Daemon()
        self.addCleanup(d.cleanup)
        repo = os.path.join(d.tmpdir, "repo")
        os.mkdir(repo)
        text = re.sub(r"^;([a-z_]+ = )", r"\1", example, flags=re.M)
        subst = {"socket": d.socket_path, "db": d.db_path, "socket_group": "root",
                 "allow_group": "root", "repo": repo}
        for key, value in subst.items():
            text, n = re.subn(r"^%s = .*$" % key, "%s = %s" % (key, value), text, flags=re.M)
            self.assertEqual(n, 1, "the example has no '%s' line" % key)
        keys = re.findall(r"^([a-z_]+) = ", text, flags=re.M)
        self.assertGreater(len(keys), 20)
        d.write_config(text)
        d.start()
        with d.client() as c:
            cfg = c.call("stats")["config"]
        self.assertEqual(cfg["allow_uids"], [1000, 1001])
        self.assertEqual(cfg["watched_repos"], [os.path.realpath(repo)])
        d.stop()

    def test_every_key_is_documented(self):
        with open(os.path.join(SOURCE, "daemon", "config.c")) as f:
            table = re.findall(r'\{ "(\w+)", "(\w+)", CFG_', f.read())
        self.assertGreater(len(table), 20)
        with open(os.path.join(SOURCE, "doc", "outcomed.conf.example")) as f:
            example = f.read()
        with open(os.path.join(SOURCE, "doc", "outcomed.conf.5.scd")) as f:
            manual = f.read()
        for section, key in table:
            if key.startswith("debug_"):
                continue  # for tests, not for admins
            self.assertRegex(example, r"(?m)^;?%s = " % key,
                             "[%s] %s (daemon/config.c) is missing from "
                             "doc/outcomed.conf.example: add ';%s = DEFAULT' with a comment"
                             % (section, key, key))
            self.assertIn("*%s*" % key if "ttl_s" not in key else key, manual,
                          "[%s] %s (daemon/config.c) is missing from doc/outcomed.conf.5.scd"
                          % (section, key))


if __name__ == "__main__":
    harness.main()

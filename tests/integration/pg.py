"""pg.py - a real PostgreSQL 15 cluster of a test's own, for [fleet].

    pg = Cluster(); pg.start(); pg.psql("SELECT 1"); pg.conninfo(); ...; pg.cleanup()

initdb and pg_ctl from /usr/lib/postgresql/15/bin (not on the PATH) run as
the `postgres` user (the server refuses root; CI runs as root): through
`runuser -u postgres --` when the test is root, directly otherwise.  The
cluster lives in a temporary directory that user owns, listens on a Unix
socket directory of its own and a port of its own, and has no TCP listener
(listen_addresses = '').  Local connections are trusted, except for the
role made by add_password_role, which needs its password (scram).
"""

import os
import pwd
import random
import shutil
import subprocess
import tempfile
import time
import unittest

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


def available():
    """Why a cluster cannot be made here, or None."""
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        return "no PostgreSQL server binaries in %s (Debian's postgresql)" % PG_BIN
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user to run the server as"
        if not shutil.which("runuser"):
            return "no runuser (util-linux)"
    return None


class Cluster:
    def __init__(self, port=None):
        why = available()
        if why:
            raise unittest.SkipTest(why)
        self.root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="outcomed-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        os.mkdir(self.sockdir)
        self.log = os.path.join(self.dir, "server.log")
        self.port = port or random.randint(20000, 60000)
        if self.root:
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        # The daemon (root in the tests) reaches the socket directory.
        os.chmod(self.sockdir, 0o777)
        self.user = "postgres" if self.root else pwd.getpwuid(os.geteuid()).pw_name
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", self.user,
                   "--auth-local=trust", "--auth-host=reject", "-E", "UTF8", "--no-sync"],
                  timeout=120)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = ''\nunix_socket_directories = '%s'\nport = %d\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    % (self.sockdir, self.port))
        self.running = False

    def _run(self, argv, timeout=60, check=True, input=None):
        if self.root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           cwd=self.dir, input=input)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(argv), r.returncode,
                                                            r.stdout, r.stderr))
        return r

    def start(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "30", "start"], timeout=60)
        self.running = True
        return self

    def stop(self, mode="fast"):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"],
                  timeout=60, check=False)
        self.running = False

    def kill9(self):
        """SIGKILL the postmaster (its children end with it), as a crash."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            pid = int(f.readline())
        os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # Orphaned backends go once they notice; wait for the socket's lock
        # file to be reusable.
        time.sleep(0.5)
        self.running = False

    def conninfo(self, dbname="postgres", user=None):
        return "host=%s port=%d dbname=%s user=%s" % (self.sockdir, self.port, dbname,
                                                      user or self.user)

    def psql(self, sql, dbname="postgres", check=True):
        r = self._run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                       "ON_ERROR_STOP=1", "-h", self.sockdir, "-p", str(self.port), "-U",
                       self.user, "-d", dbname, "-c", sql], check=check)
        return r.stdout.strip()

    def createdb(self, name):
        self.psql('CREATE DATABASE "%s"' % name)

    def add_password_role(self, role, password):
        """A role that must give its password: scram over the socket."""
        self.psql("CREATE ROLE \"%s\" LOGIN PASSWORD '%s'" % (role, password))
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            text = f.read()
        with open(hba, "w") as f:
            f.write("local all %s scram-sha-256\n" % role + text)
        self.psql("SELECT pg_reload_conf()")

    def cleanup(self):
        if self.running:
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

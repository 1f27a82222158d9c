#!/usr/bin/python3
"""scan-load.py - keeps outcomed's git scanner busy while bench/run.sh
measures latency (run.sh's `scan` scenario; the target: "p99 ... also while a
flush or a git scan runs").

    /usr/bin/python3 bench/scan-load.py SOCKET DIR

1. Makes a working repository of SCAN_FILES tracked files, half Python (the
   files of bench/scan-bench.py), half C, in directories of 100, at one
   commit tagged `base`, and writes its path to DIR/repo.  The repository
   is built once with git fast-import as a bare template in
   SCAN_REPO_CACHE (default /tmp/outcomed-bench-scan-repo), and checked
   out once into a working copy there, which later runs reset to `base`
   (only the files the last run changed are written again); each run
   locks the copy it uses, so concurrent runs get copies of their own.
2. Waits for outcomed on SOCKET (it must watch DIR/repo, with settle_s = 0
   so that changed files are judged, and parsed, at once), starts and
   completes SCAN_TRACES code traces there (repo, one file each, a suggestion
   as output), runs one scan (the scanner opens the repository and reads
   its index), and writes DIR/ready.
3. Until SIGTERM, while DIR/go exists (when it does not, it lets the scan
   that runs end, writes DIR/paused, waits for DIR/go and removes
   DIR/paused): one thread runs `scan` after `scan` on a connection of its
   own (so the scanner works all the time), and meanwhile the main
   thread, once every ROUND_S (1 s; while paused too when DIR/env exists,
   so that Redis is measured beside the same developer's work and only
   outcomed's scans make the difference):
     - edits SCAN_CHANGED files that pending traces name (in turn: the
       suggestion pasted, a body changed, a signature changed, a function
       added) and commits them: the next scan reads the new index, diffs
       and parses the changed files' base and current versions;
     - starts and completes as many new traces on files not named yet, so
       that SCAN_TRACES stay pending (the unchanged ones are diffed again by
       every scan).
   Each scan is two lines of DIR/scans.log: `begin` and its wall-clock
   start (s) when it is sent; its phase (warm, load), wall-clock start and
   end, the daemon's duration_ms, traces judged and traces pending after
   it when its reply comes.

Settings (environment): SCAN_FILES (default 30000), SCAN_TRACES (500),
SCAN_CHANGED (20), SCAN_REPO_CACHE.  Run it with /usr/bin/python3
(python3-msgpack); it talks to the daemon with the Python client of
clients/python.
"""

import fcntl
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "clients", "python"))

FILES = int(os.environ.get("SCAN_FILES", "30000"))
TRACES = int(os.environ.get("SCAN_TRACES", "500"))
CHANGED = int(os.environ.get("SCAN_CHANGED", "20"))
ROUND_S = 1.0  # a round of edits and a commit, every second
CACHE = os.environ.get("SCAN_REPO_CACHE", "/tmp/outcomed-bench-scan-repo")


def _scan_bench():
    """bench/scan-bench.py (a file name with a dash): its Python files,
    suggestion and git environment."""
    spec = importlib.util.spec_from_file_location("scan_bench",
                                                  os.path.join(HERE, "scan-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SB = _scan_bench()
GIT_ENV = SB.GIT_ENV

PY_SUGGESTION = SB.SUGGESTION
C_SUGGESTION = ("int item_total(const struct item *items, size_t n)\n"
                "{\n"
                "        int result = 0;\n"
                "        for (size_t i = 0; i < n; i++)\n"
                "                result += items[i].price * items[i].count;\n"
                "        return result;\n"
                "}\n")


def git(repo, *args, stdin=None):
    return subprocess.run(["git", "-C", repo] + list(args), check=True, env=GIT_ENV,
                          input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout.decode()


def path_of(i):
    return "d%03d/m%05d.%s" % (i // 100, i, "py" if i % 2 == 0 else "c")


def c_body(i):
    return ("#include <stddef.h>\n\n"
            "struct item_%d {\n        int n;\n        const char *name;\n};\n\n"
            "int item_%d_value(const struct item_%d *it)\n{\n        return it->n * %d;\n}\n\n"
            "static int helper_%d(int x)\n{\n        return x + %d;\n}\n" % (i, i, i, i, i, i))


def body(i):
    return SB.body(i) if i % 2 == 0 else c_body(i)


def suggestion(i):
    return PY_SUGGESTION if i % 2 == 0 else C_SUGGESTION


def edit(i, kind):
    """File i's new text after an edit of this kind; what the scanner
    should judge: applied, body_modified, signature_changed, symbol_added."""
    b = body(i)
    if kind == "applied":
        return b + "\n" + suggestion(i)
    if kind == "body":
        return b.replace("return x + %d" % i, "return x + %d + 1" % i)
    if kind == "signature":
        if i % 2 == 0:
            return b.replace("def helper_%d(x):" % i, "def helper_%d(x, y=0):" % i)
        return b.replace("helper_%d(int x)" % i, "helper_%d(int x, int y)" % i)
    if i % 2 == 0:
        return b + "\n\ndef extra_%d(x):\n    return x * 2\n" % i
    return b + "\nint extra_%d(int x)\n{\n        return x * 2;\n}\n" % i


KINDS = ("applied", "body", "signature", "added")


# fast-import and git's checkout grow and shrink the heap a page at a time
# (brk), which costs seconds for 30,000 files on some machines.
QUICK_MALLOC = "glibc.malloc.top_pad=268435456:glibc.malloc.trim_threshold=1073741824"


def template():
    """The cached bare template repository of FILES files (built once)."""
    path = os.path.join(CACHE, "template-%d.git" % FILES)
    if os.path.exists(os.path.join(path, "bench-ready")):
        return path
    os.makedirs(CACHE, exist_ok=True)
    t0 = time.monotonic()
    tmp = "%s.%d" % (path, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", tmp], check=True, env=GIT_ENV)
    parts = ["commit refs/heads/main\ncommitter b <b@example.org> 1700000000 +0000\n"
             "data 4\nbase\n"]
    for i in range(FILES):
        data = body(i)
        parts.append("M 100644 inline %s\ndata %d\n%s\n" % (path_of(i), len(data.encode()), data))
    parts.append("\nreset refs/tags/base\nfrom refs/heads/main\n\n")
    subprocess.run(["git", "-C", tmp, "fast-import", "--quiet"], check=True,
                   env=dict(GIT_ENV, GLIBC_TUNABLES=QUICK_MALLOC),
                   input="".join(parts).encode(), stdout=subprocess.DEVNULL)
    open(os.path.join(tmp, "bench-ready"), "w").close()
    try:
        os.rename(tmp, path)
    except OSError:  # another run built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stderr.write("scan-load: built a template of %d files in %.1f s: %s\n"
                     % (FILES, time.monotonic() - t0, path))
    return path


def working_copy():
    """A working copy of the template at its base commit, locked for this
    process (concurrent runs each get their own): one kept in the cache
    and reset (only the files the last run changed are written again), or,
    the first time, a clone sharing the template's objects (creating
    FILES files takes a few seconds)."""
    tpl = template()
    for slot in range(16):
        repo = os.path.join(os.path.realpath(CACHE), "work-%d-%d" % (FILES, slot))
        lock = open(repo + ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        t0 = time.monotonic()
        if os.path.exists(os.path.join(repo, ".git", "bench-ready")):
            git(repo, "reset", "-q", "--hard", "base")
            git(repo, "clean", "-qfdx")
            shutil.rmtree(os.path.join(repo, ".git", "logs"), ignore_errors=True)
            git(repo, "prune", "--expire=now")  # the last run's commits
            what = "reset"
        else:
            shutil.rmtree(repo, ignore_errors=True)
            subprocess.run(["git", "clone", "-q", "--shared", "-b", "main", tpl, repo],
                           check=True, env=dict(GIT_ENV, GLIBC_TUNABLES=QUICK_MALLOC),
                           stdout=subprocess.DEVNULL)
            git(repo, "config", "gc.auto", "0")  # no gc of its own during a run
            git(repo, "config", "core.logAllRefUpdates", "false")  # prune drops old commits
            git(repo, "tag", "-f", "base", "main")
            open(os.path.join(repo, ".git", "bench-ready"), "w").close()
            what = "cloned"
        # An index written in the same second as the files would make every
        # diff hash them again (racy git), which a working copy that `git
        # status` has seen since does not suffer: refresh it a second later.
        time.sleep(1.1)
        git(repo, "update-index", "-q", "--really-refresh")
        sys.stderr.write("scan-load: %s %s (%d files) in %.1f s\n"
                         % (what, repo, FILES, time.monotonic() - t0))
        return repo, lock
    raise SystemExit("scan-load: the 16 working copies in %s are all in use" % CACHE)


class Stop(Exception):
    pass


def _stop(signum, frame):
    raise Stop()


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("scan-load: no %s within %d s" % (what, timeout))
        time.sleep(0.05)


def run(sock, d):
    import outcomed  # clients/python

    signal.signal(signal.SIGTERM, _stop)
    # The edits and commits stand for a developer's work, not the bench's:
    # they run at nice 10 (and so do its git commands), so that they take
    # from the measured processes (nice -20 under bench/run.sh as root)
    # little more than a CPU those leave idle.
    os.setpriority(os.PRIO_PROCESS, 0, max(10, os.getpriority(os.PRIO_PROCESS, 0)))
    repo, lock = working_copy()
    with open(os.path.join(d, "repo.tmp"), "w") as f:
        f.write(repo + "\n")
    os.rename(os.path.join(d, "repo.tmp"), os.path.join(d, "repo"))

    c = outcomed.Client(sock, timeout=None)
    cs = outcomed.Client(sock, timeout=None)  # the scans' own connection
    wait_for("daemon on %s" % sock, lambda: os.path.exists(sock) and c.ping() is not None, 60)
    rnd = random.Random(7)
    mu = threading.Lock()
    pending = {}    # trace id -> file index, under mu
    edited = set()  # file indexes
    fresh = iter(rnd.sample(range(FILES), FILES))  # files no trace named yet
    log = open(os.path.join(d, "scans.log"), "w")
    go, paused, env = (os.path.join(d, n) for n in ("go", "paused", "env"))
    scans = threading.Condition(mu)
    state = {"scans": 0, "scanning": False, "error": None}  # under mu

    def start_traces(n):
        for _ in range(n):
            i = next(fresh, None)
            if i is None:
                return
            t = c.start("bench-scan", "code", repo=repo, files=[path_of(i)])
            c.complete(t, 1, output=suggestion(i))
            with mu:
                pending[t] = i

    def scan(phase):
        t0 = time.time()
        with mu:
            log.write("begin %.6f\n" % t0)
            log.flush()
        r = cs.request("scan", {})
        t1 = time.time()
        with mu:
            for j in r["judged"]:
                pending.pop(j["trace_id"], None)
            log.write("%s %.6f %.6f %d %d %d\n" % (phase, t0, t1, r["duration_ms"],
                                                   len(r["judged"]), len(pending)))
            log.flush()
            state["scans"] += 1
            scans.notify_all()

    def scanner():
        """Scans back to back while DIR/go exists."""
        try:
            while True:
                with mu:
                    state["scanning"] = os.path.exists(go)
                    scans.notify_all()
                if not state["scanning"]:
                    time.sleep(0.02)
                    continue
                scan("load")
        except Exception as e:  # the daemon went away: the main thread says so
            with mu:
                state["error"] = e
                scans.notify_all()

    try:
        t0 = time.monotonic()
        start_traces(TRACES)
        scan("warm")  # the scanner opens the repository and reads its index
        with open(os.path.join(d, "ready"), "w") as f:
            f.write("%d traces pending, started in %.1f s\n"
                    % (len(pending), time.monotonic() - t0))
        threading.Thread(target=scanner, daemon=True).start()
        rounds = 0

        def commit_round():
            """The developer: SCAN_CHANGED named files edited and committed."""
            nonlocal rounds
            with mu:
                files = sorted(set(pending.values()) - edited)
            picked = rnd.sample(files, min(CHANGED, len(files)))
            if not picked:
                return
            for k, i in enumerate(picked):
                with open(os.path.join(repo, path_of(i)), "w") as f:
                    f.write(edit(i, KINDS[(rounds + k) % len(KINDS)]))
            edited.update(picked)
            git(repo, "add", "--", *[path_of(i) for i in picked])
            git(repo, "commit", "-q", "-m", "round %d" % rounds)
            rounds += 1

        next_round = time.monotonic()
        while True:
            if not os.path.exists(go):
                with mu:  # the scan that runs ends first
                    while state["scanning"] and not state["error"]:
                        scans.wait(1)
                open(paused, "w").close()
                # Paused (Redis is measured): the developer goes on when
                # DIR/env exists, so that both servers share the machine
                # with the same work; only the scans stop.
                while not os.path.exists(go):
                    if os.path.exists(env) and time.monotonic() >= next_round:
                        commit_round()
                        next_round = time.monotonic() + ROUND_S
                    time.sleep(0.02)
                os.unlink(paused)
            # Changes for the scans to find, once every ROUND_S.
            if time.monotonic() >= next_round:
                commit_round()
                start_traces(max(0, TRACES - len(pending)))
                next_round = time.monotonic() + ROUND_S
            with mu:
                if state["error"]:
                    raise state["error"]
                scans.wait(0.05)
    except Stop:
        pass
    finally:
        with mu:
            log.close()
        lock.close()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        run(sys.argv[1], sys.argv[2])
    except Stop:
        pass


if __name__ == "__main__":
    main()

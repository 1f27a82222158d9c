"""harness.py - run a real outcomed on a temporary directory and talk to it.

Used by the integration tests (test_*.py next to this file).  Run them with
Debian's python, which has python3-msgpack:

    /usr/bin/python3 tests/integration/test_errors.py [--bin build/daemon/outcomed]
        [--ctl build/client/outcomectl] [--parity-dir tests/data/parity] [unittest args]

Every option may also come from the environment (meson sets these):
    OUTCOMED_BIN, OUTCOMECTL_BIN, PARITY_DIR
and defaults to the usual place in the source tree (build/daemon/outcomed,
build/client/outcomectl, tests/data/parity).

Checking the daemon under a tool:
    OUTCOMED_WRAPPER   a command put before the daemon's, e.g.
                       'valgrind --leak-check=full --error-exitcode=1'; the
                       waits below are then multiplied by
    OUTCOMED_TIMEOUT_SCALE (default 10 with a wrapper, else 1).
A daemon built with sanitizers (meson setup -Db_sanitize=address,undefined)
is run with ASAN_OPTIONS / UBSAN_OPTIONS that stop it at the first error
(unless they are set already), and every stop, exit and tear-down looks for
a sanitizer or valgrind report in its stderr: a report fails the test even
when the exit code says nothing (a test that expects exit code 1, a daemon
killed on purpose).

Every wait here is bounded in time: a hung daemon fails a test, it never
hangs the suite.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import msgpack
except ImportError:  # pragma: no cover
    sys.stderr.write("harness: the msgpack module is missing; run the tests with "
                     "/usr/bin/python3 (Debian's python3-msgpack)\n")
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))

WRAPPER = shlex.split(os.environ.get("OUTCOMED_WRAPPER", ""))
TIMEOUT_SCALE = float(os.environ.get("OUTCOMED_TIMEOUT_SCALE") or (10 if WRAPPER else 1))

START_TIMEOUT = 10.0 * TIMEOUT_SCALE   # seconds for the socket to accept connections
STOP_TIMEOUT = 10.0 * TIMEOUT_SCALE    # seconds for the daemon to exit after SIGTERM
IO_TIMEOUT = 10.0 * TIMEOUT_SCALE      # seconds for any one reply

# Sanitizers stop at the first error; a report in the daemon's stderr fails
# the test (see Daemon.sanitizer_report).
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=1:detect_leaks=1",
    "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1",
}
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
    r"|runtime error: "
    r"|SUMMARY: UndefinedBehaviorSanitizer"
    r"|ERROR SUMMARY: [1-9]"                       # valgrind
    r"|(definitely|indirectly) lost: [1-9]")       # valgrind, leaks

# The contract's default limits.
MESSAGE_MAX = 4 << 20
MODEL_MAX = 256
TEXT_MAX = 4096
TRACE_ID_MAX = 128
GEN_TRACE_ID_MAX = 64
OUTPUT_MAX = 1 << 20
SOCKET_PATH_MAX = 107

TASKS = ("generate", "embed", "classify", "code", "reasoning")
ERROR_CODES = ("bad_request", "unknown_method", "unknown_trace", "duplicate_trace",
               "already_completed", "too_large", "overloaded", "forbidden",
               "unavailable", "internal")


# --------------------------------------------------------------------------
# Options: --bin / --ctl / --parity-dir on the command line, else env, else
# the default path.  They are taken out of sys.argv at import, so that
# unittest.main only sees its own arguments.

_OPTIONS = {"--bin": "OUTCOMED_BIN", "--ctl": "OUTCOMECTL_BIN", "--parity-dir": "PARITY_DIR"}


def _consume_argv():
    argv = sys.argv
    out = argv[:1]
    i = 1
    while i < len(argv):
        a = argv[i]
        name, eq, value = a.partition("=")
        if name in _OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    sys.exit("harness: %s needs a value" % name)
                value = argv[i + 1]
                i += 1
            os.environ[_OPTIONS[name]] = os.path.abspath(value)
        else:
            out.append(a)
        i += 1
    sys.argv[:] = out


_consume_argv()


def daemon_binary():
    return os.environ.get("OUTCOMED_BIN") or os.path.join(SOURCE_ROOT, "build", "daemon", "outcomed")


def ctl_binary():
    return os.environ.get("OUTCOMECTL_BIN") or os.path.join(SOURCE_ROOT, "build", "client", "outcomectl")


def parity_dir():
    return os.environ.get("PARITY_DIR") or os.path.join(SOURCE_ROOT, "tests", "data", "parity")


def main():
    """unittest.main with a verbose, clear summary; exit status 0 only if all passed."""
    if not os.access(daemon_binary(), os.X_OK):
        sys.stderr.write("harness: no daemon binary at %s (build it, or pass --bin / OUTCOMED_BIN)\n"
                         % daemon_binary())
    unittest.main(verbosity=2)


# --------------------------------------------------------------------------
# Errors


class DaemonError(AssertionError):
    """The daemon did not start, crashed, or did not stop as it should."""


class ConnectionClosed(Exception):
    """The daemon closed the connection (EOF or ECONNRESET)."""

    def __init__(self, msg="connection closed by the daemon", reset=False):
        super().__init__(msg)
        self.reset = reset


class RPCError(Exception):
    """An error reply: .code and .message from the contract's error map."""

    def __init__(self, code, message, msgid=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.msgid = msgid


# --------------------------------------------------------------------------
# Daemon


def _tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


class Daemon:
    """A real outcomed on a private temp dir: socket, database, config.

    d = Daemon(config="[limits]\\n..."); d.start(); c = d.client(); ...; d.stop()
    """

    def __init__(self, binary=None, config="", tmpdir=None, socket_path=None, db_path=None,
                 extra_args=(), env=None, launcher=(), pass_fds=()):
        self.binary = binary or daemon_binary()
        # A command that starts the daemon (e.g. systemd-socket-activate,
        # setpriv), put before OUTCOMED_WRAPPER's and the daemon's.
        self.launcher = list(launcher)
        self.pass_fds = tuple(pass_fds)  # file descriptors the daemon inherits
        # /tmp explicitly: socket paths must stay under 107 bytes.
        self._own_tmpdir = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="outcomed-it-", dir="/tmp")
        self.socket_path = socket_path or os.path.join(self.tmpdir, "outcomed.sock")
        self.db_path = db_path or os.path.join(self.tmpdir, "outcomed.db")
        self.config_path = os.path.join(self.tmpdir, "outcomed.ini")
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.runs = 0
        self._stderr_path = None
        self._stderr_paths = []   # every run's, for sanitizer_report
        self._stderr_file = None
        self.write_config(config)

    # ---- configuration
    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def argv(self, extra=()):
        """The daemon's command line, after OUTCOMED_WRAPPER's when set."""
        return (self.launcher + WRAPPER + [self.binary, "--config", self.config_path, "--socket", self.socket_path,
                           "--db", self.db_path] + self.extra_args + list(extra))

    # ---- lifecycle
    def spawn(self, extra=()):
        """Start the process without waiting for the socket."""
        if self.proc is not None and self.proc.poll() is None:
            raise DaemonError("daemon already running (pid %d)" % self.proc.pid)
        if not os.access(self.binary, os.X_OK):
            raise unittest.SkipTest("no daemon binary at %s (build it, or pass --bin / OUTCOMED_BIN)"
                                    % self.binary)
        self.runs += 1
        self._stderr_path = os.path.join(self.tmpdir, "stderr.%d.log" % self.runs)
        self._stderr_paths.append(self._stderr_path)
        self._stderr_file = open(self._stderr_path, "wb")
        env = dict(os.environ)
        env.pop("OUTCOMED_SOCKET", None)
        for k, v in SANITIZER_ENV.items():
            env.setdefault(k, v)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(self.argv(extra), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr_file, stderr=self._stderr_file,
                                     env=env, close_fds=True, pass_fds=self.pass_fds)
        return self.proc

    def start(self, extra=(), timeout=START_TIMEOUT):
        """Start and wait until the socket accepts connections."""
        self.spawn(extra)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise DaemonError("outcomed exited with %s while starting; stderr:\n%s"
                                  % (describe_rc(rc), _tail(self.stderr())))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(1.0)
                s.connect(self.socket_path)
                return
            except OSError as e:
                last = e
            finally:
                s.close()
            if time.monotonic() > deadline:
                self.kill()
                raise DaemonError("outcomed did not accept connections on %s within %.0fs "
                                  "(last error: %s); stderr:\n%s"
                                  % (self.socket_path, timeout, last, _tail(self.stderr())))
            time.sleep(0.02)

    def wait_exit(self, timeout=START_TIMEOUT):
        """Wait for the process to exit by itself; returns (rc, stderr).
        Kills it and fails if it is still running after timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonError("outcomed still running after %.0fs; stderr:\n%s"
                              % (timeout, _tail(self.stderr())))
        self._close_stderr()
        self.assert_no_sanitizer_report()
        return rc, self.stderr()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """SIGTERM (or sig), wait, assert exit code 0 and the socket removed."""
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            self._close_stderr()
            raise DaemonError("outcomed had already exited with %s before it was stopped; "
                              "stderr:\n%s" % (describe_rc(rc), _tail(self.stderr())))
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonError("outcomed did not exit within %.0fs of %s; stderr:\n%s"
                              % (timeout, signal.Signals(sig).name, _tail(self.stderr())))
        self._close_stderr()
        if rc != 0:
            raise DaemonError("outcomed exited with %s after %s (want 0); stderr:\n%s"
                              % (describe_rc(rc), signal.Signals(sig).name, _tail(self.stderr())))
        self.assert_no_sanitizer_report()
        if os.path.lexists(self.socket_path):
            raise DaemonError("outcomed exited after %s but left its socket %s behind"
                              % (signal.Signals(sig).name, self.socket_path))

    def kill(self):
        """SIGKILL and reap (no checks)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._close_stderr()

    def restart(self, extra=()):
        """Stop cleanly, start again on the same db and socket."""
        self.stop()
        return self.start(extra)

    def cleanup(self):
        self.kill()
        if self._own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _close_stderr(self):
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def stderr(self):
        """Everything the current (or last) run wrote to stdout/stderr."""
        if not self._stderr_path:
            return ""
        try:
            with open(self._stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_alive(self):
        rc = self.proc.poll() if self.proc else None
        if rc is not None:
            raise DaemonError("outcomed died: %s; stderr:\n%s" % (describe_rc(rc), _tail(self.stderr())))

    def sanitizer_report(self):
        """The first sanitizer or valgrind report in the stderr of any run
        of this daemon (from its first line on), or None."""
        for path in self._stderr_paths:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            m = SANITIZER_REPORT.search(text)
            if m:
                if m.group(0).startswith(("ERROR SUMMARY", "definitely", "indirectly")):
                    return "%s (valgrind):\n%s" % (path, _tail(text, 6000))
                start = text.rfind("\n", 0, m.start()) + 1
                return "%s:\n%s" % (path, text[start:start + 6000])
        return None

    def assert_no_sanitizer_report(self):
        report = self.sanitizer_report()
        if report:
            raise DaemonError("outcomed reported a memory or undefined-behaviour error in %s"
                              % report)

    # ---- clients
    def client(self, timeout=IO_TIMEOUT):
        return Client(self.socket_path, timeout=timeout)

    def ping(self):
        """A fresh connection, one ping; returns the version."""
        with self.client() as c:
            return c.call("ping")["version"]


def describe_rc(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return "signal %s" % signal.Signals(-rc).name
        except ValueError:
            return "signal %d" % -rc
    return "exit code %d" % rc


# --------------------------------------------------------------------------
# Client


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


class Client:
    """msgpack-RPC over the daemon's Unix socket.

    call(method, **args) -> result, raises RPCError
    request(method, args) -> (error, result)
    notify(method, args)
    send_many([(method, args), ...]) -> msgids; recv_many(n) -> [(msgid, error, result)]
    send_raw(bytes), send_obj(obj), recv() -> the next message object
    """

    def __init__(self, path, timeout=IO_TIMEOUT, connect=True):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if connect:
            self.sock.connect(path)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                          max_buffer_size=256 << 20)
        self._buf = bytearray()    # bytes fed and not yet consumed, for recv_raw
        self._buf_start = 0        # stream offset of _buf[0]
        self.next_msgid = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_obj(self, obj):
        self.sock.sendall(pack(obj))

    def _msgid(self, msgid):
        if msgid is None:
            msgid = self.next_msgid
            self.next_msgid = (self.next_msgid + 1) & 0xFFFFFFFF or 1
        return msgid

    @staticmethod
    def params(args):
        return [] if args is None else [args]

    def request_bytes(self, method, args=None, msgid=None):
        msgid = self._msgid(msgid)
        return msgid, pack([0, msgid, method, self.params(args)])

    def send_request(self, method, args=None, msgid=None):
        msgid, data = self.request_bytes(method, args, msgid)
        self.send_raw(data)
        return msgid

    def notify(self, method, args=None):
        self.send_obj([2, method, self.params(args)])

    def send_many(self, calls):
        """calls: [(method, args)...], all written before any reply is read."""
        ids, chunks = [], []
        for method, args in calls:
            msgid, data = self.request_bytes(method, args)
            ids.append(msgid)
            chunks.append(data)
        self.send_raw(b"".join(chunks))
        return ids

    # ---- receiving
    def _read_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no reply from the daemon within %.0fs" % self.timeout)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError("no reply from the daemon within %.0fs" % self.timeout)
        except ConnectionResetError:
            raise ConnectionClosed("connection reset by the daemon", reset=True)
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            raise ConnectionClosed()
        return data

    def recv_raw(self, timeout=None):
        """The next message: (object, its exact bytes)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        # Where this message starts (tell() moves on inside a partial message).
        before = self._unpacker.tell()
        while True:
            try:
                obj = self._unpacker.unpack()
            except msgpack.OutOfData:
                data = self._read_some(deadline)
                self._unpacker.feed(data)
                self._buf += data
                continue
            after = self._unpacker.tell()
            raw = bytes(self._buf[before - self._buf_start:after - self._buf_start])
            del self._buf[:after - self._buf_start]
            self._buf_start = after
            return obj, raw

    def recv(self, timeout=None):
        return self.recv_raw(timeout)[0]

    def recv_response(self, timeout=None):
        """The next message, checked to be a well-formed response:
        returns (msgid, error, result)."""
        msg = self.recv(timeout)
        check_response_shape(msg)
        return msg[1], msg[2], msg[3]

    def recv_many(self, n, timeout=None):
        return [self.recv_response(timeout) for _ in range(n)]

    def expect_closed(self, timeout=5.0):
        """Assert the daemon closes the connection with nothing more to say."""
        deadline = time.monotonic() + timeout
        try:
            extra = self.recv(max(0.01, deadline - time.monotonic()))
        except ConnectionClosed:
            return
        except TimeoutError:
            raise AssertionError("the daemon did not close the connection within %.0fs" % timeout)
        raise AssertionError("expected the connection to be closed, got another message: %r"
                             % (_short(extra),))

    # ---- request/response
    def request(self, method, args=None, msgid=None, timeout=None):
        """Send one request and read its reply: (error, result)."""
        sent = self.send_request(method, args, msgid)
        got, err, result = self.recv_response(timeout)
        if got != sent:
            raise AssertionError("reply msgid %r does not match request msgid %r (error=%r)"
                                 % (got, sent, err))
        return err, result

    def call(self, method, _args=None, **kwargs):
        """Send one request; return its result or raise RPCError."""
        args = dict(_args or {})
        args.update(kwargs)
        err, result = self.request(method, args if args else None)
        if err is not None:
            raise RPCError(err.get("code"), err.get("message"))
        return result


def _short(obj, n=300):
    r = repr(obj)
    return r if len(r) <= n else r[:n] + "..."


def check_response_shape(msg):
    """A response is [1, msgid(u32), error(nil|{code,message}), result]; error → result nil."""
    if not (isinstance(msg, list) and len(msg) == 4):
        raise AssertionError("not a 4-element msgpack-RPC response: %s" % _short(msg))
    if msg[0] != 1 or isinstance(msg[0], bool):
        raise AssertionError("response type tag is %r, want 1: %s" % (msg[0], _short(msg)))
    if not (isinstance(msg[1], int) and not isinstance(msg[1], bool) and 0 <= msg[1] <= 0xFFFFFFFF):
        raise AssertionError("response msgid %r is not a u32" % (msg[1],))
    err = msg[2]
    if err is not None:
        if not isinstance(err, dict) or not isinstance(err.get("code"), str) \
                or not isinstance(err.get("message"), str):
            raise AssertionError("error is not a {code: str, message: str} map: %s" % _short(err))
        if err["code"] not in ERROR_CODES:
            raise AssertionError("error code %r is not one of the contract's" % err["code"])
        if msg[3] is not None:
            raise AssertionError("error reply with a non-nil result: %s" % _short(msg))


# --------------------------------------------------------------------------
# Assertions


def assert_error(tc, reply, code, msgid=None, message_contains=None):
    """reply: (error, result) from Client.request, or (msgid, error, result)
    from recv_response.  Checks the code (and msgid, message substring)."""
    if len(reply) == 3:
        got_msgid, err, result = reply
        if msgid is not None:
            tc.assertEqual(got_msgid, msgid, "error reply msgid (error=%r)" % (err,))
    else:
        err, result = reply
    tc.assertIsNotNone(err, "expected error %r, got success with result %s" % (code, _short(result)))
    tc.assertEqual(err.get("code"), code, "expected error %r, got %r (message: %r)"
                   % (code, err.get("code"), err.get("message")))
    tc.assertIsNone(result, "error reply must have a nil result")
    if message_contains is not None:
        tc.assertIn(message_contains, err.get("message", ""),
                    "the %s message should name %r" % (code, message_contains))
    return err


def assert_ok(tc, reply):
    err, result = reply[-2], reply[-1]
    tc.assertIsNone(err, "expected success, got error %r" % (err,))
    return result


def socket_mode(path):
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise AssertionError("%s is not a socket" % path)
    return stat.S_IMODE(st.st_mode)


class DaemonTestCase(unittest.TestCase):
    """A test case with a fresh daemon per test (self.d), stopped and checked
    (exit 0, socket removed) after each test."""

    config = ""
    start_daemon = True

    def make_config(self, tmpdir):
        """The INI text for the daemon (override to use its temp dir)."""
        return self.config

    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)
        self.d.write_config(self.make_config(self.d.tmpdir))
        if self.start_daemon:
            self.d.start()

    def tearDown(self):
        # A test that passed must also leave a daemon that stops cleanly
        # (exit 0, socket removed): this catches crashes after hostile input.
        if self.d.proc is not None and self.d.runs and self.d._stderr_file is not None:
            if self.d.running():
                self.d.stop()
            else:
                self.d.check_alive()
        # Also after runs the test stopped or killed itself.
        self.d.assert_no_sanitizer_report()

    def client(self):
        c = self.d.client()
        self.addCleanup(c.close)
        return c

    def assert_alive(self):
        """The daemon still answers ping on a new connection."""
        self.d.check_alive()
        v = self.d.ping()
        self.assertIsInstance(v, str)


class CtlTestCase(DaemonTestCase):
    """A DaemonTestCase that runs outcomectl (ctl_binary()) against its
    daemon: self.ctl, self.c (a client), run_ctl and json_ctl.  Skipped
    where outcomectl is not built."""

    def setUp(self):
        self.ctl = ctl_binary()
        if not os.access(self.ctl, os.X_OK):
            self.skipTest("no outcomectl at %s (build it, or pass --ctl / OUTCOMECTL_BIN)" % self.ctl)
        super().setUp()
        self.c = self.client()

    def env(self, **extra):
        env = dict(os.environ)
        env.pop("OUTCOMED_SOCKET", None)
        # No fallback to a real user's or the machine's daemon.
        env["XDG_RUNTIME_DIR"] = os.path.join(self.d.tmpdir, "no-runtime-dir")
        env.update(extra)
        return env

    def run_ctl(self, *args, socket_path=None, env=None, want=None, stdin=None):
        """Run outcomectl; --socket is the test daemon's unless socket_path is
        False (none) or another path.  Checks the exit status when want is
        given.  Returns the CompletedProcess with text stdout/stderr."""
        argv = [self.ctl]
        if socket_path is None:
            socket_path = self.d.socket_path
        if socket_path is not False:
            argv += ["--socket", socket_path]
        argv += list(args)
        try:
            r = subprocess.run(argv, capture_output=True, timeout=20, env=env or self.env(),
                               input=stdin, text=True)
        except subprocess.TimeoutExpired:
            self.fail("outcomectl %r did not finish within 20s" % (args,))
        if want is not None:
            self.assertEqual(r.returncode, want, "outcomectl %s: exit %d, want %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), r.returncode, want, r.stdout, r.stderr))
        return r

    def json_ctl(self, *args, want=0):
        r = self.run_ctl("--json", *args, want=want)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, "--json prints one line of JSON: %r" % r.stdout)
        try:
            return json.loads(lines[0])
        except ValueError as e:
            self.fail("--json output is not JSON (%s): %r" % (e, r.stdout))


def wait_until(pred, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def is_root():
    return os.geteuid() == 0

"""The outcomed client: msgpack-RPC over the daemon's Unix socket.

See the package docstring (``help(outcomed)``) for an overview and
``clients/python/README.md`` for an example router.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, NotRequired, TypedDict, overload

import msgpack  # type: ignore[import]  # Debian's python3-msgpack has no stubs

from .errors import (FAIL_OPEN_CODES, OutcomedError, OutcomedTimeout, OutcomedUnavailable,
                     error_from_reply)

__all__ = [
    "Client", "Call", "resolve_socket", "SOCKET_ENV", "SYSTEM_SOCKET", "USER_SOCKET_NAME",
    "SOCKET_PATH_MAX", "DEFAULT_TIMEOUT", "TASKS", "KINDS", "TEXT_MAX",
    "Profile", "TaskStats", "PendingTrace", "OutcomeResult", "Action", "RankItem", "RankResult",
    "DegradedWhy",
]

log = logging.getLogger("outcomed")

SOCKET_ENV = "OUTCOMED_SOCKET"
SYSTEM_SOCKET = "/run/outcomed/outcomed.sock"
USER_SOCKET_NAME = "outcomed.sock"      # in $XDG_RUNTIME_DIR
SOCKET_PATH_MAX = 107                   # bytes that sun_path holds, NUL aside
DEFAULT_TIMEOUT = 5.0                   # seconds, per call
TEXT_MAX = 4096                         # the daemon's default limit on reason and error text

#: The tasks the daemon knows.
TASKS: tuple[str, ...] = ("generate", "embed", "classify", "code", "reasoning")
#: The outcome kinds the daemon knows (``confidence`` is needed by the first three).
KINDS: tuple[str, ...] = ("accepted", "accepted_with_edits", "rejected", "inconclusive",
                          "applied", "signature_changed", "body_modified", "symbol_added",
                          "modified", "ignored")

_MSGID_MAX = 0xFFFFFFFF
_RECV_BYTES = 1 << 16
_RETRYABLE_SEND = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)


# ---------------------------------------------------------------------------
# Reply shapes (what the daemon answers; a newer daemon may add keys)


class TaskStats(TypedDict):
    """A model's numbers for one task (``Profile["tasks"][task]``)."""
    calls: int
    successes: int
    failures: int
    avg_latency_ms: float
    ema_quality: float
    success_rate: float


class Profile(TypedDict):
    """One model's profile, as ``query`` answers it."""
    model: str
    total_calls: int
    success_count: int
    fail_count: int
    total_latency_ms: int
    avg_latency_ms: float
    success_rate: float
    ema_quality: float
    degraded: bool
    degraded_since: int | None  # unix seconds, under the daemon's configured threshold
    updated_at: int
    tasks: dict[str, TaskStats]


class PendingTrace(TypedDict):
    """A trace waiting for its outcome, as ``query_pending`` answers it."""
    trace_id: str
    model: str
    task: str
    reason: str
    started_at: int
    completed: bool
    latency_ms: int
    input_tokens: int
    output_tokens: int
    repo: NotRequired[str]
    files: NotRequired[list[str]]


class OutcomeResult(TypedDict):
    """How the daemon judged one trace (``quality`` and ``success`` are None
    for ``inconclusive`` and for a deferred code trace)."""
    trace_id: str
    kind: str
    quality: float | None
    success: bool | None
    deferred: NotRequired[bool]


class Action(TypedDict):
    """One action of an ``outcome(actions=...)`` sequence, in the order they ran.
    ``trace_id`` "" is an action with no trace (it still counts as "the next one")."""
    trace_id: str
    success: bool
    confidence: float
    output: NotRequired[str]


class DegradedWhy(TypedDict):
    """Why a model is degraded (failures > successes + threshold): the
    threshold the request used; ``since`` the unix seconds it became
    degraded under the daemon's configured threshold (None when it is not)."""
    model: str
    failures: int
    successes: int
    threshold: int
    since: int | None


class RankItem(TypedDict):
    """One candidate of a ``rank`` answer: its ``score`` (``quality`` under
    the strategy, less the penalties) and what it was made of."""
    model: str
    score: float
    prior: bool                 # no stats for the task yet: ranked with the prior
    degraded: bool
    quality: float
    mean: float                 # posterior mean of the success rate
    lo: float                   # its 95% interval
    hi: float
    judged: float               # the (weighted) judged outcomes behind it
    latency_ms: float | None
    latency_penalty: float
    cost_per_accepted: float | None
    cost_penalty: float
    degraded_why: DegradedWhy | None  # None unless degraded


class RankResult(TypedDict):
    """A ``rank`` answer: ``ranked`` best first; ``excluded`` the degraded
    models left out, ``excluded_why`` why (in the same order)."""
    task: str
    strategy: str
    ranked: list[RankItem]
    excluded: list[str]
    excluded_why: list[DegradedWhy]


# ---------------------------------------------------------------------------
# Socket path


def _check_length(path: str, source: str) -> str:
    if not path:
        raise ValueError(f"the outcomed socket path{source} is empty")
    n = len(os.fsencode(path))
    if n > SOCKET_PATH_MAX:
        raise ValueError(f"the outcomed socket path{source} is {n} bytes long, over the limit of "
                         f"{SOCKET_PATH_MAX} bytes: {path}")
    return path


def resolve_socket(path: str | os.PathLike[str] | None = None) -> str:
    """The socket to connect to, found as the contract says.

    ``path`` when given; else ``$OUTCOMED_SOCKET`` when set and not empty;
    else the first that exists of ``$XDG_RUNTIME_DIR/outcomed.sock`` (a
    user's own daemon) and ``/run/outcomed/outcomed.sock`` (the machine's).

    Raises:
        ValueError: the chosen path is empty or longer than 107 bytes (it
            would be cut short silently otherwise).
        OutcomedUnavailable: no path given and neither default exists.
    """
    if path is not None:
        return _check_length(os.fspath(path), "")
    env = os.environ.get(SOCKET_ENV)
    if env:
        return _check_length(env, f" from ${SOCKET_ENV}")
    tried = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        user = os.path.join(xdg, USER_SOCKET_NAME)
        if os.path.exists(user):
            return _check_length(user, " from $XDG_RUNTIME_DIR")
        tried.append(user)
    if os.path.exists(SYSTEM_SOCKET):
        return SYSTEM_SOCKET
    tried.append(SYSTEM_SOCKET)
    raise OutcomedUnavailable(f"no outcomed socket found: tried {' and '.join(tried)} "
                              f"(is outcomed running? set ${SOCKET_ENV} to its socket)")


def _clean_text(text: str, limit: int = TEXT_MAX) -> str:
    """text made acceptable to the daemon: valid UTF-8, no NUL, at most
    limit bytes (cut at a character boundary)."""
    data = text.replace("\x00", "\\0").encode("utf-8", "replace")
    if len(data) > limit:
        data = data[:limit]
    return data.decode("utf-8", "ignore")


def _new_trace_id() -> str:
    """A trace id chosen by the client (for notifications, which get no
    reply): 128 random bits, in the contract's alphabet."""
    return "py-" + uuid.uuid4().hex


def _args(**kwargs: Any) -> dict[str, Any]:
    """The named arguments that are not None."""
    return {k: v for k, v in kwargs.items() if v is not None}


# ---------------------------------------------------------------------------
# Client


class Client:
    """A connection to outcomed, opened on first use and reopened when lost.

    Args:
        socket_path: the daemon's socket; default: found by
            :func:`resolve_socket` at each (re)connection.
        timeout: seconds one call may take in all (connect, send, reply);
            None waits for ever.
        fail_open: when the daemon is unreachable, slower than ``timeout``,
            or answers ``overloaded``/``unavailable``/``internal``, calls
            return None instead of raising, :attr:`fail_open_count` counts
            them, and reconnection is tried again only after a backoff
            (``backoff_initial`` seconds, doubled after each failure up to
            ``backoff_max``; a reply resets it).  Error replies that mean the
            request is wrong (``bad_request``, ``unknown_trace``, ...) and
            :class:`ValueError` for a bad socket path are raised in every mode.

    Every method sends one request and waits for its reply, except with
    ``notify=True``: a msgpack-RPC notification, written and not answered
    (fire and forget; the daemon counts notifications that fail in
    ``stats()["notify_errors_total"]``).  Requests and notifications on one
    connection are processed in the order they were sent.

    A reply that misses the timeout closes the connection: the request may
    still have taken effect.  A request is re-sent once, on a new
    connection, only when writing it failed because the daemon had closed
    the old one (a daemon restart), so it was not processed.

    In fail-open mode the logger ``outcomed`` gets one warning when the
    daemon stops answering and one when it answers again, not one per call.

    Thread safety: a Client may be shared by threads; a lock serializes
    its calls (one request and its reply at a time), so a slow call delays
    the others.  For parallel calls use one Client per thread.  After
    ``fork()`` the child opens its own connection on first use.
    """

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = DEFAULT_TIMEOUT, fail_open: bool = False,
                 backoff_initial: float = 0.1, backoff_max: float = 10.0) -> None:
        self._explicit_path = (_check_length(os.fspath(socket_path), "")
                               if socket_path is not None else None)
        if self._explicit_path is None and os.environ.get(SOCKET_ENV):
            _check_length(os.environ[SOCKET_ENV], f" from ${SOCKET_ENV}")   # fail early
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be > 0 seconds, or None")
        self.timeout = timeout
        self.fail_open = fail_open
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        #: Calls that returned None in fail-open mode instead of raising.
        self.fail_open_count = 0
        #: The last failure fail-open mode swallowed (for logs and debugging).
        self.last_error: Exception | None = None
        #: The socket path of the current (or last) connection.
        self.socket_path: str | None = self._explicit_path
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0
        self._unpacker: msgpack.Unpacker | None = None
        self._next_msgid = 1
        self._backoff = 0.0          # the current delay; 0: no failure since the last reply
        self._retry_at = 0.0         # time.monotonic() before which no connection is tried
        self._failing = False        # for logging the start and end of an outage once

    # ---- lifecycle

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return (f"<outcomed.Client {self.socket_path or '(socket not resolved)'} {state}"
                f"{' fail_open' if self.fail_open else ''}>")

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may still have been closed by the daemon)."""
        return self._sock is not None and self._pid == os.getpid()

    def connect(self) -> None:
        """Connect now rather than on first use (reconnects if connected).

        Raises OutcomedUnavailable when the daemon cannot be reached, even in
        fail-open mode (use :meth:`ping` to probe without raising)."""
        with self._lock:
            self._drop()
            self._connect(self._deadline())

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        with self._lock:
            self._drop()

    # ---- the protocol's methods

    def start(self, model: str, task: str, reason: str | None = None, *,
              trace_id: str | None = None, repo: str | None = None,
              files: Sequence[str] | None = None, domain: str | None = None,
              notify: bool = False) -> str | None:
        """A call began: model, task (one of :data:`TASKS`) and the routing reason.

        Returns the trace id to report its end and outcome with: the daemon's
        (``t-...``), or ``trace_id`` when given (1-128 bytes of
        ``A-Za-z0-9._:-``).  With ``notify=True`` nothing is answered, so the
        client picks the id when none is given (``py-`` and 32 hex digits).
        ``repo`` (a watched repository) and ``files`` are for code traces.
        ``domain``: what the router's classifier said the request is about
        (1-128 bytes, no control characters); the daemon learns per
        (model, task, domain) too.
        """
        if notify and trace_id is None:
            trace_id = _new_trace_id()
        args = _args(model=model, task=task, reason=reason, trace_id=trace_id, repo=repo,
                     files=list(files) if files is not None else None, domain=domain)
        if notify:
            return trace_id if self._notify("start", args) else None
        result = self._request("start", args)
        return None if result is None else result["trace_id"]

    def complete(self, trace_id: str | None, latency_ms: float, input_tokens: int = 0,
                 output_tokens: int = 0, *, output: str | None = None,
                 notify: bool = False) -> str | None:
        """The call returned after ``latency_ms`` (int, or float rounded by the
        daemon).  ``output``, the generated text, is kept for code traces.
        The trace stays pending until its :meth:`outcome`.  Returns the trace id."""
        if trace_id is None and self.fail_open:
            return None
        args = _args(trace_id=trace_id, latency_ms=latency_ms, input_tokens=input_tokens,
                     output_tokens=output_tokens, output=output)
        return self._trace_call("complete", args, notify)

    def fail(self, trace_id: str | None, error: str | None = None, *,
             notify: bool = False) -> str | None:
        """The call failed (``error``: why, at most 4096 bytes).  Counts a
        failure and resolves the trace.  Returns the trace id."""
        if trace_id is None and self.fail_open:
            return None
        return self._trace_call("fail", _args(trace_id=trace_id, error=error), notify)

    @overload
    def outcome(self, trace_id: str | None, kind: str, confidence: float | None = None, *,
                notify: bool = False) -> OutcomeResult | None: ...

    @overload
    def outcome(self, *, actions: Sequence[Action | Mapping[str, Any]],
                notify: bool = False) -> list[OutcomeResult] | None: ...

    def outcome(self, trace_id: str | None = None, kind: str | None = None,
                confidence: float | None = None, *,
                actions: Sequence[Action | Mapping[str, Any]] | None = None,
                notify: bool = False) -> Any:
        """What became of a call.

        Single form: ``kind`` (one of :data:`KINDS`) with ``confidence`` in
        [0, 1] (required for accepted, accepted_with_edits and rejected).
        Returns ``{"trace_id", "kind", "quality", "success"}``.

        Sequence form: ``actions``, the :class:`Action` maps in the order the
        actions ran; the daemon infers each one's outcome from the next.
        Returns the list of results for the traces resolved.

        With ``notify=True`` returns None (nothing is answered).
        """
        if actions is None and trace_id is None and self.fail_open:
            return None
        args = _args(trace_id=trace_id, kind=kind, confidence=confidence,
                     actions=[dict(a) for a in actions] if actions is not None else None)
        if notify:
            self._notify("outcome", args)
            return None
        result = self._request("outcome", args)
        if result is None or actions is None:
            return result
        return result["results"]

    def query(self, model: str | None = None, task: str | None = None, *,
              degrade_threshold: int | None = None, domains: bool = False,
              domain: str | None = None, scope: str | None = None) -> list[Profile] | None:
        """The profiles, sorted by model id: every model, or only ``model``
        (an empty list when it has none), or only the models with stats for
        ``task`` (their ``tasks`` then hold only it).  ``domains=True`` adds
        each profile's domain cells (``domains``: {task: {domain: cell}});
        ``domain`` only that domain's.  ``scope``: ``"fleet"`` (every host's
        evidence summed; the daemon's default with ``[fleet]``) or ``"host"``."""
        result = self._request("query", _args(model=model, task=task,
                                              degrade_threshold=degrade_threshold,
                                              domains=True if domains else None,
                                              domain=domain, scope=scope))
        return None if result is None else result["profiles"]

    def query_pending(self, model: str | None = None, task: str | None = None, *,
                      limit: int | None = None) -> list[PendingTrace] | None:
        """The pending traces, oldest first (``limit``: the daemon's default is 1000)."""
        result = self._request("query", _args(pending=True, model=model, task=task, limit=limit))
        return None if result is None else result["pending"]

    def rank(self, task: str, candidates: Sequence[str] | None = None,
             strategy: str | None = None, latency_weight: float = 0.0, cost_weight: float = 0.0,
             exclude_degraded: bool | None = None, *, degrade_threshold: int | None = None,
             seed: int | None = None, domain: str | None = None,
             scope: str | None = None) -> RankResult | None:
        """Which model for ``task`` now, as the daemon ranks them.

        ``candidates``: the models to rank (default: every model with stats
        for the task; an unknown one ranks with the prior, flagged
        ``prior``).  ``domain``: rank from that domain's evidence, backed off
        to the task's.  ``strategy``: None (the daemon's default, the best
        rule it has), ``ema``, ``mean`` (posterior mean), ``lcb`` (lower
        confidence bound) or ``thompson`` (one posterior draw; ``seed``
        fixes it).  ``latency_weight`` and ``cost_weight`` subtract
        the candidate's latency and cost, relative to the largest, from its
        quality.  ``exclude_degraded``: leave degraded models out (named in
        ``excluded``); None: the daemon's default (yes, but for kg, which
        weighs failures in its posterior).  ``scope``: as :meth:`query`'s.

        Returns ``{"task", "strategy", "ranked": [RankItem...], "excluded"}``,
        best first.  A daemon without ``rank`` answers
        :class:`~outcomed.UnknownMethod`.
        """
        args = _args(task=task, candidates=list(candidates) if candidates is not None else None,
                     strategy=strategy, latency_weight=float(latency_weight),
                     cost_weight=float(cost_weight), exclude_degraded=exclude_degraded,
                     degrade_threshold=degrade_threshold, seed=seed, domain=domain,
                     scope=scope)
        result: RankResult | None = self._request("rank", args)
        return result

    def ping(self) -> str | None:
        """The daemon's version (a cheap liveness check)."""
        result = self._request("ping", {})
        return None if result is None else result["version"]

    def stats(self) -> dict[str, Any] | None:
        """The daemon's counters and configuration (see the protocol's ``stats``)."""
        result: dict[str, Any] | None = self._request("stats", {})
        return result

    def history(self, model: str | None = None, task: str | None = None, *,
                domain: str | None = None, since: int | None = None, until: int | None = None,
                bucket_s: int | None = None) -> dict[str, Any] | None:
        """What each (model, task) series did over time, bucket by bucket
        (or each (model, task, domain) series with ``domain``).  ``since``
        and ``until`` are unix seconds (default: the 7 days before now),
        ``bucket_s`` a multiple of 60 (default 3600).

        Returns ``{"bucket_s", "since", "until", "points", "series"}``, each
        series a dict of equal-length columns (``t``, ``calls``,
        ``successes``, ``failures``, ``judged``, ``quality``, ``ema``,
        ``posterior_mean``, ``posterior_lo``, ``posterior_hi``,
        ``latency_p50_ms``, ``latency_p95_ms``, ``input_tokens``,
        ``output_tokens``, ``cost``); see the protocol's ``history``.
        More than 10,000 points is :class:`~outcomed.BadRequest`.
        """
        result: dict[str, Any] | None = self._request(
            "history", _args(model=model, task=task, domain=domain, since=since, until=until,
                             bucket_s=bucket_s))
        return result

    def forget(self, model: str, task: str | None = None,
               domain: str | None = None, scope: str | None = None) -> bool | None:
        """Remove a model's profile (and its domain cells), or with ``task``
        and ``domain`` only that cell; returns whether there was one.  With
        ``[fleet]``, ``scope="fleet"`` (the default) makes every host forget
        it too, ``"host"`` only this one."""
        result = self._request("forget", _args(model=model, task=task, domain=domain,
                                               scope=scope))
        return None if result is None else result["forgotten"]

    def hosts(self) -> dict[str, Any] | None:
        """With ``[fleet]``: ``{"host_id", "state", "hosts": [{"host_id",
        "self", "version", "seen_at", "rows"}...]}``, the hosts whose
        evidence this daemon sums."""
        result: dict[str, Any] | None = self._request("hosts", {})
        return result

    # ---- the timing context manager

    def call(self, model: str, task: str, reason: str | None = None, *,
             trace_id: str | None = None, repo: str | None = None,
             files: Sequence[str] | None = None, notify: bool = False) -> Call:
        """A context manager that reports one inference call::

            with client.call("qwen3-4b", "code", "cheapest fit") as call:
                reply = llm(...)
                call.tokens(reply.input_tokens, reply.output_tokens)
            call.outcome("accepted", 0.9)      # later, when the user reacts

        ``start`` on entry; on exit ``complete`` with the time the block took
        and the tokens, or ``fail`` when the block raised (the exception's
        text as ``error``; the exception goes on).  Arguments as :meth:`start`.

        An error reporting the end of a successful block is raised as any
        call's would be (fail-open mode returns None instead, as usual); an
        error reporting a failure is logged and added as a note to the
        block's exception, never raised in its place.  A block interrupted
        by ``KeyboardInterrupt``, ``SystemExit`` or a cancellation is not
        the model's failure: its trace is resolved ``inconclusive``.
        """
        return Call(self, model, task, reason, trace_id=trace_id, repo=repo, files=files,
                    notify=notify)

    # ---- raw access

    def request(self, method: str, args: Mapping[str, Any] | None = None) -> Any:
        """Send any request and return its ``result`` (None in fail-open mode
        when the daemon is unavailable).  Raises as the methods above do."""
        return self._request(method, dict(args or {}))

    def notify(self, method: str, args: Mapping[str, Any] | None = None) -> bool:
        """Send any notification (no reply).  Returns False when it could not
        be written in fail-open mode."""
        return self._notify(method, dict(args or {}))

    # ---- internals

    def _trace_call(self, method: str, args: dict[str, Any], notify: bool) -> str | None:
        if notify:
            return args.get("trace_id") if self._notify(method, args) else None
        result = self._request(method, args)
        return None if result is None else result["trace_id"]

    def _request(self, method: str, args: dict[str, Any]) -> Any:
        with self._lock:
            try:
                result = self._roundtrip(method, args, notify=False)
            except OutcomedUnavailable as e:
                return self._failed_open(e)
            except OutcomedError as e:
                if self.fail_open and e.code in FAIL_OPEN_CODES:
                    return self._failed_open(e)
                self._recovered()            # it answered: the connection is fine
                raise
            self._recovered()
            return result

    def _notify(self, method: str, args: dict[str, Any]) -> bool:
        with self._lock:
            try:
                self._roundtrip(method, args, notify=True)
            except OutcomedUnavailable as e:
                self._failed_open(e)
                return False
            return True

    def _failed_open(self, e: Exception) -> None:
        """In fail-open mode: count and log e, return None; else raise it."""
        if not self.fail_open:
            raise e
        self.fail_open_count += 1
        self.last_error = e
        if not self._failing:
            self._failing = True
            log.warning("outcomed: %s; carrying on without it (fail-open)", e)
        return None

    def _recovered(self) -> None:
        self._backoff = 0.0
        if self._failing:
            self._failing = False
            log.warning("outcomed: answering again (%d calls went without it so far)",
                        self.fail_open_count)

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise OutcomedTimeout("no reply from outcomed within the timeout")
        return left

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._unpacker = None

    def _transport_failed(self, e: OutcomedUnavailable) -> OutcomedUnavailable:
        """Close the connection and, in fail-open mode, push back the next
        connection attempt.  Returns e for raising."""
        self._drop()
        if self.fail_open:
            self._backoff = (min(self._backoff * 2, self.backoff_max) if self._backoff
                             else self.backoff_initial)
            self._retry_at = time.monotonic() + self._backoff
        return e

    def _connect(self, deadline: float | None) -> None:
        path = self._explicit_path or resolve_socket()
        self.socket_path = path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._remaining(deadline))
            sock.connect(path)
        except OutcomedUnavailable:
            sock.close()
            raise
        except socket.timeout:
            sock.close()
            raise OutcomedTimeout(f"connecting to outcomed at {path}: timed out") from None
        except OSError as e:
            sock.close()
            raise OutcomedUnavailable(f"cannot connect to outcomed at {path}: "
                                      f"{e.strerror or e}") from e
        self._sock = sock
        self._pid = os.getpid()
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=0)
        self._next_msgid = 1

    def _roundtrip(self, method: str, args: dict[str, Any], notify: bool) -> Any:
        """Send one request (or notification) and read its reply; the lock is held."""
        deadline = self._deadline()
        if self._sock is not None and self._pid != os.getpid():
            self._drop()                     # the parent's connection, after fork()
        params = [args] if args else []
        for attempt in (1, 2):
            fresh = self._sock is None
            if fresh:
                if self.fail_open and time.monotonic() < self._retry_at:
                    raise OutcomedUnavailable("outcomed was unavailable; waiting "
                                              f"{self._retry_at - time.monotonic():.2f}s more "
                                              "before reconnecting")
                try:
                    self._connect(deadline)
                except OutcomedUnavailable as e:
                    raise self._transport_failed(e)
            if notify:
                msgid = 0
                data = msgpack.packb([2, method, params], use_bin_type=True)
            else:
                msgid = self._next_msgid
                self._next_msgid = msgid + 1 if msgid < _MSGID_MAX else 1
                data = msgpack.packb([0, msgid, method, params], use_bin_type=True)
            try:
                self._send(data, deadline)
            except OutcomedUnavailable as e:
                raise self._transport_failed(e)
            except OSError as e:
                if not fresh and attempt == 1 and e.errno in _RETRYABLE_SEND:
                    # The daemon closed this connection before reading the
                    # request (it restarted): the request was not processed.
                    self._drop()
                    continue
                raise self._transport_failed(_unavailable("sending to outcomed", e))
            break
        if notify:
            return None
        return self._read_reply(msgid, deadline)

    def _send(self, data: bytes, deadline: float | None) -> None:
        assert self._sock is not None
        view = memoryview(data)
        while view:
            self._sock.settimeout(self._remaining(deadline))
            n = self._sock.send(view, socket.MSG_NOSIGNAL)
            view = view[n:]

    def _read_reply(self, msgid: int, deadline: float | None) -> Any:
        assert self._sock is not None and self._unpacker is not None
        while True:
            try:
                msg = self._unpacker.unpack()
                break
            except msgpack.OutOfData:
                pass
            except Exception as e:          # not msgpack: out of step for good
                raise self._transport_failed(
                    OutcomedUnavailable(f"outcomed sent bytes that are not msgpack: {e}"))
            try:
                self._sock.settimeout(self._remaining(deadline))
                data = self._sock.recv(_RECV_BYTES)
            except OutcomedTimeout as e:
                raise self._transport_failed(e)
            except OSError as e:
                raise self._transport_failed(_unavailable("reading from outcomed", e))
            if not data:
                raise self._transport_failed(
                    OutcomedUnavailable("outcomed closed the connection before replying"))
            self._unpacker.feed(data)
        if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 1
                and isinstance(msg[1], int)):
            raise self._transport_failed(
                OutcomedUnavailable(f"not a msgpack-RPC reply from outcomed: {msg!r:.200}"))
        if msg[1] != msgid:
            if msg[1] == 0 and msg[2] is not None:
                # A connection-level error (too_large, overloaded): the daemon
                # closes the connection after it.
                self._drop()
                raise error_from_reply(msg[2])
            raise self._transport_failed(OutcomedUnavailable(
                f"outcomed replied to msgid {msg[1]}, expected {msgid}"))
        if msg[2] is not None:
            raise error_from_reply(msg[2])
        return msg[3]


def _unavailable(what: str, e: OSError) -> OutcomedUnavailable:
    if isinstance(e, socket.timeout):
        return OutcomedTimeout(f"{what}: timed out")
    return OutcomedUnavailable(f"{what}: {e.strerror or e}")


# ---------------------------------------------------------------------------
# Call


class Call:
    """One inference call being timed; made by :meth:`Client.call`.

    Attributes:
        trace_id: the trace (None until entered, and in fail-open mode when
            the daemon was unavailable: nothing is reported then).
        input_tokens, output_tokens: reported with ``complete``; set them
            with :meth:`tokens`.
        output: the generated text, reported with ``complete`` (code traces
            keep it to match against git).
        latency_ms: the block's duration, once it has ended.
        error: the failure reported, if any.
    """

    def __init__(self, client: Client, model: str, task: str, reason: str | None, *,
                 trace_id: str | None = None, repo: str | None = None,
                 files: Sequence[str] | None = None, notify: bool = False) -> None:
        self.client = client
        self.model = model
        self.task = task
        self.reason = reason
        self.notify = notify
        self.trace_id: str | None = trace_id
        self.input_tokens = 0
        self.output_tokens = 0
        self.output: str | None = None
        self.latency_ms: float | None = None
        self.error: str | None = None
        self._repo = repo
        self._files = files
        self._failed = False
        self._t0 = 0.0

    def tokens(self, input_tokens: int, output_tokens: int) -> None:
        """The call's token counts, reported when the block ends."""
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens

    def fail(self, error: str) -> None:
        """Report the call as failed when the block ends, without raising
        (an error the router handled: an HTTP 500, a refusal)."""
        self._failed = True
        self.error = _clean_text(error)

    def outcome(self, kind: str, confidence: float | None = None) -> OutcomeResult | None:
        """Report what became of the call (after the block): see :meth:`Client.outcome`."""
        if self.trace_id is None:
            return None
        return self.client.outcome(self.trace_id, kind, confidence, notify=self.notify)

    def __enter__(self) -> Call:
        self.trace_id = self.client.start(self.model, self.task, self.reason,
                                          trace_id=self.trace_id, repo=self._repo,
                                          files=self._files, notify=self.notify)
        self._t0 = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        self.latency_ms = (time.monotonic() - self._t0) * 1000.0
        if self.trace_id is None:
            return False
        c = self.client
        if exc is None:
            if self._failed:
                c.fail(self.trace_id, self.error, notify=self.notify)
            else:
                c.complete(self.trace_id, self.latency_ms, self.input_tokens,
                           self.output_tokens, output=self.output, notify=self.notify)
            return False
        # The block raised: report it, and never let the report hide the
        # exception (a reporting error is logged and noted on it).
        try:
            if isinstance(exc, Exception):
                self.error = _clean_text(f"{type(exc).__name__}: {exc}" if str(exc)
                                         else type(exc).__name__)
                c.fail(self.trace_id, self.error, notify=self.notify)
            else:
                # Interrupted (KeyboardInterrupt, SystemExit, cancellation):
                # not the model's fault; resolve the trace without judging it.
                c.outcome(self.trace_id, "inconclusive", notify=self.notify)
        except (OutcomedError, OutcomedUnavailable) as e:
            log.warning("outcomed: could not report trace %s: %s", self.trace_id, e)
            exc.add_note(f"(outcomed could not report trace {self.trace_id}: {e})")
        return False

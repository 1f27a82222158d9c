"""The exceptions the outcomed client raises.

Two families, kept apart on purpose:

* :class:`OutcomedError` — the daemon answered, and said no.  ``.code`` is one
  of the protocol's error codes (``bad_request``, ``unknown_trace``, ...),
  ``.message`` the daemon's text for people.  Each code has a subclass, so
  ``except UnknownTrace:`` works as well as ``if e.code == "unknown_trace"``.
* :class:`OutcomedUnavailable` (a :class:`ConnectionError`) — no answer: no
  socket, connection refused or lost, a reply later than the timeout
  (:class:`OutcomedTimeout`), or bytes that are not a msgpack-RPC reply.
  Whether the request took effect is then unknown.

In fail-open mode the client returns ``None`` instead of raising
:class:`OutcomedUnavailable`, and for the error codes in
:data:`FAIL_OPEN_CODES` (the daemon cannot serve now: ``overloaded``,
``unavailable``, ``internal``).  The other codes mean the request itself is
wrong; they are raised in every mode.
"""

from __future__ import annotations

__all__ = [
    "OutcomedError", "BadRequest", "UnknownMethod", "UnknownTrace", "DuplicateTrace",
    "AlreadyCompleted", "TooLarge", "Overloaded", "Forbidden", "StoreUnavailable",
    "InternalError", "OutcomedUnavailable", "OutcomedTimeout", "ERROR_CODES",
    "FAIL_OPEN_CODES", "error_from_reply",
]


class OutcomedError(Exception):
    """An error reply from the daemon.

    Attributes:
        code: the protocol's error code, e.g. ``"unknown_trace"``.
        message: the daemon's explanation, naming the bad field.
    """

    #: The protocol code of this class (the base class: any code).
    CODE: str = ""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadRequest(OutcomedError):
    """``bad_request``: a missing, unknown or mistyped argument, a value out of range."""
    CODE = "bad_request"


class UnknownMethod(OutcomedError):
    """``unknown_method``: the daemon has no such method (an older daemon)."""
    CODE = "unknown_method"


class UnknownTrace(OutcomedError):
    """``unknown_trace``: the trace is not pending (never started, resolved, expired)."""
    CODE = "unknown_trace"


class DuplicateTrace(OutcomedError):
    """``duplicate_trace``: a client trace id pending for another model or task."""
    CODE = "duplicate_trace"


class AlreadyCompleted(OutcomedError):
    """``already_completed``: a second ``complete`` for one trace."""
    CODE = "already_completed"


class TooLarge(OutcomedError):
    """``too_large``: the request was over the daemon's message limit; the
    daemon closed the connection (the next call opens a new one)."""
    CODE = "too_large"


class Overloaded(OutcomedError):
    """``overloaded``: a limit is reached (pending traces, models, connections)."""
    CODE = "overloaded"


class Forbidden(OutcomedError):
    """``forbidden``: the trace was started by another user."""
    CODE = "forbidden"


class StoreUnavailable(OutcomedError):
    """``unavailable``: the daemon's database takes no writes; the change was
    not recorded (reads still work).  Not to be confused with
    :class:`OutcomedUnavailable`, the daemon not answering at all."""
    CODE = "unavailable"


class InternalError(OutcomedError):
    """``internal``: a bug in the daemon (it logged the details)."""
    CODE = "internal"


_BY_CODE: dict[str, type[OutcomedError]] = {
    cls.CODE: cls
    for cls in (BadRequest, UnknownMethod, UnknownTrace, DuplicateTrace, AlreadyCompleted,
                TooLarge, Overloaded, Forbidden, StoreUnavailable, InternalError)
}

#: Every error code of the protocol (version 1).
ERROR_CODES: tuple[str, ...] = tuple(_BY_CODE)

#: Error replies that fail-open mode swallows like an unreachable daemon:
#: the daemon cannot serve now, and the router should carry on without it.
FAIL_OPEN_CODES: frozenset[str] = frozenset({"overloaded", "unavailable", "internal"})


def error_from_reply(error: object) -> OutcomedError:
    """The exception for a reply's ``error`` map ``{"code", "message"}``.

    An unknown code (a newer daemon) gives a plain :class:`OutcomedError`."""
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
    else:
        code, message = None, None
    if not isinstance(code, str):
        code = "internal"
        message = f"malformed error in the daemon's reply: {error!r}"
    if not isinstance(message, str):
        message = ""
    return _BY_CODE.get(code, OutcomedError)(code, message)


class OutcomedUnavailable(ConnectionError):
    """The daemon could not be reached or did not answer: no socket,
    connection refused or closed, a reply over the timeout, a malformed
    reply.  The request may or may not have taken effect."""


class OutcomedTimeout(OutcomedUnavailable, TimeoutError):
    """No complete reply within the client's timeout.  The connection is
    closed (a late reply would be out of step); the next call opens a new one."""

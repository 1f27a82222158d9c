"""outcomed: report inference calls to the outcomed daemon and ask how models do.

A router tells outcomed when a call to a model starts, how it ended, and what
became of it; outcomed learns, per model and task, from every router on the
machine, and answers ``query`` (profiles) and ``rank`` (which model now)::

    import outcomed

    client = outcomed.Client(fail_open=True, timeout=0.05)
    with client.call("qwen3-4b", "code", "cheapest fit") as call:
        reply = llm("qwen3-4b", prompt)
        call.tokens(reply.input_tokens, reply.output_tokens)
    call.outcome("accepted", 0.9)

The pieces:

* :class:`Client` — one connection (opened on first use, reopened when lost)
  with a method per protocol method: :meth:`~Client.start`,
  :meth:`~Client.complete`, :meth:`~Client.fail`, :meth:`~Client.outcome`,
  :meth:`~Client.query`, :meth:`~Client.query_pending`, :meth:`~Client.rank`,
  :meth:`~Client.ping`, :meth:`~Client.stats`, :meth:`~Client.forget`;
  ``notify=True`` on start/complete/fail/outcome sends a notification (no
  reply, fire and forget).
* :meth:`Client.call` — a context manager timing one call: ``complete`` with
  latency and tokens, or ``fail`` with the exception's text.
* Fail-open mode, ``Client(fail_open=True, timeout=...)``: an unreachable or
  slow daemon makes calls return None, counted in ``client.fail_open_count``.
* Errors: :class:`OutcomedError` (the daemon answered an error; ``.code``,
  ``.message``; a subclass per code) and :class:`OutcomedUnavailable` (a
  :class:`ConnectionError`: no answer).

The socket is found as ``outcomectl`` finds it (:func:`resolve_socket`).
The wire protocol is described in the repository's ``protocol/README.md``.
Needs only ``msgpack`` (Debian: ``python3-msgpack``).
"""

from .client import (DEFAULT_TIMEOUT, KINDS, SOCKET_ENV, SOCKET_PATH_MAX, SYSTEM_SOCKET,
                     TASKS, TEXT_MAX, USER_SOCKET_NAME, Action, Call, Client, DegradedWhy,
                     OutcomeResult, PendingTrace, Profile, RankItem, RankResult, TaskStats,
                     resolve_socket)
from .errors import (ERROR_CODES, FAIL_OPEN_CODES, AlreadyCompleted, BadRequest,
                     DuplicateTrace, Forbidden, InternalError, OutcomedError, OutcomedTimeout,
                     OutcomedUnavailable, Overloaded, StoreUnavailable, TooLarge, UnknownMethod,
                     UnknownTrace, error_from_reply)

__version__ = "0.1.0"

__all__ = [
    "Client", "Call", "resolve_socket",
    "OutcomedError", "BadRequest", "UnknownMethod", "UnknownTrace", "DuplicateTrace",
    "AlreadyCompleted", "TooLarge", "Overloaded", "Forbidden", "StoreUnavailable",
    "InternalError", "OutcomedUnavailable", "OutcomedTimeout", "error_from_reply",
    "Profile", "TaskStats", "PendingTrace", "OutcomeResult", "Action", "RankItem", "RankResult",
    "DegradedWhy", "TASKS", "KINDS", "ERROR_CODES", "FAIL_OPEN_CODES", "SOCKET_ENV", "SYSTEM_SOCKET",
    "USER_SOCKET_NAME", "SOCKET_PATH_MAX", "DEFAULT_TIMEOUT", "TEXT_MAX",
]

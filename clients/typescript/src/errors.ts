/**
 * The errors the outcomed client throws.
 *
 * Two families, kept apart on purpose (as in the Python client):
 *
 * - {@link OutcomedError}: the daemon answered, and said no. `code` is one of
 *   the protocol's error codes, `message` the daemon's text for people. Each
 *   code has a class named after it: `bad_request` is {@link BadRequestError},
 *   `unknown_trace` {@link UnknownTraceError}, and so on.
 * - {@link OutcomedConnectionError}: no answer at all (no socket, connection
 *   refused or lost, a malformed reply), and its subclass
 *   {@link OutcomedTimeoutError} (no reply within `timeoutMs`). Whether the
 *   request took effect is then unknown. (Python: `OutcomedUnavailable`.)
 *
 * In fail-open mode the client returns `undefined` instead of throwing an
 * OutcomedConnectionError, and for the codes in {@link FAIL_OPEN_CODES}.
 */

/** An error reply from the daemon: `{code, message}`. */
export class OutcomedError extends Error {
  /** The protocol code this class stands for ("" for the base class). */
  static readonly CODE: string = "";
  /** The protocol's error code, e.g. "unknown_trace". */
  readonly code: string;

  /** `message` is the daemon's text (it names the bad field). */
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** `bad_request`: a missing, unknown or mistyped argument, a value out of range, an unknown task or kind. */
export class BadRequestError extends OutcomedError {
  static override readonly CODE = "bad_request";
}
/** `unknown_method`: the daemon has no such method (an older daemon). */
export class UnknownMethodError extends OutcomedError {
  static override readonly CODE = "unknown_method";
}
/** `unknown_trace`: the trace is not pending (never started, resolved, expired). */
export class UnknownTraceError extends OutcomedError {
  static override readonly CODE = "unknown_trace";
}
/** `duplicate_trace`: a client trace id pending for another model or task. */
export class DuplicateTraceError extends OutcomedError {
  static override readonly CODE = "duplicate_trace";
}
/** `already_completed`: a second `complete` for one trace. */
export class AlreadyCompletedError extends OutcomedError {
  static override readonly CODE = "already_completed";
}
/** `too_large`: the request was over the daemon's message limit; it closed the connection. */
export class TooLargeError extends OutcomedError {
  static override readonly CODE = "too_large";
}
/** `overloaded`: a limit is reached (pending traces, models, connections). */
export class OverloadedError extends OutcomedError {
  static override readonly CODE = "overloaded";
}
/** `forbidden`: the trace was started by another uid, or this uid may not connect. */
export class ForbiddenError extends OutcomedError {
  static override readonly CODE = "forbidden";
}
/**
 * `unavailable`: the daemon's database takes no writes; the change was not
 * recorded (reads still work). Not the daemon being unreachable: that is
 * {@link OutcomedConnectionError}.
 */
export class UnavailableError extends OutcomedError {
  static override readonly CODE = "unavailable";
}
/** `internal`: a bug in the daemon (it logged the details). */
export class InternalError extends OutcomedError {
  static override readonly CODE = "internal";
}

const BY_CODE: Record<string, new (code: string, message: string) => OutcomedError> = {};
for (const cls of [BadRequestError, UnknownMethodError, UnknownTraceError, DuplicateTraceError,
  AlreadyCompletedError, TooLargeError, OverloadedError, ForbiddenError, UnavailableError,
  InternalError]) {
  BY_CODE[cls.CODE] = cls;
}

/** Every error code of the protocol (version 1). */
export const ERROR_CODES: readonly string[] = Object.freeze(Object.keys(BY_CODE));

/**
 * Error replies that fail-open mode swallows like an unreachable daemon: the
 * daemon cannot serve now, and the router should carry on without it.
 */
export const FAIL_OPEN_CODES: ReadonlySet<string> = new Set(["overloaded", "unavailable", "internal"]);

/** The error for a reply's `error` value `{code, message}` (an unknown code: a plain OutcomedError). */
export function errorFromReply(error: unknown): OutcomedError {
  let code: unknown;
  let message: unknown;
  if (error !== null && typeof error === "object") {
    code = (error as Record<string, unknown>).code;
    message = (error as Record<string, unknown>).message;
  }
  if (typeof code !== "string") {
    return new InternalError("internal", `malformed error in the daemon's reply: ${JSON.stringify(error)}`);
  }
  const cls = Object.prototype.hasOwnProperty.call(BY_CODE, code) ? BY_CODE[code]! : OutcomedError;
  return new cls(code, typeof message === "string" ? message : "");
}

/**
 * The daemon could not be reached or did not answer: no socket, connection
 * refused or closed, a malformed reply. The request may or may not have
 * taken effect.
 */
export class OutcomedConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No reply within the client's `timeoutMs`. */
export class OutcomedTimeoutError extends OutcomedConnectionError {}

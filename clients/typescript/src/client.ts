/**
 * The outcomed client: msgpack-RPC over the daemon's Unix socket, one
 * connection, many requests in flight (replies matched by msgid).
 */
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { decodeMultiStream, Encoder } from "@msgpack/msgpack";

import {
  errorFromReply, FAIL_OPEN_CODES, OutcomedConnectionError, OutcomedError, OutcomedTimeoutError,
} from "./errors.js";
import { checkSocketPath, resolveSocket, SOCKET_ENV } from "./socket.js";
import type {
  Action, CompleteArgs, FailArgs, ForgetArgs, ImportArgs, ImportResult, OutcomeActionsArgs,
  OutcomeArgs, OutcomeResult, PendingTrace, Profile, QueryArgs, QueryPendingArgs, RankArgs,
  RankResult, ScanResult, StartArgs, Stats,
} from "./types.js";

/** Milliseconds one call may take in all (connect, send, reply), by default. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** The daemon's default limit on `reason` and `error` text, in bytes. */
export const TEXT_MAX = 4096;

const MSGID_MAX = 0xffffffff;
const RETRYABLE_WRITE = new Set(["EPIPE", "ECONNRESET", "ENOTCONN", "ESHUTDOWN",
  "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END"]);
const RETRYABLE_CONNECT = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);

export interface ClientOptions<F extends boolean = boolean> {
  /** The daemon's socket; default: {@link resolveSocket} at each (re)connection. */
  socketPath?: string;
  /**
   * Milliseconds one call may take in all (connect, send, reply); default
   * 5000; `0` or `Infinity`: no limit. A strict client that cannot connect
   * keeps trying (with backoff) until then, so a call made while the daemon
   * restarts waits for it.
   */
  timeoutMs?: number;
  /**
   * When the daemon is unreachable, slower than `timeoutMs`, or answers
   * `overloaded`/`unavailable`/`internal`, calls resolve to `undefined`
   * instead of throwing; {@link Client.failOpenCount} counts them, and no
   * connection is tried again before a backoff (`backoffInitialMs`, doubled
   * after each failure up to `backoffMaxMs`; a reply resets it).
   */
  failOpen?: F;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Told once when the daemon stops answering (fail-open), once when it is back. */
  onStateChange?: (state: "unavailable" | "available", error?: Error) => void;
}

/** `T`, or `T | undefined` for a fail-open client. */
export type Maybe<F extends boolean, T> = F extends false ? T : T | undefined;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
  sock: net.Socket | undefined;
  written: boolean;
}

interface Conn {
  sock: net.Socket;
  fresh: boolean;       // no reply read on it yet
  ended: boolean;       // the daemon closed its side (or it errored)
}

const NO_DEADLINE = Number.POSITIVE_INFINITY;

/**
 * A connection to outcomed, opened on first use and reopened when lost.
 *
 * Every method sends one request and resolves with its result, or sends a
 * notification with `notify: true` (written, never answered). Requests may
 * be made concurrently: they are pipelined on the one connection and the
 * daemon answers them in order. Arguments are camelCase and sent as the
 * protocol's snake_case names (`costWeight` → `cost_weight`); results are
 * the daemon's, as it sends them.
 */
export class Client<F extends boolean = false> {
  readonly timeoutMs: number;
  readonly failOpen: F;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Calls that resolved to undefined in fail-open mode instead of throwing. */
  failOpenCount = 0;
  /** The last failure fail-open mode swallowed. */
  lastError: Error | undefined;
  /** The socket path of the current (or last) connection. */
  socketPath: string | undefined;

  private readonly explicitPath: string | undefined;
  private readonly onStateChange: ClientOptions["onStateChange"];
  private readonly encoder = new Encoder({ ignoreUndefined: true });
  private conn: Conn | undefined;
  private connecting: Promise<Conn> | undefined;
  private readonly inflight = new Map<number, Pending>();
  private nextMsgid = 1;
  private backoff = 0;          // ms; 0: no failure since the last reply
  private retryAt = 0;          // performance.now() before which no connection is tried (fail-open)
  private failing = false;

  constructor(options: ClientOptions<F> = {}) {
    this.explicitPath = options.socketPath !== undefined ? checkSocketPath(options.socketPath) : undefined;
    if (this.explicitPath === undefined && process.env[SOCKET_ENV]) {
      checkSocketPath(process.env[SOCKET_ENV]!, ` from $${SOCKET_ENV}`);     // fail early
    }
    const t = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(t >= 0)) throw new RangeError("timeoutMs must be >= 0 (0: no limit)");
    this.timeoutMs = t === 0 ? Number.POSITIVE_INFINITY : t;
    this.failOpen = (options.failOpen ?? false) as F;
    this.backoffInitialMs = options.backoffInitialMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 10_000;
    this.onStateChange = options.onStateChange;
    this.socketPath = this.explicitPath;
  }

  /** Whether a connection is open (the daemon may still have closed it). */
  get connected(): boolean {
    return this.conn !== undefined && !this.conn.ended;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Connect now rather than on first use. Throws when the daemon cannot be reached, fail-open or not. */
  async connect(): Promise<void> {
    await this.socket(this.deadline(), true);
  }

  /** Close the connection; requests in flight are rejected. The next call opens a new one. */
  close(): void {
    const c = this.conn;
    this.conn = undefined;
    if (c) this.lost(c, new OutcomedConnectionError("the client closed the connection"), true);
  }

  // ---- the protocol's methods

  /**
   * A call began. Resolves to its trace id: the daemon's (`t-...`), or
   * `traceId` when given. With `notify: true` nothing is answered, so the
   * client picks the id when none is given (`ts-` and 32 hex digits).
   */
  async start(args: StartArgs): Promise<Maybe<F, string>> {
    const { notify, ...rest } = args;
    if (notify) {
      const traceId = rest.traceId ?? newTraceId();
      const ok = await this.sendNotify("start", wire({ ...rest, traceId }));
      return (ok ? traceId : undefined) as Maybe<F, string>;
    }
    const r = await this.call<{ trace_id: string }>("start", wire(rest));
    return r?.trace_id as Maybe<F, string>;
  }

  /** The call returned after `latencyMs`. The trace stays pending until its outcome. Resolves to the trace id. */
  async complete(args: Omit<CompleteArgs, "traceId"> & { traceId: string | undefined }): Promise<Maybe<F, string>> {
    return this.traceCall("complete", args);
  }

  /** The call failed (`error`: why, ≤ 4096 bytes). Resolves the trace; resolves to its id. */
  async fail(args: Omit<FailArgs, "traceId"> & { traceId: string | undefined }): Promise<Maybe<F, string>> {
    return this.traceCall("fail", args);
  }

  /**
   * What became of a call. Single form `{traceId, kind, confidence}`:
   * resolves to `{trace_id, kind, quality, success}`. Sequence form
   * `{actions}`: the daemon infers each action's outcome from the next;
   * resolves to the results of the traces resolved. With `notify: true`,
   * undefined.
   */
  outcome(args: Omit<OutcomeArgs, "traceId"> & { traceId: string | undefined }): Promise<Maybe<F, OutcomeResult>>;
  outcome(args: OutcomeActionsArgs): Promise<Maybe<F, OutcomeResult[]>>;
  async outcome(args: (Omit<OutcomeArgs, "traceId"> & { traceId: string | undefined }) | OutcomeActionsArgs): Promise<unknown> {
    const { notify, ...rest } = args as OutcomeArgs & OutcomeActionsArgs;
    if ("actions" in rest && rest.actions !== undefined) {
      const params = wire({ ...rest, actions: rest.actions.map((a: Action) => wire(a)) });
      if (notify) {
        await this.sendNotify("outcome", params);
        return undefined;
      }
      const r = await this.call<{ results: OutcomeResult[] }>("outcome", params);
      return r?.results;
    }
    if (rest.traceId === undefined && this.failOpen) return undefined;
    if (notify) {
      await this.sendNotify("outcome", wire(rest));
      return undefined;
    }
    return this.call<OutcomeResult>("outcome", wire(rest));
  }

  /**
   * The profiles, sorted by model id: every model, only `model` (empty when
   * unknown), or the models with stats for `task` (their `tasks` then hold
   * only it).
   */
  async query(args: QueryArgs = {}): Promise<Maybe<F, Profile[]>> {
    const r = await this.call<{ profiles: Profile[] }>("query", wire(args));
    return r?.profiles as Maybe<F, Profile[]>;
  }

  /** The pending traces, oldest first (`query` with `pending: true`). */
  async queryPending(args: QueryPendingArgs = {}): Promise<Maybe<F, PendingTrace[]>> {
    const r = await this.call<{ pending: PendingTrace[] }>("query", wire({ pending: true, ...args }));
    return r?.pending as Maybe<F, PendingTrace[]>;
  }

  /** Which model for `task` now: `{task, strategy, ranked (best first), excluded}`. */
  async rank(args: RankArgs): Promise<Maybe<F, RankResult>> {
    return this.call<RankResult>("rank", wire(args)) as Promise<Maybe<F, RankResult>>;
  }

  /** Remove a model's profile (or, on a daemon with domains, one task's or domain's cell); resolves to whether it had one. */
  async forget(args: string | ForgetArgs): Promise<Maybe<F, boolean>> {
    const r = await this.call<{ forgotten: boolean }>("forget", wire(typeof args === "string" ? { model: args } : args));
    return r?.forgotten as Maybe<F, boolean>;
  }

  /** Load profiles (the shape `query` answers), merged (default) or replacing the daemon's. */
  async import(args: ImportArgs): Promise<Maybe<F, ImportResult>> {
    return this.call<ImportResult>("import", wire(args)) as Promise<Maybe<F, ImportResult>>;
  }

  /** The same as {@link Client.import}. */
  importProfiles(args: ImportArgs): Promise<Maybe<F, ImportResult>> {
    return this.import(args);
  }

  /** The daemon's version (a cheap liveness check). */
  async ping(): Promise<Maybe<F, string>> {
    const r = await this.call<{ version: string }>("ping", {});
    return r?.version as Maybe<F, string>;
  }

  /** The daemon's counters and configuration. */
  async stats(): Promise<Maybe<F, Stats>> {
    return this.call<Stats>("stats", {}) as Promise<Maybe<F, Stats>>;
  }

  /** Run a scan of the watched repositories; resolves when it is done. */
  async scan(args: { notify?: boolean } = {}): Promise<Maybe<F, ScanResult>> {
    if (args.notify) {
      await this.sendNotify("scan", {});
      return undefined as Maybe<F, ScanResult>;
    }
    return this.call<ScanResult>("scan", {}) as Promise<Maybe<F, ScanResult>>;
  }

  // ---- timing one call

  /**
   * Report one inference call around `fn`: `start` before it, then
   * `complete` with the time it took and the tokens set with
   * `call.tokens()`, or `fail` with the error's text when it throws (the
   * error goes on). Resolves to what `fn` resolved to.
   */
  async track<T>(args: StartArgs, fn: (call: TrackedCall) => Promise<T> | T): Promise<T> {
    const traceId = await this.start(args);
    const call = new TrackedCall(traceId);
    const t0 = performance.now();
    let value: T;
    try {
      value = await fn(call);
    } catch (e) {
      call.latencyMs = performance.now() - t0;
      if (traceId !== undefined) {
        try {
          await this.fail({ traceId, error: cleanText(errorText(e)), notify: args.notify });
        } catch {
          // never let the report hide the call's own error
        }
      }
      throw e;
    }
    call.latencyMs = performance.now() - t0;
    if (traceId !== undefined) {
      if (call.failedWith !== undefined) {
        await this.fail({ traceId, error: call.failedWith, notify: args.notify });
      } else {
        await this.complete({ traceId, latencyMs: call.latencyMs, inputTokens: call.inputTokens,
          outputTokens: call.outputTokens, output: call.output, notify: args.notify });
      }
    }
    return value;
  }

  // ---- raw access

  /** Send any request with wire-named arguments; resolves to its result (undefined when failing open). */
  request<T = unknown>(method: string, args: Record<string, unknown> = {}): Promise<Maybe<F, T>> {
    return this.call<T>(method, args) as Promise<Maybe<F, T>>;
  }

  /** Send any notification; resolves to false when it could not be written (fail-open). */
  notify(method: string, args: Record<string, unknown> = {}): Promise<boolean> {
    return this.sendNotify(method, args);
  }

  // ---- internals

  private async traceCall(method: "complete" | "fail", args: { traceId: string | undefined; notify?: boolean }): Promise<Maybe<F, string>> {
    const { notify, ...rest } = args;
    if (rest.traceId === undefined && this.failOpen) return undefined as Maybe<F, string>;
    if (notify) {
      const ok = await this.sendNotify(method, wire(rest));
      return (ok ? rest.traceId : undefined) as Maybe<F, string>;
    }
    const r = await this.call<{ trace_id: string }>(method, wire(rest));
    return r?.trace_id as Maybe<F, string>;
  }

  private async call<T>(method: string, args: Record<string, unknown>): Promise<T | undefined> {
    try {
      const result = (await this.roundtrip(method, args)) as T;
      this.recovered();
      return result;
    } catch (e) {
      if (e instanceof OutcomedConnectionError) return this.failedOpen(e);
      if (e instanceof OutcomedError) {
        if (this.failOpen && FAIL_OPEN_CODES.has(e.code)) return this.failedOpen(e);
        this.recovered();        // it answered: the connection is fine
      }
      throw e;
    }
  }

  private async sendNotify(method: string, args: Record<string, unknown>): Promise<boolean> {
    const deadline = this.deadline();
    const data = this.encoder.encode([2, method, Object.keys(args).length ? [args] : []]);
    try {
      const conn = this.usable() ?? await this.socket(deadline, false);
      await this.write(conn, data, deadline);
      return true;
    } catch (e) {
      if (e instanceof OutcomedConnectionError) {
        this.failedOpen(e);
        return false;
      }
      throw e;
    }
  }

  private failedOpen(e: Error): undefined {
    if (!this.failOpen) throw e;
    this.failOpenCount++;
    this.lastError = e;
    if (!this.failing) {
      this.failing = true;
      this.onStateChange?.("unavailable", e);
    }
    return undefined;
  }

  private recovered(): void {
    this.backoff = 0;
    this.retryAt = 0;
    if (this.failing) {
      this.failing = false;
      this.onStateChange?.("available");
    }
  }

  private deadline(): number {
    return Number.isFinite(this.timeoutMs) ? performance.now() + this.timeoutMs : NO_DEADLINE;
  }

  /** A transport failure: in fail-open mode, push back the next connection attempt. */
  private transportFailed(): void {
    if (!this.failOpen) return;
    this.backoff = this.backoff ? Math.min(this.backoff * 2, this.backoffMaxMs) : this.backoffInitialMs;
    this.retryAt = performance.now() + this.backoff;
  }

  private async roundtrip(method: string, args: Record<string, unknown>): Promise<unknown> {
    const deadline = this.deadline();
    const params = Object.keys(args).length ? [args] : [];
    for (let attempt = 1; ; attempt++) {
      // Written at once when connected, so that requests made together are
      // pipelined in the order they were made.
      const conn = this.usable() ?? await this.socket(deadline, false);
      const msgid = this.nextMsgid;
      this.nextMsgid = msgid >= MSGID_MAX ? 1 : msgid + 1;
      const data = this.encoder.encode([0, msgid, method, params]);
      const outcome = await new Promise<{ retry: true } | { value: unknown }>((resolve, reject) => {
        const p: Pending = {
          resolve: (value) => resolve({ value }), reject, timer: undefined, sock: conn.sock, written: false,
        };
        this.inflight.set(msgid, p);
        conn.sock.ref();                               // keep the process alive for the reply
        if (deadline !== NO_DEADLINE) {
          p.timer = setTimeout(() => {
            if (this.inflight.get(msgid) !== p) return;
            this.inflight.delete(msgid);
            reject(new OutcomedTimeoutError(`no reply from outcomed to '${method}' within ${this.timeoutMs} ms`));
            // A hung daemon: drop the connection (the requests behind this
            // one wait in vain too), and back off when failing open.
            this.transportFailed();
            this.lost(conn, new OutcomedConnectionError("the connection was closed after a request timed out"), true);
          }, Math.max(0, deadline - performance.now()));
        }
        conn.sock.write(data, (err) => {
          if (this.inflight.get(msgid) !== p) return;     // answered, timed out or rejected already
          if (!err) {
            p.written = true;
            if (conn.ended) this.lost(conn, new OutcomedConnectionError("outcomed closed the connection before replying"), false);
            return;
          }
          this.inflight.delete(msgid);
          clearTimeout(p.timer);
          const code = (err as NodeJS.ErrnoException).code ?? "";
          if (attempt === 1 && !conn.fresh && RETRYABLE_WRITE.has(code)) {
            // The daemon closed this connection before reading the request
            // (a restart): it was not processed; send it on a new one.
            this.dropConn(conn);
            resolve({ retry: true });
            return;
          }
          this.transportFailed();
          reject(new OutcomedConnectionError(`sending to outcomed: ${err.message}`, { cause: err }));
        });
      });
      if ("value" in outcome) return outcome.value;
    }
  }

  private write(conn: Conn, data: Uint8Array, deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (deadline !== NO_DEADLINE) {
        timer = setTimeout(() => {
          reject(new OutcomedTimeoutError(`writing to outcomed: not done within ${this.timeoutMs} ms`));
          this.transportFailed();
          this.lost(conn, new OutcomedConnectionError("the connection was closed after a write timed out"), true);
        }, Math.max(0, deadline - performance.now()));
      }
      conn.sock.write(data, (err) => {
        clearTimeout(timer);
        if (err) {
          this.transportFailed();
          reject(new OutcomedConnectionError(`sending to outcomed: ${err.message}`, { cause: err }));
        } else {
          resolve();
        }
      });
    });
  }

  private usable(): Conn | undefined {
    return this.conn && !this.conn.ended && !this.conn.sock.destroyed ? this.conn : undefined;
  }

  /** The open connection, or a new one. */
  private socket(deadline: number, force: boolean): Promise<Conn> {
    const usable = this.usable();
    if (usable) return Promise.resolve(usable);
    if (!this.connecting) {
      this.connecting = this.open(deadline, force).finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async open(deadline: number, force: boolean): Promise<Conn> {
    if (this.failOpen && !force && performance.now() < this.retryAt) {
      throw new OutcomedConnectionError(`outcomed was unavailable; waiting ` +
        `${Math.ceil(this.retryAt - performance.now())} ms more before reconnecting`);
    }
    let wait = this.backoffInitialMs;
    for (;;) {
      let path: string;
      try {
        path = this.explicitPath ?? resolveSocket();
      } catch (e) {
        if (!(e instanceof OutcomedConnectionError)) throw e;
        if (!this.failOpen && performance.now() < deadline) {
          await sleep(Math.min(wait, deadline - performance.now()));
          wait = Math.min(wait * 2, this.backoffMaxMs);
          continue;
        }
        this.transportFailed();
        throw e;
      }
      this.socketPath = path;
      try {
        const sock = await connectOnce(path, deadline, this.timeoutMs);
        return this.adopt(sock);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? "";
        if (!this.failOpen && RETRYABLE_CONNECT.has(code) && performance.now() < deadline) {
          // A strict client waits for a restarting daemon, trying again
          // until its deadline (the last try at the deadline).
          await sleep(Math.min(wait, deadline - performance.now()));
          wait = Math.min(wait * 2, this.backoffMaxMs);
          continue;
        }
        this.transportFailed();
        if (e instanceof OutcomedConnectionError) throw e;
        throw new OutcomedConnectionError(`cannot connect to outcomed at ${path}: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  private adopt(sock: net.Socket): Conn {
    const conn: Conn = { sock, fresh: true, ended: false };
    this.conn = conn;
    sock.on("error", () => { /* reported by the reader below */ });
    sock.on("end", () => { conn.ended = true; });
    sock.on("close", () => {
      conn.ended = true;
      if (this.lost(conn, new OutcomedConnectionError("outcomed closed the connection before replying"), false)) {
        this.transportFailed();
      }
    });
    void this.read(conn);
    // A client that only waits for outcomed must not keep the process alive
    // by itself: the socket holds the loop only while requests are in flight.
    this.updateRef(conn);
    return conn;
  }

  private async read(conn: Conn): Promise<void> {
    try {
      for await (const msg of decodeMultiStream(conn.sock)) {
        this.onMessage(conn, msg);
      }
    } catch (e) {
      if (this.lost(conn, new OutcomedConnectionError(`reading from outcomed: ${(e as Error).message}`, { cause: e }), true)) {
        this.transportFailed();
      }
      return;
    }
    if (this.lost(conn, new OutcomedConnectionError("outcomed closed the connection before replying"), false)) {
      this.transportFailed();
    }
  }

  private onMessage(conn: Conn, msg: unknown): void {
    if (!Array.isArray(msg) || msg.length !== 4 || msg[0] !== 1 || typeof msg[1] !== "number") {
      this.transportFailed();
      this.lost(conn, new OutcomedConnectionError(
        `not a msgpack-RPC reply from outcomed: ${JSON.stringify(msg)?.slice(0, 200)}`), true);
      return;
    }
    const [, msgid, error, result] = msg as [1, number, unknown, unknown];
    conn.fresh = false;
    if (msgid === 0 && error != null) {
      // A connection-level error (too_large, overloaded, forbidden): the
      // replies due before it went out first, so it is the oldest request's;
      // the daemon closes the connection after it.
      const err = errorFromReply(error);
      const first = this.oldest(conn);
      if (first) {
        this.inflight.delete(first[0]);
        clearTimeout(first[1].timer);
        first[1].reject(err);
      }
      this.lost(conn, new OutcomedConnectionError(`outcomed closed the connection after '${err.code}'`), false);
      return;
    }
    const p = this.inflight.get(msgid);
    if (!p || p.sock !== conn.sock) return;        // a late reply to a request that timed out
    this.inflight.delete(msgid);
    clearTimeout(p.timer);
    if (error != null) p.reject(errorFromReply(error));
    else p.resolve(result);
    this.updateRef(conn);
  }

  private oldest(conn: Conn): [number, Pending] | undefined {
    for (const entry of this.inflight) {
      if (entry[1].sock === conn.sock) return entry;
    }
    return undefined;
  }

  private updateRef(conn: Conn): void {
    if (conn.sock.destroyed) return;
    let busy = false;
    for (const p of this.inflight.values()) {
      if (p.sock === conn.sock) { busy = true; break; }
    }
    if (busy) conn.sock.ref();
    else conn.sock.unref();
  }

  /** Forget conn as the current connection and close it (no rejections). */
  private dropConn(conn: Conn): void {
    conn.ended = true;
    if (this.conn === conn) this.conn = undefined;
    conn.sock.destroy();
  }

  /** conn is gone: reject the requests written on it (all of them when `all`); whether any was. */
  private lost(conn: Conn, error: Error, all: boolean): boolean {
    conn.ended = true;
    if (this.conn === conn) this.conn = undefined;
    if (!conn.sock.destroyed) conn.sock.destroy();
    let any = false;
    for (const [msgid, p] of this.inflight) {
      if (p.sock !== conn.sock) continue;
      // A request whose write has not completed is settled by its write
      // callback (which may send it again on a new connection).
      if (!all && !p.written) continue;
      this.inflight.delete(msgid);
      clearTimeout(p.timer);
      p.reject(error);
      any = true;
    }
    return any;
  }
}

/** One call being timed by {@link Client.track}. */
export class TrackedCall {
  inputTokens = 0;
  outputTokens = 0;
  /** The generated text, reported with `complete` (code traces keep it). */
  output: string | undefined;
  /** How long the call took, once it has ended. */
  latencyMs: number | undefined;
  /** Set by {@link TrackedCall.fail}. */
  failedWith: string | undefined;

  constructor(readonly traceId: string | undefined) {}

  /** The call's token counts, reported when it ends. */
  tokens(inputTokens: number, outputTokens: number): void {
    this.inputTokens = inputTokens;
    this.outputTokens = outputTokens;
  }

  /** Report the call as failed when it ends, without throwing (an error the router handled). */
  fail(error: string): void {
    this.failedWith = cleanText(error);
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** camelCase → snake_case: `costWeight` → `cost_weight`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

/** The named arguments, as the wire names them, without the undefined ones. */
export function wire(args: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if (v !== undefined) out[snakeCase(k)] = v;
  }
  return out;
}

/** text made acceptable to the daemon: no NUL, at most `limit` bytes of UTF-8 (cut at a character boundary). */
export function cleanText(text: string, limit = TEXT_MAX): string {
  let s = text.replace(/\0/g, "\\0");
  const buf = Buffer.from(s, "utf8");
  if (buf.length <= limit) return s;
  let end = limit;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;     // not inside a character
  s = buf.subarray(0, end).toString("utf8");
  return s;
}

/** A short description of a thrown value: "Name: message". */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message ? `${e.name}: ${e.message}` : e.name;
  return String(e);
}

/** A trace id chosen by the client (for notifications): 128 random bits in the contract's alphabet. */
export function newTraceId(): string {
  return "ts-" + randomBytes(16).toString("hex");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function connectOnce(path: string, deadline: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    let timer: NodeJS.Timeout | undefined;
    const onError = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    if (deadline !== NO_DEADLINE) {
      timer = setTimeout(() => {
        sock.removeListener("error", onError);
        sock.on("error", () => {});
        sock.destroy();
        reject(new OutcomedTimeoutError(`connecting to outcomed at ${path}: not done within ${timeoutMs} ms`));
      }, Math.max(0, deadline - performance.now()));
    }
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeListener("error", onError);
      resolve(sock);
    });
  });
}

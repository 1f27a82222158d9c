/**
 * The client against a real outcomed: every method, pipelining, the typed
 * errors, reconnecting, fail-open, notifications, the socket's resolution.
 * Each test starts its own daemon (test/daemon.ts).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { decodeMultiStream, encode } from "@msgpack/msgpack";

import {
  AlreadyCompletedError, BadRequestError, Client, type ClientOptions, DuplicateTraceError,
  ERROR_CODES, errorFromReply, InternalError, OutcomedConnectionError, OutcomedError,
  OutcomedTimeoutError, OverloadedError, resolveSocket, SYSTEM_SOCKET, TooLargeError,
  UnavailableError, UnknownMethodError, UnknownTraceError,
} from "outcomed";
import { Daemon, sleep, waitFor } from "./daemon.js";

async function setup(t: TestContext, config = "") {
  const d = await Daemon.start(config);
  t.after(() => d.cleanup());
  const c = new Client({ socketPath: d.socketPath });
  t.after(() => c.close());
  return { d, c };
}

function client<F extends boolean = false>(t: TestContext, options: ClientOptions<F>): Client<F> {
  const c = new Client<F>(options);
  t.after(() => c.close());
  return c;
}

async function profile(c: Client<boolean>, model: string) {
  const ps = await c.query({ model });
  return ps?.[0];
}

const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

// ---------------------------------------------------------------------------
// Every method

test("ping and stats on one connection", async (t) => {
  const { c } = await setup(t);
  assert.equal(c.connected, false);                 // opened on first use
  const version = await c.ping();
  assert.match(version, /^\d+\.\d+\.\d+/);
  const s = await c.stats();
  assert.equal(s.version, version);
  for (const k of ["uptime_s", "requests_total", "errors_total", "notify_errors_total", "pending", "profiles"]) {
    assert.ok(k in s, k);
  }
  assert.equal(s.connections, 1);
  assert.equal(c.connected, true);
});

test("start, complete, outcome, query, queryPending", async (t) => {
  const { c } = await setup(t);
  const id = await c.start({ model: "m1", task: "code", reason: "cheapest fit" });
  assert.match(id, /^t-[0-9a-f]+-\d+$/);
  assert.equal(await c.complete({ traceId: id, latencyMs: 812, inputTokens: 900, outputTokens: 240 }), id);
  const [p, ...rest] = await c.queryPending();
  assert.deepEqual(rest, []);
  assert.deepEqual([p!.trace_id, p!.model, p!.task, p!.reason, p!.completed, p!.latency_ms, p!.input_tokens, p!.output_tokens],
    [id, "m1", "code", "cheapest fit", true, 812, 900, 240]);
  assert.deepEqual(await c.outcome({ traceId: id, kind: "accepted", confidence: 0.9 }),
    { trace_id: id, kind: "accepted", quality: 0.9, success: true });
  assert.deepEqual(await c.queryPending(), []);
  const [prof] = await c.query();
  assert.equal(prof!.model, "m1");
  assert.deepEqual([prof!.total_calls, prof!.success_count, prof!.fail_count, prof!.total_latency_ms], [1, 1, 0, 812]);
  near(prof!.ema_quality, 0.5 * 0.8 + 0.9 * 0.2);
  assert.equal(prof!.tasks.code!.calls, 1);
});

test("float latency is rounded; a client trace id is idempotent", async (t) => {
  const { c } = await setup(t);
  const id = await c.start({ model: "m1", task: "generate" });
  await c.complete({ traceId: id, latencyMs: 12.5, output: "some text" });
  assert.equal((await c.queryPending())[0]!.latency_ms, 13);
  assert.equal(await c.start({ model: "m1", task: "embed", traceId: "router1:42" }), "router1:42");
  assert.equal(await c.start({ model: "m1", task: "embed", traceId: "router1:42" }), "router1:42");
  assert.equal((await c.queryPending({ task: "embed" })).length, 1);
});

test("fail", async (t) => {
  const { c } = await setup(t);
  const id = await c.start({ model: "m1", task: "generate" });
  assert.equal(await c.fail({ traceId: id, error: "timeout" }), id);
  const prof = await profile(c, "m1");
  assert.deepEqual([prof!.fail_count, prof!.success_count], [1, 0]);
  near(prof!.ema_quality, 0.4);
  assert.deepEqual(await c.queryPending(), []);
  const id2 = await c.start({ model: "m1", task: "generate" });
  assert.equal(await c.fail({ traceId: id2 }), id2);               // error is optional
});

test("outcome kinds, and the actions form", async (t) => {
  const { c } = await setup(t);
  for (const [kind, conf, quality, success] of [["rejected", 0.5, 0.15, false], ["inconclusive", undefined, null, null],
    ["applied", undefined, 1.0, true]] as const) {
    const id = await c.start({ model: "m1", task: "code" });
    const r = await c.outcome({ traceId: id, kind, confidence: conf });
    assert.equal(r.kind, kind);
    if (quality === null) assert.equal(r.quality, null);
    else near(r.quality!, quality);
    assert.equal(r.success, success);
  }
  const a = await c.start({ model: "m1", task: "code" });
  const b = await c.start({ model: "m1", task: "code" });
  const x = await c.start({ model: "m2", task: "code" });
  const results = await c.outcome({ actions: [
    { traceId: a, success: true, confidence: 1.0, output: "def f(): pass" },
    { traceId: b, success: true, confidence: 0.5, output: "x = 1" },
    { traceId: "", success: false, confidence: 1.0 },
    { traceId: x, success: false, confidence: 0.5 },
    { traceId: "never-started", success: true, confidence: 1.0, output: "y" },
  ] });
  assert.deepEqual(results.map((r) => [r.trace_id, r.kind]),
    [[a, "accepted"], [b, "accepted_with_edits"], [x, "rejected"]]);
  near(results[1]!.quality!, 0.49 * 0.5);
  near(results[2]!.quality!, 0.15);
  assert.deepEqual(await c.queryPending(), []);
  assert.deepEqual(await c.outcome({ actions: [] }), []);
});

test("query and queryPending filters", async (t) => {
  const { c } = await setup(t);
  for (const [model, task] of [["b", "code"], ["a", "embed"], ["a", "code"]] as const) {
    await c.complete({ traceId: await c.start({ model, task }), latencyMs: 10 });
  }
  assert.deepEqual((await c.query()).map((p) => p.model), ["a", "b"]);
  assert.deepEqual(await c.query({ model: "nope" }), []);
  const [a] = await c.query({ model: "a", task: "embed" });
  assert.deepEqual(Object.keys(a!.tasks), ["embed"]);
  // degraded = fail_count > success_count + degrade_threshold (degradeThreshold → degrade_threshold)
  await c.fail({ traceId: await c.start({ model: "a", task: "code" }) });
  assert.equal((await profile(c, "a"))!.degraded, false);
  assert.equal((await c.query({ model: "a", degradeThreshold: 0 }))[0]!.degraded, true);

  const ids = (await c.queryPending()).map((p) => p.trace_id);
  assert.equal(ids.length, 3);
  assert.deepEqual((await c.queryPending({ limit: 2 })).map((p) => p.trace_id), ids.slice(0, 2));
  assert.deepEqual((await c.queryPending({ model: "b" })).map((p) => p.model), ["b"]);
  assert.deepEqual((await c.queryPending({ task: "embed" })).map((p) => p.task), ["embed"]);
});

test("forget", async (t) => {
  const { c } = await setup(t);
  await c.outcome({ traceId: await c.start({ model: "m1", task: "generate" }), kind: "accepted", confidence: 1 });
  await c.outcome({ traceId: await c.start({ model: "m2", task: "generate" }), kind: "accepted", confidence: 1 });
  assert.equal(await c.forget("m1"), true);
  assert.equal(await c.forget({ model: "m2" }), true);
  assert.deepEqual(await c.query(), []);
  assert.equal(await c.forget("m1"), false);
});

test("rank", async (t) => {
  const { c } = await setup(t);
  for (const [model, kind] of [["good", "accepted"], ["bad", "rejected"]] as const) {
    await c.outcome({ traceId: await c.start({ model, task: "code" }), kind, confidence: 1.0 });
  }
  // The daemon's default, kg: the posterior mean (Beta(2, 1), Beta(1, 2)).
  let r = await c.rank({ task: "code" });
  assert.deepEqual([r.task, r.strategy], ["code", "kg"]);
  assert.deepEqual(r.ranked.map((i) => [i.model, i.explore]), [["good", false], ["bad", false]]);
  near(r.ranked[0]!.mean, 2 / 3);
  r = await c.rank({ task: "code", strategy: "ema" });
  assert.deepEqual(r.ranked.map((i) => [i.model, i.prior]), [["good", false], ["bad", false]]);
  near(r.ranked[0]!.score, 0.6);
  near(r.ranked[1]!.score, 0.4);
  r = await c.rank({ task: "code", strategy: "ema", candidates: ["bad", "new", "good"] });
  assert.deepEqual(r.ranked.map((i) => [i.model, i.prior]), [["good", false], ["new", true], ["bad", false]]);
  r = await c.rank({ task: "code", strategy: "ema", degradeThreshold: 0 });
  assert.deepEqual([r.ranked.map((i) => i.model), r.excluded], [["good"], ["bad"]]);
  r = await c.rank({ task: "code", strategy: "ema", degradeThreshold: 0, excludeDegraded: false });
  assert.deepEqual(r.ranked.map((i) => i.model), ["good", "bad"]);
  for (const strategy of ["mean", "lcb", "thompson"] as const) {
    r = await c.rank({ task: "code", strategy, latencyWeight: 0.5, costWeight: 1, seed: 7 });
    assert.deepEqual([r.strategy, r.ranked.length], [strategy, 2]);
  }
  await assert.rejects(c.rank({ task: "code", strategy: "dice" }), BadRequestError);
});

test("import: a query's profiles merged and replaced", async (t) => {
  const { c } = await setup(t);
  await c.complete({ traceId: await c.start({ model: "m1", task: "code" }), latencyMs: 100 });
  const profiles = await c.query();
  assert.equal(await c.forget("m1"), true);
  let r = await c.import({ profiles });
  assert.deepEqual(r, { imported: 1, created: 1, cells: 0, cells_created: 0, mode: "merge" });
  assert.equal((await profile(c, "m1"))!.total_calls, 1);
  r = await c.import({ profiles });                       // merged: counts add
  assert.deepEqual([r.created, (await profile(c, "m1"))!.total_calls], [0, 2]);
  r = await c.importProfiles({ profiles, mode: "replace" });
  assert.deepEqual([r.mode, (await profile(c, "m1"))!.total_calls], ["replace", 1]);
  await assert.rejects(c.import({ profiles: [{ model: "x", nonsense: 1 }] }), BadRequestError);
});

test("scan with no watched repository", async (t) => {
  const { c } = await setup(t);
  const r = await c.scan();
  assert.deepEqual([r.repos, r.judged], [0, []]);
  assert.equal(typeof r.duration_ms, "number");
  assert.equal((await c.stats()).scans_total, 1);
});

test("notifications: fire and forget", async (t) => {
  const { c } = await setup(t);
  const id = await c.start({ model: "n1", task: "code", reason: "r", notify: true });
  assert.match(id, /^ts-[0-9a-f]{32}$/);
  assert.equal(await c.start({ model: "n1", task: "embed", traceId: "mine:1", notify: true }), "mine:1");
  assert.equal(await c.complete({ traceId: id, latencyMs: 40, inputTokens: 5, outputTokens: 6, notify: true }), id);
  assert.equal(await c.outcome({ traceId: id, kind: "accepted", confidence: 1.0, notify: true }), undefined);
  assert.equal(await c.fail({ traceId: "mine:1", error: "x", notify: true }), "mine:1");
  const prof = await waitFor(async () => {
    const p = await profile(c, "n1");
    return p && p.fail_count === 1 && p.success_count === 1 ? p : undefined;
  });
  assert.ok(prof, "the notifications never showed in query");
  assert.deepEqual([prof.total_calls, prof.total_latency_ms], [1, 40]);
  assert.deepEqual(await c.queryPending(), []);
  assert.equal((await c.stats()).notify_errors_total, 0);
  // A notification the daemon refuses is dropped silently, and counted.
  assert.equal(await c.complete({ traceId: "nope", latencyMs: 1, notify: true }), "nope");
  assert.ok(await waitFor(async () => (await c.stats()).notify_errors_total === 1));
});

test("raw request and notify", async (t) => {
  const { c } = await setup(t);
  assert.equal((await c.request<{ version: string }>("ping")).version, await c.ping());
  assert.equal(await c.notify("start", { model: "raw", task: "embed", trace_id: "raw-1" }), true);
  assert.equal((await c.queryPending({ model: "raw" }))[0]!.trace_id, "raw-1");
});

test("track: complete with the time and tokens, or fail and rethrow", async (t) => {
  const { c } = await setup(t);
  const value = await c.track({ model: "m1", task: "code" }, async (call) => {
    await sleep(60);
    call.tokens(900, 240);
    return 42;
  });
  assert.equal(value, 42);
  const [p] = await c.queryPending();
  assert.deepEqual([p!.completed, p!.input_tokens, p!.output_tokens], [true, 900, 240]);
  assert.ok(p!.latency_ms >= 55, `latency ${p!.latency_ms}`);
  await assert.rejects(c.track({ model: "m1", task: "code" }, async () => { throw new Error("HTTP 500"); }), /HTTP 500/);
  assert.equal((await profile(c, "m1"))!.fail_count, 1);
});

// ---------------------------------------------------------------------------
// Pipelining

test("1000 requests in flight on one connection, answered in order", async (t) => {
  const { c } = await setup(t);
  await c.ping();
  const n = 1000;
  const sent = Array.from({ length: n }, (_, i) => c.start({ model: `m${i % 3}`, task: "generate" }));
  assert.equal(c.inFlight, n);                          // all written before any reply
  const ids = await Promise.all(sent);
  assert.equal(c.inFlight, 0);
  // The daemon numbers its trace ids in the order it handles the starts:
  // each reply went to its own request, and they were handled in order.
  const counters = ids.map((id) => parseInt(id.split("-").pop()!, 16));
  assert.deepEqual(counters, counters.map((_, i) => counters[0]! + i));
  const pending = await c.queryPending({ limit: n });
  assert.deepEqual(pending.map((p) => p.trace_id), ids);
  assert.deepEqual(pending.map((p) => p.model), ids.map((_, i) => `m${i % 3}`));
  // Mixed methods and errors in flight together keep their places.
  const mixed = await Promise.allSettled([c.ping(), c.complete({ traceId: "nope", latencyMs: 1 }),
    c.complete({ traceId: ids[0]!, latencyMs: 5 }), c.query({ model: "m0" })]);
  assert.equal(mixed[0].status, "fulfilled");
  assert.ok(mixed[1].status === "rejected" && mixed[1].reason instanceof UnknownTraceError);
  assert.deepEqual(mixed[2], { status: "fulfilled", value: ids[0] });
  assert.ok(mixed[3].status === "fulfilled" && mixed[3].value[0]!.total_calls === 1);
  assert.equal((await c.stats()).connections, 1);
});

// ---------------------------------------------------------------------------
// Errors

async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => OutcomedError, code: string) {
  const e = await p.then(() => assert.fail(`resolved, expected ${code}`), (err: unknown) => err);
  assert.ok(e instanceof cls, `${String(e)} is not a ${cls.name}`);
  assert.ok(e instanceof OutcomedError);
  assert.ok(!(e instanceof OutcomedConnectionError));
  assert.equal(e.code, code);
  assert.ok(e.message.length > 0);
  return e;
}

test("typed errors, by code", async (t) => {
  const { c } = await setup(t, "[limits]\npending = 3\n");
  await rejectsWith(c.complete({ traceId: "nope", latencyMs: 10 }), UnknownTraceError, "unknown_trace");
  await rejectsWith(c.fail({ traceId: "nope" }), UnknownTraceError, "unknown_trace");
  await rejectsWith(c.outcome({ traceId: "nope", kind: "accepted", confidence: 1 }), UnknownTraceError, "unknown_trace");
  const id = await c.start({ model: "m1", task: "generate" });
  await c.complete({ traceId: id, latencyMs: 10 });
  await rejectsWith(c.complete({ traceId: id, latencyMs: 10 }), AlreadyCompletedError, "already_completed");
  await c.start({ model: "m1", task: "generate", traceId: "dup" });
  await rejectsWith(c.start({ model: "m2", task: "generate", traceId: "dup" }), DuplicateTraceError, "duplicate_trace");
  const e = await rejectsWith(c.start({ model: "m1", task: "painting" }), BadRequestError, "bad_request");
  assert.match(e.message, /task/);
  await rejectsWith(c.outcome({ traceId: id, kind: "accepted", confidence: 1.5 }), BadRequestError, "bad_request");
  await rejectsWith(c.start({ model: "m1", task: "code", traceId: "bad id!" }), BadRequestError, "bad_request");
  await rejectsWith(c.request("ping", { typo: 1 }), BadRequestError, "bad_request");
  await rejectsWith(c.request("nosuch"), UnknownMethodError, "unknown_method");
  await c.start({ model: "m1", task: "embed" });          // the third pending trace: the limit
  await rejectsWith(c.start({ model: "m1", task: "embed" }), OverloadedError, "overloaded");
  assert.match(await c.ping(), /\d/);                     // error replies leave the connection usable
  assert.equal((await c.stats()).connections, 1);
});

test("too_large closes the connection; the next call opens another", async (t) => {
  const { c } = await setup(t, "[limits]\nmessage_bytes = 4096\n");
  const id = await c.start({ model: "m1", task: "code" });
  await rejectsWith(c.complete({ traceId: id, latencyMs: 10, output: "x".repeat(8192) }), TooLargeError, "too_large");
  assert.equal(c.connected, false);
  assert.equal(await c.complete({ traceId: id, latencyMs: 10, output: "small" }), id);
});

test("error classes for every code", () => {
  assert.deepEqual([...ERROR_CODES].sort(), ["already_completed", "bad_request", "duplicate_trace", "forbidden",
    "internal", "overloaded", "too_large", "unavailable", "unknown_method", "unknown_trace"]);
  for (const code of ERROR_CODES) {
    const e = errorFromReply({ code, message: "m" });
    assert.deepEqual([e.code, e.message, (e.constructor as typeof OutcomedError).CODE], [code, "m", code]);
    assert.equal(e.name, e.constructor.name);
  }
  assert.ok(errorFromReply({ code: "unavailable", message: "" }) instanceof UnavailableError);
  const future = errorFromReply({ code: "from_the_future", message: "m" });
  assert.equal(future.constructor, OutcomedError);
  assert.ok(errorFromReply("garbage") instanceof InternalError);
});

// ---------------------------------------------------------------------------
// Reconnecting, and fail-open

test("a strict client reconnects after the daemon restarts", async (t) => {
  const { d, c } = await setup(t);
  assert.match(await c.ping(), /\d/);
  await d.restart();
  assert.match(await c.ping(), /\d/);                   // the old connection is gone; a new one
  const id = await c.start({ model: "m1", task: "code" });
  await d.restart();
  assert.equal(await c.complete({ traceId: id, latencyMs: 10 }), id);   // the trace survived, applied once
  await assert.rejects(c.complete({ traceId: id, latencyMs: 10 }), AlreadyCompletedError);
});

test("a strict client waits, with backoff, for a daemon that is coming back", async (t) => {
  const { d } = await setup(t);
  const c = client(t, { socketPath: d.socketPath, timeoutMs: 5000, backoffInitialMs: 20, backoffMaxMs: 100 });
  assert.match(await c.ping(), /\d/);
  await d.stop();
  const t0 = performance.now();
  const ping = c.ping();
  await sleep(300);
  await d.start();
  assert.match(await ping, /\d/);
  assert.ok(performance.now() - t0 >= 300);
});

test("a strict client with no daemon throws a connection error after its timeout", async (t) => {
  const { d } = await setup(t);
  await d.stop();
  const c = client(t, { socketPath: d.socketPath, timeoutMs: 300 });
  const t0 = performance.now();
  const e = await c.ping().then(() => assert.fail("resolved"), (err: unknown) => err);
  const dt = performance.now() - t0;
  assert.ok(e instanceof OutcomedConnectionError && !(e instanceof OutcomedError), String(e));
  assert.ok(dt >= 250 && dt < 2000, `${dt} ms`);
});

test("fail-open: a daemon that is down makes calls resolve undefined, with backoff", async (t) => {
  const { d } = await setup(t);
  const c = client(t, { socketPath: d.socketPath, failOpen: true, timeoutMs: 2000, backoffInitialMs: 300, backoffMaxMs: 600 });
  const states: string[] = [];
  const c2 = client(t, { socketPath: d.socketPath, failOpen: true, backoffInitialMs: 50,
    onStateChange: (s) => states.push(s) });
  const id = await c.start({ model: "m1", task: "code" });
  assert.ok(id);
  await d.stop();
  const t0 = performance.now();
  assert.equal(await c.complete({ traceId: id!, latencyMs: 10 }), undefined);
  assert.equal(await c.query(), undefined);               // within the backoff: at once
  assert.equal(await c.ping(), undefined);
  assert.ok(performance.now() - t0 < 250, "fail-open calls must not wait");
  assert.equal(c.failOpenCount, 3);
  assert.ok(c.lastError instanceof OutcomedConnectionError);
  assert.equal(await c.complete({ traceId: undefined, latencyMs: 10 }), undefined);  // a start that failed open
  assert.equal(c.failOpenCount, 3);                       // nothing sent, nothing counted
  assert.equal(await c2.ping(), undefined);
  await d.start();                                        // same socket and database
  assert.match((await waitFor(() => c.ping()))!, /\d/);
  assert.equal(await c.complete({ traceId: id!, latencyMs: 10 }), id);   // the trace survived the restart
  const n = c.failOpenCount;
  assert.equal((await c.outcome({ traceId: id!, kind: "accepted", confidence: 1 }))!.success, true);
  assert.equal(c.failOpenCount, n);
  // Mistakes are thrown in fail-open mode too.
  await assert.rejects(c.fail({ traceId: "nope" }), UnknownTraceError);
  assert.match((await waitFor(() => c2.ping()))!, /\d/);
  assert.deepEqual(states, ["unavailable", "available"]);
});

test("fail-open: overloaded resolves undefined", async (t) => {
  const { d } = await setup(t, "[limits]\npending = 2\n");
  const c = client(t, { socketPath: d.socketPath, failOpen: true });
  assert.ok(await c.start({ model: "m1", task: "embed" }));
  assert.ok(await c.start({ model: "m1", task: "embed" }));
  assert.equal(await c.start({ model: "m1", task: "embed" }), undefined);
  assert.equal(c.failOpenCount, 1);
  assert.ok(c.lastError instanceof OverloadedError);
});

test("fail-open: a hung daemon times out, then comes back", async (t) => {
  const { d } = await setup(t);
  const c = client(t, { socketPath: d.socketPath, failOpen: true, timeoutMs: 200, backoffInitialMs: 50, backoffMaxMs: 200 });
  assert.match((await c.ping())!, /\d/);
  d.proc!.kill("SIGSTOP");
  let dt: number;
  try {
    const t0 = performance.now();
    assert.equal(await c.start({ model: "m1", task: "code" }), undefined);
    dt = performance.now() - t0;
    assert.ok(c.lastError instanceof OutcomedTimeoutError, String(c.lastError));
    assert.equal(await c.query(), undefined);             // within the backoff: at once
  } finally {
    d.proc!.kill("SIGCONT");
  }
  assert.ok(dt >= 180 && dt < 1500, `${dt} ms`);
  assert.ok(c.lastError instanceof OutcomedConnectionError);
  assert.equal(c.failOpenCount, 2);
  assert.match((await waitFor(() => c.ping()))!, /\d/);
});

// ---------------------------------------------------------------------------
// The socket

test("the socket: socketPath, else $OUTCOMED_SOCKET, else $XDG_RUNTIME_DIR's", async (t) => {
  const { d } = await setup(t);
  const other = join(d.tmpdir, "other.sock");
  assert.equal(resolveSocket(d.socketPath, { OUTCOMED_SOCKET: other }), d.socketPath);
  assert.equal(resolveSocket(undefined, { OUTCOMED_SOCKET: other, XDG_RUNTIME_DIR: d.tmpdir }), other);
  assert.equal(resolveSocket(undefined, { OUTCOMED_SOCKET: "", XDG_RUNTIME_DIR: d.tmpdir }), d.socketPath);
  const env = { XDG_RUNTIME_DIR: "/nonexistent-outcomed-test" };
  if (!existsSync(SYSTEM_SOCKET)) {
    assert.throws(() => resolveSocket(undefined, env), (e: Error) => e instanceof OutcomedConnectionError &&
      e.message.includes("/nonexistent-outcomed-test/outcomed.sock") && e.message.includes(SYSTEM_SOCKET));
  }
  const saved = process.env.OUTCOMED_SOCKET;
  process.env.OUTCOMED_SOCKET = d.socketPath;
  t.after(() => { if (saved === undefined) delete process.env.OUTCOMED_SOCKET; else process.env.OUTCOMED_SOCKET = saved; });
  const c = client(t, {});
  assert.match(await c.ping(), /\d/);
  assert.equal(c.socketPath, d.socketPath);
});

test("socket paths over 107 bytes are refused", () => {
  const ok = "/tmp/" + "x".repeat(102);
  assert.equal(resolveSocket(ok), ok);
  assert.throws(() => new Client({ socketPath: ok + "x" }), /108 bytes/);
  assert.throws(() => new Client({ socketPath: "/tmp/" + "é".repeat(52) }), RangeError);
  assert.throws(() => new Client({ socketPath: "" }), RangeError);
});

// ---------------------------------------------------------------------------
// The wire names (a stand-in daemon records what it gets): camelCase
// arguments go out snake_case, and `domain` / `domains` pass through, ready
// for a daemon that has domains.

test("arguments on the wire, domain included", async (t) => {
  const dir = mkdtempSync("/tmp/outcomed-ts-wire-");
  const path = join(dir, "fake.sock");
  const got: unknown[][] = [];
  const conns: Socket[] = [];
  const server = createServer(async (sock) => {
    conns.push(sock);
    try {
      for await (const msg of decodeMultiStream(sock)) {
        const m = msg as unknown[];
        got.push(m);
        if (m[0] === 0) sock.write(encode([1, m[1], null, { trace_id: "t", forgotten: true, profiles: [] }]));
      }
    } catch { /* closed */ }
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => { for (const s of conns) s.destroy(); server.close(); rmSync(dir, { recursive: true, force: true }); });
  const c = client(t, { socketPath: path });
  await c.start({ model: "m", task: "code", traceId: "x:1", domain: "billing", repo: "/r", files: ["a.c"] });
  await c.rank({ task: "code", domain: "billing", costWeight: 0.5, latencyWeight: 0, excludeDegraded: false, degradeThreshold: 2 });
  await c.query({ task: "code", domains: true, domain: "billing", degradeThreshold: 1 });
  await c.forget({ model: "m", task: "code", domain: "billing" });
  await c.complete({ traceId: "x:1", latencyMs: 3, inputTokens: 1, outputTokens: 2, notify: true });
  await c.outcome({ actions: [{ traceId: "x:1", success: true, confidence: 1, output: "o" }] });
  await waitFor(() => got.length === 6);
  assert.deepEqual(got, [
    [0, 1, "start", [{ model: "m", task: "code", trace_id: "x:1", domain: "billing", repo: "/r", files: ["a.c"] }]],
    [0, 2, "rank", [{ task: "code", domain: "billing", cost_weight: 0.5, latency_weight: 0, exclude_degraded: false, degrade_threshold: 2 }]],
    [0, 3, "query", [{ task: "code", domains: true, domain: "billing", degrade_threshold: 1 }]],
    [0, 4, "forget", [{ model: "m", task: "code", domain: "billing" }]],
    [2, "complete", [{ trace_id: "x:1", latency_ms: 3, input_tokens: 1, output_tokens: 2 }]],
    [0, 5, "outcome", [{ actions: [{ trace_id: "x:1", success: true, confidence: 1, output: "o" }] }]],
  ]);
});

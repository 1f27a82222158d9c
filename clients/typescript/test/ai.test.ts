/**
 * The AI SDK integration against a real outcomed, with the SDK's mock
 * language model (ai/test): outcomedMiddleware for generate and stream,
 * failures, error parts, aborts, the trace id in the provider metadata, and
 * pickModel.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV3 } from "ai/test";

import { BadRequestError, Client, type ModelName, outcomedMiddleware, pickModel, traceIdOf } from "outcomed";
import { Daemon, sleep, waitFor } from "./daemon.js";

type GenerateResult = Awaited<ReturnType<NonNullable<MockLanguageModelV3["doGenerate"]>>>;

const usage = (input: number, output: number) => ({
  inputTokens: { total: input, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: output, text: undefined, reasoning: undefined },
});
const stop = { unified: "stop" as const, raw: undefined };

function generated(text: string, input = 11, output = 7): GenerateResult {
  return { content: [{ type: "text", text }], finishReason: stop, usage: usage(input, output), warnings: [] };
}

function textChunks(text: string, input = 5, output = 3) {
  return [
    { type: "stream-start" as const, warnings: [] },
    { type: "text-start" as const, id: "1" },
    { type: "text-delta" as const, id: "1", delta: text },
    { type: "text-end" as const, id: "1" },
    { type: "finish" as const, finishReason: stop, usage: usage(input, output) },
  ];
}

async function setup(t: TestContext) {
  const d = await Daemon.start();
  t.after(() => d.cleanup());
  const c = new Client({ socketPath: d.socketPath, timeoutMs: 2000 });
  t.after(() => c.close());
  return { d, c };
}

async function profile(c: Client<boolean>, model: string) {
  return (await c.query({ model }))?.[0];
}

test("generate: start, complete with latency and tokens, the trace id in providerMetadata", async (t) => {
  const { c } = await setup(t);
  const base = new MockLanguageModelV3({
    modelId: "mock-a",
    doGenerate: async () => {
      await sleep(40);
      return generated("hello", 120, 30);
    },
  });
  const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "code", reason: "r1" }) });
  const result = await generateText({ model, prompt: "hi" });
  assert.equal(result.text, "hello");
  const traceId = traceIdOf(result);
  assert.ok(traceId, "no trace id in providerMetadata");
  assert.equal((result.providerMetadata as { outcomed: { traceId: string } }).outcomed.traceId, traceId);
  const [p, ...more] = await c.queryPending();
  assert.deepEqual(more, []);
  assert.deepEqual([p!.trace_id, p!.model, p!.task, p!.reason, p!.completed, p!.input_tokens, p!.output_tokens],
    [traceId, "mock-a", "code", "r1", true, 120, 30]);
  assert.ok(p!.latency_ms >= 35 && p!.latency_ms < 5000, `latency ${p!.latency_ms}`);
  // The app reports the outcome later, on that trace id.
  const r = await c.outcome({ traceId, kind: "accepted", confidence: 0.9 });
  assert.deepEqual([r.kind, r.success], ["accepted", true]);
  assert.deepEqual(await c.queryPending(), []);
  const prof = await profile(c, "mock-a");
  assert.deepEqual([prof!.total_calls, prof!.success_count, prof!.fail_count], [1, 1, 0]);
});

test("modelName maps the model's id, as a function or a table", async (t) => {
  const { c } = await setup(t);
  const base = new MockLanguageModelV3({ modelId: "mock-b", doGenerate: async () => generated("x") });
  const names: ModelName[] = [{ "mock-b": "gpt-4o" }, (id: string) => `local/${id}`, { other: "nope" }];
  for (const modelName of names) {
    const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "generate", modelName }) });
    await generateText({ model, prompt: "hi" });
  }
  assert.deepEqual((await c.query()).map((p) => p.model), ["gpt-4o", "local/mock-b", "mock-b"]);
});

test("stream: complete when it ends, with the finish part's usage and the trace id", async (t) => {
  const { c } = await setup(t);
  const base = new MockLanguageModelV3({
    modelId: "mock-s",
    doStream: async () => ({ stream: simulateReadableStream({ chunks: textChunks("streamed", 50, 9), chunkDelayInMs: 10 }) }),
  });
  const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "reasoning" }) });
  const result = streamText({ model, prompt: "hi" });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  assert.equal(text, "streamed");
  const traceId = traceIdOf({ providerMetadata: await result.providerMetadata });
  assert.ok(traceId);
  const [p] = await c.queryPending();
  assert.deepEqual([p!.trace_id, p!.model, p!.task, p!.completed, p!.input_tokens, p!.output_tokens],
    [traceId, "mock-s", "reasoning", true, 50, 9]);
  assert.ok(p!.latency_ms >= 30, `latency ${p!.latency_ms}`);
  assert.equal((await c.outcome({ traceId, kind: "rejected", confidence: 1 })).success, false);
  const prof = await profile(c, "mock-s");
  assert.deepEqual([prof!.total_calls, prof!.fail_count], [1, 1]);
});

test("a model that throws: fail, and the error goes on", async (t) => {
  const { c } = await setup(t);
  const base = new MockLanguageModelV3({
    modelId: "mock-x",
    doGenerate: async () => { throw new Error("HTTP 500 from the provider"); },
    doStream: async () => { throw new Error("HTTP 503 from the provider"); },
  });
  const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "code" }) });
  await assert.rejects(generateText({ model, prompt: "hi", maxRetries: 0 }), /HTTP 500/);
  let prof = await profile(c, "mock-x");
  assert.deepEqual([prof!.total_calls, prof!.fail_count, prof!.success_count], [0, 1, 0]);
  assert.deepEqual(await c.queryPending(), []);
  const errors: unknown[] = [];
  const result = streamText({ model, prompt: "hi", maxRetries: 0, onError: ({ error }) => { errors.push(error); } });
  for await (const _ of result.fullStream) { /* drain */ }
  assert.equal(errors.length, 1);
  prof = await profile(c, "mock-x");
  assert.equal(prof!.fail_count, 2);
  assert.deepEqual(await c.queryPending(), []);
});

test("a stream that yields an error part: fail", async (t) => {
  const { c } = await setup(t);
  const chunks = [
    { type: "text-start" as const, id: "1" },
    { type: "text-delta" as const, id: "1", delta: "partial" },
    { type: "error" as const, error: new Error("overloaded upstream") },
    { type: "finish" as const, finishReason: { unified: "error" as const, raw: undefined }, usage: usage(1, 1) },
  ];
  const base = new MockLanguageModelV3({ modelId: "mock-e", doStream: async () => ({ stream: simulateReadableStream({ chunks }) }) });
  const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "generate" }) });
  const result = streamText({ model, prompt: "hi", onError: () => {} });
  for await (const _ of result.fullStream) { /* drain */ }
  const prof = await waitFor(async () => {
    const p = await profile(c, "mock-e");
    return p?.fail_count === 1 ? p : undefined;
  });
  assert.ok(prof, "the error part was not reported as a failure");
  assert.deepEqual([prof.total_calls, prof.success_count], [0, 0]);   // failed, never completed
  assert.deepEqual(await c.queryPending(), []);
});

/** A mock whose generate and stream wait for the abort signal. */
function hangingModel(modelId: string) {
  const aborted = (signal: AbortSignal | undefined) => new Promise<never>((_, reject) => {
    signal?.addEventListener("abort", () => reject(new DOMException("This operation was aborted", "AbortError")), { once: true });
  });
  return new MockLanguageModelV3({
    modelId,
    doGenerate: async ({ abortSignal }) => aborted(abortSignal),
    doStream: async ({ abortSignal }) => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: "text-start", id: "1" });
          controller.enqueue({ type: "text-delta", id: "1", delta: "first " });
          abortSignal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")), { once: true });
        },
      }),
    }),
  });
}

test("aborted calls: fail, for generate and stream", async (t) => {
  const { c } = await setup(t);
  const model = wrapLanguageModel({ model: hangingModel("mock-h"), middleware: outcomedMiddleware({ client: c, task: "code" }) });

  const ac = new AbortController();
  const gen = generateText({ model, prompt: "hi", abortSignal: ac.signal, maxRetries: 0 });
  await waitFor(async () => (await c.queryPending()).length === 1);    // started
  ac.abort();
  await assert.rejects(gen);
  assert.ok(await waitFor(async () => (await profile(c, "mock-h"))?.fail_count === 1));
  assert.deepEqual(await c.queryPending(), []);

  const ac2 = new AbortController();
  const result = streamText({ model, prompt: "hi", abortSignal: ac2.signal, maxRetries: 0, onError: () => {} });
  const reader = result.textStream[Symbol.asyncIterator]();
  assert.equal((await reader.next()).value, "first ");
  assert.equal((await c.queryPending()).length, 1);
  ac2.abort();
  await reader.next().catch(() => undefined);
  assert.ok(await waitFor(async () => (await profile(c, "mock-h"))?.fail_count === 2));
  const prof = await profile(c, "mock-h");
  assert.deepEqual([prof!.total_calls, prof!.success_count], [0, 0]);
  assert.deepEqual(await c.queryPending(), []);
});

test("a model stream cancelled by its reader: fail (cancelled)", async (t) => {
  const { c } = await setup(t);
  const model = wrapLanguageModel({ model: hangingModel("mock-c"), middleware: outcomedMiddleware({ client: c, task: "code" }) });
  const { stream } = await model.doStream({ prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }] });
  const reader = stream.getReader();
  assert.equal((await reader.read()).value?.type, "text-start");
  await reader.cancel(new Error("the user went away"));
  assert.ok(await waitFor(async () => (await profile(c, "mock-c"))?.fail_count === 1));
  assert.deepEqual(await c.queryPending(), []);
});

test("outcomed down: the call goes on, without a trace id", async (t) => {
  const { d } = await setup(t);
  const c = new Client({ socketPath: d.socketPath, failOpen: true });
  t.after(() => c.close());
  const base = new MockLanguageModelV3({ modelId: "mock-d", doGenerate: async () => generated("still here") });
  const errors: unknown[] = [];
  const model = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: c, task: "code", onError: (e) => errors.push(e) }) });
  await d.stop();
  const result = await generateText({ model, prompt: "hi" });
  assert.equal(result.text, "still here");
  assert.equal(traceIdOf(result), undefined);
  assert.equal(errors.length, 0);                     // fail-open: nothing to report
  assert.ok(c.failOpenCount >= 1);

  // A strict client's errors go to onError; the call still succeeds.
  const strict = new Client({ socketPath: d.socketPath, timeoutMs: 100 });
  t.after(() => strict.close());
  const model2 = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: strict, task: "code", onError: (e) => errors.push(e) }) });
  assert.equal((await generateText({ model: model2, prompt: "hi" })).text, "still here");
  assert.equal(errors.length, 1);
  // And an unknown task is the app's mistake: reported to onError, the call goes on.
  await d.start();
  const model3 = wrapLanguageModel({ model: base, middleware: outcomedMiddleware({ client: strict, task: "painting", onError: (e) => errors.push(e) }) });
  assert.equal((await generateText({ model: model3, prompt: "hi" })).text, "still here");
  assert.ok(errors[1] instanceof BadRequestError, String(errors[1]));
});

test("pickModel: rank's first, and the first candidate when outcomed is down", async (t) => {
  const { d, c } = await setup(t);
  for (const [model, kind] of [["good", "accepted"], ["bad", "rejected"]] as const) {
    await c.outcome({ traceId: await c.start({ model, task: "code" }), kind, confidence: 1 });
  }
  assert.equal(await pickModel({ client: c, task: "code", candidates: ["bad", "good"] }), "good");
  assert.equal(await pickModel({ client: c, task: "code", candidates: ["bad", "new"] }), "new");   // the prior 0.5 beats 0.4
  assert.equal(await pickModel({ client: c, task: "code", candidates: ["bad", "good"], costWeight: 0.5, strategy: "mean" }), "good");
  // Models as candidates: their modelId (mapped by modelName) is ranked; the model is returned.
  const good = new MockLanguageModelV3({ modelId: "mock-good" });
  const bad = new MockLanguageModelV3({ modelId: "bad" });
  assert.equal(await pickModel({ client: c, task: "code", candidates: [bad, good], modelName: { "mock-good": "good" } }), good);
  await assert.rejects(pickModel({ client: c, task: "painting", candidates: ["bad", "good"] }), BadRequestError);

  await d.stop();
  const failOpen = new Client({ socketPath: d.socketPath, failOpen: true });
  t.after(() => failOpen.close());
  const strict = new Client({ socketPath: d.socketPath, timeoutMs: 100 });
  t.after(() => strict.close());
  const t0 = performance.now();
  assert.equal(await pickModel({ client: failOpen, task: "code", candidates: ["bad", "good"] }), "bad");
  assert.ok(performance.now() - t0 < 500);
  assert.equal(await pickModel({ client: strict, task: "code", candidates: ["bad", "good"] }), "bad");
});

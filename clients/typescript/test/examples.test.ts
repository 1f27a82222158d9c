/**
 * The README's examples are the files in examples/: each one runs here
 * against a real outcomed (found through $OUTCOMED_SOCKET, as a router
 * would find it), and the README must show each file as it is.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { Client } from "outcomed";
import { Daemon, PACKAGE_ROOT } from "./daemon.js";

async function daemonOnEnv(t: TestContext) {
  const d = await Daemon.start();
  const saved = process.env.OUTCOMED_SOCKET;
  process.env.OUTCOMED_SOCKET = d.socketPath;
  t.after(async () => {
    if (saved === undefined) delete process.env.OUTCOMED_SOCKET;
    else process.env.OUTCOMED_SOCKET = saved;
    await d.cleanup();
  });
  const c = new Client({ socketPath: d.socketPath });
  t.after(() => c.close());
  return { d, c };
}

test("the README shows each example as it is", () => {
  const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");
  for (const name of ["client.ts", "middleware.ts", "pick-model.ts"]) {
    const code = readFileSync(join(PACKAGE_ROOT, "examples", name), "utf8");
    assert.ok(readme.includes("```ts\n" + code + "```"), `README.md does not show examples/${name} as it is`);
  }
});

test("examples/client.ts", async (t) => {
  const { c } = await daemonOnEnv(t);
  const { main } = await import("../examples/client.js");
  await main();
  const [p] = await c.query();
  assert.deepEqual([p!.model, p!.total_calls, p!.success_count, p!.total_latency_ms], ["qwen3-4b", 1, 1, 812]);
  assert.deepEqual(await c.queryPending(), []);
});

test("examples/middleware.ts", async (t) => {
  const { c } = await daemonOnEnv(t);
  const { main } = await import("../examples/middleware.js");
  const traceId = await main();
  assert.ok(traceId);
  const [p] = await c.query();
  assert.deepEqual([p!.model, p!.total_calls, p!.success_count, p!.input_tokens, p!.output_tokens],
    ["gpt-4o", 2, 1, 240, 60]);
  const [streamed, ...more] = await c.queryPending();            // the streamed call awaits its outcome
  assert.deepEqual(more, []);
  assert.notEqual(streamed!.trace_id, traceId);
  assert.equal(streamed!.completed, true);
});

test("examples/pick-model.ts", async (t) => {
  const { d, c } = await daemonOnEnv(t);
  const { main } = await import("../examples/pick-model.js");
  await c.outcome({ traceId: await c.start({ model: "qwen3-4b", task: "code" }), kind: "rejected", confidence: 1 });
  await c.outcome({ traceId: await c.start({ model: "gpt-4o", task: "code" }), kind: "accepted", confidence: 1 });
  assert.equal(await main(), "gpt-4o");                            // rank's first, not the first candidate
  await d.stop();
  assert.equal(await main(), "qwen3-4b");                          // down: the first candidate
});

// A router reports one call to outcomed and asks how the models do.
import { Client, UnknownTraceError } from "outcomed";

export async function main(): Promise<void> {
  // The socket: $OUTCOMED_SOCKET, else $XDG_RUNTIME_DIR/outcomed.sock, else
  // /run/outcomed/outcomed.sock. failOpen: never let outcomed stop the router.
  const client = new Client({ failOpen: true, timeoutMs: 200 });

  const traceId = await client.start({ model: "qwen3-4b", task: "code", reason: "cheapest fit" });
  // ... call the model ...
  await client.complete({ traceId, latencyMs: 812, inputTokens: 900, outputTokens: 240 });
  await client.outcome({ traceId, kind: "accepted", confidence: 0.9 });   // the user kept it

  const profiles = (await client.query({ task: "code" })) ?? [];          // undefined: outcomed is down
  for (const p of profiles) {
    console.log(p.model, p.tasks.code?.calls, p.tasks.code?.ema_quality.toFixed(3));
  }

  // Errors that mean the request is wrong are thrown in every mode.
  try {
    await client.outcome({ traceId, kind: "accepted", confidence: 0.9 });
  } catch (e) {
    if (!(e instanceof UnknownTraceError)) throw e;
    console.log("already resolved:", e.code);
  }
  client.close();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

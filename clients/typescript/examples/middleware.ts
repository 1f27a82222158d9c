// Every call through an AI SDK model reported to outcomed, and its outcome later.
import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { Client, outcomedMiddleware, traceIdOf } from "outcomed";

// A stand-in for a real provider's model, e.g. openai("gpt-4o").
const usage = {
  inputTokens: { total: 120, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 30, text: undefined, reasoning: undefined },
};
const baseModel = new MockLanguageModelV3({
  modelId: "mock-4o",
  doGenerate: async () => ({
    content: [{ type: "text", text: "def parse(s): ..." }],
    finishReason: { unified: "stop", raw: undefined },
    usage,
    warnings: [],
  }),
  doStream: async () => ({
    stream: simulateReadableStream({
      chunks: [
        { type: "text-start", id: "1" },
        { type: "text-delta", id: "1", delta: "def show(x): ..." },
        { type: "text-end", id: "1" },
        { type: "finish", finishReason: { unified: "stop", raw: undefined }, usage },
      ],
    }),
  }),
});

export async function main(): Promise<string | undefined> {
  const client = new Client({ failOpen: true, timeoutMs: 200 });
  const model = wrapLanguageModel({
    model: baseModel,
    middleware: outcomedMiddleware({ client, task: "code", modelName: { "mock-4o": "gpt-4o" } }),
  });

  const result = await generateText({ model, prompt: "write a parser" });
  const traceId = traceIdOf(result);          // result.providerMetadata?.outcomed?.traceId
  // ... later, when the user keeps the answer:
  await client.outcome({ traceId, kind: "accepted", confidence: 0.9 });

  // Streams are reported when they end (or fail, or are aborted).
  const stream = streamText({ model, prompt: "and a printer" });
  for await (const _ of stream.textStream) { /* show it */ }
  console.log("streamed trace:", traceIdOf({ providerMetadata: await stream.providerMetadata }));

  client.close();
  return traceId;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

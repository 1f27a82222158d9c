// Ask outcomed which model to use for a task; the first candidate when it is down.
import { Client, pickModel } from "outcomed";

export async function main(): Promise<string> {
  const client = new Client({ failOpen: true, timeoutMs: 100 });
  const model = await pickModel({
    client,
    task: "code",
    candidates: ["qwen3-4b", "gpt-4o"],   // in order of preference: the first is the fallback
    costWeight: 0.2,
  });
  console.log("use", model);
  client.close();
  return model;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

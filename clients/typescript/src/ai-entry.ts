// The `outcomed/ai` entry point: the AI SDK integration alone.
export { outcomedMiddleware, pickModel, traceIdOf, PROVIDER_METADATA_KEY } from "./ai.js";
export type { OutcomedMiddlewareOptions, PickModelOptions, Candidate, ModelName } from "./ai.js";

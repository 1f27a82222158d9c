/**
 * outcomed: report inference calls to the outcomed daemon and ask it which
 * model to use. See README.md; the wire protocol is the repository's
 * protocol/README.md.
 */
export {
  Client, TrackedCall, DEFAULT_TIMEOUT_MS, TEXT_MAX, cleanText, errorText, newTraceId, snakeCase, wire,
} from "./client.js";
export type { ClientOptions, Maybe } from "./client.js";
export * from "./errors.js";
export { resolveSocket, checkSocketPath, SOCKET_ENV, SYSTEM_SOCKET, USER_SOCKET_NAME, SOCKET_PATH_MAX } from "./socket.js";
export * from "./types.js";
export { outcomedMiddleware, pickModel, traceIdOf, PROVIDER_METADATA_KEY } from "./ai.js";
export type { OutcomedMiddlewareOptions, PickModelOptions, Candidate, ModelName } from "./ai.js";

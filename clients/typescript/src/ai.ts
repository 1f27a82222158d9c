/**
 * The AI SDK integration: a language model middleware that reports every
 * call to outcomed, and pickModel, which asks outcomed's `rank` which
 * candidate to use.
 *
 * Only types are imported from `ai` (an optional peer dependency): this
 * module loads without it.
 */
import type { LanguageModelMiddleware } from "ai";

import { Client, cleanText, errorText } from "./client.js";
import { FAIL_OPEN_CODES, OutcomedConnectionError, OutcomedError } from "./errors.js";
import type { Strategy, Task } from "./types.js";

type WrapGenerate = NonNullable<LanguageModelMiddleware["wrapGenerate"]>;
type WrapStream = NonNullable<LanguageModelMiddleware["wrapStream"]>;
type WrappedModel = Parameters<WrapGenerate>[0]["model"];
type StreamResult = Awaited<ReturnType<WrapStream>>;
type StreamPart = StreamResult["stream"] extends ReadableStream<infer P> ? P : never;
type ProviderMetadata = Record<string, Record<string, unknown>>;

/** The key of outcomed's entry in a result's `providerMetadata`. */
export const PROVIDER_METADATA_KEY = "outcomed";

/** How a model is named to outcomed: a function of its id, or a table (ids not in it keep their name). */
export type ModelName =
  | ((modelId: string, model: { provider: string; modelId: string }) => string)
  | Record<string, string>;

export interface OutcomedMiddlewareOptions {
  /** The client to report through; a fail-open one keeps a down daemon from failing calls. */
  client: Client<boolean>;
  /** The task every call through this model is reported under. */
  task: Task | (string & {});
  /** A domain within the task (needs a daemon that has domains). */
  domain?: string;
  /** The name reported for the model; default: the wrapped model's `modelId`. */
  modelName?: ModelName;
  /** The routing reason reported with `start`. */
  reason?: string;
  /**
   * Reporting errors (a strict client's: daemon down, bad_request, ...).
   * They never fail the model call; default: a console.warn.
   */
  onError?: (error: unknown) => void;
}

function nameOf(model: { provider: string; modelId: string }, modelName?: ModelName): string {
  if (typeof modelName === "function") return modelName(model.modelId, model);
  if (modelName && Object.prototype.hasOwnProperty.call(modelName, model.modelId)) {
    return modelName[model.modelId]!;
  }
  return model.modelId;
}

function tokenCount(v: unknown): number {
  // LanguageModelV3Usage: {total, ...} per direction; a V2-style number too.
  const n = typeof v === "number" ? v
    : v !== null && typeof v === "object" ? (v as { total?: unknown }).total : undefined;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return 0;
  return Math.min(Math.round(n), 0xffffffff);
}

function usageTokens(usage: unknown): { inputTokens: number; outputTokens: number } {
  const u = (usage ?? {}) as { inputTokens?: unknown; outputTokens?: unknown };
  return { inputTokens: tokenCount(u.inputTokens), outputTokens: tokenCount(u.outputTokens) };
}

function withTraceId<T extends { providerMetadata?: unknown }>(value: T, traceId: string): T {
  const metadata = (value.providerMetadata ?? {}) as ProviderMetadata;
  return {
    ...value,
    providerMetadata: {
      ...metadata,
      [PROVIDER_METADATA_KEY]: { ...(metadata[PROVIDER_METADATA_KEY] ?? {}), traceId },
    },
  };
}

function abortText(signal: AbortSignal | undefined, e?: unknown): string {
  const why = e !== undefined ? errorText(e) : signal?.reason !== undefined ? errorText(signal.reason) : "";
  return cleanText(why ? `aborted: ${why}` : "aborted");
}

/**
 * A middleware for the AI SDK's `wrapLanguageModel` that reports each call
 * to outcomed: `start` when it begins; `complete` with its latency and the
 * token usage of the result; `fail` when it throws, when a stream yields an
 * error part, or when it is aborted. For `generateText` and `streamText`
 * alike. The trace id is in the result's provider metadata
 * (`providerMetadata.outcomed.traceId`), so that the app can report the
 * outcome later (`client.outcome({traceId, kind, confidence})`).
 *
 * Reporting never fails the call: errors go to `onError`.
 */
export function outcomedMiddleware(options: OutcomedMiddlewareOptions): LanguageModelMiddleware {
  const { client, task, domain, modelName, reason } = options;
  const onError = options.onError ?? ((e: unknown) => {
    console.warn(`outcomed: could not report a call: ${errorText(e)}`);
  });

  async function report<T>(send: () => Promise<T>): Promise<T | undefined> {
    try {
      return await send();
    } catch (e) {
      onError(e);
      return undefined;
    }
  }

  async function begin(model: WrappedModel): Promise<string | undefined> {
    return report(() => client.start({ model: nameOf(model, modelName), task, domain, reason }));
  }

  async function failed(traceId: string | undefined, error: string): Promise<void> {
    if (traceId !== undefined) await report(() => client.fail({ traceId, error }));
  }

  const wrapGenerate: WrapGenerate = async ({ doGenerate, params, model }) => {
    const traceId = await begin(model);
    const t0 = performance.now();
    let result: Awaited<ReturnType<typeof doGenerate>>;
    try {
      result = await doGenerate();
    } catch (e) {
      await failed(traceId, params.abortSignal?.aborted ? abortText(params.abortSignal, e) : cleanText(errorText(e)));
      throw e;
    }
    if (traceId === undefined) return result;
    const latencyMs = performance.now() - t0;
    await report(() => client.complete({ traceId, latencyMs, ...usageTokens(result.usage) }));
    return withTraceId(result, traceId);
  };

  const wrapStream: WrapStream = async ({ doStream, params, model }) => {
    const traceId = await begin(model);
    const t0 = performance.now();
    const signal = params.abortSignal;
    let inner: StreamResult;
    try {
      inner = await doStream();
    } catch (e) {
      await failed(traceId, signal?.aborted ? abortText(signal, e) : cleanText(errorText(e)));
      throw e;
    }
    if (traceId === undefined) return inner;

    // Reported once: the first of an error part, an abort, a cancel, an
    // error reading, or the end of the stream.
    let settled: Promise<void> | undefined;
    const settle = (send: () => Promise<unknown>): Promise<void> => {
      if (!settled) {
        signal?.removeEventListener("abort", onAbort);
        settled = report(send).then(() => undefined);
      }
      return settled;
    };
    const fail = (error: string) => settle(() => client.fail({ traceId, error }));
    const onAbort = () => { void fail(abortText(signal)); };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });

    let usage: unknown;
    const reader = inner.stream.getReader();
    const stream = new ReadableStream<StreamPart>({
      async pull(controller) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (e) {
          await fail(signal?.aborted ? abortText(signal, e) : cleanText(errorText(e)));
          controller.error(e);
          return;
        }
        if (r.done) {
          const latencyMs = performance.now() - t0;
          await settle(() => client.complete({ traceId, latencyMs, ...usageTokens(usage) }));
          controller.close();
          return;
        }
        let part = r.value;
        if (part.type === "error") {
          void fail(cleanText(errorText(part.error)));
        } else if (part.type === "finish") {
          usage = part.usage;
          part = withTraceId(part, traceId);
        }
        controller.enqueue(part);
      },
      async cancel(why) {
        await fail(signal?.aborted ? abortText(signal) : cleanText(why === undefined ? "cancelled" : `cancelled: ${errorText(why)}`));
        await reader.cancel(why);
      },
    });
    return { ...inner, stream };
  };

  return { specificationVersion: "v3", wrapGenerate, wrapStream };
}

/** The trace id outcomedMiddleware put in a result's provider metadata, if any. */
export function traceIdOf(result: { providerMetadata?: unknown } | undefined): string | undefined {
  const md = result?.providerMetadata as ProviderMetadata | undefined;
  const id = md?.[PROVIDER_METADATA_KEY]?.traceId;
  return typeof id === "string" ? id : undefined;
}

/** A candidate: a model id, or a model (its `modelId`, mapped by `modelName`). */
export type Candidate = string | { readonly provider: string; readonly modelId: string };

export interface PickModelOptions<C extends Candidate> {
  client: Client<boolean>;
  task: Task | (string & {});
  /** The models to choose from, in the app's order of preference (the first is the fallback). */
  candidates: readonly C[];
  domain?: string;
  costWeight?: number;
  latencyWeight?: number;
  strategy?: Strategy | (string & {});
  /** For models given as objects, as outcomedMiddleware's. */
  modelName?: ModelName;
}

/**
 * The candidate that outcomed's `rank` puts first for the task. Fails open:
 * when outcomed is down, busy, or does not know `rank`, or when it ranks
 * none of them (every candidate degraded), the first candidate. An error
 * that means the request is wrong (`bad_request`: an unknown task) is thrown.
 */
export async function pickModel<C extends Candidate>(options: PickModelOptions<C>): Promise<C> {
  const { client, task, candidates, domain, costWeight, latencyWeight, strategy, modelName } = options;
  if (candidates.length === 0) throw new RangeError("pickModel: no candidates");
  const first = candidates[0]!;
  const names = candidates.map((c) => (typeof c === "string" ? c : nameOf(c, modelName)));
  let ranked;
  try {
    ranked = await client.rank({ task, candidates: [...new Set(names)], domain, costWeight, latencyWeight, strategy });
  } catch (e) {
    if (e instanceof OutcomedConnectionError) return first;
    if (e instanceof OutcomedError && (FAIL_OPEN_CODES.has(e.code) || e.code === "unknown_method")) return first;
    throw e;
  }
  const top = ranked?.ranked[0]?.model;
  const i = top === undefined ? -1 : names.indexOf(top);
  return i < 0 ? first : candidates[i]!;
}

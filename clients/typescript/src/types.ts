/**
 * The shapes of outcomed's protocol (protocol/README.md): the arguments each
 * method takes, in camelCase (sent as the wire's snake_case names), and the
 * results, exactly as the daemon sends them (snake_case; a newer daemon may
 * add keys).
 */

/** The tasks the daemon knows. */
export const TASKS = ["generate", "embed", "classify", "code", "reasoning"] as const;
export type Task = (typeof TASKS)[number];

/** The outcome kinds the daemon knows (`confidence` is needed by the first three). */
export const KINDS = ["accepted", "accepted_with_edits", "rejected", "inconclusive", "applied",
  "signature_changed", "body_modified", "symbol_added", "modified", "ignored"] as const;
export type Kind = (typeof KINDS)[number];

/** `rank`'s strategies. */
export const STRATEGIES = ["kg", "mean", "lcb", "thompson", "ema"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** `notify: true` sends a msgpack-RPC notification: written, never answered. */
export interface NotifyOption {
  notify?: boolean;
}

export interface StartArgs extends NotifyOption {
  model: string;
  /** One of {@link TASKS} (a string, so that a newer daemon's tasks pass). */
  task: Task | (string & {});
  reason?: string;
  /** A trace id of the client's choosing: 1–128 bytes of `A-Za-z0-9._:-`. */
  traceId?: string;
  /** Code traces: a repository the daemon watches, and paths relative to it. */
  repo?: string;
  files?: string[];
  /** A domain within the task (1–128 bytes of UTF-8, no control characters); needs a daemon that has domains. */
  domain?: string;
}

export interface CompleteArgs extends NotifyOption {
  traceId: string;
  /** An integer, or a float the daemon rounds to the nearest ms. */
  latencyMs: number;
  inputTokens?: number;
  outputTokens?: number;
  /** The generated text (≤ 1 MiB; kept for code traces). */
  output?: string;
}

export interface FailArgs extends NotifyOption {
  traceId: string;
  /** Why (≤ 4096 bytes). */
  error?: string;
}

export interface OutcomeArgs extends NotifyOption {
  traceId: string;
  kind: Kind | (string & {});
  /** In [0, 1]; required for accepted, accepted_with_edits and rejected. */
  confidence?: number;
}

/** One action of an `outcome({actions})` sequence, in the order they ran. */
export interface Action {
  /** "" for an action with no trace (it still counts as "the next one"). */
  traceId: string;
  success: boolean;
  confidence: number;
  output?: string;
}

export interface OutcomeActionsArgs extends NotifyOption {
  actions: Action[];
}

export interface QueryArgs {
  model?: string;
  task?: Task | (string & {});
  degradeThreshold?: number;
  /** Only this domain's cells (a daemon that has domains). */
  domain?: string;
  /** `true`: list the per-domain cells too (a daemon that has domains). */
  domains?: boolean;
}

export interface QueryPendingArgs {
  model?: string;
  task?: Task | (string & {});
  /** The daemon's default is 1000. */
  limit?: number;
}

export interface RankArgs {
  task: Task | (string & {});
  /** Model ids; default: every model with stats for the task. */
  candidates?: string[];
  strategy?: Strategy | (string & {});
  latencyWeight?: number;
  costWeight?: number;
  excludeDegraded?: boolean;
  degradeThreshold?: number;
  /** Thompson's draws, for a repeatable answer. */
  seed?: number;
  /** Rank within this domain (a daemon that has domains). */
  domain?: string;
}

export interface ForgetArgs {
  model: string;
  /** Only this task's cell (a daemon that has domains). */
  task?: Task | (string & {});
  /** Only this domain's cell (a daemon that has domains). */
  domain?: string;
}

export interface ImportArgs {
  /** Up to 1024 profiles in the shape `query` answers (snake_case, as the daemon sends them). */
  profiles?: Array<Record<string, unknown>>;
  /** Domain cells: `{model, task, domain, ...}` with the numbers of a cell as `query` answers it. */
  cells?: Array<Record<string, unknown>>;
  mode?: "merge" | "replace";
}

// ---------------------------------------------------------------------------
// Results, as the daemon sends them

export interface Posterior {
  alpha: number;
  beta: number;
  judged: number;
  mean: number;
  lo: number;
  hi: number;
}

export interface TaskStats {
  calls: number;
  successes: number;
  failures: number;
  avg_latency_ms: number;
  ema_quality: number;
  success_rate: number;
  posterior?: Posterior;
  latency_p50_ms?: number | null;
  latency_p95_ms?: number | null;
  input_tokens?: number;
  output_tokens?: number;
  tokens_per_accepted?: number | null;
  cost_per_accepted?: number | null;
  [key: string]: unknown;
}

export interface Profile {
  model: string;
  total_calls: number;
  success_count: number;
  fail_count: number;
  total_latency_ms: number;
  avg_latency_ms: number;
  success_rate: number;
  ema_quality: number;
  degraded: boolean;
  /** Unix seconds it became degraded under the daemon's configured threshold; null when it is not. */
  degraded_since: number | null;
  updated_at: number;
  tasks: Record<string, TaskStats>;
  posterior?: Posterior;
  latency_p50_ms?: number | null;
  latency_p95_ms?: number | null;
  input_tokens?: number;
  output_tokens?: number;
  tokens_per_accepted?: number | null;
  cost_per_accepted?: number | null;
  [key: string]: unknown;
}

export interface PendingTrace {
  trace_id: string;
  model: string;
  task: string;
  reason: string;
  started_at: number;
  completed: boolean;
  latency_ms: number;
  input_tokens: number;
  output_tokens: number;
  repo?: string;
  files?: string[];
  [key: string]: unknown;
}

/** How the daemon judged one trace (`quality`, `success` null for inconclusive and deferred). */
export interface OutcomeResult {
  trace_id: string;
  kind: string;
  quality: number | null;
  success: boolean | null;
  deferred?: boolean;
}

/** Why a model is degraded (failures > successes + threshold); `threshold` is the request's,
 * `since` the time under the configured one (null when it is not degraded under it). */
export interface DegradedWhy {
  model: string;
  failures: number;
  successes: number;
  threshold: number;
  since: number | null;
}

export interface RankItem {
  model: string;
  score: number;
  prior: boolean;
  degraded: boolean;
  quality: number;
  mean: number;
  lo: number;
  hi: number;
  judged: number;
  latency_ms: number | null;
  latency_penalty: number;
  cost_per_accepted: number | null;
  cost_penalty: number;
  /** kg: ranked first to learn about it, though its score is not the best. */
  explore: boolean;
  /** null unless `degraded`. */
  degraded_why: DegradedWhy | null;
  [key: string]: unknown;
}

export interface RankResult {
  task: string;
  strategy: string;
  ranked: RankItem[];
  excluded: string[];
  /** Why each of `excluded` was left out, in the same order. */
  excluded_why: DegradedWhy[];
  [key: string]: unknown;
}

export interface ImportResult {
  imported: number;
  created: number;
  cells: number;
  cells_created: number;
  mode: string;
}

export interface ScanResult {
  /** How many repositories the scan looked at (those of the pending completed code traces). */
  repos: number;
  judged: Array<{ trace_id: string; kind: string; evidence: string }>;
  duration_ms: number;
}

/** `stats`: counters and the configuration in force (see the protocol). */
export type Stats = Record<string, unknown> & {
  version: string;
  uptime_s: number;
  connections: number;
  requests_total: number;
  errors_total: number;
  notify_errors_total: number;
  pending: number;
  profiles: number;
};

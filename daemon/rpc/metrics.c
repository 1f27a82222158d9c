/* metrics.c - counters per (model, task) that live as long as the process,
 * and the Prometheus text of everything `metrics` shows.
 *
 * Names follow OpenTelemetry's GenAI semantic conventions as Prometheus
 * spells them where one fits (gen_ai_client_operation_duration_seconds,
 * gen_ai_client_token_usage, labels gen_ai_request_model,
 * gen_ai_token_type, gen_ai_operation_name), with those conventions'
 * advised bucket boundaries; the rest is outcomed_*.  The task is label
 * outcomed_task; gen_ai_operation_name is given only where a task is one of
 * OpenTelemetry's operations (embed: embeddings; a generate may be a chat or
 * a text completion, so it gets none).  Domains never become labels.
 *
 * The series are kept in an array sorted by model, then task name: the
 * text comes out in that order, and a lookup is a binary search over at
 * most METRICS_SERIES_MAX entries.
 */
#include "metrics.h"

#include "rpc.h"
#include "textbuf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef OUTCOMED_VERSION
#define OUTCOMED_VERSION "unknown"
#endif

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* gen_ai.client.operation.duration's advised boundaries, in ms (latencies
 * are whole ms, so a bucket's count is exact) and as printed. */
static const uint32_t metrics__dur_ms[] = {
        10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920,
};
static const char *const metrics__dur_le[] = {
        "0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64",
        "1.28", "2.56", "5.12", "10.24", "20.48", "40.96", "81.92",
};
#define DUR_N NELEMS(metrics__dur_ms)

/* gen_ai.client.token.usage's. */
static const uint64_t metrics__tok_le[] = {
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
        67108864,
};
#define TOK_N NELEMS(metrics__tok_le)

static const char *const metrics__token_type[2] = { "input", "output" };
#define SRC_N 3 /* enum tracker_source */
static const char *const metrics__source[SRC_N] = { "conversation", "git", "expiry" };

struct metrics__series {
        char *model;            /* NULL: the overflow series */
        enum tracker_task task;
        uint64_t completed, failed;
        uint64_t dur[DUR_N + 1]; /* per bucket, not cumulative; the last: above them */
        uint64_t dur_sum_ms;
        uint64_t tok[2][TOK_N + 1];
        uint64_t tok_count[2], tok_sum[2];
        uint64_t outcomes[SRC_N][KIND__COUNT];
};

struct metrics {
        struct metrics__series **v; /* sorted: model, then task name */
        size_t n, cap;
        struct metrics__series overflow;
        bool overflow_used;
};

struct metrics *metrics_new(void)
{
        return calloc(1, sizeof(struct metrics));
}

void metrics_free(struct metrics *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++) {
                free(m->v[i]->model);
                free(m->v[i]);
        }
        free(m->v);
        free(m);
}

size_t metrics_series_count(const struct metrics *m)
{
        return m ? m->n : 0;
}

static int metrics__cmp(const char *model, enum tracker_task task,
                        const struct metrics__series *s)
{
        int c = strcmp(model, s->model);
        return c ? c : strcmp(tracker_task_name(task), tracker_task_name(s->task));
}

/* The series of (model, task), made when there is room; else the overflow
 * one (also when out of memory: the count is kept, its labels lost). */
static struct metrics__series *metrics__series(struct metrics *m, const char *model,
                                               enum tracker_task task)
{
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = metrics__cmp(model, task, m->v[mid]);
                if (c == 0)
                        return m->v[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (m->n >= METRICS_SERIES_MAX)
                goto overflow;
        if (m->n == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 16;
                struct metrics__series **v = realloc(m->v, cap * sizeof(*v));
                if (!v)
                        goto overflow;
                m->v = v;
                m->cap = cap;
        }
        struct metrics__series *s = calloc(1, sizeof(*s));
        if (!s || !(s->model = strdup(model))) {
                free(s);
                goto overflow;
        }
        s->task = task;
        memmove(&m->v[lo + 1], &m->v[lo], (m->n - lo) * sizeof(*m->v));
        m->v[lo] = s;
        m->n++;
        return s;
overflow:
        m->overflow_used = true;
        return &m->overflow;
}

static void metrics__on_complete(void *data, const char *model, enum tracker_task task,
                                 const struct tracker_complete *c)
{
        struct metrics__series *s = metrics__series(data, model, task);
        size_t b = 0;
        while (b < DUR_N && c->latency_ms > metrics__dur_ms[b])
                b++;
        s->completed++;
        s->dur[b]++;
        s->dur_sum_ms += c->latency_ms;
        /* A count of 0 is what complete gets when none was given: not an
         * observation (the conventions report only counts known). */
        const uint32_t tokens[2] = { c->input_tokens, c->output_tokens };
        for (int k = 0; k < 2; k++) {
                if (!tokens[k])
                        continue;
                b = 0;
                while (b < TOK_N && tokens[k] > metrics__tok_le[b])
                        b++;
                s->tok[k][b]++;
                s->tok_count[k]++;
                s->tok_sum[k] += tokens[k];
        }
}

static void metrics__on_fail(void *data, const char *model, enum tracker_task task)
{
        metrics__series(data, model, task)->failed++;
}

static void metrics__on_resolve(void *data, const char *model, enum tracker_task task,
                                const struct tracker_result *r, enum tracker_source src)
{
        if ((unsigned)src < SRC_N && (unsigned)r->kind < KIND__COUNT)
                metrics__series(data, model, task)->outcomes[src][r->kind]++;
}

void metrics_watch(struct metrics *m, struct tracker *t)
{
        if (!m || !t)
                return;
        const struct tracker_observer o = {
                .complete = metrics__on_complete,
                .fail = metrics__on_fail,
                .resolve = metrics__on_resolve,
                .data = m,
        };
        tracker_add_observer(t, &o);
}

/* ---- the text ---------------------------------------------------------- */

static void metrics__printf(struct textbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void metrics__printf(struct textbuf *b, const char *fmt, ...)
{
        char small[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if ((size_t)n < sizeof(small)) {
                textbuf_put(b, small, (size_t)n);
                return;
        }
        if (textbuf_reserve(b, (size_t)n) < 0)
                return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

/* A label value, escaped as the format says: \\, \" and \n. */
static void metrics__value(struct textbuf *b, const char *s)
{
        textbuf_puts(b, "\"");
        for (const char *run = s;; s++) {
                if (*s && *s != '\\' && *s != '"' && *s != '\n')
                        continue;
                textbuf_put(b, run, (size_t)(s - run));
                if (!*s)
                        break;
                textbuf_puts(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
                run = s + 1;
        }
        textbuf_puts(b, "\"");
}

/* A sample's value: the shortest of %.15g and %.17g that reads back. */
static void metrics__double(struct textbuf *b, double v)
{
        if (isnan(v)) {
                textbuf_puts(b, "NaN");
                return;
        }
        if (isinf(v)) {
                textbuf_puts(b, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        char s[32];
        snprintf(s, sizeof(s), "%.15g", v);
        if (strtod(s, NULL) != v)
                snprintf(s, sizeof(s), "%.17g", v);
        textbuf_puts(b, s);
}

static void metrics__family(struct textbuf *b, const char *name, const char *type,
                            const char *help)
{
        metrics__printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *metrics__operation(enum tracker_task task)
{
        return task == TASK_EMBED ? "embeddings" : NULL;
}

/* "{labels" of a (model, task) pair, open for more; model NULL: the
 * overflow series. */
static void metrics__labels(struct textbuf *b, const char *model, enum tracker_task task)
{
        if (!model) {
                textbuf_puts(b, "{otel_metric_overflow=\"true\"");
                return;
        }
        const char *op = metrics__operation(task);
        textbuf_puts(b, "{");
        if (op)
                metrics__printf(b, "gen_ai_operation_name=\"%s\",", op);
        textbuf_puts(b, "gen_ai_request_model=");
        metrics__value(b, model);
        metrics__printf(b, ",outcomed_task=\"%s\"", tracker_task_name(task));
}

/* A sample of a series: name{labels<extra>} value */
static void metrics__sample_u64(struct textbuf *b, const char *name,
                                const struct metrics__series *s, const char *extra, uint64_t v)
{
        textbuf_puts(b, name);
        metrics__labels(b, s->model, s->task);
        metrics__printf(b, "%s} %llu\n", extra, (unsigned long long)v);
}

/* The series to print: the counted ones, then the overflow one if used. */
static size_t metrics__all(const struct metrics *m, const struct metrics__series **out)
{
        size_t n = 0;
        for (size_t i = 0; m && i < m->n; i++)
                out[n++] = m->v[i];
        if (m && m->overflow_used)
                out[n++] = &m->overflow;
        return n;
}

static void metrics__duration(struct textbuf *b, const struct metrics__series *const *all,
                              size_t n)
{
        const char *name = "gen_ai_client_operation_duration_seconds";
        metrics__family(b, name, "histogram",
                        "GenAI operation duration: the latency_ms of each complete, in "
                        "seconds, since the daemon started.");
        for (size_t i = 0; i < n; i++) {
                const struct metrics__series *s = all[i];
                if (!s->completed)
                        continue;
                uint64_t cum = 0;
                char extra[32];
                for (size_t k = 0; k < DUR_N; k++) {
                        cum += s->dur[k];
                        snprintf(extra, sizeof(extra), ",le=\"%s\"", metrics__dur_le[k]);
                        metrics__sample_u64(b, "gen_ai_client_operation_duration_seconds_bucket",
                                            s, extra, cum);
                }
                metrics__sample_u64(b, "gen_ai_client_operation_duration_seconds_bucket", s,
                                    ",le=\"+Inf\"", s->completed);
                textbuf_puts(b, "gen_ai_client_operation_duration_seconds_sum");
                metrics__labels(b, s->model, s->task);
                metrics__printf(b, "} %llu.%03llu\n", (unsigned long long)(s->dur_sum_ms / 1000),
                                (unsigned long long)(s->dur_sum_ms % 1000));
                metrics__sample_u64(b, "gen_ai_client_operation_duration_seconds_count", s, "",
                                    s->completed);
        }
}

static void metrics__tokens(struct textbuf *b, const struct metrics__series *const *all,
                            size_t n)
{
        metrics__family(b, "gen_ai_client_token_usage", "histogram",
                        "Input and output tokens of each complete that gave a count (not 0), "
                        "since the daemon started.");
        for (size_t i = 0; i < n; i++) {
                const struct metrics__series *s = all[i];
                for (int k = 0; k < 2; k++) {
                        if (!s->tok_count[k])
                                continue;
                        char extra[64];
                        uint64_t cum = 0;
                        for (size_t j = 0; j < TOK_N; j++) {
                                cum += s->tok[k][j];
                                snprintf(extra, sizeof(extra),
                                         ",gen_ai_token_type=\"%s\",le=\"%llu\"",
                                         metrics__token_type[k],
                                         (unsigned long long)metrics__tok_le[j]);
                                metrics__sample_u64(b, "gen_ai_client_token_usage_bucket", s,
                                                    extra, cum);
                        }
                        snprintf(extra, sizeof(extra), ",gen_ai_token_type=\"%s\",le=\"+Inf\"",
                                 metrics__token_type[k]);
                        metrics__sample_u64(b, "gen_ai_client_token_usage_bucket", s, extra,
                                            s->tok_count[k]);
                        snprintf(extra, sizeof(extra), ",gen_ai_token_type=\"%s\"",
                                 metrics__token_type[k]);
                        metrics__sample_u64(b, "gen_ai_client_token_usage_sum", s, extra,
                                            s->tok_sum[k]);
                        metrics__sample_u64(b, "gen_ai_client_token_usage_count", s, extra,
                                            s->tok_count[k]);
                }
        }
}

static void metrics__counts(struct textbuf *b, const struct metrics__series *const *all,
                            size_t n)
{
        metrics__family(b, "outcomed_calls_total", "counter",
                        "Calls ended since the daemon started: status completed (complete) "
                        "or failed (fail).");
        for (size_t i = 0; i < n; i++) {
                metrics__sample_u64(b, "outcomed_calls_total", all[i], ",status=\"completed\"",
                                    all[i]->completed);
                metrics__sample_u64(b, "outcomed_calls_total", all[i], ",status=\"failed\"",
                                    all[i]->failed);
        }
        metrics__family(b, "outcomed_outcomes_total", "counter",
                        "Traces judged since the daemon started, by kind and by who judged "
                        "(source: conversation, git, expiry); kinds never seen are left out.");
        for (size_t i = 0; i < n; i++) {
                for (int src = 0; src < SRC_N; src++) {
                        for (int k = 0; k < KIND__COUNT; k++) {
                                uint64_t v = all[i]->outcomes[src][k];
                                if (!v)
                                        continue;
                                char extra[80];
                                snprintf(extra, sizeof(extra), ",kind=\"%s\",source=\"%s\"",
                                         tracker_kind_name((enum tracker_kind)k),
                                         metrics__source[src]);
                                metrics__sample_u64(b, "outcomed_outcomes_total", all[i], extra,
                                                    v);
                        }
                }
        }
}

/* Task names in byte order, as the series are sorted. */
static const enum tracker_task metrics__tasks_sorted[TASK__COUNT] = {
        TASK_CLASSIFY, TASK_CODE, TASK_EMBED, TASK_GENERATE, TASK_REASONING,
};

struct metrics__pair {
        const struct tracker_profile *p;
        enum tracker_task task;
};

static void metrics__gauges(struct textbuf *b, const struct tracker *t,
                            const struct metrics__pair *pairs, size_t n, uint64_t now)
{
        static const struct {
                const char *name, *help;
        } fam[] = {
                { "outcomed_quality", "Quality of the model on the task: the EMA of judged "
                                      "outcomes' quality (0..1)." },
                { "outcomed_posterior_mean", "Mean of the Beta posterior of the success "
                                             "probability (0..1)." },
                { "outcomed_posterior_lower", "Lower end of the posterior's 95% interval." },
                { "outcomed_posterior_upper", "Upper end of the posterior's 95% interval." },
                { "outcomed_judged", "Judged outcomes behind the posterior (faded when a "
                                     "half-life is set)." },
        };
        for (size_t f = 0; f < NELEMS(fam); f++) {
                metrics__family(b, fam[f].name, "gauge", fam[f].help);
                for (size_t i = 0; i < n; i++) {
                        const struct tracker_task_stats *ts = &pairs[i].p->tasks[pairs[i].task];
                        struct tracker_evidence e;
                        double v[5];
                        v[0] = ts->ema_quality;
                        tracker_evidence_at(t, &ts->ev, now, &e);
                        tracker_posterior(&e, &v[1], &v[2], &v[3]);
                        v[4] = e.judged;
                        textbuf_puts(b, fam[f].name);
                        metrics__labels(b, pairs[i].p->model, pairs[i].task);
                        textbuf_puts(b, "} ");
                        metrics__double(b, v[f]);
                        textbuf_puts(b, "\n");
                }
        }
}

static void metrics__u64(struct textbuf *b, const char *name, const char *type,
                         const char *help, uint64_t v)
{
        metrics__family(b, name, type, help);
        metrics__printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void metrics__process(struct textbuf *b, const struct rpc_env *env,
                             const struct metrics *m, size_t omitted)
{
        const struct rpc_counters *c = &env->counters;
        const struct tracker *t = env->tracker;

        metrics__family(b, "outcomed_pending_traces", "gauge",
                        "Traces started and not yet judged.");
        for (size_t i = 0; i < TASK__COUNT; i++) {
                enum tracker_task task = metrics__tasks_sorted[i];
                uint64_t n = 0;
                for (const struct tracker_trace *tr = t ? tracker_task_first(t, task) : NULL; tr;
                     tr = tracker_task_next(tr))
                        n++;
                metrics__printf(b, "outcomed_pending_traces{outcomed_task=\"%s\"} %llu\n",
                                tracker_task_name(task), (unsigned long long)n);
        }
        metrics__u64(b, "outcomed_profiles", "gauge", "Models with a profile.",
                     t ? tracker_profile_count(t) : 0);
        metrics__u64(b, "outcomed_domain_cells", "gauge", "Domain cells (model, task, domain).",
                     t ? tracker_cell_count(t) : 0);
        metrics__u64(b, "outcomed_connections", "gauge", "Client connections open.",
                     c->connections);
        metrics__u64(b, "outcomed_connections_total", "counter", "Client connections accepted.",
                     c->connections_total);
        metrics__u64(b, "outcomed_requests_total", "counter",
                     "Requests and notifications handled.", c->requests_total);
        metrics__u64(b, "outcomed_errors_total", "counter",
                     "Error replies and failed notifications.", c->errors_total);
        metrics__u64(b, "outcomed_commits_total", "counter",
                     "Batches of changes committed to the database.", c->commits_total);
        metrics__u64(b, "outcomed_commit_errors_total", "counter",
                     "Batches that could not be committed.", c->commit_errors_total);
        metrics__u64(b, "outcomed_journal_rows_total", "counter",
                     "Journal entries (changes) committed.", c->journal_total);
        metrics__u64(b, "outcomed_snapshots_total", "counter",
                     "Snapshots of the state written.", c->snapshots_total);
        metrics__u64(b, "outcomed_scans_total", "counter", "Git scans done.", c->scans_total);

        const struct {
                const char *limit;
                uint64_t v;
        } refusals[] = {
                { "allow_uids", c->refused_allow_total },
                { "connections", c->refused_connections_total },
                { "connections_per_uid", c->refused_per_uid_total },
                { "domains", t ? tracker_cells_refused(t) : 0 },
                { "file_descriptors", c->refused_fds_total },
                { "message_bytes", c->too_large_total },
                { "message_timeout_ms", c->message_timeouts_total },
                { "models", c->overloaded_models_total },
                { "partial_bytes", c->partial_drops_total },
                { "pending", c->overloaded_pending_total },
                { "reply_buffer_bytes", c->dropped_total },
        };
        metrics__family(b, "outcomed_refusals_total", "counter",
                        "Refusals by the limit that caused them: connections refused "
                        "(allow_uids also counts allow_group), connections dropped "
                        "(message_timeout_ms, partial_bytes, reply_buffer_bytes), messages "
                        "too large, requests answered overloaded (models, pending), domain "
                        "cells not made (domains).");
        for (size_t i = 0; i < NELEMS(refusals); i++)
                metrics__printf(b, "outcomed_refusals_total{limit=\"%s\"} %llu\n",
                                refusals[i].limit, (unsigned long long)refusals[i].v);

        bool writable = !env->journal.writable || env->journal.writable(env->journal.data);
        metrics__u64(b, "outcomed_writable", "gauge",
                     "1 when the database can be written, 0 when changes are refused.",
                     writable);
        metrics__u64(b, "outcomed_start_time_seconds", "gauge",
                     "When the daemon started, in unix seconds.", env->started_at);
        metrics__family(b, "outcomed_build_info", "gauge", "The daemon's version.");
        textbuf_puts(b, "outcomed_build_info{version=");
        metrics__value(b, OUTCOMED_VERSION);
        textbuf_puts(b, "} 1\n");
        char help[160];
        snprintf(help, sizeof(help),
                 "(model, task) pairs counted, out of at most %d; later pairs count in the "
                 "series labelled otel_metric_overflow.", METRICS_SERIES_MAX);
        metrics__u64(b, "outcomed_metrics_series", "gauge", help, metrics_series_count(m));
        snprintf(help, sizeof(help),
                 "(model, task) pairs of profiles left out of the gauges, past the first %d.",
                 METRICS_SERIES_MAX);
        metrics__u64(b, "outcomed_metrics_omitted", "gauge", help, omitted);
}

int metrics_render(const struct metrics *m, const struct rpc_env *env, uint64_t now, char **text,
                   size_t *len)
{
        struct textbuf b = { 0 };
        (void)textbuf_reserve(&b, 4096); /* a failure shows as b.oom */
        const struct tracker_profile **profiles = NULL;
        struct metrics__pair *pairs = NULL;
        const struct metrics__series **all = NULL;
        size_t npairs = 0, omitted = 0;
        int rc = -ENOMEM;

        long np = env->tracker ? tracker_profiles_sorted(env->tracker, &profiles) : 0;
        if (np < 0)
                goto out;
        pairs = malloc(METRICS_SERIES_MAX * sizeof(*pairs));
        all = malloc((metrics_series_count(m) + 1) * sizeof(*all));
        if (!pairs || !all)
                goto out;
        for (long i = 0; i < np; i++) {
                for (int k = 0; k < TASK__COUNT; k++) {
                        enum tracker_task task = metrics__tasks_sorted[k];
                        if (!profiles[i]->tasks[task].present)
                                continue;
                        if (npairs == METRICS_SERIES_MAX) {
                                omitted++;
                                continue;
                        }
                        pairs[npairs++] = (struct metrics__pair){ profiles[i], task };
                }
        }
        size_t n = metrics__all(m, all);
        metrics__duration(&b, all, n);
        metrics__tokens(&b, all, n);
        metrics__counts(&b, all, n);
        metrics__gauges(&b, env->tracker, pairs, npairs, now);
        metrics__process(&b, env, m, omitted);
        if (b.oom)
                goto out;
        *text = b.p;
        *len = b.len;
        b.p = NULL;
        rc = 0;
out:
        free(b.p);
        free(profiles);
        free(pairs);
        free(all);
        return rc;
}

/* test_tracker.c - Check unit tests for the pure tracker core (daemon/core/tracker.c).
 *
 * Three groups:
 *   - "seed": the five #[test]s of the Rust tracker outcomed grew out of, ported, with the
 *     seed's loose ">" / "<" checks replaced by the exact numbers (worked out
 *     by hand in the comments; the contract's 0.5 task prior included);
 *   - "rules": the protocol's rules and edge cases (protocol/README.md): the kind
 *     table, priors, duplicates, refusals, uids, ids, limits, the sequence
 *     form, deferral, pending order, change collection, loading, latency;
 *   - "fuzz": ~20k random operations from a fixed seed, checking the
 *     tracker's invariants after every one (and that a refused call changes
 *     nothing at all).
 *
 * "Nothing changes" is checked by dumping the whole visible state (every
 * profile, every pending trace, floats in %a) before and after, plus
 * tracker_has_changes().  Floats the seed computes with one rounding per
 * step are compared to 1e-12; latencies that are exact in binary are
 * compared exactly.
 */
#include "tracker.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-12

/* Every passing ck_assert records a checkpoint (a write to the parent in
 * CK_FORK mode), which makes hot loops slow: the fuzz and the helpers it
 * calls on every operation use CHECK, which only calls into Check when the
 * condition fails. */
#define CHECK(expr)                                                                   \
        do {                                                                          \
                if (!(expr))                                                          \
                        ck_abort_msg("%s:%d: check '%s' failed", __FILE__, __LINE__, #expr); \
        } while (0)

/* ---- helpers ----------------------------------------------------------- */

static struct tracker *new_tracker(const char *prefix, uint64_t max_models, uint64_t max_pending)
{
        struct tracker_options o = {
                .id_prefix = prefix,
                .max_models = max_models,
                .max_pending = max_pending,
        };
        struct tracker *t = tracker_new(&o);
        ck_assert_ptr_nonnull(t);
        return t;
}

/* Start a trace; the id (generated or the client's) is copied to out. */
static int start_full(struct tracker *t, const char *model, enum tracker_task task,
                      const char *client_id, const char *repo, uint32_t uid, uint64_t now,
                      char *out, size_t outlen)
{
        static const char *const files[] = { "src/a.c", "src/b.c" };
        struct tracker_start s = {
                .model = model,
                .task = task,
                .reason = "test",
                .trace_id = client_id,
                .repo = repo,
                .files = repo ? files : NULL,
                .nfiles = repo ? 2 : 0,
                .uid = uid,
                .now = now,
        };
        const char *id = NULL;
        int r = tracker_start(t, &s, &id);
        if (r == 0) {
                ck_assert_ptr_nonnull(id);
                if (out)
                        snprintf(out, outlen, "%s", id);
        }
        return r;
}

/* The common case: generated id, uid 1000, time 1000; asserts success. */
static void start_ok(struct tracker *t, const char *model, enum tracker_task task, char *out,
                     size_t outlen)
{
        ck_assert_int_eq(start_full(t, model, task, NULL, NULL, 1000, 1000, out, outlen), 0);
}

static int complete_as(struct tracker *t, const char *id, uint32_t latency, uint32_t uid)
{
        struct tracker_complete c = {
                .trace_id = id,
                .latency_ms = latency,
                .input_tokens = 10,
                .output_tokens = 5,
                .output = "out",
                .uid = uid,
                .now = 2000,
        };
        return tracker_complete(t, &c);
}

static int outcome_as(struct tracker *t, const char *id, enum tracker_kind kind, double c,
                      uint32_t uid, struct tracker_result *res)
{
        struct tracker_result tmp;
        return tracker_outcome(t, id, kind, c, uid, 3000, res ? res : &tmp);
}

/* The whole visible state as text (malloc'ed). */
static char *dump(const struct tracker *t)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        CHECK(f);
        const struct tracker_profile **v;
        long n = tracker_profiles_sorted(t, &v);
        CHECK(n >= 0);
        for (long i = 0; i < n; i++) {
                const struct tracker_profile *p = v[i];
                fprintf(f, "P %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %" PRIu64
                        " %" PRIu64 "\n",
                        p->model, p->total_calls, p->success_count, p->fail_count,
                        p->total_latency_ms, p->ema_quality, p->updated_at, p->degraded_since);
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *ts = &p->tasks[k];
                        if (!ts->present)
                                continue;
                        fprintf(f, "  T%d %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %a\n", k, ts->calls,
                                ts->successes, ts->failures, ts->avg_latency_ms, ts->ema_quality);
                }
        }
        free(v);
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                fprintf(f, "R %s %s %s %s %" PRIu64 " %" PRIu64 " %u %u %u %u %u %d %d %s\n", tr->id,
                        tr->model, tr->reason, tr->repo ? tr->repo : "-", tr->seq, tr->started_at,
                        tr->latency_ms, tr->input_tokens, tr->output_tokens, tr->uid, tr->nfiles,
                        tr->task, tr->completed, tr->output ? tr->output : "-");
                for (uint32_t i = 0; i < tr->nfiles; i++)
                        fprintf(f, "  F %s\n", tr->files[i]);
        }
        fprintf(f, "C %zu %zu\n", tracker_profile_count(t), tracker_pending_count(t));
        fclose(f);
        return buf;
}

/* A state to compare against after a call that must change nothing. */
struct frozen {
        char *text;
        bool changes;
};

static struct frozen freeze(const struct tracker *t)
{
        struct frozen z = { dump(t), tracker_has_changes(t) };
        return z;
}

static void assert_unchanged(const struct tracker *t, struct frozen *z)
{
        char *now = dump(t);
        if (strcmp(now, z->text) != 0)
                ck_abort_msg("state changed:\n--- before\n%s--- after\n%s", z->text, now);
        CHECK(tracker_has_changes(t) == z->changes);
        free(now);
        free(z->text);
        z->text = NULL;
}

/* A sink that forgets everything (to clear the change lists). */
static void nop_profile(void *d, const struct tracker_profile *p) { (void)d, (void)p; }
static void nop_deleted(void *d, const char *id) { (void)d, (void)id; }
static void nop_trace(void *d, const struct tracker_trace *tr) { (void)d, (void)tr; }

static void drain(struct tracker *t)
{
        struct tracker_sink s = { nop_profile, nop_deleted, nop_trace, NULL, NULL, NULL, NULL };
        ck_assert_int_eq(tracker_collect(t, &s), 0);
        ck_assert(!tracker_has_changes(t));
}

/* Results of tracker_sequence, copied out in the callback (the trace id
 * is only valid until the next tracker call). */
struct seq_log {
        size_t n;
        char id[32][64];
        struct tracker_result r[32];
};

static void seq_cb(void *data, const struct tracker_result *res)
{
        struct seq_log *log = data;
        CHECK(log->n < 32);
        CHECK(res->trace_id);
        snprintf(log->id[log->n], sizeof(log->id[0]), "%s", res->trace_id);
        log->r[log->n] = *res;
        log->n++;
}

/* ---- the seed's tests -------------------------------------------------- */

START_TEST(seed_lifecycle)
{
        struct tracker *t = new_tracker("t", 0, 0);
        const char *model = "qwen/qwen3-4b:q4_k_m";
        char id[64];
        struct tracker_start s = {
                .model = model, .task = TASK_CODE, .reason = "Code task -> Qwen3-4B",
                .uid = 1000, .now = 1000,
        };
        const char *idp;
        ck_assert_int_eq(tracker_start(t, &s, &idp), 0);
        snprintf(id, sizeof(id), "%s", idp);
        ck_assert_str_eq(tracker_trace_get(t, id)->reason, "Code task -> Qwen3-4B");

        struct tracker_complete c = {
                .trace_id = id, .latency_ms = 1200, .input_tokens = 100, .output_tokens = 50,
                .uid = 1000, .now = 1001,
        };
        ck_assert_int_eq(tracker_complete(t, &c), 0);

        const struct tracker_profile *p = tracker_profile_get(t, model);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->total_calls, 1);
        ck_assert_double_eq(tracker_profile_avg_latency(p), 1200.0);
        ck_assert_double_eq(p->ema_quality, 0.5); /* complete alone: no quality yet */
        ck_assert_uint_eq(p->updated_at, 1001);
        const struct tracker_trace *tr = tracker_trace_get(t, id);
        ck_assert(tr && tr->completed);
        ck_assert_uint_eq(tr->latency_ms, 1200);
        ck_assert_uint_eq(tr->input_tokens, 100);
        ck_assert_uint_eq(tr->output_tokens, 50);

        struct tracker_result res;
        ck_assert_int_eq(tracker_outcome(t, id, KIND_ACCEPTED, 0.9, 1000, 1002, &res), 0);
        ck_assert_str_eq(res.trace_id, id);
        ck_assert_int_eq(res.kind, KIND_ACCEPTED);
        ck_assert(res.has_quality && res.has_success && res.success && !res.deferred);
        ck_assert_double_eq_tol(res.quality, 0.9, TOL);

        p = tracker_profile_get(t, model);
        ck_assert_uint_eq(p->success_count, 1);
        ck_assert_uint_eq(p->fail_count, 0);
        /* seed: "> 0.5"; exactly 0.5 * 0.8 + 0.9 * 0.2 = 0.58 */
        ck_assert_double_eq_tol(p->ema_quality, 0.58, TOL);
        const struct tracker_task_stats *ts = &p->tasks[TASK_CODE];
        ck_assert(ts->present);
        ck_assert_uint_eq(ts->calls, 1);
        ck_assert_uint_eq(ts->successes, 1);
        ck_assert_uint_eq(ts->failures, 0);
        ck_assert_double_eq(ts->avg_latency_ms, 1200.0);
        ck_assert_double_eq_tol(ts->ema_quality, 0.58, TOL); /* from the 0.5 task prior */
        ck_assert_uint_eq(p->updated_at, 1002);
        ck_assert_ptr_null(tracker_trace_get(t, id));
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        tracker_free(t);
}
END_TEST

START_TEST(seed_failure_degrades)
{
        /* The seed's first half: failing ids that were never started finds
         * nothing (the contract reports it) and changes nothing. */
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64], bogus[32];
        for (int i = 0; i < 5; i++) {
                start_ok(t, "bad-model", TASK_GENERATE, id, sizeof(id));
                ck_assert_int_eq(complete_as(t, id, 100, 1000), 0);
                snprintf(bogus, sizeof(bogus), "t-fail-%d", i);
                ck_assert_int_eq(tracker_fail(t, bogus, 1000, 2000), -ENOENT);
        }
        const struct tracker_profile *p = tracker_profile_get(t, "bad-model");
        ck_assert_uint_eq(p->total_calls, 5);
        ck_assert_uint_eq(p->fail_count, 0);
        ck_assert_uint_eq(tracker_pending_count(t), 5);
        tracker_free(t);

        /* "Let's redo this properly". */
        t = new_tracker("t", 0, 0);
        for (int i = 0; i < 5; i++) {
                start_ok(t, "bad-model", TASK_GENERATE, id, sizeof(id));
                ck_assert_int_eq(complete_as(t, id, 100, 1000), 0);
                ck_assert_int_eq(tracker_fail(t, id, 1000, 2000), 0);
        }
        p = tracker_profile_get(t, "bad-model");
        ck_assert_uint_eq(p->fail_count, 5);
        ck_assert_uint_eq(p->success_count, 0);
        ck_assert_uint_eq(p->total_calls, 5);
        ck_assert(tracker_profile_degraded(p, 2)); /* 5 > 0 + 2 */
        ck_assert(tracker_profile_degraded(p, 4));
        ck_assert(!tracker_profile_degraded(p, 5)); /* 5 > 5 is false */
        /* seed: "< 0.3"; exactly 0.5 * 0.8^5 = 0.16384 */
        ck_assert_double_eq_tol(p->ema_quality, 0.16384, TOL);
        const struct tracker_task_stats *ts = &p->tasks[TASK_GENERATE];
        ck_assert(ts->present);
        ck_assert_uint_eq(ts->failures, 5);
        ck_assert_uint_eq(ts->calls, 5);
        ck_assert_double_eq_tol(ts->ema_quality, 0.16384, TOL);
        ck_assert_double_eq(tracker_success_rate(ts->successes, ts->failures), 0.0);
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        tracker_free(t);
}
END_TEST

START_TEST(seed_code_outcome_ground_truth)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "qwen/qwen3-4b:q4_k_m", TASK_CODE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, 500, 1000), 0);
        struct tracker_result res;
        ck_assert_int_eq(outcome_as(t, id, KIND_APPLIED, 0.0, 1000, &res), 0);
        ck_assert_double_eq(res.quality, 1.0);
        ck_assert(res.success);

        const struct tracker_profile *p = tracker_profile_get(t, "qwen/qwen3-4b:q4_k_m");
        ck_assert_uint_eq(p->success_count, 1);
        /* 0.5 * 0.8 + 1.0 * 0.2 = 0.6 (the seed allowed 0.01) */
        ck_assert_double_eq_tol(p->ema_quality, 0.6, TOL);
        ck_assert_double_eq_tol(p->tasks[TASK_CODE].ema_quality, 0.6, TOL);
        ck_assert_uint_eq(p->tasks[TASK_CODE].successes, 1);
        tracker_free(t);
}
END_TEST

START_TEST(seed_per_task_stats)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        for (int i = 0; i < 2; i++) {
                start_ok(t, "m1", TASK_CODE, id, sizeof(id));
                ck_assert_int_eq(complete_as(t, id, 1000, 1000), 0);
                ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 0.8, 1000, NULL), 0);
        }
        start_ok(t, "m1", TASK_GENERATE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, 500, 1000), 0);
        struct tracker_result res;
        ck_assert_int_eq(outcome_as(t, id, KIND_REJECTED, 0.9, 1000, &res), 0);
        ck_assert_double_eq_tol(res.quality, 0.03, TOL); /* 0.3 * (1 - 0.9) */
        ck_assert(res.has_success && !res.success);

        const struct tracker_profile *p = tracker_profile_get(t, "m1");
        ck_assert_uint_eq(p->total_calls, 3);
        ck_assert_uint_eq(p->total_latency_ms, 2500);
        ck_assert_uint_eq(p->success_count, 2);
        ck_assert_uint_eq(p->fail_count, 1);
        /* 0.5 -> 0.56 -> 0.608 -> 0.608 * 0.8 + 0.03 * 0.2 = 0.4924 */
        ck_assert_double_eq_tol(p->ema_quality, 0.4924, TOL);
        ck_assert_double_eq_tol(tracker_success_rate(p->success_count, p->fail_count), 2.0 / 3.0,
                                TOL);

        const struct tracker_task_stats *code = &p->tasks[TASK_CODE];
        ck_assert(code->present);
        ck_assert_uint_eq(code->calls, 2);
        ck_assert_uint_eq(code->successes, 2);
        ck_assert_uint_eq(code->failures, 0);
        ck_assert_double_eq(code->avg_latency_ms, 1000.0);
        ck_assert_double_eq_tol(code->ema_quality, 0.608, TOL);

        const struct tracker_task_stats *gen = &p->tasks[TASK_GENERATE];
        ck_assert(gen->present);
        ck_assert_uint_eq(gen->calls, 1);
        ck_assert_uint_eq(gen->failures, 1);
        ck_assert_uint_eq(gen->successes, 0);
        ck_assert_double_eq(gen->avg_latency_ms, 500.0);
        ck_assert_double_eq_tol(gen->ema_quality, 0.406, TOL); /* 0.4 + 0.006 */

        for (int k = 0; k < TASK__COUNT; k++)
                if (k != TASK_CODE && k != TASK_GENERATE)
                        ck_assert(!p->tasks[k].present);
        tracker_free(t);
}
END_TEST

START_TEST(seed_export_import)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "m1", TASK_GENERATE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, 100, 1000), 0);
        ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 0.9, 1000, NULL), 0);

        const struct tracker_profile **v;
        ck_assert_int_eq(tracker_profiles_sorted(t, &v), 1);
        ck_assert_str_eq(v[0]->model, "m1");

        struct tracker *t2 = new_tracker("u", 0, 0);
        ck_assert_int_eq(tracker_load_profile(t2, v[0]), 0);
        free(v);
        ck_assert(!tracker_has_changes(t2)); /* loaded rows are not changes */

        const struct tracker_profile *a = tracker_profile_get(t, "m1");
        const struct tracker_profile *b = tracker_profile_get(t2, "m1");
        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_ne(a, b);
        ck_assert_ptr_ne(a->model, b->model); /* copied, not shared */
        ck_assert_uint_eq(b->total_calls, 1);
        ck_assert_uint_eq(b->success_count, 1);
        ck_assert_uint_eq(b->fail_count, 0);
        ck_assert_uint_eq(b->total_latency_ms, 100);
        ck_assert_double_eq(b->ema_quality, a->ema_quality);
        ck_assert_double_eq_tol(b->ema_quality, 0.58, TOL);
        ck_assert_uint_eq(b->updated_at, a->updated_at);
        for (int k = 0; k < TASK__COUNT; k++) {
                ck_assert(a->tasks[k].present == b->tasks[k].present);
                ck_assert_uint_eq(a->tasks[k].calls, b->tasks[k].calls);
                ck_assert_uint_eq(a->tasks[k].successes, b->tasks[k].successes);
                ck_assert_uint_eq(a->tasks[k].failures, b->tasks[k].failures);
                ck_assert_double_eq(a->tasks[k].avg_latency_ms, b->tasks[k].avg_latency_ms);
                ck_assert_double_eq(a->tasks[k].ema_quality, b->tasks[k].ema_quality);
        }
        ck_assert_uint_eq(tracker_profile_count(t2), 1);

        /* More models export in strcmp order and load back whole. */
        const char *models[] = { "zeta", "b", "a", "m0" };
        for (size_t i = 0; i < 4; i++) {
                start_ok(t, models[i], TASK_EMBED, id, sizeof(id));
                ck_assert_int_eq(tracker_fail(t, id, 1000, 5000 + i), 0);
        }
        long n = tracker_profiles_sorted(t, &v);
        ck_assert_int_eq(n, 5);
        const char *want[] = { "a", "b", "m0", "m1", "zeta" };
        for (long i = 0; i < n; i++) {
                ck_assert_str_eq(v[i]->model, want[i]);
                ck_assert_int_eq(tracker_load_profile(t2, v[i]), 0);
        }
        free(v);
        char *d1 = dump(t), *d2 = dump(t2);
        ck_assert_str_eq(d1, d2);
        free(d1);
        free(d2);
        tracker_free(t);
        tracker_free(t2);
}
END_TEST

/* ---- rules ------------------------------------------------------------- */

/* The outcome table of the contract, for several confidences. */
START_TEST(kind_score_table)
{
        static const double cs[] = { 0.0, 0.25, 0.6, 0.9, 1.0 };
        for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
                double c = cs[i];
                struct {
                        enum tracker_kind kind;
                        bool has;
                        double q;
                        bool ok;
                } table[] = {
                        { KIND_ACCEPTED, true, c, true },
                        { KIND_ACCEPTED_WITH_EDITS, true, 0.7 * c, true },
                        { KIND_REJECTED, true, 0.3 * (1.0 - c), false },
                        { KIND_INCONCLUSIVE, false, 0, false },
                        { KIND_APPLIED, true, 1.0, true },
                        { KIND_SIGNATURE_CHANGED, true, 0.8, true },
                        { KIND_BODY_MODIFIED, true, 0.7, true },
                        { KIND_SYMBOL_ADDED, true, 0.7, true },
                        { KIND_MODIFIED, true, 0.6, true },
                        { KIND_IGNORED, true, 0.1, false },
                };
                ck_assert_int_eq(sizeof(table) / sizeof(table[0]), KIND__COUNT);
                for (size_t k = 0; k < KIND__COUNT; k++) {
                        struct tracker_result r;
                        memset(&r, 0xa5, sizeof(r));
                        tracker_kind_score(table[k].kind, c, &r);
                        ck_assert_int_eq(r.kind, table[k].kind);
                        ck_assert(!r.deferred);
                        ck_assert(r.has_quality == table[k].has);
                        ck_assert(r.has_success == table[k].has);
                        if (table[k].has) {
                                ck_assert_double_eq_tol(r.quality, table[k].q, TOL);
                                ck_assert(r.success == table[k].ok);
                        }
                }
        }
}
END_TEST

/* Every kind through tracker_outcome on a fresh model: result, EMAs and
 * counts as the table says. */
START_TEST(kind_outcome_applied)
{
        for (int k = 0; k < KIND__COUNT; k++) {
                struct tracker *t = new_tracker("t", 0, 0);
                char id[64];
                start_ok(t, "m", TASK_REASONING, id, sizeof(id));
                struct tracker_result want, res;
                tracker_kind_score((enum tracker_kind)k, 0.6, &want);
                ck_assert_int_eq(outcome_as(t, id, (enum tracker_kind)k, 0.6, 1000, &res), 0);
                ck_assert_str_eq(res.trace_id, id);
                ck_assert_int_eq(res.kind, k);
                ck_assert(res.has_quality == want.has_quality);
                ck_assert(res.has_success == want.has_success);
                ck_assert(!res.deferred);
                const struct tracker_profile *p = tracker_profile_get(t, "m");
                ck_assert_ptr_nonnull(p);
                const struct tracker_task_stats *ts = &p->tasks[TASK_REASONING];
                if (want.has_quality) {
                        ck_assert_double_eq(res.quality, want.quality);
                        double e = 0.5 * 0.8 + want.quality * 0.2;
                        ck_assert_double_eq_tol(p->ema_quality, e, TOL);
                        ck_assert(ts->present);
                        ck_assert_double_eq_tol(ts->ema_quality, e, TOL);
                        ck_assert_uint_eq(p->success_count, want.success ? 1 : 0);
                        ck_assert_uint_eq(p->fail_count, want.success ? 0 : 1);
                        ck_assert_uint_eq(ts->successes, want.success ? 1 : 0);
                        ck_assert_uint_eq(ts->failures, want.success ? 0 : 1);
                } else {
                        ck_assert_double_eq(p->ema_quality, 0.5);
                        ck_assert(!ts->present);
                }
                ck_assert_uint_eq(p->total_calls, 0);
                ck_assert_uint_eq(tracker_pending_count(t), 0);
                tracker_free(t);
        }
}
END_TEST

START_TEST(names_parse)
{
        static const char *const tasks[] = { "generate", "embed", "classify", "code",
                                             "reasoning" };
        static const char *const kinds[] = { "accepted", "accepted_with_edits", "rejected",
                                             "inconclusive", "applied", "signature_changed",
                                             "body_modified", "symbol_added", "modified",
                                             "ignored" };
        for (int i = 0; i < TASK__COUNT; i++) {
                enum tracker_task x = TASK__COUNT;
                ck_assert_str_eq(tracker_task_name((enum tracker_task)i), tasks[i]);
                ck_assert_int_eq(tracker_task_parse(tasks[i], strlen(tasks[i]), &x), 0);
                ck_assert_int_eq(x, i);
        }
        for (int i = 0; i < KIND__COUNT; i++) {
                enum tracker_kind x = KIND__COUNT;
                ck_assert_str_eq(tracker_kind_name((enum tracker_kind)i), kinds[i]);
                ck_assert_int_eq(tracker_kind_parse(kinds[i], strlen(kinds[i]), &x), 0);
                ck_assert_int_eq(x, i);
                ck_assert(tracker_kind_needs_confidence((enum tracker_kind)i) ==
                          (i == KIND_ACCEPTED || i == KIND_ACCEPTED_WITH_EDITS ||
                           i == KIND_REJECTED));
        }
        enum tracker_task tk = TASK_EMBED;
        enum tracker_kind kk = KIND_IGNORED;
        /* Lengths count: a prefix or a longer buffer is no name. */
        ck_assert_int_eq(tracker_task_parse("cod", 3, &tk), -EINVAL);
        ck_assert_int_eq(tracker_task_parse("codex", 5, &tk), -EINVAL);
        ck_assert_int_eq(tracker_task_parse("code", 3, &tk), -EINVAL);
        ck_assert_int_eq(tracker_task_parse("Code", 4, &tk), -EINVAL);
        ck_assert_int_eq(tracker_task_parse("", 0, &tk), -EINVAL);
        ck_assert_int_eq(tk, TASK_EMBED); /* not written on failure */
        ck_assert_int_eq(tracker_task_parse("codex", 4, &tk), 0);
        ck_assert_int_eq(tk, TASK_CODE);
        ck_assert_int_eq(tracker_kind_parse("accepted_with", 13, &kk), -EINVAL);
        ck_assert_int_eq(tracker_kind_parse("accepted_with_edits", 8, &kk), 0);
        ck_assert_int_eq(kk, KIND_ACCEPTED);
        ck_assert_str_eq(tracker_task_name(TASK__COUNT), "?");
        ck_assert_str_eq(tracker_kind_name(KIND__COUNT), "?");
}
END_TEST

START_TEST(task_prior)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "m", TASK_CLASSIFY, id, sizeof(id));
        ck_assert_ptr_null(tracker_profile_get(t, "m")); /* start creates no profile */
        ck_assert_int_eq(complete_as(t, id, 42, 1000), 0);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        const struct tracker_task_stats *ts = &p->tasks[TASK_CLASSIFY];
        ck_assert(ts->present);
        ck_assert_double_eq(ts->ema_quality, 0.5); /* the contract's prior, not the seed's 0.0 */
        ck_assert_double_eq(p->ema_quality, 0.5);
        ck_assert_double_eq(tracker_success_rate(ts->successes, ts->failures), 0.5);
        ck_assert_double_eq(tracker_success_rate(0, 0), 0.5);
        ck_assert_double_eq(tracker_success_rate(3, 1), 0.75);
        ck_assert_double_eq(tracker_profile_avg_latency(p), 42.0);
        ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 0.9, 1000, NULL), 0);
        /* Accepted once ranks above the prior (with the seed's 0.0 it was 0.18). */
        ck_assert_double_eq_tol(p->tasks[TASK_CLASSIFY].ema_quality, 0.58, TOL);
        tracker_free(t);
}
END_TEST

START_TEST(fail_without_complete)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "m", TASK_EMBED, id, sizeof(id));
        ck_assert_int_eq(tracker_fail(t, id, 1000, 7777), 0);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->total_calls, 0);
        ck_assert_uint_eq(p->fail_count, 1);
        ck_assert_uint_eq(p->success_count, 0);
        ck_assert_double_eq_tol(p->ema_quality, 0.4, TOL);
        ck_assert_double_eq(tracker_profile_avg_latency(p), 0.0);
        ck_assert_uint_eq(p->updated_at, 7777);
        const struct tracker_task_stats *ts = &p->tasks[TASK_EMBED];
        ck_assert(ts->present);
        ck_assert_uint_eq(ts->calls, 0);
        ck_assert_uint_eq(ts->failures, 1);
        ck_assert_uint_eq(ts->successes, 0);
        ck_assert_double_eq_tol(ts->ema_quality, 0.4, TOL);
        ck_assert_double_eq(ts->avg_latency_ms, 0.0);
        ck_assert_ptr_null(tracker_trace_get(t, id));
        ck_assert_int_eq(tracker_fail(t, id, 1000, 7778), -ENOENT); /* resolved */
        tracker_free(t);
}
END_TEST

START_TEST(inconclusive_no_task_entry)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "m", TASK_CODE, id, sizeof(id));
        struct tracker_result res;
        ck_assert_int_eq(outcome_as(t, id, KIND_INCONCLUSIVE, 0.0, 1000, &res), 0);
        ck_assert(!res.has_quality && !res.has_success && !res.deferred);
        ck_assert_int_eq(res.kind, KIND_INCONCLUSIVE);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->total_calls + p->success_count + p->fail_count, 0);
        ck_assert_double_eq(p->ema_quality, 0.5);
        ck_assert_uint_eq(p->updated_at, 3000);
        for (int k = 0; k < TASK__COUNT; k++)
                ck_assert(!p->tasks[k].present);
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        tracker_free(t);
}
END_TEST

START_TEST(duplicate_client_id)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        const char *first;
        struct tracker_start s = {
                .model = "m1", .task = TASK_CODE, .trace_id = "abc", .uid = 1000, .now = 1,
        };
        ck_assert_int_eq(tracker_start(t, &s, &first), 0);
        ck_assert_str_eq(first, "abc");
        ck_assert_int_eq(complete_as(t, "abc", 10, 1000), 0);
        drain(t);

        struct frozen z = freeze(t);
        /* Another model, or another task: duplicate_trace. */
        ck_assert_int_eq(start_full(t, "m2", TASK_CODE, "abc", NULL, 1000, 2, id, sizeof(id)),
                         -EEXIST);
        ck_assert_int_eq(start_full(t, "m1", TASK_GENERATE, "abc", NULL, 1000, 2, id,
                                    sizeof(id)),
                         -EEXIST);
        /* Another uid may not touch it at all. */
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "abc", NULL, 1001, 2, id, sizeof(id)),
                         -EPERM);
        assert_unchanged(t, &z);

        /* The same start again returns the same trace and changes nothing
         * (still completed, same seq and started_at). */
        z = freeze(t);
        const char *again = NULL;
        s.now = 99;
        ck_assert_int_eq(tracker_start(t, &s, &again), 0);
        ck_assert_ptr_eq(again, first);
        s.uid = 0; /* root too */
        ck_assert_int_eq(tracker_start(t, &s, &again), 0);
        ck_assert_ptr_eq(again, first);
        ck_assert(tracker_trace_get(t, "abc")->completed);
        ck_assert_uint_eq(tracker_pending_count(t), 1);
        assert_unchanged(t, &z);

        /* Once resolved the id is free again, for any model. */
        ck_assert_int_eq(outcome_as(t, "abc", KIND_ACCEPTED, 1.0, 1000, NULL), 0);
        ck_assert_int_eq(start_full(t, "m2", TASK_EMBED, "abc", NULL, 1001, 3, id, sizeof(id)),
                         0);
        ck_assert_str_eq(id, "abc");
        ck_assert_str_eq(tracker_trace_get(t, "abc")->model, "m2");
        ck_assert(!tracker_trace_get(t, "abc")->completed);
        tracker_free(t);
}
END_TEST

START_TEST(second_complete_refused)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        start_ok(t, "m", TASK_GENERATE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, 100, 1000), 0);
        drain(t);
        struct frozen z = freeze(t);
        ck_assert_int_eq(complete_as(t, id, 900, 1000), -EALREADY);
        ck_assert_int_eq(complete_as(t, id, 900, 0), -EALREADY);
        assert_unchanged(t, &z);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_uint_eq(p->total_calls, 1);
        ck_assert_uint_eq(p->total_latency_ms, 100);
        ck_assert_uint_eq(tracker_trace_get(t, id)->latency_ms, 100);
        /* The trace still takes its outcome. */
        ck_assert_int_eq(outcome_as(t, id, KIND_APPLIED, 0, 1000, NULL), 0);
        tracker_free(t);
}
END_TEST

START_TEST(unknown_trace)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        struct frozen z = freeze(t);
        ck_assert_int_eq(complete_as(t, "nope", 1, 1000), -ENOENT);
        ck_assert_int_eq(tracker_fail(t, "nope", 1000, 1), -ENOENT);
        ck_assert_int_eq(outcome_as(t, "nope", KIND_ACCEPTED, 1.0, 1000, NULL), -ENOENT);
        ck_assert_int_eq(outcome_as(t, "nope", KIND_INCONCLUSIVE, 0, 0, NULL), -ENOENT);
        assert_unchanged(t, &z);
        ck_assert_uint_eq(tracker_profile_count(t), 0);

        /* Resolved traces are unknown too. */
        start_ok(t, "m", TASK_GENERATE, id, sizeof(id));
        ck_assert_int_eq(outcome_as(t, id, KIND_REJECTED, 0.5, 1000, NULL), 0);
        drain(t);
        z = freeze(t);
        ck_assert_int_eq(complete_as(t, id, 1, 1000), -ENOENT);
        ck_assert_int_eq(tracker_fail(t, id, 1000, 1), -ENOENT);
        ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 1.0, 1000, NULL), -ENOENT);
        /* The sequence form skips them without a word. */
        struct tracker_action acts[] = {
                { id, true, 1.0, "x" },
                { "never", false, 1.0, "" },
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 2, 1000, 5, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 0);
        assert_unchanged(t, &z);
        tracker_free(t);
}
END_TEST

START_TEST(uid_rules)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char a[64], b[64], c[64];
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 1, a, sizeof(a)), 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 1, b, sizeof(b)), 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 1, c, sizeof(c)), 0);
        ck_assert_uint_eq(tracker_trace_get(t, a)->uid, 1000);
        drain(t);

        struct frozen z = freeze(t);
        ck_assert_int_eq(complete_as(t, a, 5, 1001), -EPERM);
        ck_assert_int_eq(tracker_fail(t, a, 1001, 9), -EPERM);
        for (int k = 0; k < KIND__COUNT; k++)
                ck_assert_int_eq(outcome_as(t, a, (enum tracker_kind)k, 0.5, 1001, NULL), -EPERM);
        assert_unchanged(t, &z);

        /* Root may touch anything. */
        ck_assert_int_eq(complete_as(t, a, 5, 0), 0);
        ck_assert_int_eq(outcome_as(t, a, KIND_ACCEPTED, 0.5, 0, NULL), 0);
        ck_assert_int_eq(tracker_fail(t, b, 0, 9), 0);
        /* The owner may too. */
        ck_assert_int_eq(complete_as(t, c, 5, 1000), 0);
        ck_assert_int_eq(outcome_as(t, c, KIND_MODIFIED, 0, 1000, NULL), 0);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_uint_eq(p->total_calls, 2);
        ck_assert_uint_eq(p->success_count, 2);
        ck_assert_uint_eq(p->fail_count, 1);

        /* A root-started trace is root's: another uid is refused. */
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, "rootid", NULL, 0, 1, NULL, 0), 0);
        ck_assert_int_eq(complete_as(t, "rootid", 5, 1000), -EPERM);
        ck_assert_int_eq(complete_as(t, "rootid", 5, 0), 0);
        tracker_free(t);
}
END_TEST

static int cmp_id(const void *a, const void *b)
{
        return strcmp(a, b);
}

START_TEST(generated_ids)
{
        enum { N = 2000 };
        struct tracker *t = new_tracker("px", 0, 0);
        char(*ids)[64] = calloc(N, sizeof(*ids));
        ck_assert_ptr_nonnull(ids);
        /* The first generated id, then a client squatting on the next two:
         * the generator skips them. */
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1, 1, ids[0], 64), 0);
        ck_assert_str_eq(ids[0], "px-1");
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, "px-2", NULL, 1, 1, ids[1], 64), 0);
        ck_assert_int_eq(start_full(t, "other", TASK_EMBED, "px-3", NULL, 1, 1, ids[2], 64), 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1, 1, ids[3], 64), 0);
        ck_assert_str_ne(ids[3], "px-2");
        ck_assert_str_ne(ids[3], "px-3");
        ck_assert_str_eq(ids[3], "px-4");
        ck_assert_str_eq(tracker_trace_get(t, "px-3")->model, "other");
        for (int i = 4; i < N; i++)
                ck_assert_int_eq(start_full(t, "m", i % TASK__COUNT, NULL, NULL, 1, 1, ids[i], 64),
                                 0);
        ck_assert_uint_eq(tracker_pending_count(t), N);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(strncmp(ids[i], "px-", 3), 0);
                ck_assert_uint_le(strlen(ids[i]), 64); /* the contract's limit */
                const struct tracker_trace *tr = tracker_trace_get(t, ids[i]);
                ck_assert_ptr_nonnull(tr);
                ck_assert_str_eq(tr->id, ids[i]);
        }
        /* Pairwise distinct (sorted neighbours differ). */
        qsort(ids, N, sizeof(*ids), cmp_id);
        for (int i = 1; i < N; i++)
                ck_assert_str_ne(ids[i - 1], ids[i]);
        free(ids);

        /* Ids are not reused after a trace is resolved either. */
        char x[64], y[64];
        start_ok(t, "m", TASK_CODE, x, sizeof(x));
        ck_assert_int_eq(tracker_fail(t, x, 1000, 1), 0);
        start_ok(t, "m", TASK_CODE, y, sizeof(y));
        ck_assert_str_ne(x, y);
        tracker_free(t);

        /* Default prefix. */
        t = tracker_new(NULL);
        ck_assert_ptr_nonnull(t);
        start_ok(t, "m", TASK_CODE, x, sizeof(x));
        ck_assert_str_eq(x, "t-1");
        tracker_free(t);
}
END_TEST

START_TEST(limit_pending)
{
        struct tracker *t = new_tracker("t", 0, 3);
        char id[4][64];
        for (int i = 0; i < 3; i++)
                start_ok(t, "m", TASK_CODE, id[i], sizeof(id[i]));
        struct frozen z = freeze(t);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 5, id[3], 64), -ENOSPC);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, "newid", NULL, 1000, 5, id[3], 64),
                         -ENOSPC);
        ck_assert_ptr_null(tracker_trace_get(t, "newid"));
        assert_unchanged(t, &z);
        /* Starting a pending trace again is no new trace: allowed. */
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, id[1], NULL, 1000, 5, NULL, 0), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 3);
        /* Resolving one makes room. */
        ck_assert_int_eq(tracker_fail(t, id[0], 1000, 6), 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, "newid", NULL, 1000, 7, NULL, 0), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 3);
        /* Limits may change at run time; what exists stays. */
        tracker_set_limits(t, 0, 1);
        ck_assert_uint_eq(tracker_pending_count(t), 3);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 8, NULL, 0), -ENOSPC);
        tracker_set_limits(t, 0, 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 8, NULL, 0), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 4);
        tracker_free(t);
}
END_TEST

START_TEST(limit_models)
{
        struct tracker *t = new_tracker("t", 2, 0);
        char a[64], b[64], c[64], c2[64];
        /* Traces of a third model started while there was room... */
        start_ok(t, "a", TASK_CODE, a, sizeof(a));
        start_ok(t, "b", TASK_CODE, b, sizeof(b));
        start_ok(t, "c", TASK_CODE, c, sizeof(c));
        start_ok(t, "c", TASK_EMBED, c2, sizeof(c2));
        ck_assert_int_eq(complete_as(t, a, 1, 1000), 0);
        ck_assert_int_eq(tracker_fail(t, b, 1000, 1), 0);
        ck_assert_uint_eq(tracker_profile_count(t), 2);
        drain(t);

        /* ...cannot create its profile now that the limit is reached. */
        struct frozen z = freeze(t);
        ck_assert_int_eq(complete_as(t, c, 1, 1000), -ENOSPC);
        ck_assert_int_eq(tracker_fail(t, c, 1000, 1), -ENOSPC);
        for (int k = 0; k < KIND__COUNT; k++) /* inconclusive too: it creates the profile */
                ck_assert_int_eq(outcome_as(t, c, (enum tracker_kind)k, 0.5, 1000, NULL), -ENOSPC);
        struct tracker_action acts[] = {
                { a, true, 0.9, "x" },
                { c, true, 0.9, "y" },
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 2, 1000, 5, seq_cb, &log), -ENOSPC);
        ck_assert_uint_eq(log.n, 0);
        /* A new trace of a new model is refused up front; of a known model,
         * or the same pending trace started again, it is fine. */
        ck_assert_int_eq(start_full(t, "d", TASK_CODE, NULL, NULL, 1000, 1, NULL, 0), -ENOSPC);
        ck_assert_int_eq(start_full(t, "d", TASK_CODE, "dd", NULL, 1000, 1, NULL, 0), -ENOSPC);
        ck_assert_int_eq(start_full(t, "c", TASK_CODE, c, NULL, 1000, 1, NULL, 0), 0);
        assert_unchanged(t, &z);
        ck_assert(!tracker_trace_get(t, c)->completed);
        ck_assert_int_eq(start_full(t, "a", TASK_CODE, NULL, NULL, 1000, 1, NULL, 0), 0);

        /* Known models carry on. */
        ck_assert_int_eq(outcome_as(t, a, KIND_ACCEPTED, 0.5, 1000, NULL), 0);
        ck_assert_ptr_null(tracker_profile_get(t, "c"));

        /* Raising the limit lets the third in. */
        tracker_set_limits(t, 3, 0);
        ck_assert_int_eq(complete_as(t, c, 1, 1000), 0);
        ck_assert_uint_eq(tracker_profile_count(t), 3);
        ck_assert_int_eq(outcome_as(t, c2, KIND_ACCEPTED, 0.5, 1000, NULL), 0);
        /* Lowering it keeps what exists. */
        tracker_set_limits(t, 1, 0);
        ck_assert_uint_eq(tracker_profile_count(t), 3);
        ck_assert_int_eq(outcome_as(t, c, KIND_ACCEPTED, 0.5, 1000, NULL), 0);
        tracker_free(t);
}
END_TEST

/* A sequence of two traces of one new model needs one profile, not two:
 * with room for exactly one more model it must go through. */
START_TEST(limit_models_sequence_one_new_model)
{
        struct tracker *t = new_tracker("t", 2, 0);
        char a[64], c1[64], c2[64], r[64];
        start_ok(t, "a", TASK_CODE, a, sizeof(a));
        ck_assert_int_eq(tracker_fail(t, a, 1000, 1), 0);
        start_ok(t, "c", TASK_CODE, c1, sizeof(c1));
        start_ok(t, "c", TASK_CODE, c2, sizeof(c2));
        struct tracker_action acts[] = {
                { c1, true, 0.9, "x" },
                { c2, true, 0.9, "y" },
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 2, 1000, 5, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 2);
        ck_assert_uint_eq(tracker_profile_count(t), 2);
        ck_assert_uint_eq(tracker_profile_get(t, "c")->success_count, 2);

        /* A deferred trace (git judges it) creates no profile either. */
        tracker_set_limits(t, 3, 0);
        ck_assert_int_eq(start_full(t, "d", TASK_CODE, NULL, "/repo", 1000, 1, r, sizeof(r)), 0);
        start_ok(t, "e", TASK_CODE, c1, sizeof(c1));
        struct tracker_action acts2[] = {
                { r, true, 0.9, "x" },
                { c1, true, 0.9, "y" },
        };
        log.n = 0;
        ck_assert_int_eq(tracker_sequence(t, acts2, 2, 1000, 5, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 2);
        ck_assert(log.r[0].deferred);
        ck_assert_uint_eq(tracker_profile_count(t), 3);
        tracker_free(t);
}
END_TEST

/* tracker_infer_action alone: the seed's rules and Rust's trim(). */
START_TEST(infer_action_rules)
{
        enum tracker_kind k;
        double c;
        struct tracker_action two[] = {
                { "a", true, 0.8, "out" },
                { "b", true, 0.5, "out" },
        };
        tracker_infer_action(two, 2, 0, &k, &c);
        ck_assert_int_eq(k, KIND_ACCEPTED);
        ck_assert_double_eq(c, 0.8);
        tracker_infer_action(two, 2, 1, &k, &c); /* last: accepted */
        ck_assert_int_eq(k, KIND_ACCEPTED);
        ck_assert_double_eq(c, 0.5);
        two[1].success = false;
        tracker_infer_action(two, 2, 0, &k, &c);
        ck_assert_int_eq(k, KIND_ACCEPTED_WITH_EDITS);
        ck_assert_double_eq_tol(c, 0.56, TOL);
        tracker_infer_action(two, 2, 1, &k, &c);
        ck_assert_int_eq(k, KIND_REJECTED);
        ck_assert_double_eq(c, 0.5);
        /* A failed action is rejected whatever its output. */
        two[0].success = false;
        two[0].output = "";
        tracker_infer_action(two, 2, 0, &k, &c);
        ck_assert_int_eq(k, KIND_REJECTED);
        ck_assert_double_eq(c, 0.8);

        /* Blank outputs: Unicode White_Space as Rust's str::trim sees it. */
        static const char *const blank[] = {
                "", " ", "\t\n\v\f\r ", "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80",
                "\xe2\x80\x80", "\xe2\x80\x85", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9",
                "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
                " \xc2\xa0\xe3\x80\x80\t\xe2\x80\xaf\n",
        };
        for (size_t i = 0; i < sizeof(blank) / sizeof(blank[0]); i++) {
                struct tracker_action one = { "a", true, 0.9, blank[i] };
                tracker_infer_action(&one, 1, 0, &k, &c);
                ck_assert_msg(k == KIND_INCONCLUSIVE, "blank[%zu] judged %s", i,
                              tracker_kind_name(k));
        }
        struct tracker_action nul = { "a", true, 0.9, NULL };
        tracker_infer_action(&nul, 1, 0, &k, &c);
        ck_assert_int_eq(k, KIND_INCONCLUSIVE);
        /* Not White_Space: zero-width space, BOM, U+180E, NBSP's neighbours,
         * a lone continuation byte, and anything visible. */
        static const char *const solid[] = {
                "x", "  x  ", "\xe2\x80\x8b", "\xef\xbb\xbf", "\xe1\xa0\x8e", "\xc2\xa1",
                "\xc2\x84", "\xe2\x80\x8c", "\xe3\x80\x81", "\x80", "\xc2\xa0.\xc2\xa0",
                "\xe2\x80\xb0", "\xe2\x81\xa0",
        };
        for (size_t i = 0; i < sizeof(solid) / sizeof(solid[0]); i++) {
                struct tracker_action one = { "a", true, 0.9, solid[i] };
                tracker_infer_action(&one, 1, 0, &k, &c);
                ck_assert_msg(k == KIND_ACCEPTED, "solid[%zu] judged %s", i,
                              tracker_kind_name(k));
        }
        /* Blank output and a failed next action: still inconclusive. */
        struct tracker_action bf[] = {
                { "a", true, 0.9, "   " },
                { "b", false, 0.9, "x" },
        };
        tracker_infer_action(bf, 2, 0, &k, &c);
        ck_assert_int_eq(k, KIND_INCONCLUSIVE);
}
END_TEST

START_TEST(sequence_rules)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char s[9][64];
        for (int i = 1; i <= 8; i++)
                start_ok(t, "m", TASK_REASONING, s[i], sizeof(s[i]));
        struct tracker_action acts[] = {
                { s[1], false, 0.8, "ignored output" },   /* rejected 0.8: q 0.06 */
                { s[2], true, 0.9, "result" },            /* next ok: accepted 0.9 */
                { s[3], true, 0.9, "more" },              /* next failed: edits, q 0.441 */
                { s[4], false, 0.5, "" },                 /* rejected 0.5: q 0.15 */
                { s[5], true, 0.7, " \t\r\n\v\f" },       /* blank: inconclusive */
                { s[6], true, 0.6, "x" },                 /* next (no trace) failed: q 0.294 */
                { "", false, 1.0, "whatever" },           /* skipped */
                { "nope", true, 0.5, "y" },               /* not pending: skipped */
                { s[7], true, 0.3, "\xc2\xa0ok\xe3\x80\x80" }, /* next ok: accepted 0.3 */
                { s[8], true, 0.4, "\xc2\xa0\xe3\x80\x80\xe2\x80\xaf" }, /* blank, last */
        };
        struct {
                int trace;
                enum tracker_kind kind;
                bool has;
                double q;
                bool ok;
        } want[] = {
                { 1, KIND_REJECTED, true, 0.06, false },
                { 2, KIND_ACCEPTED, true, 0.9, true },
                { 3, KIND_ACCEPTED_WITH_EDITS, true, 0.441, true },
                { 4, KIND_REJECTED, true, 0.15, false },
                { 5, KIND_INCONCLUSIVE, false, 0, false },
                { 6, KIND_ACCEPTED_WITH_EDITS, true, 0.294, true },
                { 7, KIND_ACCEPTED, true, 0.3, true },
                { 8, KIND_INCONCLUSIVE, false, 0, false },
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, sizeof(acts) / sizeof(acts[0]), 1000, 4242,
                                          seq_cb, &log),
                         0);
        ck_assert_uint_eq(log.n, 8);
        for (size_t i = 0; i < 8; i++) {
                ck_assert_str_eq(log.id[i], s[want[i].trace]);
                ck_assert_int_eq(log.r[i].kind, want[i].kind);
                ck_assert(log.r[i].has_quality == want[i].has);
                ck_assert(log.r[i].has_success == want[i].has);
                ck_assert(!log.r[i].deferred);
                if (want[i].has) {
                        ck_assert_double_eq_tol(log.r[i].quality, want[i].q, TOL);
                        ck_assert(log.r[i].success == want[i].ok);
                }
        }
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_uint_eq(p->success_count, 4);
        ck_assert_uint_eq(p->fail_count, 2);
        ck_assert_uint_eq(p->updated_at, 4242);
        /* 0.5 -> 0.412 -> 0.5096 -> 0.49588 -> 0.426704 -> 0.4001632 -> 0.38013056 */
        ck_assert_double_eq_tol(p->ema_quality, 0.38013056, TOL);
        const struct tracker_task_stats *ts = &p->tasks[TASK_REASONING];
        ck_assert_uint_eq(ts->successes, 4);
        ck_assert_uint_eq(ts->failures, 2);
        ck_assert_uint_eq(ts->calls, 0);
        ck_assert_double_eq_tol(ts->ema_quality, 0.38013056, TOL);

        /* No callback is fine; an empty sequence is fine. */
        char x[64];
        start_ok(t, "m", TASK_REASONING, x, sizeof(x));
        struct tracker_action one[] = { { x, true, 1.0, "done" } };
        ck_assert_int_eq(tracker_sequence(t, one, 0, 1000, 1, seq_cb, &log), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 1);
        ck_assert_int_eq(tracker_sequence(t, one, 1, 1000, 1, NULL, NULL), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        ck_assert_uint_eq(p->success_count, 5);
        tracker_free(t);
}
END_TEST

/* A trace named twice is resolved once; a resolved or unknown trace still
 * counts as "the next action" of the one before it. */
START_TEST(sequence_skips)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char a[64], b[64], gone[64];
        start_ok(t, "m", TASK_GENERATE, a, sizeof(a));
        start_ok(t, "m", TASK_GENERATE, b, sizeof(b));
        start_ok(t, "m", TASK_GENERATE, gone, sizeof(gone));
        ck_assert_int_eq(tracker_fail(t, gone, 1000, 1), 0);
        struct tracker_action acts[] = {
                { a, true, 1.0, "x" },
                { gone, false, 1.0, "" }, /* not pending, but failed: a gets edits */
                { b, true, 1.0, "y" },
                { a, false, 1.0, "" },    /* a again: already resolved, skipped */
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 4, 1000, 2, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 2);
        ck_assert_str_eq(log.id[0], a);
        ck_assert_int_eq(log.r[0].kind, KIND_ACCEPTED_WITH_EDITS);
        ck_assert_double_eq_tol(log.r[0].quality, 0.49, TOL);
        ck_assert_str_eq(log.id[1], b);
        ck_assert_int_eq(log.r[1].kind, KIND_ACCEPTED_WITH_EDITS); /* next (a) failed */
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert_uint_eq(p->success_count, 2);
        ck_assert_uint_eq(p->fail_count, 1);
        tracker_free(t);
}
END_TEST

START_TEST(sequence_forbidden)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char mine[64], theirs[64], both[64];
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 1, mine, 64), 0);
        ck_assert_int_eq(start_full(t, "n", TASK_CODE, NULL, NULL, 1001, 1, theirs, 64), 0);
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 1, both, 64), 0);
        ck_assert_int_eq(complete_as(t, mine, 10, 1000), 0);
        drain(t);
        struct frozen z = freeze(t);
        /* Another uid's trace anywhere in the list: refused before anything
         * is resolved, even the actions in front of it. */
        struct tracker_action acts[] = {
                { mine, true, 1.0, "x" },
                { both, false, 0.5, "" },
                { theirs, true, 1.0, "y" },
        };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 3, 1000, 9, seq_cb, &log), -EPERM);
        ck_assert_uint_eq(log.n, 0);
        ck_assert_int_eq(tracker_sequence(t, acts, 3, 1001, 9, seq_cb, &log), -EPERM);
        ck_assert_uint_eq(log.n, 0);
        assert_unchanged(t, &z);
        ck_assert_uint_eq(tracker_pending_count(t), 3);
        /* Root resolves them all. */
        ck_assert_int_eq(tracker_sequence(t, acts, 3, 0, 9, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 3);
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        tracker_free(t);
}
END_TEST

START_TEST(deferred_repo_trace)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, "/srv/repo", 1000, 1, id, 64), 0);
        const struct tracker_trace *tr = tracker_trace_get(t, id);
        ck_assert_str_eq(tr->repo, "/srv/repo");
        ck_assert_uint_eq(tr->nfiles, 2);
        ck_assert_str_eq(tr->files[0], "src/a.c");
        ck_assert_str_eq(tr->files[1], "src/b.c");
        drain(t);

        struct frozen z = freeze(t);
        for (int k = 0; k < KIND__COUNT; k++) {
                struct tracker_result res;
                ck_assert_int_eq(outcome_as(t, id, (enum tracker_kind)k, 0.9, 1000, &res), 0);
                ck_assert(res.deferred);
                ck_assert_int_eq(res.kind, k);
                ck_assert(!res.has_quality && !res.has_success);
                ck_assert_str_eq(res.trace_id, id);
        }
        /* Still pending, no profile, nothing to store. */
        assert_unchanged(t, &z);
        ck_assert_ptr_nonnull(tracker_trace_get(t, id));
        ck_assert_ptr_null(tracker_profile_get(t, "m"));
        /* Another uid is still refused. */
        ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 0.9, 1001, NULL), -EPERM);

        /* complete keeps the output for git; the trace stays deferred. */
        ck_assert_int_eq(complete_as(t, id, 300, 1000), 0);
        ck_assert_str_eq(tracker_trace_get(t, id)->output, "out");
        struct tracker_result res;
        ck_assert_int_eq(outcome_as(t, id, KIND_ACCEPTED, 0.9, 1000, &res), 0);
        ck_assert(res.deferred);
        ck_assert_ptr_nonnull(tracker_trace_get(t, id));
        ck_assert_uint_eq(tracker_profile_get(t, "m")->success_count, 0);

        /* The sequence form defers it too, and reports it. */
        struct tracker_action acts[] = { { id, true, 1.0, "x" } };
        struct seq_log log = { 0 };
        ck_assert_int_eq(tracker_sequence(t, acts, 1, 1000, 5, seq_cb, &log), 0);
        ck_assert_uint_eq(log.n, 1);
        ck_assert(log.r[0].deferred);
        ck_assert_ptr_nonnull(tracker_trace_get(t, id));

        /* A trace without a repo is not deferred, code or not. */
        char plain[64];
        start_ok(t, "m", TASK_CODE, plain, sizeof(plain));
        ck_assert_int_eq(outcome_as(t, plain, KIND_APPLIED, 0, 1000, &res), 0);
        ck_assert(!res.deferred && res.has_quality);
        tracker_free(t);
}
END_TEST

static void assert_walk(const struct tracker *t, char ids[][64], const int *order, size_t n)
{
        const struct tracker_trace *tr = tracker_pending_first(t);
        uint64_t last = 0;
        for (size_t i = 0; i < n; i++) {
                ck_assert_ptr_nonnull(tr);
                ck_assert_str_eq(tr->id, ids[order[i]]);
                ck_assert_uint_gt(tr->seq, last);
                last = tr->seq;
                tr = tracker_pending_next(tr);
        }
        ck_assert_ptr_null(tr);
        ck_assert_uint_eq(tracker_pending_count(t), n);
}

START_TEST(pending_order)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char ids[7][64];
        ck_assert_ptr_null(tracker_pending_first(t));
        for (int i = 0; i < 5; i++)
                start_ok(t, "m", TASK_CODE, ids[i], sizeof(ids[i]));
        assert_walk(t, ids, (int[]){ 0, 1, 2, 3, 4 }, 5);
        ck_assert_int_eq(outcome_as(t, ids[2], KIND_ACCEPTED, 1, 1000, NULL), 0); /* middle */
        assert_walk(t, ids, (int[]){ 0, 1, 3, 4 }, 4);
        ck_assert_int_eq(tracker_fail(t, ids[0], 1000, 1), 0); /* head */
        assert_walk(t, ids, (int[]){ 1, 3, 4 }, 3);
        start_ok(t, "m", TASK_CODE, ids[5], sizeof(ids[5]));
        assert_walk(t, ids, (int[]){ 1, 3, 4, 5 }, 4);
        ck_assert_int_eq(outcome_as(t, ids[5], KIND_IGNORED, 0, 1000, NULL), 0); /* tail */
        assert_walk(t, ids, (int[]){ 1, 3, 4 }, 3);
        /* complete does not move a trace. */
        ck_assert_int_eq(complete_as(t, ids[1], 1, 1000), 0);
        start_ok(t, "m", TASK_CODE, ids[6], sizeof(ids[6]));
        assert_walk(t, ids, (int[]){ 1, 3, 4, 6 }, 4);
        ck_assert_int_eq(tracker_fail(t, ids[1], 1000, 1), 0);
        ck_assert_int_eq(tracker_fail(t, ids[3], 1000, 1), 0);
        ck_assert_int_eq(tracker_fail(t, ids[4], 1000, 1), 0);
        ck_assert_int_eq(tracker_fail(t, ids[6], 1000, 1), 0);
        ck_assert_ptr_null(tracker_pending_first(t));
        ck_assert_uint_eq(tracker_pending_count(t), 0);
        tracker_free(t);
}
END_TEST

/* The per-task walk (the git scanner's snapshot): only that task's
 * pending traces, oldest first, through resolutions at either end. */
START_TEST(task_walk)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char ids[6][64];
        const enum tracker_task tasks[6] = { TASK_CODE, TASK_GENERATE, TASK_CODE,
                                             TASK_EMBED, TASK_CODE, TASK_GENERATE };
        ck_assert_ptr_null(tracker_task_first(t, TASK_CODE));
        for (int i = 0; i < 6; i++)
                start_ok(t, "m", tasks[i], ids[i], sizeof(ids[i]));
        const struct tracker_trace *tr = tracker_task_first(t, TASK_CODE);
        ck_assert_str_eq(tr->id, ids[0]);
        ck_assert_str_eq((tr = tracker_task_next(tr))->id, ids[2]);
        ck_assert_str_eq((tr = tracker_task_next(tr))->id, ids[4]);
        ck_assert_ptr_null(tracker_task_next(tr));
        ck_assert_str_eq(tracker_task_first(t, TASK_EMBED)->id, ids[3]);
        ck_assert_ptr_null(tracker_task_next(tracker_task_first(t, TASK_EMBED)));
        ck_assert_ptr_null(tracker_task_first(t, (enum tracker_task)TASK__COUNT));
        ck_assert_int_eq(tracker_fail(t, ids[0], 1000, 1), 0); /* head */
        ck_assert_int_eq(tracker_fail(t, ids[4], 1000, 1), 0); /* tail */
        tr = tracker_task_first(t, TASK_CODE);
        ck_assert_str_eq(tr->id, ids[2]);
        ck_assert_ptr_null(tracker_task_next(tr));
        ck_assert_int_eq(tracker_fail(t, ids[2], 1000, 1), 0);
        ck_assert_ptr_null(tracker_task_first(t, TASK_CODE));
        ck_assert_str_eq(tracker_task_first(t, TASK_GENERATE)->id, ids[1]);
        tracker_free(t);
}
END_TEST

/* Loaded traces live in blocks (several here: 30,000 of about 200 bytes
 * in blocks of 2 MiB), each given back with its last trace: resolving them
 * oldest first, newest first, or starting new ones between, every trace
 * keeps its data (under ASan a freed slot is poisoned, so a trace used
 * after its slot or block was given back is caught). */
START_TEST(load_blocks)
{
        for (int order = 0; order < 2; order++) {
                struct tracker *t = new_tracker("t", 0, 0);
                enum { N = 30000 };
                char id[32], model[32];
                for (int i = 0; i < N; i++) {
                        snprintf(id, sizeof(id), "loaded-%d", i);
                        snprintf(model, sizeof(model), "model-%d", i % 7);
                        struct tracker_trace tr = { .id = id, .model = model, .reason = "why",
                                                    .seq = (uint64_t)i + 1, .task = TASK_EMBED,
                                                    .started_at = 5, .uid = 1000 };
                        ck_assert_int_eq(tracker_load_trace(t, &tr), 0);
                }
                ck_assert_uint_eq(tracker_pending_count(t), N);
                char fresh[64];
                start_ok(t, "m", TASK_EMBED, fresh, sizeof(fresh)); /* malloc'ed */
                for (int k = 0; k < N; k++) {
                        int i = order == 0 ? k : N - 1 - k;
                        snprintf(id, sizeof(id), "loaded-%d", i);
                        const struct tracker_trace *tr = tracker_trace_get(t, id);
                        ck_assert_ptr_nonnull(tr);
                        snprintf(model, sizeof(model), "model-%d", i % 7);
                        ck_assert_str_eq(tr->model, model);
                        ck_assert_str_eq(tr->reason, "why");
                        ck_assert_int_eq(tracker_fail(t, id, 1000, 1), 0);
                }
                ck_assert_uint_eq(tracker_pending_count(t), 1);
                ck_assert_ptr_nonnull(tracker_trace_get(t, fresh));
                tracker_free(t);
        }
}
END_TEST

/* A recording sink: one line per callback, in call order. */
struct rec {
        size_t n;
        char ev[64][80];
        const struct tracker *t;
};

static void rec_profile(void *d, const struct tracker_profile *p)
{
        struct rec *r = d;
        ck_assert_uint_lt(r->n, 64);
        snprintf(r->ev[r->n++], sizeof(r->ev[0]), "P %s %" PRIu64, p->model, p->total_calls);
}

static void rec_deleted(void *d, const char *id)
{
        struct rec *r = d;
        ck_assert_uint_lt(r->n, 64);
        snprintf(r->ev[r->n++], sizeof(r->ev[0]), "D %s", id);
}

static void rec_trace(void *d, const struct tracker_trace *tr)
{
        struct rec *r = d;
        ck_assert_uint_lt(r->n, 64);
        /* Only pending traces are reported, and they are the live ones. */
        ck_assert_ptr_eq(tracker_trace_get(r->t, tr->id), tr);
        snprintf(r->ev[r->n++], sizeof(r->ev[0]), "T %s %s %d", tr->id, tr->model, tr->completed);
}

static bool rec_has(const struct rec *r, const char *ev)
{
        for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->ev[i], ev) == 0)
                        return true;
        return false;
}

static size_t rec_index(const struct rec *r, const char *ev)
{
        for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->ev[i], ev) == 0)
                        return i;
        ck_abort_msg("event \"%s\" not reported", ev);
        return 0;
}

START_TEST(collect_changes)
{
        struct tracker *t = new_tracker("t", 0, 0);
        struct rec r = { .t = t };
        struct tracker_sink sink = { rec_profile, rec_deleted, rec_trace, &r, NULL, NULL, NULL };
        ck_assert(!tracker_has_changes(t));
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 0);

        /* a: started and completed (one trace report, its profile);
         * b: started and resolved before the collect (a deletion only);
         * c: started only; m2 gets a profile through b. */
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "a", NULL, 1000, 1, NULL, 0), 0);
        ck_assert_int_eq(start_full(t, "m2", TASK_CODE, "b", NULL, 1000, 1, NULL, 0), 0);
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "c", NULL, 1000, 1, NULL, 0), 0);
        ck_assert(tracker_has_changes(t));
        ck_assert_int_eq(complete_as(t, "a", 5, 1000), 0);
        ck_assert_int_eq(complete_as(t, "b", 5, 1000), 0);
        ck_assert_int_eq(outcome_as(t, "b", KIND_ACCEPTED, 1, 1000, NULL), 0);
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        /* b was never stored, so its deletion is not reported. */
        ck_assert_uint_eq(r.n, 4);
        ck_assert(rec_has(&r, "P m1 1"));
        ck_assert(rec_has(&r, "P m2 1"));
        ck_assert(rec_has(&r, "T a m1 1"));
        ck_assert(rec_has(&r, "T c m1 0"));
        ck_assert(!rec_has(&r, "D b"));
        /* Profiles, then traces. */
        ck_assert_uint_lt(rec_index(&r, "P m1 1"), rec_index(&r, "T a m1 1"));
        ck_assert_uint_lt(rec_index(&r, "P m2 1"), rec_index(&r, "T c m1 0"));
        ck_assert(!tracker_has_changes(t));

        /* Once only. */
        r.n = 0;
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 0);

        /* Refused calls record nothing. */
        ck_assert_int_eq(complete_as(t, "a", 5, 1000), -EALREADY);
        ck_assert_int_eq(complete_as(t, "a", 5, 1001), -EPERM);
        ck_assert_int_eq(tracker_fail(t, "zz", 1000, 1), -ENOENT);
        ck_assert(!tracker_has_changes(t));

        /* Resolved and restarted with the same id before the collect: the
         * deletion first, then the new trace. */
        ck_assert_int_eq(tracker_fail(t, "a", 1000, 2), 0);
        ck_assert_int_eq(start_full(t, "m3", TASK_EMBED, "a", NULL, 1000, 3, NULL, 0), 0);
        r.n = 0;
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 3);
        ck_assert(rec_has(&r, "P m1 1"));
        ck_assert_uint_lt(rec_index(&r, "D a"), rec_index(&r, "T a m3 0"));
        r.n = 0;
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 0);

        /* A deferred outcome changes nothing to store. */
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "g", "/repo", 1000, 1, NULL, 0), 0);
        drain(t);
        ck_assert_int_eq(outcome_as(t, "g", KIND_ACCEPTED, 1, 1000, NULL), 0);
        ck_assert(!tracker_has_changes(t));
        /* Pending traces are freed with the tracker, reported or not. */
        tracker_free(t);
}
END_TEST

START_TEST(mark_all_changed)
{
        struct tracker *t = new_tracker("t", 0, 0);
        struct rec r = { .t = t };
        struct tracker_sink sink = { rec_profile, rec_deleted, rec_trace, &r, NULL, NULL, NULL };
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "a", NULL, 1000, 1, NULL, 0), 0);
        ck_assert_int_eq(start_full(t, "m2", TASK_CODE, "b", NULL, 1000, 1, NULL, 0), 0);
        ck_assert_int_eq(start_full(t, "m1", TASK_CODE, "c", NULL, 1000, 1, NULL, 0), 0);
        ck_assert_int_eq(complete_as(t, "a", 5, 1000), 0);
        ck_assert_int_eq(tracker_fail(t, "b", 1000, 1), 0);
        drain(t);
        tracker_mark_all_changed(t);
        ck_assert(tracker_has_changes(t));
        /* A change after the mark is still reported once. */
        ck_assert_int_eq(complete_as(t, "c", 5, 1000), 0);
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 4);
        ck_assert(rec_has(&r, "P m1 2"));
        ck_assert(rec_has(&r, "P m2 0"));
        ck_assert(rec_has(&r, "T a m1 1"));
        ck_assert(rec_has(&r, "T c m1 1"));
        ck_assert(!tracker_has_changes(t));
        r.n = 0;
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_uint_eq(r.n, 0);
        /* Loaded rows are reported too once marked. */
        struct tracker *t2 = new_tracker("u", 0, 0);
        struct tracker_trace tr = { .id = "x", .model = "m", .seq = 1, .task = TASK_EMBED };
        struct tracker_profile p = { .model = "m", .ema_quality = 0.5 };
        ck_assert_int_eq(tracker_load_trace(t2, &tr), 0);
        ck_assert_int_eq(tracker_load_profile(t2, &p), 0);
        ck_assert(!tracker_has_changes(t2));
        tracker_mark_all_changed(t2);
        struct rec r2 = { .t = t2 };
        sink.data = &r2;
        ck_assert_int_eq(tracker_collect(t2, &sink), 0);
        ck_assert_uint_eq(r2.n, 2);
        ck_assert(rec_has(&r2, "P m 0"));
        ck_assert(rec_has(&r2, "T x m 0"));
        tracker_free(t2);
        tracker_free(t);
}
END_TEST

START_TEST(load_trace)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char *files[] = { "x.c" };
        struct tracker_trace a = {
                .id = "old-a", .model = "m", .reason = "r", .repo = "/repo", .files = files,
                .nfiles = 1, .output = "code", .seq = 10, .started_at = 50, .latency_ms = 7,
                .input_tokens = 8, .output_tokens = 9, .uid = 1000, .task = TASK_CODE,
                .completed = true,
        };
        struct tracker_trace b = {
                .id = "old-b", .model = "m", .reason = NULL, .seq = 5, .started_at = 40,
                .uid = 1001, .task = TASK_GENERATE,
        };
        ck_assert_int_eq(tracker_load_trace(t, &a), 0);
        ck_assert_int_eq(tracker_load_trace(t, &b), 0);
        ck_assert(!tracker_has_changes(t)); /* loaded rows are not changes */
        ck_assert_int_eq(tracker_load_trace(t, &a), -EINVAL); /* twice */
        struct tracker_trace bad = b;
        bad.id = "bad";
        bad.task = TASK__COUNT;
        ck_assert_int_eq(tracker_load_trace(t, &bad), -EINVAL);
        ck_assert_uint_eq(tracker_pending_count(t), 2);

        const struct tracker_trace *tr = tracker_trace_get(t, "old-a");
        ck_assert_ptr_ne(tr, &a);
        ck_assert_ptr_ne(tr->id, a.id); /* copied */
        ck_assert_uint_eq(tr->seq, 10);
        ck_assert_uint_eq(tr->started_at, 50);
        ck_assert_uint_eq(tr->latency_ms, 7);
        ck_assert_uint_eq(tr->input_tokens, 8);
        ck_assert_uint_eq(tr->output_tokens, 9);
        ck_assert_uint_eq(tr->uid, 1000);
        ck_assert_int_eq(tr->task, TASK_CODE);
        ck_assert(tr->completed);
        ck_assert_str_eq(tr->repo, "/repo");
        ck_assert_str_eq(tr->output, "code");
        ck_assert_uint_eq(tr->nfiles, 1);
        ck_assert_str_eq(tr->files[0], "x.c");
        ck_assert_str_eq(tracker_trace_get(t, "old-b")->reason, "");

        /* Later starts get a larger seq than any loaded. */
        char n1[64], n2[64];
        start_ok(t, "m", TASK_CODE, n1, sizeof(n1));
        start_ok(t, "m", TASK_CODE, n2, sizeof(n2));
        ck_assert_uint_eq(tracker_trace_get(t, n1)->seq, 11);
        ck_assert_uint_eq(tracker_trace_get(t, n2)->seq, 12);
        /* A loaded trace with a smaller seq does not lower it. */
        struct tracker_trace c = b;
        c.id = "old-c";
        c.seq = 3;
        ck_assert_int_eq(tracker_load_trace(t, &c), 0);
        char n3[64];
        start_ok(t, "m", TASK_CODE, n3, sizeof(n3));
        ck_assert_uint_eq(tracker_trace_get(t, n3)->seq, 13);

        /* Loaded traces behave as pending ones. */
        ck_assert_int_eq(complete_as(t, "old-a", 1, 1000), -EALREADY);
        ck_assert_int_eq(complete_as(t, "old-b", 1, 1000), -EPERM);
        ck_assert_int_eq(complete_as(t, "old-b", 1, 1001), 0);
        struct tracker_result res;
        ck_assert_int_eq(outcome_as(t, "old-a", KIND_ACCEPTED, 1, 1000, &res), 0);
        ck_assert(res.deferred);
        ck_assert_int_eq(outcome_as(t, "old-b", KIND_ACCEPTED, 1, 1001, &res), 0);
        ck_assert(!res.deferred);
        ck_assert_ptr_null(tracker_trace_get(t, "old-b"));

        /* Loading a profile over an existing one replaces its numbers. */
        struct tracker_profile p = { .model = "m", .total_calls = 77, .ema_quality = 0.25 };
        p.tasks[TASK_EMBED].present = true;
        p.tasks[TASK_EMBED].calls = 77;
        ck_assert_int_eq(tracker_load_profile(t, &p), 0);
        const struct tracker_profile *q = tracker_profile_get(t, "m");
        ck_assert_uint_eq(q->total_calls, 77);
        ck_assert_double_eq(q->ema_quality, 0.25);
        ck_assert(q->tasks[TASK_EMBED].present);
        ck_assert(!q->tasks[TASK_GENERATE].present);
        ck_assert_uint_eq(tracker_profile_count(t), 1);
        tracker_free(t);
}
END_TEST

START_TEST(running_mean_latency)
{
        struct tracker *t = new_tracker("t", 0, 0);
        char id[64];
        static const uint32_t lat[] = { 100, 200, 600 };
        for (int i = 0; i < 3; i++) {
                start_ok(t, "m", TASK_EMBED, id, sizeof(id));
                ck_assert_int_eq(complete_as(t, id, lat[i], 1000), 0);
        }
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        /* 100 -> 100 + 100/2 = 150 -> 150 + 450/3 = 300, exactly */
        ck_assert_double_eq(p->tasks[TASK_EMBED].avg_latency_ms, 300.0);
        ck_assert_double_eq(tracker_profile_avg_latency(p), 300.0);
        ck_assert_uint_eq(p->total_latency_ms, 900);

        /* 1..1000 on another task: mean 500.5, to rounding. */
        for (uint32_t i = 1; i <= 1000; i++) {
                start_ok(t, "m", TASK_CLASSIFY, id, sizeof(id));
                ck_assert_int_eq(complete_as(t, id, i, 1000), 0);
        }
        ck_assert_double_eq_tol(p->tasks[TASK_CLASSIFY].avg_latency_ms, 500.5, 1e-9);
        ck_assert_uint_eq(p->tasks[TASK_CLASSIFY].calls, 1000);
        ck_assert_double_eq(p->tasks[TASK_EMBED].avg_latency_ms, 300.0); /* untouched */
        /* The model's mean is total / calls: (900 + 500500) / 1003. */
        ck_assert_double_eq(tracker_profile_avg_latency(p), 501400.0 / 1003.0);
        /* The extremes of a u32 latency add up without overflow. */
        start_ok(t, "big", TASK_CODE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, UINT32_MAX, 1000), 0);
        start_ok(t, "big", TASK_CODE, id, sizeof(id));
        ck_assert_int_eq(complete_as(t, id, UINT32_MAX, 1000), 0);
        p = tracker_profile_get(t, "big");
        ck_assert_uint_eq(p->total_latency_ms, 2ull * UINT32_MAX);
        ck_assert_double_eq(p->tasks[TASK_CODE].avg_latency_ms, (double)UINT32_MAX);
        tracker_free(t);
}
END_TEST

/* ---- fuzz -------------------------------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static unsigned pick(unsigned n)
{
        return (unsigned)(rnd() % n);
}

static double unit(void)
{
        return (double)(rnd() >> 11) / 9007199254740992.0; /* [0, 1) */
}

#define F_MODELS 4
#define F_IDS 24

struct fuzz {
        struct tracker *t;
        char ids[F_IDS][32]; /* client ids, then generated ones as they come */
        unsigned ngen;
        uint64_t now;
        struct tracker_profile prev[F_MODELS];
        bool existed[F_MODELS];
        size_t nprofiles;
        size_t collected;
};

static const char *const f_models[F_MODELS] = { "m0", "m1", "m2", "m3" };
static const uint32_t f_uids[] = { 0, 1000, 1000, 1001 };
static const char *const f_outputs[] = { "", " ", "ok", "\xc2\xa0", "x y", "\xe3\x80\x80z" };

/* The fuzz's sink: reported traces must be the live pending ones; the
 * callbacks are only counted (the lists may be long). */
static void fz_profile(void *d, const struct tracker_profile *p)
{
        (void)p;
        ((struct fuzz *)d)->collected++;
}

static void fz_deleted(void *d, const char *id)
{
        CHECK(strlen(id) > 0);
        ((struct fuzz *)d)->collected++;
}

static void fz_trace(void *d, const struct tracker_trace *tr)
{
        struct fuzz *f = d;
        CHECK(tracker_trace_get(f->t, tr->id) == tr);
        f->collected++;
}

static const char *f_id(struct fuzz *f)
{
        return f->ids[pick(F_IDS)];
}

static void f_check(struct fuzz *f, uint64_t max_models, uint64_t max_pending)
{
        struct tracker *t = f->t;
        size_t np = tracker_profile_count(t);
        CHECK(np >= f->nprofiles);
        f->nprofiles = np;
        if (max_models)
                CHECK(np <= max_models);
        for (int m = 0; m < F_MODELS; m++) {
                const struct tracker_profile *p = tracker_profile_get(t, f_models[m]);
                if (!p) {
                        CHECK(!f->existed[m]);
                        continue;
                }
                const struct tracker_profile *o = &f->prev[m];
                if (f->existed[m]) {
                        CHECK(p->total_calls >= o->total_calls);
                        CHECK(p->success_count >= o->success_count);
                        CHECK(p->fail_count >= o->fail_count);
                        CHECK(p->total_latency_ms >= o->total_latency_ms);
                        CHECK(p->updated_at >= o->updated_at);
                }
                CHECK(p->ema_quality >= 0.0 && p->ema_quality <= 1.0);
                double sr = tracker_success_rate(p->success_count, p->fail_count);
                CHECK(sr >= 0.0 && sr <= 1.0);
                uint64_t calls = 0, succ = 0, fail = 0;
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *ts = &p->tasks[k];
                        if (!ts->present) {
                                CHECK(!f->existed[m] || !o->tasks[k].present);
                                continue;
                        }
                        if (f->existed[m] && o->tasks[k].present) {
                                CHECK(ts->calls >= o->tasks[k].calls);
                                CHECK(ts->successes >= o->tasks[k].successes);
                                CHECK(ts->failures >= o->tasks[k].failures);
                        }
                        CHECK(ts->ema_quality >= 0.0 && ts->ema_quality <= 1.0);
                        double tsr = tracker_success_rate(ts->successes, ts->failures);
                        CHECK(tsr >= 0.0 && tsr <= 1.0);
                        CHECK(ts->avg_latency_ms >= 0.0 && ts->avg_latency_ms <= 5000.0);
                        calls += ts->calls;
                        succ += ts->successes;
                        fail += ts->failures;
                }
                /* Every count lands in the model and in one task. */
                CHECK(calls == p->total_calls);
                CHECK(succ == p->success_count);
                CHECK(fail == p->fail_count);
                f->prev[m] = *p;
                f->existed[m] = true;
        }

        size_t n = 0;
        uint64_t seq = 0;
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                CHECK(tracker_trace_get(t, tr->id) == tr);
                CHECK(tr->seq > seq);
                seq = tr->seq;
                CHECK(tr->task < TASK__COUNT);
                n++;
                CHECK(n <= 100000); /* no cycle */
        }
        CHECK(n == tracker_pending_count(t));
        if (max_pending)
                CHECK(n <= max_pending);
}

START_TEST(fuzz_invariants)
{
        enum { OPS = 20000 };
        uint64_t max_models = 3, max_pending = 16;
        struct fuzz f = { .t = new_tracker("fz", max_models, max_pending), .now = 1 };
        for (int i = 0; i < F_IDS; i++)
                snprintf(f.ids[i], sizeof(f.ids[i]), "c%d", i);
        struct tracker_sink sink = { fz_profile, fz_deleted, fz_trace, &f, NULL, NULL, NULL };
        unsigned counts[8] = { 0 }, errors[8] = { 0 };

        for (int op = 0; op < OPS; op++) {
                struct tracker *t = f.t;
                if (op == OPS / 2) { /* second half without limits */
                        max_models = max_pending = 0;
                        tracker_set_limits(t, 0, 0);
                }
                f.now += pick(3);
                uint32_t uid = f_uids[pick(4)];
                struct frozen z = freeze(t);
                int kind = (int)pick(100), rc;
                const char *id = f_id(&f);
                int slot;
                if (tracker_pending_count(t) > 40) {
                        /* Without a limit generated traces pile up: root
                         * fails the oldest, which also exercises the head. */
                        slot = 6;
                        const struct tracker_trace *old = tracker_pending_first(t);
                        char oid[64];
                        snprintf(oid, sizeof(oid), "%s", old->id);
                        rc = tracker_fail(t, oid, 0, f.now);
                        CHECK(rc == 0);
                        CHECK(tracker_pending_first(t) != old);
                } else if (kind < 30) {
                        slot = 0;
                        bool gen = pick(3) == 0;
                        char got[32];
                        const char *repo = pick(10) == 0 ? "/repo" : NULL;
                        rc = start_full(t, f_models[pick(F_MODELS)], pick(TASK__COUNT),
                                        gen ? NULL : id, repo, uid, f.now, got, sizeof(got));
                        if (rc == 0) {
                                CHECK(tracker_trace_get(t, got));
                                if (!gen) {
                                        CHECK(strcmp(got, id) == 0);
                                } else {
                                        CHECK(strncmp(got, "fz-", 3) == 0);
                                        /* Keep some generated ids in the pool. */
                                        snprintf(f.ids[F_IDS / 2 + f.ngen++ % (F_IDS / 2)],
                                                 sizeof(f.ids[0]), "%s", got);
                                }
                        }
                } else if (kind < 50) {
                        slot = 1;
                        struct tracker_complete c = {
                                .trace_id = id, .latency_ms = pick(5001),
                                .input_tokens = pick(100), .output_tokens = pick(100),
                                .output = pick(2) ? f_outputs[pick(6)] : NULL, .uid = uid,
                                .now = f.now,
                        };
                        rc = tracker_complete(t, &c);
                        if (rc == 0)
                                CHECK(tracker_trace_get(t, id)->completed);
                } else if (kind < 60) {
                        slot = 2;
                        rc = tracker_fail(t, id, uid, f.now);
                        if (rc == 0)
                                CHECK(!tracker_trace_get(t, id));
                } else if (kind < 80) {
                        slot = 3;
                        struct tracker_result res;
                        enum tracker_kind k = pick(KIND__COUNT);
                        const struct tracker_trace *tr = tracker_trace_get(t, id);
                        bool repo = tr && tr->repo;
                        rc = tracker_outcome(t, id, k, unit(), uid, f.now, &res);
                        if (rc == 0) {
                                CHECK(res.deferred == repo);
                                CHECK(res.kind == k);
                                CHECK(strcmp(res.trace_id, id) == 0);
                                CHECK(!repo == !tracker_trace_get(t, id));
                                if (res.has_quality)
                                        CHECK(res.quality >= 0.0 && res.quality <= 1.0);
                        }
                } else if (kind < 95) {
                        slot = 4;
                        struct tracker_action acts[6];
                        size_t n = pick(7);
                        for (size_t a = 0; a < n; a++) {
                                acts[a].trace_id = pick(8) ? f_id(&f) : "";
                                acts[a].success = pick(3) != 0;
                                acts[a].confidence = unit();
                                acts[a].output = f_outputs[pick(6)];
                        }
                        struct seq_log log = { 0 };
                        rc = tracker_sequence(t, acts, n, uid, f.now, seq_cb, &log);
                        CHECK(log.n <= n);
                        if (rc == 0) {
                                for (size_t a = 0; a < log.n; a++) {
                                        bool pending = tracker_trace_get(t, log.id[a]) != NULL;
                                        CHECK(log.r[a].deferred == pending);
                                }
                        } else {
                                CHECK(log.n == 0);
                        }
                } else {
                        slot = 5;
                        f.collected = 0;
                        rc = tracker_collect(t, &sink);
                        CHECK(!tracker_has_changes(t));
                        CHECK(f.collected > 0 || !z.changes);
                        size_t again = f.collected;
                        CHECK(tracker_collect(t, &sink) == 0);
                        CHECK(f.collected == again); /* once only */
                }
                counts[slot]++;
                if (!(rc == 0 || rc == -ENOENT || rc == -EEXIST || rc == -EALREADY ||
                      rc == -EPERM || rc == -ENOSPC))
                        ck_abort_msg("op %d: unexpected %d", op, rc);
                if (rc < 0) {
                        errors[slot]++;
                        assert_unchanged(t, &z); /* a failed call changes nothing */
                } else {
                        free(z.text);
                }
                f_check(&f, max_models, max_pending);
        }
        /* The mix really exercised both paths of every operation. */
        for (int s = 0; s < 5; s++) {
                CHECK(counts[s] > errors[s]);
                CHECK(errors[s] > 0);
        }
        tracker_free(f.t);
}
END_TEST

/* ---- main -------------------------------------------------------------- */

/* ---- degraded_since ---------------------------------------------------- */

static void fail_at(struct tracker *t, const char *model, uint64_t now)
{
        char id[64];
        ck_assert_int_eq(start_full(t, model, TASK_CODE, NULL, NULL, 1000, now, id, sizeof(id)), 0);
        ck_assert_int_eq(tracker_fail(t, id, 1000, now), 0);
}

static void accept_at(struct tracker *t, const char *model, uint64_t now)
{
        char id[64];
        struct tracker_result res;
        ck_assert_int_eq(start_full(t, model, TASK_CODE, NULL, NULL, 1000, now, id, sizeof(id)), 0);
        ck_assert_int_eq(tracker_outcome(t, id, KIND_ACCEPTED, 1.0, 1000, now, &res), 0);
}

static uint64_t since_of(const struct tracker *t, const char *model)
{
        const struct tracker_profile *p = tracker_profile_get(t, model);
        ck_assert_ptr_nonnull(p);
        return p->degraded_since;
}

static void collect_all(struct tracker *t)
{
        struct rec r = { .t = t };
        struct tracker_sink sink = { rec_profile, rec_deleted, rec_trace, &r, NULL, NULL, NULL };
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
}

/* Set when the counts cross into degraded (fail > ok + threshold), kept
 * while they stay, cleared when they leave, set again at the next
 * crossing; the time is the change's. */
START_TEST(degraded_since_crossing)
{
        struct tracker *t = new_tracker("t", 0, 0);
        ck_assert_uint_eq(tracker_degrade_threshold(t), TRACKER_DEGRADE_THRESHOLD);
        ck_assert_uint_eq(TRACKER_DEGRADE_THRESHOLD, 3);
        accept_at(t, "m", 10);
        for (uint64_t now = 11; now <= 14; now++)
                fail_at(t, "m", now); /* 4 fail, 1 ok: 4 > 4 is false */
        ck_assert_uint_eq(since_of(t, "m"), 0);
        fail_at(t, "m", 15); /* 5 > 1 + 3 */
        ck_assert_uint_eq(since_of(t, "m"), 15);
        fail_at(t, "m", 16);
        ck_assert_uint_eq(since_of(t, "m"), 15); /* still degraded: the first time stays */
        accept_at(t, "m", 17);                   /* 6 > 2 + 3 */
        ck_assert_uint_eq(since_of(t, "m"), 15);
        accept_at(t, "m", 18); /* 6 > 3 + 3 is false: out */
        ck_assert_uint_eq(since_of(t, "m"), 0);
        fail_at(t, "m", 19); /* 7 > 6: in again, a new time */
        ck_assert_uint_eq(since_of(t, "m"), 19);

        /* A complete changes updated_at, not the counts: since stays. */
        char id[64];
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 20, id, sizeof(id)), 0);
        ck_assert_int_eq(complete_as(t, id, 5, 1000), 0); /* at 2000 */
        ck_assert_uint_eq(tracker_profile_get(t, "m")->updated_at, 2000);
        ck_assert_uint_eq(since_of(t, "m"), 19);

        /* Expiry is a judgement like any (inconclusive: no count moves). */
        const uint64_t ttl[TASK__COUNT] = { 0, 0, 0, 1, 0 };
        ck_assert_uint_eq(tracker_expire(t, 5000, ttl, 10, NULL, NULL), 1);
        ck_assert_uint_eq(since_of(t, "m"), 19);

        /* Forgotten and made again: a new profile, not degraded. */
        ck_assert_int_eq(tracker_forget(t, "m"), 0);
        fail_at(t, "m", 30);
        ck_assert_uint_eq(since_of(t, "m"), 0);
        tracker_free(t);
}
END_TEST

/* A threshold of its own: a model with 2 fail, 0 ok is degraded under 1
 * and not under 3; a new threshold reconciles at once, with updated_at
 * for a profile that becomes degraded, and reports it for the store. */
START_TEST(degraded_since_threshold_change)
{
        struct tracker *t = new_tracker("t", 0, 0);
        ck_assert_uint_eq(tracker_set_degrade_threshold(t, 1), 0); /* no profiles yet */
        ck_assert_uint_eq(tracker_degrade_threshold(t), 1);
        fail_at(t, "a", 100);
        fail_at(t, "a", 101); /* 2 > 0 + 1 */
        fail_at(t, "b", 102); /* 1 > 1 is false */
        ck_assert_uint_eq(since_of(t, "a"), 101);
        ck_assert_uint_eq(since_of(t, "b"), 0);
        collect_all(t);
        ck_assert(!tracker_has_changes(t));

        ck_assert_uint_eq(tracker_set_degrade_threshold(t, 1), 0); /* the same: nothing */
        ck_assert(!tracker_has_changes(t));
        ck_assert_uint_eq(tracker_set_degrade_threshold(t, 3), 1); /* a leaves */
        ck_assert_uint_eq(since_of(t, "a"), 0);
        ck_assert(tracker_has_changes(t));
        ck_assert_uint_eq(tracker_profile_get(t, "a")->updated_at, 101); /* kept */
        collect_all(t);
        ck_assert_uint_eq(tracker_set_degrade_threshold(t, 0), 2); /* both in */
        ck_assert_uint_eq(since_of(t, "a"), 101); /* their updated_at */
        ck_assert_uint_eq(since_of(t, "b"), 102);
        ck_assert(tracker_has_changes(t));
        tracker_free(t);
}
END_TEST

/* A restart: rows load with their time under the same threshold, without
 * a change; under another threshold (or a row from before the column, 0)
 * they are corrected and reported, as a threshold change does. */
START_TEST(degraded_since_load)
{
        struct tracker *t = new_tracker("t", 0, 0);
        for (uint64_t now = 40; now < 44; now++)
                fail_at(t, "m", now); /* 4 > 0 + 3 at 43 */
        ck_assert_uint_eq(since_of(t, "m"), 43);
        char id[64];
        ck_assert_int_eq(start_full(t, "m", TASK_CODE, NULL, NULL, 1000, 50, id, sizeof(id)), 0);
        ck_assert_int_eq(complete_as(t, id, 5, 1000), 0); /* updated_at 2000 */
        struct tracker_profile row = *tracker_profile_get(t, "m");

        struct tracker *same = new_tracker("u", 0, 0);
        ck_assert_int_eq(tracker_load_profile(same, &row), 0);
        ck_assert_uint_eq(since_of(same, "m"), 43);
        ck_assert(!tracker_has_changes(same));
        /* and the next changes go on from it */
        fail_at(same, "m", 60);
        ck_assert_uint_eq(since_of(same, "m"), 43);
        tracker_free(same);

        struct tracker *higher = new_tracker("u", 0, 0);
        tracker_set_degrade_threshold(higher, 10);
        ck_assert_int_eq(tracker_load_profile(higher, &row), 0);
        ck_assert_uint_eq(since_of(higher, "m"), 0);
        ck_assert(tracker_has_changes(higher));
        ck_assert_uint_eq(tracker_profile_get(higher, "m")->updated_at, 2000);
        tracker_free(higher);

        struct tracker *old = new_tracker("u", 0, 0);
        struct tracker_profile pre = row;
        pre.degraded_since = 0; /* a row written before the column existed */
        ck_assert_int_eq(tracker_load_profile(old, &pre), 0);
        ck_assert_uint_eq(since_of(old, "m"), 2000); /* its updated_at */
        ck_assert(tracker_has_changes(old));
        tracker_free(old);
        tracker_free(t);
}
END_TEST

/* import: a new or replaced profile keeps the file's time while it is
 * degraded here, else takes the time the profile gets; a merge keeps the
 * daemon's time, or takes the import's when the merge makes it degraded. */
START_TEST(degraded_since_import)
{
        struct tracker *t = new_tracker("t", 0, 0);
        struct tracker_profile src = { 0 };
        bool created;
        src.model = (char *)"n";
        src.fail_count = 5;
        src.ema_quality = 0.5;
        src.updated_at = 70;
        src.degraded_since = 65;
        ck_assert_int_eq(tracker_import(t, &src, false, 900, &created), 0);
        ck_assert(created);
        ck_assert_uint_eq(since_of(t, "n"), 65);

        src.model = (char *)"o";
        src.degraded_since = 0; /* an older export */
        ck_assert_int_eq(tracker_import(t, &src, false, 900, &created), 0);
        ck_assert_uint_eq(since_of(t, "o"), 70);

        src.model = (char *)"p";
        src.fail_count = 1; /* not degraded: the file's time is dropped */
        src.degraded_since = 65;
        ck_assert_int_eq(tracker_import(t, &src, false, 900, &created), 0);
        ck_assert_uint_eq(since_of(t, "p"), 0);

        /* merge 1 + 3 fail: 4 > 0 + 3, at the import's time */
        src.fail_count = 3;
        src.degraded_since = 0;
        ck_assert_int_eq(tracker_import(t, &src, false, 901, &created), 0);
        ck_assert(!created);
        ck_assert_uint_eq(since_of(t, "p"), 901);
        /* merged again, still degraded: the time stays */
        ck_assert_int_eq(tracker_import(t, &src, false, 902, &created), 0);
        ck_assert_uint_eq(since_of(t, "p"), 901);
        /* replaced by a healthy profile: cleared */
        src.fail_count = 0;
        src.success_count = 9;
        src.degraded_since = 65;
        ck_assert_int_eq(tracker_import(t, &src, true, 903, &created), 0);
        ck_assert_uint_eq(since_of(t, "p"), 0);
        tracker_free(t);
}
END_TEST

static Suite *tracker_suite(void)
{
        Suite *s = suite_create("tracker");

        TCase *seed = tcase_create("seed");
        tcase_add_test(seed, seed_lifecycle);
        tcase_add_test(seed, seed_failure_degrades);
        tcase_add_test(seed, seed_code_outcome_ground_truth);
        tcase_add_test(seed, seed_per_task_stats);
        tcase_add_test(seed, seed_export_import);
        suite_add_tcase(s, seed);

        TCase *rules = tcase_create("rules");
        tcase_add_test(rules, kind_score_table);
        tcase_add_test(rules, kind_outcome_applied);
        tcase_add_test(rules, names_parse);
        tcase_add_test(rules, task_prior);
        tcase_add_test(rules, fail_without_complete);
        tcase_add_test(rules, inconclusive_no_task_entry);
        tcase_add_test(rules, duplicate_client_id);
        tcase_add_test(rules, second_complete_refused);
        tcase_add_test(rules, unknown_trace);
        tcase_add_test(rules, uid_rules);
        tcase_add_test(rules, generated_ids);
        tcase_add_test(rules, limit_pending);
        tcase_add_test(rules, limit_models);
        tcase_add_test(rules, limit_models_sequence_one_new_model);
        tcase_add_test(rules, infer_action_rules);
        tcase_add_test(rules, sequence_rules);
        tcase_add_test(rules, sequence_skips);
        tcase_add_test(rules, sequence_forbidden);
        tcase_add_test(rules, deferred_repo_trace);
        tcase_add_test(rules, pending_order);
        tcase_add_test(rules, task_walk);
        tcase_add_test(rules, load_blocks);
        tcase_add_test(rules, collect_changes);
        tcase_add_test(rules, mark_all_changed);
        tcase_add_test(rules, load_trace);
        tcase_add_test(rules, running_mean_latency);
        tcase_add_test(rules, degraded_since_crossing);
        tcase_add_test(rules, degraded_since_threshold_change);
        tcase_add_test(rules, degraded_since_load);
        tcase_add_test(rules, degraded_since_import);
        suite_add_tcase(s, rules);

        TCase *fuzz = tcase_create("fuzz");
        tcase_set_timeout(fuzz, 60);
        tcase_add_test(fuzz, fuzz_invariants);
        suite_add_tcase(s, fuzz);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(tracker_suite());
        srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY, default normal */
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

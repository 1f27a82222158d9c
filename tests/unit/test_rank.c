/* test_rank.c - Check tests of the evidence behind the profiles and of
 * ranking: the Beta posterior's rule and interval, fading with an injected
 * clock, the latency sketch, each rank strategy on hand-built profiles
 * (Thompson by the frequencies of many seeded draws), and domains: the
 * cells' forgetting, the task's sums, the empirical-Bayes shrinkage, the
 * cost per accepted outcome and the knowledge gradient, each against the
 * formula computed here. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rank.h"
#include "tracker.h"

#define NEAR(a, b) ck_assert_msg(fabs((double)(a) - (double)(b)) <= 1e-12 * (1.0 + fabs((double)(b))), \
                                 "%s = %.17g, want %.17g", #a, (double)(a), (double)(b))

static struct tracker *new_tracker(void)
{
        struct tracker_options o = { .id_prefix = "t" };
        struct tracker *t = tracker_new(&o);
        ck_assert_ptr_nonnull(t);
        return t;
}

/* start + complete + outcome of one call at time `now`. */
static void call(struct tracker *t, const char *model, enum tracker_task task, uint32_t latency,
                 enum tracker_kind kind, double c, uint64_t now)
{
        const char *id;
        struct tracker_start s = { .model = model, .task = task, .now = now };
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        char idc[96];
        strcpy(idc, id);
        struct tracker_complete cp = { .trace_id = idc, .latency_ms = latency,
                                       .input_tokens = 1000, .output_tokens = 500, .now = now };
        ck_assert_int_eq(tracker_complete(t, &cp), 0);
        struct tracker_result r;
        ck_assert_int_eq(tracker_outcome(t, idc, kind, c, 0, now, &r), 0);
}

/* A profile with given task evidence, loaded as the store would. */
static void load(struct tracker *t, const char *model, enum tracker_task task, double alpha,
                 double beta, double ema, uint64_t fails)
{
        struct tracker_profile p;
        memset(&p, 0, sizeof(p));
        p.model = (char *)model;
        p.ema_quality = ema;
        p.fail_count = fails;
        p.tasks[task].present = true;
        p.tasks[task].ema_quality = ema;
        p.tasks[task].ev.alpha = alpha;
        p.tasks[task].ev.beta = beta;
        p.tasks[task].ev.judged = alpha + beta;
        ck_assert_int_eq(tracker_load_profile(t, &p), 0);
}

START_TEST(posterior_rule)
{
        struct tracker *t = new_tracker();
        /* accepted c=0.9: q 0.9, w 0.9; rejected c=0.5: q 0.15, w 0.5;
         * applied: q 1, w 1; a failure: q 0, w 1; inconclusive: nothing. */
        call(t, "m", TASK_CODE, 100, KIND_ACCEPTED, 0.9, 10);
        call(t, "m", TASK_CODE, 100, KIND_REJECTED, 0.5, 10);
        call(t, "m", TASK_CODE, 100, KIND_APPLIED, 0.0, 10);
        call(t, "m", TASK_CODE, 100, KIND_INCONCLUSIVE, 0.0, 10);
        const char *id;
        struct tracker_start s = { .model = "m", .task = TASK_CODE, .now = 10 };
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        char idc[96];
        strcpy(idc, id);
        ck_assert_int_eq(tracker_fail(t, idc, 0, 10), 0);

        const struct tracker_profile *p = tracker_profile_get(t, "m");
        const struct tracker_evidence *e = &p->tasks[TASK_CODE].ev;
        double alpha = 0.9 * 0.9 + 0.5 * 0.15 + 1.0 * 1.0 + 0.0;
        double beta = 0.9 * 0.1 + 0.5 * 0.85 + 0.0 + 1.0;
        NEAR(e->alpha, alpha);
        NEAR(e->beta, beta);
        NEAR(e->judged, 4.0);
        NEAR(p->ev.alpha, alpha); /* the model's, over its one task */
        ck_assert_uint_eq(e->input_tokens, 4000);
        ck_assert_uint_eq(e->output_tokens, 2000);

        /* Mean and interval of Beta(1 + alpha, 1 + beta), computed here. */
        double a = 1 + alpha, b = 1 + beta, n = a + b, m = a / n;
        double sd = sqrt(a * b / (n * n * (n + 1)));
        double mean, lo, hi;
        tracker_posterior(e, &mean, &lo, &hi);
        NEAR(mean, m);
        NEAR(lo, m - 1.96 * sd);
        NEAR(hi, m + 1.96 * sd);
        /* The prior alone: mean 0.5, clamped interval. */
        struct tracker_evidence none = { 0 };
        tracker_posterior(&none, &mean, &lo, &hi);
        NEAR(mean, 0.5);
        ck_assert(lo >= 0.0 && hi <= 1.0);
        tracker_free(t);
}
END_TEST

START_TEST(fading_with_injected_clock)
{
        struct tracker *t = new_tracker();
        tracker_set_half_life(t, 100);
        call(t, "m", TASK_GENERATE, 10, KIND_APPLIED, 0, 1000); /* alpha 1 at t=1000 */
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        struct tracker_evidence e;
        tracker_evidence_at(t, &p->tasks[TASK_GENERATE].ev, 1100, &e);
        NEAR(e.alpha, 0.5);
        NEAR(e.judged, 0.5);
        tracker_evidence_at(t, &p->tasks[TASK_GENERATE].ev, 1300, &e);
        NEAR(e.alpha, 0.125);
        /* Reading changes nothing; new evidence fades the old first. */
        NEAR(p->tasks[TASK_GENERATE].ev.alpha, 1.0);
        call(t, "m", TASK_GENERATE, 10, KIND_IGNORED, 0, 1200); /* q 0.1 */
        NEAR(p->tasks[TASK_GENERATE].ev.alpha, 0.25 + 0.1);
        NEAR(p->tasks[TASK_GENERATE].ev.beta, 0.9);
        NEAR(p->tasks[TASK_GENERATE].ev.judged, 0.25 + 1.0);
        /* The seed's numbers do not fade. */
        ck_assert_uint_eq(p->success_count, 1);
        ck_assert_uint_eq(p->fail_count, 1);
        /* Without a half-life nothing fades. */
        tracker_set_half_life(t, 0);
        tracker_evidence_at(t, &p->tasks[TASK_GENERATE].ev, 999999, &e);
        NEAR(e.alpha, 0.35);
        tracker_free(t);
}
END_TEST

START_TEST(sketch_buckets_and_percentiles)
{
        ck_assert_uint_eq(tracker_sketch_bucket(0), 0);
        ck_assert_uint_eq(tracker_sketch_bucket(1), 1);
        ck_assert_uint_eq(tracker_sketch_bucket(2), 5);
        ck_assert_uint_eq(tracker_sketch_bucket(1024), 41);
        ck_assert_uint_eq(tracker_sketch_bucket(1023), 40);
        ck_assert_uint_eq(tracker_sketch_bucket(UINT32_MAX), TRACKER_SKETCH_BUCKETS - 1);
        for (uint32_t ms = 1; ms < 100000; ms = ms * 3 + 1) {
                unsigned b = tracker_sketch_bucket(ms);
                ck_assert(exp2((b - 1) / 4.0) <= ms && ms < exp2(b / 4.0));
        }
        uint32_t sk[TRACKER_SKETCH_BUCKETS] = { 0 };
        ck_assert(tracker_sketch_percentile(sk, 0.5) < 0);
        /* 90 calls at 100 ms, 10 at 1000 ms: p50 near 100, p95 near 1000,
         * each within the bucket's width (2^0.25). */
        sk[tracker_sketch_bucket(100)] = 90;
        sk[tracker_sketch_bucket(1000)] = 10;
        double p50 = tracker_sketch_percentile(sk, 0.5), p95 = tracker_sketch_percentile(sk, 0.95);
        ck_assert(p50 > 100 / 1.19 && p50 < 100 * 1.19);
        ck_assert(p95 > 1000 / 1.19 && p95 < 1000 * 1.19);
        ck_assert(tracker_sketch_percentile(sk, 0.9) < 200);
}
END_TEST

/* Three models on code: a (strong evidence), b (weak, high EMA), c (few). */
static struct tracker *three(void)
{
        struct tracker *t = new_tracker();
        load(t, "a", TASK_CODE, 40, 10, 0.70, 0);
        load(t, "b", TASK_CODE, 2, 0, 0.90, 0);
        load(t, "c", TASK_CODE, 0, 3, 0.30, 0);
        load(t, "d", TASK_EMBED, 5, 5, 0.5, 0); /* no code stats */
        return t;
}

static long rank(struct tracker *t, enum rank_strategy st, const char *const *cand, size_t n,
                 struct rank_item **items)
{
        struct rank_options o = { .task = TASK_CODE, .strategy = st, .candidates = cand,
                                  .ncandidates = n, .exclude_degraded = true,
                                  .degrade_threshold = 3, .seed = 42, .now = 0 };
        long r = rank_compute(t, &o, items);
        ck_assert_int_ge(r, 0);
        return r;
}

START_TEST(strategies_order_and_scores)
{
        struct tracker *t = three();
        struct rank_item *v;
        double m, lo, hi;

        ck_assert_int_eq(rank(t, RANK_EMA, NULL, 0, &v), 3); /* d has no code stats */
        ck_assert_str_eq(v[0].model, "b");
        ck_assert_str_eq(v[1].model, "a");
        ck_assert_str_eq(v[2].model, "c");
        NEAR(v[0].score, 0.90);
        NEAR(v[1].score, 0.70);
        free(v);

        ck_assert_int_eq(rank(t, RANK_MEAN, NULL, 0, &v), 3);
        ck_assert_str_eq(v[0].model, "a"); /* 41/52 */
        NEAR(v[0].score, 41.0 / 52.0);
        ck_assert_str_eq(v[1].model, "b"); /* 3/4 */
        NEAR(v[1].score, 3.0 / 4.0);
        NEAR(v[2].score, 1.0 / 5.0);
        free(v);

        /* lcb: b's 3/4 is uncertain, a's 41/52 is not. */
        ck_assert_int_eq(rank(t, RANK_LCB, NULL, 0, &v), 3);
        ck_assert_str_eq(v[0].model, "a");
        struct tracker_evidence e = { .alpha = 40, .beta = 10 };
        tracker_posterior(&e, &m, &lo, &hi);
        NEAR(v[0].score, lo);
        NEAR(v[0].lo, lo);
        NEAR(v[0].mean, m);
        NEAR(v[0].judged, 50.0);
        free(v);
        tracker_free(t);
}
END_TEST

START_TEST(unknown_candidates_rank_with_the_prior)
{
        struct tracker *t = three();
        struct rank_item *v;
        const char *cand[] = { "c", "new-model", "d" };
        ck_assert_int_eq(rank(t, RANK_MEAN, cand, 3, &v), 3);
        /* new-model and d (no code stats) have the prior 0.5; c has 0.2. */
        ck_assert_str_eq(v[0].model, "d");
        ck_assert(v[0].prior);
        ck_assert_str_eq(v[1].model, "new-model");
        ck_assert(v[1].prior);
        NEAR(v[1].score, 0.5);
        ck_assert_str_eq(v[2].model, "c");
        ck_assert(!v[2].prior);
        free(v);
        tracker_free(t);
}
END_TEST

START_TEST(degraded_excluded_unless_asked)
{
        struct tracker *t = three();
        load(t, "bad", TASK_CODE, 9, 0, 0.99, 10); /* fail_count 10 > 0 + 3 */
        struct rank_item *v;
        long n = rank(t, RANK_EMA, NULL, 0, &v);
        ck_assert_int_eq(n, 4);
        ck_assert_str_eq(v[3].model, "bad"); /* excluded ones come last */
        ck_assert(v[3].excluded && v[3].degraded);
        ck_assert_str_eq(v[0].model, "b");
        free(v);
        struct rank_options o = { .task = TASK_CODE, .strategy = RANK_EMA,
                                  .exclude_degraded = false, .degrade_threshold = 3 };
        ck_assert_int_eq(rank_compute(t, &o, &v), 4);
        ck_assert_str_eq(v[0].model, "bad");
        ck_assert(!v[0].excluded && v[0].degraded);
        free(v);
        tracker_free(t);
}
END_TEST

static bool price(void *data, const char *model, double *in, double *out)
{
        (void)data;
        if (strcmp(model, "fast") == 0) {
                *in = 10.0;
                *out = 30.0;
                return true;
        }
        if (strcmp(model, "slow") == 0) {
                *in = 1.0;
                *out = 2.0;
                return true;
        }
        return false;
}

START_TEST(latency_and_cost_penalties)
{
        struct tracker *t = new_tracker();
        /* Both accepted with c=1 once: EMA 0.6 each. fast: 100 ms; slow: 1000 ms. */
        call(t, "fast", TASK_CODE, 100, KIND_ACCEPTED, 1.0, 5);
        call(t, "slow", TASK_CODE, 1000, KIND_ACCEPTED, 1.0, 5);
        struct rank_item *v;
        struct rank_options o = { .task = TASK_CODE, .strategy = RANK_EMA, .latency_weight = 0.2,
                                  .exclude_degraded = true, .degrade_threshold = 3 };
        ck_assert_int_eq(rank_compute(t, &o, &v), 2);
        ck_assert_str_eq(v[0].model, "fast");
        double lat_fast = tracker_sketch_percentile(
                tracker_profile_get(t, "fast")->tasks[TASK_CODE].latency, 0.5);
        double lat_slow = tracker_sketch_percentile(
                tracker_profile_get(t, "slow")->tasks[TASK_CODE].latency, 0.5);
        NEAR(v[0].latency_penalty, 0.2 * lat_fast / lat_slow);
        NEAR(v[1].latency_penalty, 0.2);
        NEAR(v[1].score, 0.6 - 0.2);
        free(v);
        /* Cost per accepted: fast 1000*10/1e6 + 500*30/1e6 = 0.025; slow 0.002. */
        o.latency_weight = 0;
        o.cost_weight = 0.5;
        o.price = price;
        ck_assert_int_eq(rank_compute(t, &o, &v), 2);
        ck_assert_str_eq(v[0].model, "slow");
        NEAR(v[1].cost, 0.025);
        NEAR(v[0].cost, 0.002);
        NEAR(v[1].cost_penalty, 0.5);
        NEAR(v[0].cost_penalty, 0.5 * 0.002 / 0.025);
        free(v);
        tracker_free(t);
}
END_TEST

START_TEST(thompson_frequencies)
{
        /* a ~ Beta(3, 2), b ~ Beta(2, 3): P(a > b) = integral of
         * 12x^2(1-x) (6x^2 - 8x^3 + 3x^4) dx over [0, 1] = 53/70; 20000
         * seeded rankings agree within 4 standard deviations. */
        struct tracker *t = new_tracker();
        load(t, "a", TASK_CODE, 2, 1, 0.5, 0);
        load(t, "b", TASK_CODE, 1, 2, 0.5, 0);
        int wins = 0, N = 20000;
        for (int i = 0; i < N; i++) {
                struct rank_item *v;
                struct rank_options o = { .task = TASK_CODE, .strategy = RANK_THOMPSON,
                                          .exclude_degraded = true, .degrade_threshold = 3,
                                          .seed = (uint64_t)i };
                ck_assert_int_eq(rank_compute(t, &o, &v), 2);
                wins += strcmp(v[0].model, "a") == 0;
                ck_assert(v[0].score >= v[1].score);
                free(v);
        }
        double want = 53.0 / 70.0;
        double f = (double)wins / N, sd = sqrt(want * (1 - want) / N);
        ck_assert_msg(fabs(f - want) < 4 * sd, "a won %.4f of the draws", f);
        /* The same seed gives the same draw. */
        uint64_t s1[4], s2[4];
        rank_seed(s1, 7);
        rank_seed(s2, 7);
        NEAR(rank_beta_draw(s1, 3, 2), rank_beta_draw(s2, 3, 2));
        /* Beta draws have the right mean: E = a / (a + b). */
        double sum = 0;
        for (int i = 0; i < N; i++)
                sum += rank_beta_draw(s1, 2, 6);
        ck_assert(fabs(sum / N - 0.25) < 4 * sqrt(0.25 * 0.75 / 9.0 / N));
        tracker_free(t);
}
END_TEST

START_TEST(import_merges_evidence)
{
        struct tracker *t = new_tracker();
        load(t, "m", TASK_CODE, 4, 1, 0.6, 0);
        struct tracker_profile p;
        memset(&p, 0, sizeof(p));
        p.model = "m";
        p.ema_quality = 0.5;
        p.tasks[TASK_CODE].present = true;
        p.tasks[TASK_CODE].ema_quality = 0.5;
        p.tasks[TASK_CODE].ev.alpha = 1;
        p.tasks[TASK_CODE].ev.beta = 2;
        p.tasks[TASK_CODE].ev.input_tokens = 7;
        bool created;
        ck_assert_int_eq(tracker_import(t, &p, false, 0, &created), 0);
        ck_assert(!created);
        const struct tracker_profile *q = tracker_profile_get(t, "m");
        NEAR(q->tasks[TASK_CODE].ev.alpha, 5);
        NEAR(q->tasks[TASK_CODE].ev.beta, 3);
        ck_assert_uint_eq(q->tasks[TASK_CODE].ev.input_tokens, 7);
        tracker_free(t);
}
END_TEST


/* ---- domains: cells, the task's sums, forgetting, shrinkage, kg -------- */

/* start (with a domain) + complete + outcome of one call. */
static void dcall(struct tracker *t, const char *model, const char *domain, bool ok)
{
        const char *id;
        struct tracker_start s = { .model = model, .task = TASK_REASONING, .domain = domain,
                                   .now = 1 };
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        char idc[96];
        strcpy(idc, id);
        struct tracker_complete cp = { .trace_id = idc, .latency_ms = 100, .input_tokens = 400,
                                       .output_tokens = 50, .now = 1 };
        ck_assert_int_eq(tracker_complete(t, &cp), 0);
        struct tracker_result r;
        ck_assert_int_eq(tracker_outcome(t, idc, ok ? KIND_ACCEPTED : KIND_REJECTED, 1.0, 0, 1, &r),
                         0);
}

/* The test's own model of a cell: the recent evidence (x0.9 a step), the
 * window and its reset when the two disagree by 3 standard errors. */
struct model_cell {
        double ra, rb, wa, wb;
};

static void model_judge(struct model_cell *m, double q)
{
        m->ra = 0.9 * m->ra + q;
        m->rb = 0.9 * m->rb + (1 - q);
        m->wa += q;
        m->wb += 1 - q;
        double ns = m->ra + m->rb, nl = m->wa + m->wb;
        if (ns >= 5 && nl > ns + 5) {
                double pl = (m->wa + 0.5) / (nl + 1), ps = (m->ra + 0.5) / (ns + 1);
                if (fabs(ps - pl) > 3 * sqrt(pl * (1 - pl) / ns)) {
                        m->wa = m->ra;
                        m->wb = m->rb;
                }
        }
}

START_TEST(cells_follow_the_forgetting_rule)
{
        struct tracker *t = new_tracker();
        struct model_cell m = { 0 };
        int reset_at = -1;
        for (int i = 0; i < 60; i++) {
                bool ok = i < 40 || (i >= 40 && i % 7 == 0); /* right, then mostly wrong */
                double before = m.wa + m.wb;
                model_judge(&m, ok ? 1 : 0);
                if (reset_at < 0 && m.wa + m.wb < before)
                        reset_at = i;
                dcall(t, "a", "law", ok);
                const struct tracker_cell *c = tracker_cell_get(t, "a", TASK_REASONING, "law");
                ck_assert_ptr_nonnull(c);
                NEAR(c->recent_alpha, m.ra);
                NEAR(c->recent_beta, m.rb);
                NEAR(c->win_alpha, m.wa);
                NEAR(c->win_beta, m.wb);
        }
        /* The drop is seen within a handful of wrong answers. */
        ck_assert_int_ge(reset_at, 40);
        ck_assert_int_le(reset_at, 48);
        const struct tracker_cell *c = tracker_cell_get(t, "a", TASK_REASONING, "law");
        ck_assert_uint_eq(c->calls, 60);
        NEAR(c->ev.alpha + c->ev.beta, 60); /* the long evidence forgets nothing */
        tracker_free(t);
}
END_TEST

/* The task's sums equal the sums recomputed from the cells. */
static void check_sums(struct tracker *t, const char *model)
{
        const struct tracker_profile *p = tracker_profile_get(t, model);
        const struct tracker_cell *v[64];
        size_t n = tracker_cells_sorted(p, TASK_REASONING, v);
        double c = 0, s1 = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
                double a = v[i]->win_alpha, b = v[i]->win_beta;
                if (a + b < 3)
                        continue;
                double l = log((a + 0.5) / (b + 0.5)), nu = 1 / (a + 0.5) + 1 / (b + 0.5);
                c += 1;
                s1 += l;
                s2 += l * l - nu;
        }
        const struct tracker_task_stats *ts = &p->tasks[TASK_REASONING];
        ck_assert(fabs(ts->dom_cells - c) < 1e-9);
        ck_assert(fabs(ts->dom_s1 - s1) < 1e-9);
        ck_assert(fabs(ts->dom_s2 - s2) < 1e-9);
}

START_TEST(task_sums_follow_the_cells)
{
        struct tracker *t = new_tracker();
        const char *domains[] = { "a", "b", "c", "d", "e" };
        for (int i = 0; i < 200; i++)
                dcall(t, "m", domains[i % 5], (i * 7) % 10 < (i % 5) + 3);
        check_sums(t, "m");
        ck_assert_int_eq(tracker_forget_cell(t, "m", TASK_REASONING, "c"), 0);
        check_sums(t, "m");
        struct tracker_cell in = { .model = "m", .task = TASK_REASONING, .domain = "f",
                                   .win_alpha = 7, .win_beta = 2 };
        bool created;
        ck_assert_int_eq(tracker_import_cell(t, &in, false, 1, &created), 0);
        ck_assert(created);
        ck_assert_int_eq(tracker_import_cell(t, &in, false, 1, &created), 0); /* merged */
        NEAR(tracker_cell_get(t, "m", TASK_REASONING, "f")->win_alpha, 14);
        check_sums(t, "m");
        tracker_free(t);
}
END_TEST

static bool test_price(void *data, const char *model, double *in, double *out)
{
        (void)data;
        if (strcmp(model, "cheap") == 0)
                *in = *out = 1.0;
        else if (strcmp(model, "dear") == 0)
                *in = 10.0, *out = 30.0;
        else
                return false;
        return true;
}

static long drank(struct tracker *t, enum rank_strategy st, const char *domain, double cw,
                  const char *const *cand, size_t n, struct rank_item **items)
{
        struct rank_options o = { .task = TASK_REASONING, .domain = domain, .strategy = st,
                                  .candidates = cand, .ncandidates = n, .cost_weight = cw,
                                  .degrade_threshold = 3, .seed = 42, .price = test_price };
        long r = rank_compute(t, &o, items);
        ck_assert_int_ge(r, 0);
        return r;
}

static double sigm(double x)
{
        return 1 / (1 + exp(-x));
}

START_TEST(shrinkage_from_the_task)
{
        struct tracker *t = new_tracker();
        /* cheap: right 8 of 10 on four domains; dear: 9 of 10 on two. */
        const char *ds[] = { "a", "b", "c", "d" };
        for (int k = 0; k < 4; k++)
                for (int i = 0; i < 10; i++)
                        dcall(t, "cheap", ds[k], i < 8);
        for (int k = 0; k < 2; k++)
                for (int i = 0; i < 10; i++)
                        dcall(t, "dear", ds[k], i < 9);
        /* The test's own empirical Bayes: cells' logits, pooled moments,
         * RANK_K0 = 2 pseudo-cells, variance floor 0.05. */
        double l8 = log(8.5 / 2.5), nu8 = 1 / 8.5 + 1 / 2.5;
        double l9 = log(9.5 / 1.5), nu9 = 1 / 9.5 + 1 / 1.5;
        double tc = 6, s1 = 4 * l8 + 2 * l9, s2 = 4 * (l8 * l8 - nu8) + 2 * (l9 * l9 - nu9);
        double mu0 = s1 / tc, v0 = fmax(s2 / tc - mu0 * mu0, 0.05);
        double mu_c = (4 * l8 + 2 * mu0) / 6;
        double v_c = fmax((4 * (l8 * l8 - nu8) + 2 * (v0 + mu0 * mu0)) / 6 - mu_c * mu_c, 0.05);
        double mu_d = (2 * l9 + 2 * mu0) / 4;
        double v_d = fmax((2 * (l9 * l9 - nu9) + 2 * (v0 + mu0 * mu0)) / 4 - mu_d * mu_d, 0.05);

        const char *cand[] = { "cheap", "dear" };
        struct rank_item *v;
        /* A new domain: the prior alone. */
        ck_assert_int_eq(drank(t, RANK_MEAN, "new", 0, cand, 2, &v), 2);
        for (int i = 0; i < 2; i++) {
                bool c = strcmp(v[i].model, "cheap") == 0;
                double mu = c ? mu_c : mu_d, var = c ? v_c : v_d;
                NEAR(v[i].e, mu);
                NEAR(v[i].s, var);
                NEAR(v[i].mean, sigm(mu / sqrt(1 + M_PI * var / 8)));
                NEAR(v[i].lo, sigm(mu - 1.96 * sqrt(var)));
        }
        free(v);
        /* A known domain: the prior updated by the cell. */
        ck_assert_int_eq(drank(t, RANK_MEAN, "a", 0, cand, 2, &v), 2);
        for (int i = 0; i < 2; i++) {
                bool c = strcmp(v[i].model, "cheap") == 0;
                double mu = c ? mu_c : mu_d, var = c ? v_c : v_d;
                double l = c ? l8 : l9, nu = c ? nu8 : nu9;
                double sp = 1 / (1 / var + 1 / nu), ep = sp * (mu / var + l / nu);
                NEAR(v[i].s, sp);
                NEAR(v[i].e, ep);
                NEAR(v[i].quality, sigm(ep / sqrt(1 + M_PI * sp / 8)));
        }
        free(v);
        tracker_free(t);
}
END_TEST

START_TEST(domain_cost_and_untried_estimate)
{
        struct tracker *t = new_tracker();
        for (int i = 0; i < 10; i++)
                dcall(t, "cheap", "a", i < 8);
        const char *cand[] = { "cheap", "dear" };
        struct rank_item *v;
        ck_assert_int_eq(drank(t, RANK_MEAN, "a", 0.5, cand, 2, &v), 2);
        ck_assert_str_eq(v[0].model, "cheap");
        /* cheap: a call's cost on the domain over its chance of success;
         * dear (untried): the typical call (400 + 50 tokens) at its price. */
        double per_cheap = (4000.0 / 1e6 * 1 + 500.0 / 1e6 * 1) / 10;
        NEAR(v[0].cost, per_cheap / v[0].mean);
        double per_dear = 400.0 / 1e6 * 10 + 50.0 / 1e6 * 30;
        NEAR(v[1].cost, per_dear / v[1].mean);
        ck_assert(v[1].prior);
        NEAR(v[1].cost_penalty, 0.5);
        NEAR(v[0].cost_penalty, 0.5 * v[0].cost / v[1].cost);
        free(v);
        tracker_free(t);
}
END_TEST

/* The knowledge gradient of trying r, computed here from its definition. */
static double kg_value(double e, double s, double delta, double h)
{
        double p = sigm(e), g = p * (1 - p), best = 0;
        for (double k = 1; k <= h; k *= 2) {
                double post = 1 / (1 / s + k * g);
                double sd = g * sqrt(s - post);
                double z = -delta / sd;
                double f = z * 0.5 * erfc(-z / sqrt(2)) + exp(-z * z / 2) / sqrt(2 * M_PI);
                best = fmax(best, (h - k) * sd * f - k * delta);
        }
        return best;
}

START_TEST(kg_explores_what_is_worth_trying)
{
        struct tracker *t = new_tracker();
        /* a: 14 of 20 right on "law"; b: tried elsewhere only. */
        for (int i = 0; i < 20; i++)
                dcall(t, "a", "law", i % 10 < 7);
        for (int i = 0; i < 6; i++)
                dcall(t, "b", "art", i < 4);
        const char *cand[] = { "a", "b" };
        struct rank_item *mean, *kg;
        ck_assert_int_eq(drank(t, RANK_MEAN, "law", 0, cand, 2, &mean), 2);
        ck_assert_int_eq(drank(t, RANK_KG, "law", 0, cand, 2, &kg), 2);
        const struct rank_item *best = &mean[0], *other = &mean[1];
        double h = 3.0 * (20 + 0); /* the domain's calls among the candidates, x3 */
        double val = kg_value(other->e, other->s, best->score - other->score, h);
        ck_assert_str_eq(kg[0].model, val > 0 ? other->model : best->model);
        ck_assert(kg[0].explore == (val > 0));
        ck_assert(!kg[1].explore);
        /* Scores are not changed by exploring, only the order. */
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                        if (strcmp(kg[i].model, mean[j].model) == 0)
                                NEAR(kg[i].score, mean[j].score);
        free(mean);
        free(kg);
        /* A domain with no traffic yet: no horizon, no exploring. */
        ck_assert_int_eq(drank(t, RANK_KG, "new", 0, cand, 2, &kg), 2);
        ck_assert(!kg[0].explore && !kg[1].explore);
        free(kg);
        tracker_free(t);
}
END_TEST

START_TEST(past_the_cell_limit_the_task_counts)
{
        struct tracker *t = new_tracker();
        tracker_set_max_cells(t, 2);
        dcall(t, "m", "a", true);
        dcall(t, "m", "b", true);
        dcall(t, "m", "c", true);
        ck_assert_uint_eq(tracker_cell_count(t), 2);
        ck_assert_uint_eq(tracker_cells_refused(t), 2); /* complete and outcome */
        ck_assert_ptr_null(tracker_cell_get(t, "m", TASK_REASONING, "c"));
        ck_assert_uint_eq(tracker_profile_get(t, "m")->tasks[TASK_REASONING].calls, 3);
        ck_assert_int_eq(tracker_forget(t, "m"), 0);
        ck_assert_uint_eq(tracker_cell_count(t), 0);
        tracker_free(t);
}
END_TEST

static Suite *rank_suite(void)
{
        Suite *s = suite_create("rank");
        TCase *ev = tcase_create("evidence");
        tcase_add_test(ev, posterior_rule);
        tcase_add_test(ev, fading_with_injected_clock);
        tcase_add_test(ev, sketch_buckets_and_percentiles);
        tcase_add_test(ev, import_merges_evidence);
        suite_add_tcase(s, ev);
        TCase *rk = tcase_create("rank");
        tcase_set_timeout(rk, 30);
        tcase_add_test(rk, strategies_order_and_scores);
        tcase_add_test(rk, unknown_candidates_rank_with_the_prior);
        tcase_add_test(rk, degraded_excluded_unless_asked);
        tcase_add_test(rk, latency_and_cost_penalties);
        tcase_add_test(rk, thompson_frequencies);
        suite_add_tcase(s, rk);
        TCase *dm = tcase_create("domains");
        tcase_add_test(dm, cells_follow_the_forgetting_rule);
        tcase_add_test(dm, task_sums_follow_the_cells);
        tcase_add_test(dm, shrinkage_from_the_task);
        tcase_add_test(dm, domain_cost_and_untried_estimate);
        tcase_add_test(dm, kg_explores_what_is_worth_trying);
        tcase_add_test(dm, past_the_cell_limit_the_task_counts);
        suite_add_tcase(s, dm);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(rank_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* rank.c - scores and orders candidate models for a task.  See rank.h for
 * the rule.  Thompson draws come from xoshiro256** seeded by splitmix64,
 * Beta draws from two Gamma draws (Marsaglia and Tsang), so a given seed
 * gives the same ranking everywhere. */
#include "rank.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const rank__names[RANK__COUNT] = { "ema", "mean", "lcb", "thompson" };

const char *rank_strategy_name(enum rank_strategy s)
{
        return (unsigned)s < RANK__COUNT ? rank__names[s] : "?";
}

int rank_strategy_parse(const char *s, size_t len, enum rank_strategy *out)
{
        for (int i = 0; i < RANK__COUNT; i++) {
                if (strlen(rank__names[i]) == len && memcmp(rank__names[i], s, len) == 0) {
                        *out = (enum rank_strategy)i;
                        return 0;
                }
        }
        return -EINVAL;
}

/* ---- random draws ------------------------------------------------------ */

static uint64_t rank__rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

void rank_seed(uint64_t s[4], uint64_t seed)
{
        for (int i = 0; i < 4; i++) { /* splitmix64 */
                uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                s[i] = z ^ (z >> 31);
        }
}

static uint64_t rank__next(uint64_t s[4])
{
        uint64_t r = rank__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rank__rotl(s[3], 45);
        return r;
}

/* Uniform in (0, 1). */
static double rank__uniform(uint64_t s[4])
{
        return ((double)(rank__next(s) >> 11) + 0.5) * 0x1.0p-53;
}

static double rank__normal(uint64_t s[4])
{
        double u = rank__uniform(s), v = rank__uniform(s);
        return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Gamma(k, 1) for k >= 1: Marsaglia and Tsang's method. */
static double rank__gamma(uint64_t s[4], double k)
{
        double d = k - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
        for (;;) {
                double x, v;
                do {
                        x = rank__normal(s);
                        v = 1.0 + c * x;
                } while (v <= 0.0);
                v = v * v * v;
                double u = rank__uniform(s);
                if (u < 1.0 - 0.0331 * x * x * x * x ||
                    log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
                        return d * v;
        }
}

double rank_beta_draw(uint64_t s[4], double a, double b)
{
        double x = rank__gamma(s, a), y = rank__gamma(s, b);
        return x / (x + y);
}

/* ---- ranking ----------------------------------------------------------- */

static int rank__cmp(const void *pa, const void *pb)
{
        const struct rank_item *a = pa, *b = pb;
        if (a->excluded != b->excluded)
                return a->excluded ? 1 : -1;
        if (a->score != b->score)
                return a->score > b->score ? -1 : 1;
        return strcmp(a->model, b->model);
}

/* A Beta(a, b) posterior's mean and 95% interval (normal approximation,
 * clamped to [0, 1]). */
static void rank__beta(double a, double b, double *mean, double *lo, double *hi)
{
        double n = a + b, m = a / n, sd = sqrt(a * b / (n * n * (n + 1.0)));
        *mean = m;
        *lo = m - 1.96 * sd < 0.0 ? 0.0 : m - 1.96 * sd;
        *hi = m + 1.96 * sd > 1.0 ? 1.0 : m + 1.96 * sd;
}

/* The domain's posterior of a candidate: the task's posterior mean m as a
 * prior of strength RANK_DOMAIN_PRIOR, updated with the cell's recent
 * evidence. */
#define RANK_DOMAIN_PRIOR 10.0
static void rank__domain_beta(const struct tracker_task_stats *ts, const struct tracker_evidence *tev,
                              const struct tracker_cell *c, double *a, double *b)
{
        double m = ts && ts->present ? (1.0 + tev->alpha) / (2.0 + tev->alpha + tev->beta)
                                     : TRACKER_PRIOR;
        *a = RANK_DOMAIN_PRIOR * m + (c ? c->recent_alpha : 0.0);
        *b = RANK_DOMAIN_PRIOR * (1.0 - m) + (c ? c->recent_beta : 0.0);
}

/* The candidate's numbers before the penalties, which need every
 * candidate's latency and cost.  cost is per accepted outcome: the
 * domain's when it has a success, else the task's; -1 when unknown (no
 * price, or no call yet: rank_compute estimates it then). */
static void rank__measure(const struct tracker *t, const struct rank_options *o,
                          const struct tracker_profile *p, struct rank_item *it, uint64_t rng[4])
{
        const struct tracker_task_stats *ts = p ? &p->tasks[o->task] : NULL;
        const struct tracker_cell *cell =
                p && o->domain ? tracker_cell_get(t, p->model, o->task, o->domain) : NULL;
        struct tracker_evidence ev = { 0 };
        double ema = TRACKER_PRIOR;
        double pin = 0, pout = 0;
        bool priced = o->price && o->price(o->price_data, it->model, &pin, &pout);

        it->prior = !ts || !ts->present;
        it->degraded = p && tracker_profile_degraded(p, o->degrade_threshold);
        it->excluded = it->degraded && o->exclude_degraded;
        it->latency_ms = -1.0;
        it->cost = -1.0;
        it->priced = priced;
        it->input_per_mtok = pin;
        it->output_per_mtok = pout;
        if (!it->prior) {
                tracker_evidence_at(t, &ts->ev, o->now, &ev);
                ema = ts->ema_quality;
                double p50 = tracker_sketch_percentile(ts->latency, 0.5);
                if (p50 >= 0)
                        it->latency_ms = p50;
                else if (ts->calls)
                        it->latency_ms = ts->avg_latency_ms;
                it->calls = ts->calls;
                it->input_tokens = ts->ev.input_tokens;
                it->output_tokens = ts->ev.output_tokens;
                if (priced) {
                        const struct tracker_evidence *te = &ts->ev;
                        uint64_t ok = ts->successes, calls = ts->calls;
                        if (cell && cell->successes) {
                                te = &cell->ev;
                                ok = cell->successes;
                                calls = cell->calls;
                        }
                        double cost = (double)te->input_tokens / 1e6 * pin +
                                      (double)te->output_tokens / 1e6 * pout;
                        if (ok)
                                it->cost = cost / (double)ok;
                        else if (calls)
                                it->cost = cost / (double)calls;
                }
        }
        if (o->domain) {
                double a, b;
                rank__domain_beta(ts, &ev, cell, &a, &b);
                rank__beta(a, b, &it->mean, &it->lo, &it->hi);
                it->judged = cell ? cell->ev.judged : 0.0;
                switch (o->strategy) {
                case RANK_EMA: it->quality = ema; break;
                case RANK_MEAN: it->quality = it->mean; break;
                case RANK_LCB: it->quality = it->lo; break;
                case RANK_THOMPSON:
                default: it->quality = rank_beta_draw(rng, a, b); break;
                }
                return;
        }
        tracker_posterior(&ev, &it->mean, &it->lo, &it->hi);
        it->judged = ev.judged;
        switch (o->strategy) {
        case RANK_EMA: it->quality = ema; break;
        case RANK_MEAN: it->quality = it->mean; break;
        case RANK_LCB: it->quality = it->lo; break;
        case RANK_THOMPSON:
        default: it->quality = rank_beta_draw(rng, 1.0 + ev.alpha, 1.0 + ev.beta); break;
        }
}

/* A priced candidate with no call yet is not free: its cost per accepted
 * outcome is estimated from its price, the typical tokens of a call of
 * the task (the mean over the candidates that have calls) and its
 * expected quality. */
static void rank__estimate_costs(struct rank_item *v, size_t n)
{
        double in = 0, out = 0, calls = 0;
        for (size_t i = 0; i < n; i++) {
                in += (double)v[i].input_tokens;
                out += (double)v[i].output_tokens;
                calls += (double)v[i].calls;
        }
        if (calls == 0)
                return;
        for (size_t i = 0; i < n; i++) {
                struct rank_item *it = &v[i];
                if (it->cost >= 0 || !it->priced || it->calls)
                        continue;
                double per_call = in / calls / 1e6 * it->input_per_mtok +
                                  out / calls / 1e6 * it->output_per_mtok;
                it->cost = per_call / (it->mean > 0.01 ? it->mean : 0.01);
                it->cost_estimated = true;
        }
}

long rank_compute(const struct tracker *t, const struct rank_options *o, struct rank_item **items)
{
        const struct tracker_profile **all = NULL;
        size_t n = 0;
        struct rank_item *v = NULL;
        uint64_t rng[4];

        rank_seed(rng, o->seed);
        if (o->candidates) {
                v = calloc(o->ncandidates ? o->ncandidates : 1, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                for (size_t i = 0; i < o->ncandidates; i++) {
                        const struct tracker_profile *p = tracker_profile_get(t, o->candidates[i]);
                        v[n].model = p ? p->model : o->candidates[i];
                        rank__measure(t, o, p, &v[n], rng);
                        n++;
                }
        } else {
                long np = tracker_profiles_sorted(t, &all);
                if (np < 0)
                        return np;
                v = calloc(np ? (size_t)np : 1, sizeof(*v));
                if (!v) {
                        free(all);
                        return -ENOMEM;
                }
                for (long i = 0; i < np; i++) {
                        if (!all[i]->tasks[o->task].present)
                                continue;
                        v[n].model = all[i]->model;
                        rank__measure(t, o, all[i], &v[n], rng);
                        n++;
                }
                free(all);
        }

        rank__estimate_costs(v, n);
        double max_lat = 0.0, max_cost = 0.0;
        for (size_t i = 0; i < n; i++) {
                if (v[i].excluded)
                        continue;
                if (v[i].latency_ms > max_lat)
                        max_lat = v[i].latency_ms;
                if (v[i].cost > max_cost)
                        max_cost = v[i].cost;
        }
        for (size_t i = 0; i < n; i++) {
                struct rank_item *it = &v[i];
                it->latency_penalty = it->latency_ms > 0 && max_lat > 0
                                              ? o->latency_weight * it->latency_ms / max_lat
                                              : 0.0;
                it->cost_penalty = it->cost > 0 && max_cost > 0
                                           ? o->cost_weight * it->cost / max_cost
                                           : 0.0;
                it->score = it->quality - it->latency_penalty - it->cost_penalty;
        }
        qsort(v, n, sizeof(*v), rank__cmp);
        *items = v;
        return (long)n;
}

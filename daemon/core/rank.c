/* rank.c - scores and orders candidate models for a task.  See rank.h for
 * the rule.  Thompson draws come from xoshiro256** seeded by splitmix64,
 * Beta draws from two Gamma draws (Marsaglia and Tsang), so a given seed
 * gives the same ranking everywhere. */
#include "rank.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const rank__names[RANK__COUNT] = { "ema", "mean", "lcb", "thompson", "kg" };

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

/* What these tokens cost at the candidate's price (per million). */
static double rank__price(const struct rank_item *it, double input_tokens, double output_tokens)
{
        return input_tokens / 1e6 * it->input_per_mtok + output_tokens / 1e6 * it->output_per_mtok;
}

/* The chance of success a cost per accepted outcome divides by: the mean,
 * at least 0.01. */
static double rank__floor_mean(const struct rank_item *it)
{
        return it->mean > 0.01 ? it->mean : 0.01;
}

/* The candidate's own numbers before the penalties, which need every
 * candidate's latency and cost: latency, degradation, the task's token
 * sums, and quality from the task's evidence (no domain).  cost is per
 * accepted outcome from the task's sums; -1 when unknown (no price, or no
 * call yet: rank__estimate_costs then). */
static void rank__measure(const struct tracker *t, const struct rank_options *o,
                          const struct tracker_profile *p, struct rank_item *it, uint64_t rng[4])
{
        const struct tracker_task_stats *ts = p ? &p->tasks[o->task] : NULL;
        struct tracker_evidence ev = { 0 };
        double ema = TRACKER_PRIOR;
        double pin = 0, pout = 0;
        bool priced = o->price && o->price(o->price_data, it->model, &pin, &pout);

        it->prior = !ts || !ts->present;
        it->degraded = p && tracker_profile_degraded(p, o->degrade_threshold);
        it->excluded = it->degraded && o->exclude_degraded;
        it->failures = p ? p->fail_count : 0;
        it->successes = p ? p->success_count : 0;
        it->degraded_since = p ? p->degraded_since : 0;
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
                        double cost = rank__price(it, (double)ts->ev.input_tokens,
                                                  (double)ts->ev.output_tokens);
                        if (ts->successes)
                                it->cost = cost / (double)ts->successes;
                        else if (ts->calls)
                                it->cost = cost / (double)ts->calls;
                }
        }
        tracker_posterior(&ev, &it->mean, &it->lo, &it->hi);
        it->judged = ev.judged;
        /* The task's posterior on the logit scale, for kg. */
        it->e = log((1.0 + ev.alpha) / (1.0 + ev.beta));
        it->s = 1.0 / (1.0 + ev.alpha) + 1.0 / (1.0 + ev.beta);
        it->horizon_calls = (double)(ts && ts->present ? ts->calls : 0);
        switch (o->strategy) {
        case RANK_EMA: it->quality = ema; break;
        case RANK_MEAN:
        case RANK_KG: it->quality = it->mean; break;
        case RANK_LCB: it->quality = it->lo; break;
        case RANK_THOMPSON:
        default: it->quality = rank_beta_draw(rng, 1.0 + ev.alpha, 1.0 + ev.beta); break;
        }
}

static double rank__sigmoid(double x)
{
        return 1.0 / (1.0 + exp(-x));
}

/* The probability of success of a logit ~ N(e, s): the probit
 * approximation of its mean. */
static double rank__logit_mean(double e, double s)
{
        return rank__sigmoid(e / sqrt(1.0 + M_PI * s / 8.0));
}

/* With a domain: each candidate's success probability on it, from a
 * hierarchical model on the logit scale.  A model's cells of the task are
 * draws from N(mu, V), estimated from the task's sums (tracker.h,
 * dom_cells/dom_s1/dom_s2) with RANK_K0 pseudo-cells of the candidates'
 * pooled mean and variance: empirical Bayes, so the data set the strength
 * of the shrinkage.  The cell's window, a logit l with sampling variance
 * nu, updates that prior: s = 1 / (1/V + 1/nu), e = s (mu/V + l/nu).  A
 * cell with little evidence thus ranks near what the model does on the
 * task's other domains; a new domain starts from it. */
#define RANK_K0 2.0
#define RANK_VMIN 0.05

static void rank__domain(const struct tracker *t, const struct rank_options *o,
                         struct rank_item *v, size_t n, uint64_t rng[4])
{
        double tc = 0, s1 = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
                const struct tracker_profile *p = v[i].profile;
                const struct tracker_task_stats *ts = p ? &p->tasks[o->task] : NULL;
                if (ts && ts->present) {
                        tc += ts->dom_cells;
                        s1 += ts->dom_s1;
                        s2 += ts->dom_s2;
                }
        }
        double mu0 = tc > 0 ? s1 / tc : 0.0;
        double v0 = tc > 0 ? s2 / tc - mu0 * mu0 : 1.0;
        if (v0 < RANK_VMIN)
                v0 = RANK_VMIN;
        for (size_t i = 0; i < n; i++) {
                struct rank_item *it = &v[i];
                const struct tracker_profile *p = it->profile;
                const struct tracker_task_stats *ts = p ? &p->tasks[o->task] : NULL;
                double c = 0, a1 = 0, a2 = 0;
                if (ts && ts->present) {
                        c = ts->dom_cells;
                        a1 = ts->dom_s1;
                        a2 = ts->dom_s2;
                }
                double mu = (a1 + RANK_K0 * mu0) / (c + RANK_K0);
                double var = (a2 + RANK_K0 * (v0 + mu0 * mu0)) / (c + RANK_K0) - mu * mu;
                if (var < RANK_VMIN)
                        var = RANK_VMIN;
                const struct tracker_cell *cell =
                        p ? tracker_cell_get(t, p->model, o->task, o->domain) : NULL;
                double l, nu;
                /* Below TRACKER_CELL_MIN a window is still evidence. */
                if (cell && (tracker_cell_logit(cell, &l, &nu) ||
                             cell->win_alpha + cell->win_beta > 0)) {
                        it->s = 1.0 / (1.0 / var + 1.0 / nu);
                        it->e = it->s * (mu / var + l / nu);
                } else {
                        it->s = var;
                        it->e = mu;
                }
                it->mean = rank__logit_mean(it->e, it->s);
                it->lo = rank__sigmoid(it->e - 1.96 * sqrt(it->s));
                it->hi = rank__sigmoid(it->e + 1.96 * sqrt(it->s));
                it->judged = cell ? cell->ev.judged : 0.0;
                it->horizon_calls = cell ? (double)(cell->calls > cell->successes + cell->failures
                                                            ? cell->calls
                                                            : cell->successes + cell->failures)
                                         : 0.0;
                switch (o->strategy) {
                case RANK_MEAN:
                case RANK_KG: it->quality = it->mean; break;
                case RANK_LCB: it->quality = it->lo; break;
                case RANK_THOMPSON:
                        it->quality = rank__sigmoid(it->e + sqrt(it->s) * rank__normal(rng));
                        break;
                case RANK_EMA:
                default: break; /* the task's EMA, as measured */
                }
                /* Cost per accepted outcome on the domain: the cost of a
                 * call (the cell's tokens, else the task's) over the chance
                 * of success. */
                if (it->priced && cell && cell->calls)
                        it->cost = rank__price(it, (double)cell->ev.input_tokens,
                                               (double)cell->ev.output_tokens) /
                                   (double)cell->calls / rank__floor_mean(it);
                else if (it->priced && it->calls)
                        it->cost = rank__price(it, (double)it->input_tokens,
                                               (double)it->output_tokens) /
                                   (double)it->calls / rank__floor_mean(it);
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
                it->cost = rank__price(it, in / calls, out / calls) / rank__floor_mean(it);
                it->cost_estimated = true;
        }
}

/* ---- exploration: the knowledge gradient --------------------------------
 *
 * kg ranks by the posterior mean, except when trying the runner-up r is
 * worth more than it costs.  Trying r k times shrinks the variance of its
 * logit from S to 1 / (1/S + k g), g = p (1 - p); its mean on the
 * probability scale then moves with standard deviation
 * sd = g sqrt(S (1 - 1 / (S (1/S + k g)))).  Over the H calls the domain
 * (the task, without a domain) still has to come, estimated as
 * RANK_HORIZON times the calls it has had, the value of those k tries is
 * (H - k) sd f(-delta / sd) - k delta, with delta the score gap to the
 * best and f(z) = z Phi(z) + phi(z), the expected improvement of acting on
 * what the tries show.  The candidate with the largest positive value is
 * ranked first, flagged `explore`; none: the best.  No randomness: the
 * answer is a function of the evidence. */
#define RANK_HORIZON 3.0

static double rank__kg_f(double z)
{
        return z * 0.5 * erfc(-z / M_SQRT2) + exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
}

static double rank__kg_value(const struct rank_item *r, double delta, double h)
{
        double p = rank__sigmoid(r->e), g = p * (1.0 - p), best = 0.0;
        for (double k = 1; k <= h; k *= 2) {
                double frac = 1.0 - (1.0 / (1.0 / r->s + k * g)) / r->s;
                double sd = g * sqrt(frac * r->s);
                if (sd <= 0)
                        continue;
                double val = (h - k) * sd * rank__kg_f(-delta / sd) - k * delta;
                if (val > best)
                        best = val;
        }
        return best;
}

/* v sorted, best first: flag the candidate worth exploring, if any. */
static void rank__explore(struct rank_item *v, size_t n)
{
        double calls = 0;
        for (size_t i = 0; i < n; i++)
                calls += v[i].horizon_calls;
        double h = RANK_HORIZON * calls;
        if (n < 2 || v[0].excluded || h < 1)
                return;
        double best = 0.0;
        size_t pick = 0;
        for (size_t i = 1; i < n && !v[i].excluded; i++) {
                double val = rank__kg_value(&v[i], v[0].score - v[i].score, h);
                if (val > best) {
                        best = val;
                        pick = i;
                }
        }
        if (pick) {
                v[pick].explore = true;
                struct rank_item tmp = v[pick];
                memmove(&v[1], &v[0], pick * sizeof(*v));
                v[0] = tmp;
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
                        v[n].profile = p;
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
                        v[n].profile = all[i];
                        rank__measure(t, o, all[i], &v[n], rng);
                        n++;
                }
                free(all);
        }

        if (o->domain)
                rank__domain(t, o, v, n, rng);
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
        if (o->strategy == RANK_KG)
                rank__explore(v, n);
        *items = v;
        return (long)n;
}

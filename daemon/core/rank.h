/* rank.h - rank models for a task: "which model now?", answered from the
 * profiles' evidence.  Pure: reads a tracker, takes the time and a seed as
 * arguments, does no I/O.
 *
 * A candidate's score is its quality under the strategy, less a latency
 * penalty and a cost penalty:
 *
 *   score = quality - latency_weight * latency / max_latency
 *                   - cost_weight * cost / max_cost
 *
 * where latency is the task's p50 (from its sketch; the running mean when
 * there is no sketch), cost is the cost per accepted outcome (the
 * domain's, with a domain; an estimate from the price and the task's
 * typical call for an untried priced model), and the maxima are over the
 * candidates that have one (a candidate without one pays no penalty).
 * Quality is, without a domain:
 *   kg        the posterior mean, (1 + alpha) / (2 + alpha + beta)
 *   mean      the same
 *   lcb       the lower end of the posterior's 95% interval
 *   thompson  one draw from Beta(1 + alpha, 1 + beta)
 *   ema       the task's EMA quality (the seed's score)
 * and with a domain the same on the domain's logit-normal posterior, an
 * empirical-Bayes prior from the model's cells of the task updated by the
 * domain's cell (rank.c, rank__domain).  kg then puts first a candidate
 * whose trial is worth more than it costs (the knowledge gradient, rank.c,
 * rank__explore).  A model with no stats for the task ranks with the
 * prior and is flagged `prior`, so a router can explore it.
 */
#ifndef OUTCOMED_RANK_H
#define OUTCOMED_RANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracker.h"

enum rank_strategy {
        RANK_EMA,
        RANK_MEAN,
        RANK_LCB,
        RANK_THOMPSON,
        RANK_KG,
        RANK__COUNT
};

const char *rank_strategy_name(enum rank_strategy s);
int rank_strategy_parse(const char *s, size_t len, enum rank_strategy *out);

/* Prices per million tokens; false when the model has none. */
typedef bool (*rank_price_fn)(void *data, const char *model, double *input_per_mtok,
                              double *output_per_mtok);

struct rank_options {
        enum tracker_task task;
        const char *domain;            /* NULL: the task's evidence only */
        const char *const *candidates; /* NULL: every model with stats for the task */
        size_t ncandidates;
        enum rank_strategy strategy;
        double latency_weight;
        double cost_weight;
        bool exclude_degraded;
        uint64_t degrade_threshold;
        uint64_t seed;                 /* thompson's draws */
        uint64_t now;                  /* for the evidence's fading */
        rank_price_fn price;           /* may be NULL */
        void *price_data;
};

struct rank_item {
        const char *model;     /* points into the tracker or the options */
        bool prior;            /* no stats for the task */
        bool degraded;
        bool excluded;         /* degraded and excluded: not ranked */
        /* Why it is degraded: the model's counts, and since when it is
         * degraded under the tracker's threshold (0: it is not). */
        uint64_t failures, successes;
        uint64_t degraded_since;
        double quality;
        double latency_ms;     /* < 0: unknown */
        double latency_penalty;
        double cost;           /* per accepted outcome (or per call); < 0: unknown */
        double cost_penalty;
        double score;
        double mean, lo, hi;   /* the posterior */
        double judged;
        bool explore;          /* kg: ranked first to learn about it */
        /* internal: the posterior on the logit scale, kg's horizon, and
         * what the cost estimate of an untried candidate needs */
        const struct tracker_profile *profile;
        double e, s;
        double horizon_calls;
        bool priced;
        bool cost_estimated;   /* cost is an estimate (no call yet) */
        double input_per_mtok, output_per_mtok;
        uint64_t calls, input_tokens, output_tokens;
};

/* Fill *items (malloc'ed; the caller frees) with every candidate, ranked
 * ones first by score (highest first, ties by model id), then excluded
 * ones.  Returns the count or -ENOMEM. */
long rank_compute(const struct tracker *t, const struct rank_options *o, struct rank_item **items);

/* A Beta(a, b) draw from the generator state s (xoshiro256**), for tests. */
double rank_beta_draw(uint64_t s[4], double a, double b);
void rank_seed(uint64_t s[4], uint64_t seed);

#endif

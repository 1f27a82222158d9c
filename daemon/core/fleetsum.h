/* fleetsum.h - fleet evidence, pure: a host's additive evidence as rows,
 * and the sum of every host's rows as a tracker of its own (a fleet view)
 * that rank and query read as they read the host's.
 *
 * A row is one (model, task, domain) of one host: the model's totals
 * (task FLEETSUM_MODEL, domain ""), a task's (domain "") or a domain
 * cell's.  Only evidence that adds up is summed: counts, posterior alpha,
 * beta and judged (each faded to the latest `at` first), token sums,
 * latency sums and sketch buckets, and a cell's recent and window pairs.
 * The seed's EMA and the degrade time depend on the order of outcomes: the
 * view takes the EMA of its own host's row (0.5 when it has none), and
 * degraded_since follows from the summed counts as a load does.
 *
 * Sums run over hosts in host_id order (bytewise), so every host that
 * holds the same rows builds a bit-identical view.  No I/O.
 */
#ifndef OUTCOMED_FLEETSUM_H
#define OUTCOMED_FLEETSUM_H

#include <stddef.h>
#include <stdint.h>

#include "tracker.h"

#define FLEETSUM_MODEL 255 /* task of a model's totals */
#define FLEETSUM_HOST_MAX 64 /* host_id bytes */

struct fleetsum_row {
        const char *host;   /* NULL in a host's own snapshot */
        const char *model;
        const char *domain; /* "" for a model's or a task's totals */
        uint8_t task;       /* enum tracker_task, or FLEETSUM_MODEL */
        uint64_t calls, successes, failures;
        double latency_sum_ms; /* model: total_latency_ms; task: mean * calls */
        double ema;            /* per host: not summed */
        struct tracker_evidence ev;
        double recent_alpha, recent_beta, win_alpha, win_beta; /* cells */
        uint64_t updated_at;
        uint32_t sketch[TRACKER_SKETCH_BUCKETS]; /* tasks */
};

/* Order of rows: model, task, domain (bytewise), then host. */
int fleetsum_key_cmp(const struct fleetsum_row *a, const struct fleetsum_row *b);
int fleetsum_row_cmp(const void *a, const void *b); /* for qsort of rows */

/* The tracker's additive evidence as rows sorted by key: *out (malloc'ed)
 * points into t, valid until t changes.  Returns the count or -ENOMEM. */
long fleetsum_snapshot(const struct tracker *t, struct fleetsum_row **out);

/* True when two rows of the same key carry the same numbers (bitwise). */
int fleetsum_row_same(const struct fleetsum_row *a, const struct fleetsum_row *b);

struct fleetsum_options {
        const char *self;            /* this host's id: whose EMA the view shows */
        uint64_t half_life;          /* the tracker's fading */
        uint64_t degrade_threshold;
        uint64_t max_cells;          /* [limits] domains; past it cells count at task level */
};

/* Build the fleet view from rows of every host, sorted by fleetsum_row_cmp.
 * Returns 0 with *out a new tracker, or -ENOMEM. */
int fleetsum_build(const struct fleetsum_row *rows, size_t n, const struct fleetsum_options *o,
                   struct tracker **out);

#endif

/* metrics.h - the `metrics` method's text: what outcomed learned and did,
 * in the Prometheus text exposition format (version 0.0.4).
 *
 * Counters and histograms per (model, task) live as long as the process:
 * they are counted as the tracker makes its changes (tracker_observer), so
 * that they only grow and rate() works, whatever forget or import do to
 * the profiles.  Gauges (quality, posterior, pending traces) are read from
 * the tracker when the text is made.  No I/O. */
#ifndef OUTCOMED_METRICS_H
#define OUTCOMED_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "tracker.h"

struct rpc_env;

/* At most this many (model, task) label sets are counted; observations of
 * later pairs go to one series labelled otel_metric_overflow="true".  The
 * gauges read from profiles stop at as many pairs too
 * (outcomed_metrics_omitted says how many were left out). */
#define METRICS_SERIES_MAX 1000

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Count t's changes from now on (NULL m: none); m must outlive them. */
void metrics_watch(struct metrics *m, struct tracker *t);

/* The exposition text of m (NULL: no per-model counters yet) and env at
 * `now` (unix seconds), NUL-terminated, malloc'ed into *text (*len bytes
 * before the NUL).  0 or -ENOMEM. */
int metrics_render(const struct metrics *m, const struct rpc_env *env, uint64_t now, char **text,
                   size_t *len);

/* How many (model, task) series are counted (the overflow one aside). */
size_t metrics_series_count(const struct metrics *m);

#endif

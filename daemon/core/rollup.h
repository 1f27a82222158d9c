/* rollup.h - the history's accumulation, pure: what the tracker's changes
 * add to each series per minute (and per day for a domain), and how rows
 * add up into the buckets a `history` request asks for.
 *
 * A series is (model, task), or (model, task, domain).  The loop thread
 * watches the tracker (rollup_watch) and adds each change to the row of
 * its series and minute (a domain's row: its day); group commit hands the
 * rows to the store's writer with the batch of journal rows they go with
 * (rollup_swap), so that both commit in one transaction.
 *
 * No I/O: daemon/store/history.c writes and reads the rows in SQLite.
 */
#ifndef OUTCOMED_ROLLUP_H
#define OUTCOMED_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tracker.h"

#define ROLLUP_MINUTE 60
#define ROLLUP_HOUR 3600
#define ROLLUP_DAY 86400

/* What a series did in a span of time (a minute, an hour, a day, or a
 * bucket of a reply). */
struct rollup_point {
        uint64_t t; /* the span's start, unix seconds */
        uint64_t calls, successes, failures;
        uint64_t judged;        /* outcomes with a quality */
        double quality_sum;     /* their qualities added */
        uint64_t input_tokens, output_tokens;
        bool has_ema;           /* the task's EMA after the span's last change */
        double ema;             /* (none for a domain's series) */
        bool has_ev;            /* the series' evidence after the span's last change */
        struct tracker_evidence ev; /* alpha, beta and at (judged and tokens unused) */
        bool has_latency;
        uint32_t latency[TRACKER_SKETCH_BUCKETS]; /* tracker_sketch_bucket's */
};

/* Add src, a later span, into dst: counts and latencies add, the EMA and
 * evidence are src's when it has them. */
void rollup_point_merge(struct rollup_point *dst, const struct rollup_point *src);
/* Nothing happened in it. */
bool rollup_point_empty(const struct rollup_point *p);

/* A latency sketch in a few bytes: each non-zero bucket as its index (one
 * byte) and its count (LEB128).  ROLLUP_SKETCH_MAX bytes at most. */
#define ROLLUP_SKETCH_MAX (TRACKER_SKETCH_BUCKETS * 6)
size_t rollup_sketch_encode(const uint32_t *sketch, uint8_t *out);
/* Add an encoded sketch into sketch (saturating); -EINVAL when malformed. */
int rollup_sketch_add(uint32_t *sketch, const uint8_t *in, size_t len);

/* One row to write: a series' point of one minute (domain NULL) or of one
 * day (a domain's). */
struct rollup_row {
        const char *model;  /* in the rollup's memory */
        const char *domain; /* NULL: the (model, task) series */
        enum tracker_task task;
        struct rollup_point p;
};

struct rollup;

struct rollup *rollup_new(void);
void rollup_free(struct rollup *r); /* accepts NULL */
/* Watch t's changes (tracker_add_observer); -ENOSPC when t has no room. */
int rollup_watch(struct rollup *r, struct tracker *t);
/* Rows in the order they were first touched (so a series' rows are in
 * time order).  The pointer is valid until the next change. */
size_t rollup_rows(const struct rollup *r, const struct rollup_row **rows);
/* -ENOMEM when a change could not be counted since the last clear. */
int rollup_status(const struct rollup *r);
/* Forget every row (memory is kept). */
void rollup_clear(struct rollup *r);
/* Exchange the contents of a and b (the loop keeps accumulating in one
 * while the writer writes the other). */
void rollup_swap(struct rollup *a, struct rollup *b);

/* Add one change by hand, as the watcher does (tests, the filler):
 * the row of (model, task, domain) at `t` (rounded down to its minute,
 * or its day for a domain) gets p's counts and, when set, its EMA and
 * evidence.  0 or -ENOMEM. */
int rollup_add(struct rollup *r, const char *model, enum tracker_task task, const char *domain,
               const struct rollup_point *p);

/* A `history` request, checked (see protocol/README.md). */
struct rollup_query {
        const char *model;  /* NULL: every model */
        int task;           /* enum tracker_task; -1: every task */
        const char *domain; /* NULL: the (model, task) series; else that domain's */
        uint64_t since;     /* rounded down to its bucket's start */
        uint64_t until;     /* buckets that start before this */
        uint64_t bucket_s;  /* a multiple of 60 */
};
#define ROLLUP_MAX_POINTS 10000
#define ROLLUP_MAX_BUCKET_S (31u * ROLLUP_DAY)

#endif

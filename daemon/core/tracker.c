/* tracker.c - the pure core: profiles, pending traces and the seed's rules.
 *
 * State is hash tables (profiles by model id and pending traces by trace
 * id in strtab.h's tables; domain cells by (model, task, domain) in a
 * chained table of their own), a doubly linked list of
 * pending traces in start order, and the change lists the store drains
 * (tracker_collect).  The numbers follow the in-process Rust tracker
 * outcomed grew out of (the "seed") exactly, with the contract's fixes: a
 * new task entry starts at the 0.5 prior, a second complete is refused,
 * unknown traces are reported.
 */
#include "tracker.h"
#include "siphash.h"
#include "slab.h"
#include "strtab.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const task_names[TASK__COUNT] = {
        "generate", "embed", "classify", "code", "reasoning",
};

static const char *const kind_names[KIND__COUNT] = {
        "accepted", "accepted_with_edits", "rejected", "inconclusive", "applied",
        "signature_changed", "body_modified", "symbol_added", "modified", "ignored",
};

const char *tracker_task_name(enum tracker_task task)
{
        return (unsigned)task < TASK__COUNT ? task_names[task] : "?";
}

const char *tracker_kind_name(enum tracker_kind kind)
{
        return (unsigned)kind < KIND__COUNT ? kind_names[kind] : "?";
}

static int tracker__parse(const char *const *names, int n, const char *s, size_t len)
{
        for (int i = 0; i < n; i++)
                if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
                        return i;
        return -EINVAL;
}

int tracker_task_parse(const char *s, size_t len, enum tracker_task *out)
{
        int r = tracker__parse(task_names, TASK__COUNT, s, len);
        if (r < 0)
                return r;
        *out = (enum tracker_task)r;
        return 0;
}

int tracker_kind_parse(const char *s, size_t len, enum tracker_kind *out)
{
        int r = tracker__parse(kind_names, KIND__COUNT, s, len);
        if (r < 0)
                return r;
        *out = (enum tracker_kind)r;
        return 0;
}

bool tracker_kind_needs_confidence(enum tracker_kind kind)
{
        return kind == KIND_ACCEPTED || kind == KIND_ACCEPTED_WITH_EDITS || kind == KIND_REJECTED;
}

/* A pending trace: what callers see (d, first), and the tracker's links. */
struct tracker__trace {
        struct tracker_trace d;
        struct tracker__trace *hnext;
        struct tracker__trace *prev, *next;           /* start order */
        struct tracker__trace *task_prev, *task_next; /* start order within the task */
        struct tracker__trace *dirty_next, **dirty_pprev;
        bool dirty;
        bool stored;   /* the store has a row for it */
        bool in_block; /* loaded: in a slab block, not malloc'ed alone */
};

struct tracker__deleted {
        struct tracker__deleted *next;
        char id[];
};

struct tracker__gone_cell {
        struct tracker__gone_cell *next;
        const char *domain; /* in key, after the model */
        uint8_t task;
        char key[];         /* model NUL domain NUL */
};

struct tracker {
        struct strtab profiles; /* by model id */
        struct strtab traces;   /* pending, by trace id */
        struct tracker__trace *head, *tail; /* pending, in start order */
        struct tracker__trace *task_head[TASK__COUNT], *task_tail[TASK__COUNT];
        struct tracker_profile *dirty_profiles;
        struct tracker__trace *dirty_traces;
        struct tracker__deleted *deleted;
        struct tracker__deleted *deleted_profiles;
        struct slab slab; /* loaded traces */
        struct tracker_cell **cells;  /* domain cells: a chained table of its own */
        size_t cell_nbuckets;         /* a power of two */
        size_t ncells;
        uint64_t max_cells;
        uint64_t cells_refused;
        struct tracker_cell *dirty_cells;
        struct tracker__gone_cell *gone_cells; /* cells removed alone, for the store */
        char *last_id;  /* the id of the last trace resolved, for replies */
        size_t last_id_cap; /* bytes allocated at last_id */
        bool lost_deletion; /* a deleted id could not be remembered */
        uint64_t half_life; /* seconds; 0: evidence does not fade */
        uint64_t degrade_threshold; /* the one degraded_since is kept for */
        char *id_prefix;
        uint64_t counter;
        uint64_t next_seq;
        uint64_t max_models;
        uint64_t max_pending;
        struct tracker_observer observer; /* hooks unset: none */
};

/* ---- life cycle -------------------------------------------------------- */

struct tracker *tracker_new(const struct tracker_options *opts)
{
        struct tracker *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        const char *prefix = opts && opts->id_prefix ? opts->id_prefix : "t";
        /* "<prefix>-<16 hex digits>" must fit the contract's 64 bytes. */
        if (strlen(prefix) > TRACKER_ID_PREFIX_MAX) {
                free(t);
                return NULL;
        }
        t->id_prefix = strdup(prefix);
        if (!t->id_prefix ||
            strtab_init(&t->profiles, offsetof(struct tracker_profile, model),
                                offsetof(struct tracker_profile, hnext)) < 0 ||
            strtab_init(&t->traces, offsetof(struct tracker__trace, d.id),
                                offsetof(struct tracker__trace, hnext)) < 0) {
                tracker_free(t);
                return NULL;
        }
        t->next_seq = 1;
        t->degrade_threshold = TRACKER_DEGRADE_THRESHOLD;
        if (opts)
                tracker_set_limits(t, opts->max_models, opts->max_pending);
        return t;
}

void tracker_set_observer(struct tracker *t, const struct tracker_observer *o)
{
        t->observer = o ? *o : (struct tracker_observer){ 0 };
}

void tracker_set_limits(struct tracker *t, uint64_t max_models, uint64_t max_pending)
{
        t->max_models = max_models;
        t->max_pending = max_pending;
}

static void tracker__trace_free(struct tracker__trace *tr)
{
        if (!tr)
                return;
        for (uint32_t i = 0; i < tr->d.nfiles; i++)
                free(tr->d.files[i]);
        free(tr->d.files);
        free(tr->d.repo); /* id, model, reason and domain live in tr's own block */
        free(tr->d.output);
        free(tr->d.base);
        if (tr->in_block)
                slab_free(tr, sizeof(*tr) + strlen(tr->d.id) + 1 + strlen(tr->d.model) + 1 +
                                      strlen(tr->d.reason) + 1 +
                                      (tr->d.domain ? strlen(tr->d.domain) + 1 : 0));
        else
                free(tr);
}

void tracker_free(struct tracker *t)
{
        if (!t)
                return;
        size_t i;
        for (struct tracker_profile *p = strtab_first(&t->profiles, &i), *next; p; p = next) {
                next = strtab_next(&t->profiles, p, &i);
                for (struct tracker_cell *c = p->cells, *cn; c; c = cn) {
                        cn = c->pnext;
                        free(c);
                }
                free(p->model);
                free(p);
        }
        while (t->gone_cells) {
                struct tracker__gone_cell *g = t->gone_cells;
                t->gone_cells = g->next;
                free(g);
        }
        free(t->cells);
        for (struct tracker__trace *tr = t->head, *next; tr; tr = next) {
                next = tr->next;
                tracker__trace_free(tr);
        }
        slab_release(&t->slab); /* its traces are gone */
        while (t->deleted) {
                struct tracker__deleted *d = t->deleted;
                t->deleted = d->next;
                free(d);
        }
        while (t->deleted_profiles) {
                struct tracker__deleted *d = t->deleted_profiles;
                t->deleted_profiles = d->next;
                free(d);
        }
        strtab_free(&t->profiles);
        strtab_free(&t->traces);
        free(t->id_prefix);
        free(t->last_id);
        free(t);
}

/* ---- change tracking --------------------------------------------------- */

static void tracker__touch_profile(struct tracker *t, struct tracker_profile *p, uint64_t now)
{
        p->updated_at = now;
        if (!p->dirty) {
                p->dirty = true;
                p->dirty_next = t->dirty_profiles;
                t->dirty_profiles = p;
        }
}

/* A change the store must write, though updated_at stays. */
static void tracker__mark_profile(struct tracker *t, struct tracker_profile *p)
{
        if (!p->dirty) {
                p->dirty = true;
                p->dirty_next = t->dirty_profiles;
                t->dirty_profiles = p;
        }
}

static void tracker__touch_trace(struct tracker *t, struct tracker__trace *tr)
{
        if (!tr->dirty) {
                tr->dirty = true;
                tr->dirty_next = t->dirty_traces;
                if (t->dirty_traces)
                        t->dirty_traces->dirty_pprev = &tr->dirty_next;
                tr->dirty_pprev = &t->dirty_traces;
                t->dirty_traces = tr;
        }
}

void tracker_mark_all_changed(struct tracker *t)
{
        size_t pi;
        for (struct tracker_profile *p = strtab_first(&t->profiles, &pi); p;
             p = strtab_next(&t->profiles, p, &pi))
                if (!p->dirty) {
                        p->dirty = true;
                        p->dirty_next = t->dirty_profiles;
                        t->dirty_profiles = p;
                }
        for (struct tracker__trace *tr = t->head; tr; tr = tr->next)
                tracker__touch_trace(t, tr);
        for (size_t i = 0; i < t->cell_nbuckets; i++)
                for (struct tracker_cell *c = t->cells[i]; c; c = c->hnext)
                        if (!c->dirty) {
                                c->dirty = true;
                                c->dirty_next = t->dirty_cells;
                                t->dirty_cells = c;
                        }
}

bool tracker_has_changes(const struct tracker *t)
{
        return t->dirty_profiles || t->dirty_traces || t->deleted || t->deleted_profiles ||
               t->dirty_cells || t->gone_cells || t->lost_deletion;
}

int tracker_collect(struct tracker *t, const struct tracker_sink *sink)
{
        while (t->deleted_profiles) {
                struct tracker__deleted *d = t->deleted_profiles;
                t->deleted_profiles = d->next;
                if (sink->profile_deleted)
                        sink->profile_deleted(sink->data, d->id);
                free(d);
        }
        for (struct tracker_profile *p = t->dirty_profiles, *next; p; p = next) {
                next = p->dirty_next;
                p->dirty = false;
                p->dirty_next = NULL;
                sink->profile(sink->data, p);
        }
        t->dirty_profiles = NULL;
        while (t->gone_cells) {
                struct tracker__gone_cell *g = t->gone_cells;
                t->gone_cells = g->next;
                if (sink->cell_deleted)
                        sink->cell_deleted(sink->data, g->key, (enum tracker_task)g->task,
                                           g->domain);
                free(g);
        }
        for (struct tracker_cell *c = t->dirty_cells, *next; c; c = next) {
                next = c->dirty_next;
                c->dirty = false;
                c->dirty_next = NULL;
                if (sink->cell)
                        sink->cell(sink->data, c);
        }
        t->dirty_cells = NULL;
        while (t->deleted) {
                struct tracker__deleted *d = t->deleted;
                t->deleted = d->next;
                sink->deleted(sink->data, d->id);
                free(d);
        }
        for (struct tracker__trace *tr = t->dirty_traces, *next; tr; tr = next) {
                next = tr->dirty_next;
                tr->dirty = false;
                tr->dirty_next = NULL;
                tr->stored = true;
                sink->trace(sink->data, &tr->d);
        }
        t->dirty_traces = NULL;
        if (t->lost_deletion) {
                t->lost_deletion = false;
                return -ENOMEM;
        }
        return 0;
}

/* ---- profiles ---------------------------------------------------------- */

static struct tracker_profile *tracker__profile_new(struct tracker *t, const char *model)
{
        struct tracker_profile *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->model = strdup(model);
        if (!p->model) {
                free(p);
                return NULL;
        }
        p->ema_quality = TRACKER_PRIOR;
        strtab_put(&t->profiles, p);
        return p;
}

/* The seed's `profiles.entry(model).or_insert_with(ModelProfile::new)`.
 * Callers check the model limit before changing anything. */
static struct tracker_profile *tracker__profile_entry(struct tracker *t, const char *model)
{
        struct tracker_profile *p = strtab_get(&t->profiles, model);
        return p ? p : tracker__profile_new(t, model);
}

/* -ENOSPC when resolving a trace of `model` would create a profile past the
 * limit; -ENOMEM when creating it fails. */
static int tracker__profile_reserve(struct tracker *t, const char *model,
                                    struct tracker_profile **out)
{
        struct tracker_profile *p = strtab_get(&t->profiles, model);
        if (!p) {
                if (t->max_models && t->profiles.count >= t->max_models)
                        return -ENOSPC;
                p = tracker__profile_new(t, model);
                if (!p)
                        return -ENOMEM;
        }
        *out = p;
        return 0;
}

static struct tracker_task_stats *tracker__task_entry(struct tracker_profile *p,
                                                      enum tracker_task task)
{
        struct tracker_task_stats *ts = &p->tasks[task];
        if (!ts->present) {
                memset(ts, 0, sizeof(*ts));
                ts->present = true;
                ts->ema_quality = TRACKER_PRIOR;
        }
        return ts;
}

const struct tracker_profile *tracker_profile_get(const struct tracker *t, const char *model)
{
        return strtab_get(&t->profiles, model);
}

static int tracker__cmp_profiles(const void *a, const void *b)
{
        const struct tracker_profile *pa = *(const struct tracker_profile *const *)a;
        const struct tracker_profile *pb = *(const struct tracker_profile *const *)b;
        return strcmp(pa->model, pb->model);
}

long tracker_profiles_sorted(const struct tracker *t, const struct tracker_profile ***out)
{
        size_t n = t->profiles.count, k = 0;
        const struct tracker_profile **v = malloc((n ? n : 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        size_t i;
        for (struct tracker_profile *p = strtab_first(&t->profiles, &i); p;
             p = strtab_next(&t->profiles, p, &i))
                v[k++] = p;
        qsort(v, n, sizeof(*v), tracker__cmp_profiles);
        *out = v;
        return (long)n;
}

size_t tracker_profile_count(const struct tracker *t)
{
        return t->profiles.count;
}

double tracker_success_rate(uint64_t successes, uint64_t failures)
{
        uint64_t total = successes + failures;
        if (total == 0)
                return 0.5; /* prior: assume neutral */
        return (double)successes / (double)total;
}

/* ---- evidence ---------------------------------------------------------- */

void tracker_set_half_life(struct tracker *t, uint64_t seconds)
{
        t->half_life = seconds;
}

uint64_t tracker_half_life(const struct tracker *t)
{
        return t->half_life;
}

void tracker_evidence_fade(struct tracker_evidence *e, uint64_t now, uint64_t half_life)
{
        if (half_life && now > e->at) {
                double f = exp2(-(double)(now - e->at) / (double)half_life);
                e->alpha *= f;
                e->beta *= f;
                e->judged *= f;
        }
        if (now > e->at)
                e->at = now;
}

void tracker_evidence_at(const struct tracker *t, const struct tracker_evidence *e, uint64_t now,
                         struct tracker_evidence *out)
{
        *out = *e;
        tracker_evidence_fade(out, now, t->half_life);
}

void tracker_posterior(const struct tracker_evidence *e, double *mean, double *lo, double *hi)
{
        double a = 1.0 + e->alpha, b = 1.0 + e->beta, n = a + b;
        double m = a / n;
        double sd = sqrt(a * b / (n * n * (n + 1.0)));
        *mean = m;
        *lo = m - 1.96 * sd < 0.0 ? 0.0 : m - 1.96 * sd;
        *hi = m + 1.96 * sd > 1.0 ? 1.0 : m + 1.96 * sd;
}

/* One judged outcome of quality q and weight w, at `now`. */
static void tracker__evidence_add(struct tracker_evidence *e, double q, double w, uint64_t now,
                                  uint64_t half_life)
{
        tracker_evidence_fade(e, now, half_life);
        e->alpha += w * q;
        e->beta += w * (1.0 - q);
        e->judged += 1.0;
}

unsigned tracker_sketch_bucket(uint32_t ms)
{
        if (ms == 0)
                return 0;
        /* 1 + floor(4 * log2(ms)), computed without rounding trouble at
         * powers of two: compare ms against the bucket bounds. */
        int b = 1 + (int)floor(4.0 * log2((double)ms));
        while (b > 1 && (double)ms < exp2((double)(b - 1) / 4.0))
                b--;
        while (b < TRACKER_SKETCH_BUCKETS - 1 && (double)ms >= exp2((double)b / 4.0))
                b++;
        return b > TRACKER_SKETCH_BUCKETS - 1 ? TRACKER_SKETCH_BUCKETS - 1 : (unsigned)b;
}

double tracker_sketch_percentile(const uint32_t *sketch, double p)
{
        uint64_t total = 0;
        for (int i = 0; i < TRACKER_SKETCH_BUCKETS; i++)
                total += sketch[i];
        if (total == 0)
                return -1.0;
        /* The smallest bucket whose cumulative count reaches p of the total. */
        double want = p * (double)total;
        uint64_t cum = 0;
        int b = 0;
        for (; b < TRACKER_SKETCH_BUCKETS; b++) {
                cum += sketch[b];
                if (sketch[b] && (double)cum >= want)
                        break;
        }
        if (b >= TRACKER_SKETCH_BUCKETS)
                b = TRACKER_SKETCH_BUCKETS - 1;
        return b == 0 ? 0.0 : exp2(((double)b - 0.5) / 4.0);
}

void tracker_profile_sketch(const struct tracker_profile *p, uint32_t *out)
{
        memset(out, 0, TRACKER_SKETCH_BUCKETS * sizeof(*out));
        for (int t = 0; t < TASK__COUNT; t++)
                if (p->tasks[t].present)
                        for (int i = 0; i < TRACKER_SKETCH_BUCKETS; i++)
                                out[i] += p->tasks[t].latency[i];
}

double tracker_profile_avg_latency(const struct tracker_profile *p)
{
        if (p->total_calls == 0)
                return 0.0;
        return (double)p->total_latency_ms / (double)p->total_calls;
}

bool tracker_profile_degraded(const struct tracker_profile *p, uint64_t threshold)
{
        return p->fail_count > p->success_count + threshold;
}

/* degraded_since after a change of p's counts at `when`: set on the way
 * into degraded, cleared on the way out (a time of 0 is recorded as 1: 0
 * means not degraded).  True when it changed. */
static bool tracker__degraded_note(const struct tracker *t, struct tracker_profile *p,
                                   uint64_t when)
{
        bool degraded = tracker_profile_degraded(p, t->degrade_threshold);
        if (degraded && !p->degraded_since) {
                p->degraded_since = when ? when : 1;
                return true;
        }
        if (!degraded && p->degraded_since) {
                p->degraded_since = 0;
                return true;
        }
        return false;
}

size_t tracker_set_degrade_threshold(struct tracker *t, uint64_t threshold)
{
        size_t changed = 0;
        if (threshold == t->degrade_threshold)
                return 0;
        t->degrade_threshold = threshold;
        size_t i;
        for (struct tracker_profile *p = strtab_first(&t->profiles, &i); p;
             p = strtab_next(&t->profiles, p, &i))
                if (tracker__degraded_note(t, p, p->updated_at)) {
                        tracker__mark_profile(t, p);
                        changed++;
                }
        return changed;
}

uint64_t tracker_degrade_threshold(const struct tracker *t)
{
        return t->degrade_threshold;
}

static struct tracker_cell *tracker__cell_for(struct tracker *t, struct tracker_profile *p,
                                              const struct tracker__trace *tr);
static void tracker__cell_judge(struct tracker *t, struct tracker_cell *c, double q, double w,
                                uint64_t now);
static void tracker__touch_cell(struct tracker *t, struct tracker_cell *c, uint64_t now);
static void tracker__cells_clear(struct tracker *t, struct tracker_profile *p, bool remember);

/* ---- pending traces ---------------------------------------------------- */

/* The public part of a trace, or NULL. */
static const struct tracker_trace *tracker__pub(const struct tracker__trace *tr)
{
        return tr ? &tr->d : NULL;
}

/* The trace a public pointer belongs to. */
static const struct tracker__trace *tracker__of(const struct tracker_trace *d)
{
        return (const struct tracker__trace *)((const char *)d -
                                               offsetof(struct tracker__trace, d));
}

const struct tracker_trace *tracker_trace_get(const struct tracker *t, const char *id)
{
        return tracker__pub(strtab_get(&t->traces, id));
}

const struct tracker_trace *tracker_pending_first(const struct tracker *t)
{
        return tracker__pub(t->head);
}

const struct tracker_trace *tracker_pending_next(const struct tracker_trace *tr)
{
        return tracker__pub(tracker__of(tr)->next);
}

void tracker_reserve(struct tracker *t, size_t traces)
{
        strtab_reserve(&t->traces, traces);
}

const struct tracker_trace *tracker_task_first(const struct tracker *t, enum tracker_task task)
{
        return (unsigned)task < TASK__COUNT ? tracker__pub(t->task_head[task]) : NULL;
}

const struct tracker_trace *tracker_task_next(const struct tracker_trace *tr)
{
        return tracker__pub(tracker__of(tr)->task_next);
}

size_t tracker_trace_bytes(void)
{
        return sizeof(struct tracker__trace);
}

size_t tracker_pending_count(const struct tracker *t)
{
        return t->traces.count;
}

/* Append tr to the pending lists (start order, and its task's). */
static void tracker__link_lists(struct tracker *t, struct tracker__trace *tr)
{
        tr->prev = t->tail;
        tr->next = NULL;
        if (t->tail)
                t->tail->next = tr;
        else
                t->head = tr;
        t->tail = tr;
        /* The task's own list, in start order too: expiry walks it. */
        tr->task_prev = t->task_tail[tr->d.task];
        tr->task_next = NULL;
        if (t->task_tail[tr->d.task])
                t->task_tail[tr->d.task]->task_next = tr;
        else
                t->task_head[tr->d.task] = tr;
        t->task_tail[tr->d.task] = tr;
}

static void tracker__link(struct tracker *t, struct tracker__trace *tr)
{
        strtab_put(&t->traces, tr);
        tracker__link_lists(t, tr);
}

/* A deleted id for the store, unless the store never saw the row. */
static void tracker__remember(struct tracker *t, struct tracker__deleted **list, const char *id)
{
        size_t len = strlen(id);
        struct tracker__deleted *d = malloc(sizeof(*d) + len + 1);
        if (!d) {
                t->lost_deletion = true; /* the next collect says so */
                return;
        }
        memcpy(d->id, id, len + 1);
        d->next = *list;
        *list = d;
}

/* Take a trace out of the pending set and remember its id for the store.
 * The trace itself is freed by the caller, after it has read it. */
static void tracker__unlink(struct tracker *t, struct tracker__trace *tr)
{
        strtab_del(&t->traces, tr);
        if (tr->prev)
                tr->prev->next = tr->next;
        else
                t->head = tr->next;
        if (tr->next)
                tr->next->prev = tr->prev;
        else
                t->tail = tr->prev;
        if (tr->task_prev)
                tr->task_prev->task_next = tr->task_next;
        else
                t->task_head[tr->d.task] = tr->task_next;
        if (tr->task_next)
                tr->task_next->task_prev = tr->task_prev;
        else
                t->task_tail[tr->d.task] = tr->task_prev;
        if (tr->dirty) { /* O(1): the list is long when commits lag */
                *tr->dirty_pprev = tr->dirty_next;
                if (tr->dirty_next)
                        tr->dirty_next->dirty_pprev = tr->dirty_pprev;
                tr->dirty = false;
        }
        if (tr->stored)
                tracker__remember(t, &t->deleted, tr->d.id);
}

/* Copy a trace's data fields into a new, unlinked trace.  Its id, model
 * and reason, which every trace has and which never change, are stored
 * right after the struct, in the same allocation: one malloc a trace
 * instead of four, and no malloc header and rounding for each string (a
 * million pending traces are loaded at start-up).  With `slab`, from
 * the tracker's blocks of loaded traces (slab.h). */
static struct tracker__trace *tracker__trace_copy(const struct tracker_trace *src,
                                                  struct slab *slab)
{
        const char *reason = src->reason ? src->reason : "";
        size_t lid = strlen(src->id) + 1, lmodel = strlen(src->model) + 1;
        size_t lreason = strlen(reason) + 1;
        size_t ldomain = src->domain ? strlen(src->domain) + 1 : 0;
        size_t size = sizeof(struct tracker__trace) + lid + lmodel + lreason + ldomain;
        struct tracker__trace *tr = slab ? slab_alloc(slab, size) : NULL;
        bool in_block = tr != NULL;
        if (!tr && !(tr = malloc(size)))
                return NULL;
        memset(tr, 0, sizeof(*tr));
        tr->in_block = in_block;
        tr->d = *src; /* the numbers; every pointer is set below */
        char *str = (char *)(tr + 1);
        tr->d.id = memcpy(str, src->id, lid);
        tr->d.model = memcpy(str + lid, src->model, lmodel);
        tr->d.reason = memcpy(str + lid + lmodel, reason, lreason);
        tr->d.domain = src->domain ? memcpy(str + lid + lmodel + lreason, src->domain, ldomain)
                                   : NULL;
        tr->d.repo = src->repo ? strdup(src->repo) : NULL;
        tr->d.output = src->output ? strdup(src->output) : NULL;
        tr->d.base = src->base ? strdup(src->base) : NULL;
        tr->d.files = src->nfiles ? calloc(src->nfiles, sizeof(char *)) : NULL;
        tr->d.nfiles = 0;
        bool ok = (!src->repo || tr->d.repo) && (!src->output || tr->d.output) &&
                  (!src->base || tr->d.base) && (!src->nfiles || tr->d.files);
        for (uint32_t i = 0; ok && i < src->nfiles; i++) {
                tr->d.files[i] = strdup(src->files[i]);
                tr->d.nfiles = i + 1;
                ok = tr->d.files[i] != NULL;
        }
        if (!ok) {
                tracker__trace_free(tr);
                return NULL;
        }
        return tr;
}

static bool tracker__may_touch(const struct tracker__trace *tr, uint32_t uid)
{
        return uid == 0 || tr->d.uid == uid;
}

/* Look up a pending trace the caller may change. */
static int tracker__find(struct tracker *t, const char *id, uint32_t uid, struct tracker__trace **out)
{
        struct tracker__trace *tr = strtab_get(&t->traces, id);
        if (!tr)
                return -ENOENT;
        if (!tracker__may_touch(tr, uid))
                return -EPERM;
        *out = tr;
        return 0;
}

/* "<prefix>-<counter in hex>" into buf (96 bytes), without snprintf: this
 * runs for every start. */
static void tracker__gen_id(struct tracker *t, char *buf)
{
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(t->id_prefix); /* <= TRACKER_ID_PREFIX_MAX */
        char digits[16];
        int k = 0;
        uint64_t v = ++t->counter;
        memcpy(buf, t->id_prefix, n);
        buf[n++] = '-';
        do {
                digits[k++] = hex[v & 15];
                v >>= 4;
        } while (v);
        while (k)
                buf[n++] = digits[--k];
        buf[n] = '\0';
}

int tracker_start(struct tracker *t, const struct tracker_start *s, const char **id)
{
        char gen[96];
        const char *tid = s->trace_id;

        if ((unsigned)s->task >= TASK__COUNT || !s->model)
                return -EINVAL;
        if (tid) {
                struct tracker__trace *old = strtab_get(&t->traces, tid);
                if (old) {
                        if (!tracker__may_touch(old, s->uid))
                                return -EPERM;
                        if (strcmp(old->d.model, s->model) != 0 || old->d.task != s->task)
                                return -EEXIST;
                        *id = old->d.id; /* the same start again: nothing changes */
                        return 0;
                }
        }
        if (t->max_pending && t->traces.count >= t->max_pending)
                return -ENOSPC;
        /* A trace of a new model would create a profile once resolved. */
        if (t->max_models && t->profiles.count >= t->max_models &&
            !strtab_get(&t->profiles, s->model))
                return -ENOSPC;
        if (!tid) {
                do {
                        tracker__gen_id(t, gen);
                } while (strtab_get(&t->traces, gen));
                tid = gen;
        }

        struct tracker_trace src = {
                .id = (char *)tid,
                .model = (char *)s->model,
                .reason = (char *)s->reason,
                .domain = (char *)s->domain,
                .repo = (char *)s->repo,
                .base = s->repo ? (char *)s->base : NULL,
                .files = (char **)s->files,
                .nfiles = s->nfiles,
                .seq = t->next_seq,
                .started_at = s->now,
                .uid = s->uid,
                .task = (uint8_t)s->task,
        };
        struct tracker__trace *tr = tracker__trace_copy(&src, NULL);
        if (!tr)
                return -ENOMEM;
        t->next_seq++;
        tracker__link(t, tr);
        tracker__touch_trace(t, tr);
        *id = tr->d.id;
        return 0;
}

int tracker_complete(struct tracker *t, const struct tracker_complete *c)
{
        struct tracker__trace *tr;
        struct tracker_profile *p;
        char *output = NULL;
        int r = tracker__find(t, c->trace_id, c->uid, &tr);
        if (r < 0)
                return r;
        if (tr->d.completed)
                return -EALREADY;
        if (c->output && !(output = strdup(c->output)))
                return -ENOMEM;
        r = tracker__profile_reserve(t, tr->d.model, &p);
        if (r < 0) {
                free(output);
                return r;
        }

        tr->d.completed = true;
        tr->d.completed_at = c->now;
        tr->d.latency_ms = c->latency_ms;
        tr->d.input_tokens = c->input_tokens;
        tr->d.output_tokens = c->output_tokens;
        if (output) {
                free(tr->d.output);
                tr->d.output = output;
        }
        tracker__touch_trace(t, tr);

        p->total_calls += 1;
        p->total_latency_ms += c->latency_ms;
        p->ev.input_tokens += c->input_tokens;
        p->ev.output_tokens += c->output_tokens;
        struct tracker_task_stats *ts = tracker__task_entry(p, tr->d.task);
        ts->ev.input_tokens += c->input_tokens;
        ts->ev.output_tokens += c->output_tokens;
        uint32_t *bucket = &ts->latency[tracker_sketch_bucket(c->latency_ms)];
        if (*bucket < UINT32_MAX)
                (*bucket)++;
        ts->calls += 1;
        ts->avg_latency_ms = ts->avg_latency_ms +
                             ((double)c->latency_ms - ts->avg_latency_ms) / (double)ts->calls;
        tracker__touch_profile(t, p, c->now);
        struct tracker_cell *cell = tracker__cell_for(t, p, tr);
        if (cell) {
                cell->calls += 1;
                cell->ev.input_tokens += c->input_tokens;
                cell->ev.output_tokens += c->output_tokens;
                tracker__touch_cell(t, cell, c->now);
        }
        if (t->observer.complete)
                t->observer.complete(t->observer.data, tr->d.model, (enum tracker_task)tr->d.task, c);
        return 0;
}

int tracker_fail(struct tracker *t, const char *trace_id, uint32_t uid, uint64_t now)
{
        struct tracker__trace *tr;
        struct tracker_profile *p;
        int r = tracker__find(t, trace_id, uid, &tr);
        if (r < 0)
                return r;
        r = tracker__profile_reserve(t, tr->d.model, &p);
        if (r < 0)
                return r;

        p->fail_count += 1;
        p->ema_quality = p->ema_quality * (1.0 - TRACKER_EMA_ALPHA) + 0.0 * TRACKER_EMA_ALPHA;
        struct tracker_task_stats *ts = tracker__task_entry(p, tr->d.task);
        ts->failures += 1;
        ts->ema_quality = ts->ema_quality * (1.0 - TRACKER_EMA_ALPHA);
        tracker__evidence_add(&p->ev, 0.0, 1.0, now, t->half_life);
        tracker__evidence_add(&ts->ev, 0.0, 1.0, now, t->half_life);
        tracker__degraded_note(t, p, now);
        tracker__touch_profile(t, p, now);
        struct tracker_cell *cell = tracker__cell_for(t, p, tr);
        if (cell) {
                cell->failures += 1;
                tracker__cell_judge(t, cell, 0.0, 1.0, now);
                tracker__touch_cell(t, cell, now);
        }
        if (t->observer.fail)
                t->observer.fail(t->observer.data, tr->d.model, (enum tracker_task)tr->d.task);

        tracker__unlink(t, tr);
        tracker__trace_free(tr);
        return 0;
}

/* ---- outcomes ---------------------------------------------------------- */

void tracker_kind_score(enum tracker_kind kind, double c, struct tracker_result *r)
{
        static const double code_quality[KIND__COUNT] = {
                [KIND_APPLIED] = 1.0,
                [KIND_SIGNATURE_CHANGED] = 0.8,
                [KIND_BODY_MODIFIED] = 0.7,
                [KIND_SYMBOL_ADDED] = 0.7,
                [KIND_MODIFIED] = 0.6,
                [KIND_IGNORED] = 0.1,
        };
        r->kind = kind;
        r->confidence = c;
        r->deferred = false;
        r->has_quality = r->has_success = true;
        switch (kind) {
        case KIND_ACCEPTED:
                r->quality = c;
                r->success = true;
                break;
        case KIND_ACCEPTED_WITH_EDITS:
                r->quality = c * 0.7;
                r->success = true;
                break;
        case KIND_REJECTED:
                r->quality = (1.0 - c) * 0.3;
                r->success = false;
                break;
        case KIND_INCONCLUSIVE:
        default:
                r->has_quality = r->has_success = false;
                r->quality = 0;
                r->success = false;
                break;
        case KIND_APPLIED:
        case KIND_SIGNATURE_CHANGED:
        case KIND_BODY_MODIFIED:
        case KIND_SYMBOL_ADDED:
        case KIND_MODIFIED:
        case KIND_IGNORED:
                r->quality = code_quality[kind];
                r->success = kind != KIND_IGNORED;
                break;
        }
}

/* The seed's apply_outcome: the trace is already known to be pending and
 * the profile reserved. */
static void tracker__apply(struct tracker *t, struct tracker_profile *p,
                           const struct tracker__trace *tr, const struct tracker_result *r,
                           uint64_t now)
{
        enum tracker_task task = (enum tracker_task)tr->d.task;
        struct tracker_cell *cell =
                r->has_quality || r->has_success ? tracker__cell_for(t, p, tr) : NULL;
        if (r->has_quality) {
                double q = r->quality;
                p->ema_quality = p->ema_quality * (1.0 - TRACKER_EMA_ALPHA) + q * TRACKER_EMA_ALPHA;
                struct tracker_task_stats *ts = tracker__task_entry(p, task);
                ts->ema_quality = ts->ema_quality * (1.0 - TRACKER_EMA_ALPHA) + q * TRACKER_EMA_ALPHA;
                /* The conversation's kinds count as much as their confidence;
                 * git's kinds are ground truth. */
                double w = tracker_kind_needs_confidence(r->kind) ? r->confidence : 1.0;
                tracker__evidence_add(&p->ev, q, w, now, t->half_life);
                tracker__evidence_add(&ts->ev, q, w, now, t->half_life);
                if (cell)
                        tracker__cell_judge(t, cell, q, w, now);
        }
        if (r->has_success) {
                struct tracker_task_stats *ts = tracker__task_entry(p, task);
                if (r->success) {
                        p->success_count += 1;
                        ts->successes += 1;
                } else {
                        p->fail_count += 1;
                        ts->failures += 1;
                }
                if (cell)
                        *(r->success ? &cell->successes : &cell->failures) += 1;
                tracker__degraded_note(t, p, now);
        }
        if (cell)
                tracker__touch_cell(t, cell, now);
        tracker__touch_profile(t, p, now);
}

/* Resolve (or defer) one pending trace with a scored result. */
static int tracker__resolve(struct tracker *t, struct tracker__trace *tr, struct tracker_result *r,
                            uint64_t now, enum tracker_source src)
{
        if (tr->d.repo && src == TRACKER_SRC_CONVERSATION) {
                /* git is the ground truth for this trace: the conversation's
                 * view is recorded by the caller, the trace stays pending. */
                r->deferred = true;
                r->has_quality = r->has_success = false;
                r->trace_id = tr->d.id;
                return 0;
        }
        /* The id must outlive the trace for the caller's reply: it is
         * copied to last_id, grown first so that a failure changes
         * nothing. */
        size_t len = strlen(tr->d.id) + 1;
        if (len > t->last_id_cap) {
                char *buf = realloc(t->last_id, len < 64 ? 64 : len);
                if (!buf)
                        return -ENOMEM;
                t->last_id = buf;
                t->last_id_cap = len < 64 ? 64 : len;
        }
        struct tracker_profile *p;
        int rc = tracker__profile_reserve(t, tr->d.model, &p);
        if (rc < 0)
                return rc;
        tracker__apply(t, p, tr, r, now);
        if (t->observer.resolve)
                t->observer.resolve(t->observer.data, tr->d.model, (enum tracker_task)tr->d.task, r,
                                    src);
        tracker__unlink(t, tr);
        memcpy(t->last_id, tr->d.id, len);
        r->trace_id = t->last_id;
        tracker__trace_free(tr);
        return 0;
}

int tracker_outcome(struct tracker *t, const char *trace_id, enum tracker_kind kind,
                    double confidence, uint32_t uid, uint64_t now, struct tracker_result *res)
{
        return tracker_resolve(t, trace_id, kind, confidence, uid, now, TRACKER_SRC_CONVERSATION,
                               res);
}

int tracker_resolve(struct tracker *t, const char *trace_id, enum tracker_kind kind,
                    double confidence, uint32_t uid, uint64_t now, enum tracker_source src,
                    struct tracker_result *res)
{
        struct tracker__trace *tr;
        if ((unsigned)kind >= KIND__COUNT)
                return -EINVAL;
        int r = tracker__find(t, trace_id, src == TRACKER_SRC_CONVERSATION ? uid : 0, &tr);
        if (r < 0)
                return r;
        struct tracker_result out;
        tracker_kind_score(kind, confidence, &out);
        r = tracker__resolve(t, tr, &out, now, src);
        if (r < 0)
                return r;
        *res = out;
        return 0;
}

void tracker_infer_action(const struct tracker_action *acts, size_t n, size_t i,
                          enum tracker_kind *kind, double *confidence)
{
        const struct tracker_action *a = &acts[i];
        *confidence = a->confidence;
        if (!a->success) {
                *kind = KIND_REJECTED;
                return;
        }
        /* Last action: assume accepted if successful. */
        bool next_succeeded = i + 1 < n ? acts[i + 1].success : true;
        bool has_output = false;
        for (const char *s = a->output ? a->output : ""; *s; s++) {
                /* Rust's str::trim: Unicode White_Space; outputs are UTF-8. */
                unsigned char ch = (unsigned char)*s;
                if (ch == ' ' || (ch >= '\t' && ch <= '\r'))
                        continue;
                if (ch == 0xc2 && ((unsigned char)s[1] == 0x85 || (unsigned char)s[1] == 0xa0)) {
                        s++;
                        continue;
                }
                if (ch == 0xe1 && (unsigned char)s[1] == 0x9a && (unsigned char)s[2] == 0x80) {
                        s += 2;
                        continue;
                }
                if (ch == 0xe2 && (unsigned char)s[1] == 0x80 &&
                    (((unsigned char)s[2] >= 0x80 && (unsigned char)s[2] <= 0x8a) ||
                     (unsigned char)s[2] == 0xa8 || (unsigned char)s[2] == 0xa9 ||
                     (unsigned char)s[2] == 0xaf)) {
                        s += 2;
                        continue;
                }
                if (ch == 0xe2 && (unsigned char)s[1] == 0x81 && (unsigned char)s[2] == 0x9f) {
                        s += 2;
                        continue;
                }
                if (ch == 0xe3 && (unsigned char)s[1] == 0x80 && (unsigned char)s[2] == 0x80) {
                        s += 2;
                        continue;
                }
                has_output = true;
                break;
        }
        if (has_output && next_succeeded) {
                *kind = KIND_ACCEPTED;
        } else if (has_output) {
                /* Output existed but downstream failed: may not be its fault. */
                *kind = KIND_ACCEPTED_WITH_EDITS;
                *confidence = a->confidence * 0.7;
        } else {
                *kind = KIND_INCONCLUSIVE;
        }
}

int tracker_sequence(struct tracker *t, const struct tracker_action *acts, size_t n,
                     uint32_t uid, uint64_t now, tracker_result_cb cb, void *data)
{
        /* Check first, so that a refused sequence changes nothing. */
        uint64_t new_models = 0;
        for (size_t i = 0; i < n; i++) {
                if (!acts[i].trace_id[0])
                        continue;
                struct tracker__trace *tr = strtab_get(&t->traces, acts[i].trace_id);
                if (!tr)
                        continue;
                if (!tracker__may_touch(tr, uid))
                        return -EPERM;
                if (tr->d.repo || strtab_get(&t->profiles, tr->d.model))
                        continue; /* deferred (git judges it), or a known model */
                /* Count each new model once: several traces may share one,
                 * and a trace may be named twice. */
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++) {
                        const struct tracker__trace *o;
                        if (acts[j].trace_id[0] &&
                            (o = strtab_get(&t->traces, acts[j].trace_id)))
                                seen = !o->d.repo && strcmp(o->d.model, tr->d.model) == 0;
                }
                if (!seen)
                        new_models++;
        }
        if (t->max_models && new_models && t->profiles.count + new_models > t->max_models)
                return -ENOSPC;

        for (size_t i = 0; i < n; i++) {
                if (!acts[i].trace_id[0])
                        continue; /* no trace (e.g. a memgine-only action) */
                struct tracker__trace *tr = strtab_get(&t->traces, acts[i].trace_id);
                if (!tr)
                        continue; /* not pending: skipped, as the seed does */
                enum tracker_kind kind;
                double c;
                struct tracker_result r;
                tracker_infer_action(acts, n, i, &kind, &c);
                tracker_kind_score(kind, c, &r);
                int rc = tracker__resolve(t, tr, &r, now, TRACKER_SRC_CONVERSATION);
                if (rc < 0)
                        return rc;
                if (cb)
                        cb(data, &r);
        }
        return 0;
}

/* ---- expiry, forget, import ------------------------------------------- */

size_t tracker_expire(struct tracker *t, uint64_t now, const uint64_t ttl[TASK__COUNT],
                      size_t max, tracker_result_cb cb, void *data)
{
        size_t n = 0;
        for (int task = 0; task < TASK__COUNT && n < max; task++) {
                if (!ttl[task])
                        continue; /* never expires */
                while (n < max) {
                        struct tracker__trace *tr = t->task_head[task];
                        if (!tr || tr->d.started_at + ttl[task] > now)
                                break;
                        struct tracker_result r;
                        tracker_kind_score(KIND_INCONCLUSIVE, 0.0, &r);
                        if (tracker__resolve(t, tr, &r, now, TRACKER_SRC_EXPIRY) < 0)
                                return n; /* out of memory or models: next time */
                        n++;
                        if (cb)
                                cb(data, &r);
                }
        }
        return n;
}

int tracker_forget(struct tracker *t, const char *model)
{
        struct tracker_profile *p = strtab_get(&t->profiles, model);
        if (!p)
                return -ENOENT;
        strtab_del(&t->profiles, p);
        if (p->dirty) {
                struct tracker_profile **pp = &t->dirty_profiles;
                while (*pp != p)
                        pp = &(*pp)->dirty_next;
                *pp = p->dirty_next;
        }
        tracker__remember(t, &t->deleted_profiles, p->model);
        tracker__cells_clear(t, p, false); /* the store's rows go with the profile's */
        free(p->model);
        free(p);
        return 0;
}

/* p takes src's numbers (not its model, links or time). */
static void tracker__profile_assign(struct tracker_profile *p, const struct tracker_profile *src)
{
        p->total_calls = src->total_calls;
        p->success_count = src->success_count;
        p->fail_count = src->fail_count;
        p->total_latency_ms = src->total_latency_ms;
        p->ema_quality = src->ema_quality;
        p->degraded_since = src->degraded_since;
        p->ev = src->ev;
        memcpy(p->tasks, src->tasks, sizeof(p->tasks));
}

/* Add b's evidence to a's, both faded to the later of their times. */
static void tracker__evidence_merge(struct tracker_evidence *a, const struct tracker_evidence *b,
                                    uint64_t half_life)
{
        struct tracker_evidence bb = *b;
        uint64_t at = a->at > b->at ? a->at : b->at;
        tracker_evidence_fade(a, at, half_life);
        tracker_evidence_fade(&bb, at, half_life);
        a->alpha += bb.alpha;
        a->beta += bb.beta;
        a->judged += bb.judged;
        a->input_tokens += bb.input_tokens;
        a->output_tokens += bb.output_tokens;
}

/* a + b, saturating at UINT64_MAX (an import cannot wrap a count). */
static uint64_t tracker__sadd(uint64_t a, uint64_t b)
{
        return a + b < a ? UINT64_MAX : a + b;
}

/* Weighted mean of two values; equal weights when both are zero. */
static double tracker__wmean(double a, uint64_t wa, double b, uint64_t wb)
{
        double w = (double)wa + (double)wb; /* in doubles: the sum may not fit */
        if (w == 0.0)
                return (a + b) / 2.0;
        return (a * (double)wa + b * (double)wb) / w;
}

int tracker_import(struct tracker *t, const struct tracker_profile *src, bool replace,
                   uint64_t now, bool *created)
{
        struct tracker_profile *p = strtab_get(&t->profiles, src->model);
        *created = p == NULL;
        if (!p) {
                if (t->max_models && t->profiles.count >= t->max_models)
                        return -ENOSPC;
                p = tracker__profile_new(t, src->model);
                if (!p)
                        return -ENOMEM;
                replace = true;
        }
        if (replace) {
                tracker__profile_assign(p, src);
                if (!*created)
                        tracker__cells_clear(t, p, true);
        } else {
                /* Merge: counts add; EMAs and mean latencies are weighted by
                 * calls, or by judged outcomes when neither side has calls. */
                uint64_t wa = p->total_calls, wb = src->total_calls;
                if (wa == 0 && wb == 0) {
                        wa = p->success_count + p->fail_count;
                        wb = src->success_count + src->fail_count;
                }
                p->ema_quality = tracker__wmean(p->ema_quality, wa, src->ema_quality, wb);
                p->total_calls = tracker__sadd(p->total_calls, src->total_calls);
                p->success_count = tracker__sadd(p->success_count, src->success_count);
                p->fail_count = tracker__sadd(p->fail_count, src->fail_count);
                p->total_latency_ms = tracker__sadd(p->total_latency_ms, src->total_latency_ms);
                tracker__evidence_merge(&p->ev, &src->ev, t->half_life);
                for (int i = 0; i < TASK__COUNT; i++) {
                        const struct tracker_task_stats *b = &src->tasks[i];
                        struct tracker_task_stats *a = &p->tasks[i];
                        if (!b->present)
                                continue;
                        if (!a->present) {
                                *a = *b;
                                continue;
                        }
                        uint64_t ta = a->calls, tb = b->calls;
                        uint64_t ja = a->successes + a->failures, jb = b->successes + b->failures;
                        a->avg_latency_ms = tracker__wmean(a->avg_latency_ms, ta,
                                                           b->avg_latency_ms, tb);
                        a->ema_quality = (ta || tb) ? tracker__wmean(a->ema_quality, ta,
                                                                  b->ema_quality, tb)
                                                 : tracker__wmean(a->ema_quality, ja,
                                                                  b->ema_quality, jb);
                        a->calls = tracker__sadd(a->calls, b->calls);
                        a->successes = tracker__sadd(a->successes, b->successes);
                        a->failures = tracker__sadd(a->failures, b->failures);
                        tracker__evidence_merge(&a->ev, &b->ev, t->half_life);
                        for (int k = 0; k < TRACKER_SKETCH_BUCKETS; k++)
                                a->latency[k] = a->latency[k] + b->latency[k] < a->latency[k]
                                                        ? UINT32_MAX
                                                        : a->latency[k] + b->latency[k];
                }
        }
        /* A new model takes the profile as it is, its time included; an
         * existing one changed now.  degraded_since: src's (replace) or
         * the daemon's (merge) while degraded under this tracker's
         * threshold, else the time of this change. */
        uint64_t when = *created && src->updated_at ? src->updated_at : now;
        tracker__degraded_note(t, p, when);
        tracker__touch_profile(t, p, when);
        return 0;
}

/* ---- domain cells ------------------------------------------------------ */

void tracker_set_max_cells(struct tracker *t, uint64_t max_cells)
{
        t->max_cells = max_cells;
}

static uint64_t tracker__cell_hash(const char *model, unsigned task, const char *domain)
{
        uint64_t h = siphash_str(domain);
        h ^= siphash_str(model) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        return h ^ ((uint64_t)task * 0xbf58476d1ce4e5b9ull);
}

static struct tracker_cell *tracker__cell_find(const struct tracker *t, const char *model,
                                               unsigned task, const char *domain)
{
        if (!t->cell_nbuckets)
                return NULL;
        struct tracker_cell *c =
                t->cells[tracker__cell_hash(model, task, domain) & (t->cell_nbuckets - 1)];
        for (; c; c = c->hnext)
                if (c->task == task && strcmp(c->domain, domain) == 0 &&
                    strcmp(c->model, model) == 0)
                        return c;
        return NULL;
}

static void tracker__cells_grow(struct tracker *t)
{
        size_t n = t->cell_nbuckets ? t->cell_nbuckets * 2 : 64;
        struct tracker_cell **b = calloc(n, sizeof(*b));
        if (!b)
                return; /* longer chains: still correct */
        for (size_t i = 0; i < t->cell_nbuckets; i++) {
                for (struct tracker_cell *c = t->cells[i], *next; c; c = next) {
                        next = c->hnext;
                        size_t j = tracker__cell_hash(c->model, c->task, c->domain) & (n - 1);
                        c->hnext = b[j];
                        b[j] = c;
                }
        }
        free(t->cells);
        t->cells = b;
        t->cell_nbuckets = n;
}

static void tracker__touch_cell(struct tracker *t, struct tracker_cell *c, uint64_t now)
{
        c->updated_at = now;
        if (!c->dirty) {
                c->dirty = true;
                c->dirty_next = t->dirty_cells;
                t->dirty_cells = c;
        }
}

/* A new, empty cell of p, linked everywhere; NULL when out of memory. */
static struct tracker_cell *tracker__cell_new(struct tracker *t, struct tracker_profile *p,
                                              unsigned task, const char *domain)
{
        if (t->ncells >= t->cell_nbuckets) {
                tracker__cells_grow(t);
                if (!t->cell_nbuckets)
                        return NULL;
        }
        size_t ld = strlen(domain) + 1;
        struct tracker_cell *c = calloc(1, sizeof(*c) + ld);
        if (!c)
                return NULL;
        c->domain = memcpy((char *)(c + 1), domain, ld);
        c->model = p->model;
        c->profile = p;
        c->task = (uint8_t)task;
        size_t j = tracker__cell_hash(c->model, task, domain) & (t->cell_nbuckets - 1);
        c->hnext = t->cells[j];
        t->cells[j] = c;
        c->pnext = p->cells;
        p->cells = c;
        t->ncells++;
        return c;
}

/* Take c out of the table, its profile's list and the change list, and
 * free it. */
static void tracker__cell_free(struct tracker *t, struct tracker_cell *c)
{
        struct tracker_cell **pp =
                &t->cells[tracker__cell_hash(c->model, c->task, c->domain) & (t->cell_nbuckets - 1)];
        while (*pp != c)
                pp = &(*pp)->hnext;
        *pp = c->hnext;
        /* The profile's list is singly linked (8 bytes a cell): cells
         * leave it alone only by forget of one cell, or all at once. */
        struct tracker_cell **lp = &c->profile->cells;
        while (*lp != c)
                lp = &(*lp)->pnext;
        *lp = c->pnext;
        if (c->dirty) {
                struct tracker_cell **dp = &t->dirty_cells;
                while (*dp != c)
                        dp = &(*dp)->dirty_next;
                *dp = c->dirty_next;
        }
        t->ncells--;
        free(c);
}

/* Remember a cell removed alone, for the store. */
static void tracker__cell_gone(struct tracker *t, const struct tracker_cell *c)
{
        size_t lm = strlen(c->model) + 1, ld = strlen(c->domain) + 1;
        struct tracker__gone_cell *g = malloc(sizeof(*g) + lm + ld);
        if (!g) {
                t->lost_deletion = true;
                return;
        }
        memcpy(g->key, c->model, lm);
        memcpy(g->key + lm, c->domain, ld);
        g->domain = g->key + lm;
        g->task = c->task;
        g->next = t->gone_cells;
        t->gone_cells = g;
}

/* Every cell of p gone; with `remember`, each is reported to the store. */
static void tracker__cells_clear(struct tracker *t, struct tracker_profile *p, bool remember)
{
        /* Off the change list in one pass, not one walk a cell. */
        for (struct tracker_cell **dp = &t->dirty_cells; *dp;) {
                if ((*dp)->profile == p) {
                        (*dp)->dirty = false;
                        *dp = (*dp)->dirty_next;
                } else {
                        dp = &(*dp)->dirty_next;
                }
        }
        while (p->cells) {
                if (remember)
                        tracker__cell_gone(t, p->cells);
                tracker__cell_free(t, p->cells);
        }
}

/* The cell an observation of trace tr counts in: NULL when the trace
 * named no domain, or when a new cell would pass the limit (counted) or
 * cannot be allocated. */
static struct tracker_cell *tracker__cell_for(struct tracker *t, struct tracker_profile *p,
                                              const struct tracker__trace *tr)
{
        if (!tr->d.domain)
                return NULL;
        struct tracker_cell *c = tracker__cell_find(t, p->model, tr->d.task, tr->d.domain);
        if (c)
                return c;
        if ((t->max_cells && t->ncells >= t->max_cells) ||
            !(c = tracker__cell_new(t, p, tr->d.task, tr->d.domain))) {
                t->cells_refused++;
                return NULL;
        }
        return c;
}

bool tracker_cell_logit(const struct tracker_cell *c, double *l, double *nu)
{
        double a = c->win_alpha, b = c->win_beta;
        *l = log((a + 0.5) / (b + 0.5));
        *nu = 1.0 / (a + 0.5) + 1.0 / (b + 0.5);
        return a + b >= TRACKER_CELL_MIN;
}

/* Take the cell's window out of its task's sums (sign -1) or put it in
 * (+1).  The same numbers come out as went in: the window does not change
 * between the two. */
static void tracker__cell_sums(struct tracker_cell *c, double sign)
{
        struct tracker_task_stats *ts = &c->profile->tasks[c->task];
        double l, nu;
        if (!tracker_cell_logit(c, &l, &nu))
                return;
        ts->dom_cells += sign;
        ts->dom_s1 += sign * l;
        ts->dom_s2 += sign * (l * l - nu);
}

/* One judged outcome of quality q and weight w in a cell: its evidence,
 * the recent evidence and the window (tracker.h), its task's sums. */
static void tracker__cell_judge(struct tracker *t, struct tracker_cell *c, double q, double w,
                                uint64_t now)
{
        tracker__cell_sums(c, -1.0);
        tracker__evidence_add(&c->ev, q, w, now, t->half_life);
        c->recent_alpha = TRACKER_RECENT_KEEP * c->recent_alpha + w * q;
        c->recent_beta = TRACKER_RECENT_KEEP * c->recent_beta + w * (1.0 - q);
        c->win_alpha += w * q;
        c->win_beta += w * (1.0 - q);
        double ns = c->recent_alpha + c->recent_beta, nl = c->win_alpha + c->win_beta;
        if (ns >= 5.0 && nl > ns + 5.0) {
                double pl = (c->win_alpha + 0.5) / (nl + 1.0);
                double ps = (c->recent_alpha + 0.5) / (ns + 1.0);
                if (fabs(ps - pl) > 3.0 * sqrt(pl * (1.0 - pl) / ns)) {
                        c->win_alpha = c->recent_alpha;
                        c->win_beta = c->recent_beta;
                }
        }
        tracker__cell_sums(c, 1.0);
}

const struct tracker_cell *tracker_cell_get(const struct tracker *t, const char *model,
                                            enum tracker_task task, const char *domain)
{
        return tracker__cell_find(t, model, task, domain);
}

const struct tracker_cell *tracker_cell_first(const struct tracker_profile *p)
{
        return p->cells;
}

const struct tracker_cell *tracker_cell_next(const struct tracker_cell *c)
{
        return c->pnext;
}

static int tracker__cmp_cells(const void *a, const void *b)
{
        const struct tracker_cell *ca = *(const struct tracker_cell *const *)a;
        const struct tracker_cell *cb = *(const struct tracker_cell *const *)b;
        if (ca->task != cb->task)
                return strcmp(tracker_task_name(ca->task), tracker_task_name(cb->task));
        return strcmp(ca->domain, cb->domain);
}

size_t tracker_profile_cells(const struct tracker_profile *p)
{
        size_t n = 0;
        for (const struct tracker_cell *c = p->cells; c; c = c->pnext)
                n++;
        return n;
}

size_t tracker_cells_sorted(const struct tracker_profile *p, int task,
                            const struct tracker_cell **out)
{
        size_t n = 0;
        for (const struct tracker_cell *c = p->cells; c; c = c->pnext)
                if (task < 0 || c->task == task)
                        out[n++] = c;
        qsort(out, n, sizeof(*out), tracker__cmp_cells);
        return n;
}

size_t tracker_cell_count(const struct tracker *t)
{
        return t->ncells;
}

uint64_t tracker_cells_refused(const struct tracker *t)
{
        return t->cells_refused;
}

int tracker_forget_cell(struct tracker *t, const char *model, enum tracker_task task,
                        const char *domain)
{
        struct tracker_cell *c = tracker__cell_find(t, model, task, domain);
        if (!c)
                return -ENOENT;
        tracker__cell_sums(c, -1.0);
        tracker__cell_gone(t, c);
        tracker__cell_free(t, c);
        return 0;
}

/* c takes src's numbers. */
static void tracker__cell_assign(struct tracker_cell *c, const struct tracker_cell *src)
{
        c->calls = src->calls;
        c->successes = src->successes;
        c->failures = src->failures;
        c->ev = src->ev;
        c->recent_alpha = src->recent_alpha;
        c->recent_beta = src->recent_beta;
        c->win_alpha = src->win_alpha;
        c->win_beta = src->win_beta;
        c->updated_at = src->updated_at;
}

int tracker_import_cell(struct tracker *t, const struct tracker_cell *src, bool replace,
                        uint64_t now, bool *created)
{
        struct tracker_profile *p = strtab_get(&t->profiles, src->model);
        if (!p)
                return -ENOENT;
        struct tracker_cell *c = tracker__cell_find(t, p->model, src->task, src->domain);
        *created = c == NULL;
        if (!c) {
                if (t->max_cells && t->ncells >= t->max_cells)
                        return -ENOSPC;
                if (!(c = tracker__cell_new(t, p, src->task, src->domain)))
                        return -ENOMEM;
                replace = true;
        }
        tracker__task_entry(p, (enum tracker_task)src->task);
        tracker__cell_sums(c, -1.0);
        if (replace) {
                tracker__cell_assign(c, src);
        } else {
                c->calls = tracker__sadd(c->calls, src->calls);
                c->successes = tracker__sadd(c->successes, src->successes);
                c->failures = tracker__sadd(c->failures, src->failures);
                tracker__evidence_merge(&c->ev, &src->ev, t->half_life);
                c->recent_alpha += src->recent_alpha;
                c->recent_beta += src->recent_beta;
                c->win_alpha += src->win_alpha;
                c->win_beta += src->win_beta;
        }
        tracker__cell_sums(c, 1.0);
        /* A new cell keeps its time, as a new profile does. */
        tracker__touch_cell(t, c, *created && src->updated_at ? src->updated_at : now);
        return 0;
}

int tracker_load_cell(struct tracker *t, const struct tracker_cell *src)
{
        if ((unsigned)src->task >= TASK__COUNT)
                return -EINVAL;
        struct tracker_profile *p = strtab_get(&t->profiles, src->model);
        if (!p)
                return -ENOENT;
        if (tracker__cell_find(t, p->model, src->task, src->domain))
                return -EINVAL;
        struct tracker_cell *c = tracker__cell_new(t, p, src->task, src->domain);
        if (!c)
                return -ENOMEM;
        tracker__cell_assign(c, src);
        return 0;
}

/* ---- loading ----------------------------------------------------------- */

int tracker_load_profile(struct tracker *t, const struct tracker_profile *src)
{
        struct tracker_profile *p = tracker__profile_entry(t, src->model);
        if (!p)
                return -ENOMEM;
        tracker__profile_assign(p, src);
        p->updated_at = src->updated_at;
        /* Stored under another threshold (a restart with a new
         * configuration): corrected, and written again. */
        if (tracker__degraded_note(t, p, p->updated_at))
                tracker__mark_profile(t, p);
        return 0;
}

int tracker_load_trace(struct tracker *t, const struct tracker_trace *src)
{
        if (src->task >= TASK__COUNT)
                return -EINVAL;
        struct tracker__trace *tr = tracker__trace_copy(src, &t->slab);
        if (!tr)
                return -ENOMEM;
        tr->stored = true;
        /* One hash and one walk of the chain for both the duplicate check
         * and the insertion: a million of them at start-up. */
        if (strtab_put_new(&t->traces, tr) < 0) {
                tracker__trace_free(tr);
                return -EINVAL;
        }
        tracker__link_lists(t, tr);
        if (tr->d.seq >= t->next_seq)
                t->next_seq = tr->d.seq + 1;
        return 0;
}

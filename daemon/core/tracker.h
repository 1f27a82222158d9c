/* tracker.h - the pure core of outcomed: model profiles, per-task stats,
 * pending traces and the seed's outcome rules (those of the in-process Rust
 * tracker outcomed grew out of).
 *
 * No I/O lives here: no sockets, no libuv, no SQLite.  Time comes in as an
 * argument (`now`, unix seconds) and so does the caller's uid, so every rule
 * can be unit-tested and fuzzed alone.  Only the loop thread touches a
 * tracker.
 *
 * Functions return 0 or a negative errno:
 *   -ENOENT    the trace is not pending              (unknown_trace)
 *   -EEXIST    a client trace id pending elsewhere   (duplicate_trace)
 *   -EALREADY  a second complete                     (already_completed)
 *   -EPERM     another uid's trace                   (forbidden)
 *   -ENOSPC    a state limit is reached              (overloaded)
 *   -ENOMEM    out of memory                         (internal)
 * A failed call changes nothing.
 */
#ifndef OUTCOMED_TRACKER_H
#define OUTCOMED_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tracker_task {
        TASK_GENERATE,
        TASK_EMBED,
        TASK_CLASSIFY,
        TASK_CODE,
        TASK_REASONING,
        TASK__COUNT
};

enum tracker_kind {
        KIND_ACCEPTED,
        KIND_ACCEPTED_WITH_EDITS,
        KIND_REJECTED,
        KIND_INCONCLUSIVE,
        KIND_APPLIED,
        KIND_SIGNATURE_CHANGED,
        KIND_BODY_MODIFIED,
        KIND_SYMBOL_ADDED,
        KIND_MODIFIED,
        KIND_IGNORED,
        KIND__COUNT
};

/* Names as on the wire ("generate", "accepted_with_edits", ...). */
const char *tracker_task_name(enum tracker_task task);
const char *tracker_kind_name(enum tracker_kind kind);
/* Parse a name of `len` bytes; -EINVAL when it is not one. */
int tracker_task_parse(const char *s, size_t len, enum tracker_task *out);
int tracker_kind_parse(const char *s, size_t len, enum tracker_kind *out);
/* True for the three conversation kinds that need a confidence. */
bool tracker_kind_needs_confidence(enum tracker_kind kind);

#define TRACKER_EMA_ALPHA 0.2
#define TRACKER_PRIOR 0.5

/* The evidence behind the numbers, beside the seed's counters: a Beta
 * posterior of the success probability, Beta(1 + alpha, 1 + beta).  Each
 * judged outcome of quality q and weight w adds w*q to alpha and w*(1-q)
 * to beta; w is the confidence for the conversation kinds (accepted,
 * accepted_with_edits, rejected) and 1 for git's kinds, expiries' and
 * failures' (a failure is q = 0).  Inconclusive adds nothing.  With a
 * half-life set, alpha, beta and judged fade by 2^(-dt/half_life), applied
 * lazily from `at`. */
struct tracker_evidence {
        double alpha, beta;
        double judged;          /* judged outcomes (faded like alpha and beta) */
        uint64_t at;            /* unix seconds alpha, beta and judged are as of */
        uint64_t input_tokens;  /* sums over completes */
        uint64_t output_tokens;
};

/* Latency histogram: bucket 0 holds 0 ms, bucket b >= 1 holds
 * [2^((b-1)/4), 2^(b/4)) ms, the last one everything from 2^24 ms on.
 * Sketches of one model's tasks merge by adding counts. */
#define TRACKER_SKETCH_BUCKETS 98

struct tracker_task_stats {
        bool present; /* the seed creates a task entry lazily */
        uint64_t calls;
        uint64_t successes;
        uint64_t failures;
        double avg_latency_ms; /* running mean */
        double ema_quality;
        struct tracker_evidence ev;
        uint32_t latency[TRACKER_SKETCH_BUCKETS];
        /* Over the model's domain cells of this task that hold at least
         * TRACKER_CELL_MIN judged outcomes in their window: how many, the
         * sum of their logits l and of l^2 - nu (tracker_cell_logit).  Kept
         * up to date as cells change, so that rank's empirical-Bayes prior
         * costs O(1); stored, so a restart gives the very same numbers. */
        double dom_cells, dom_s1, dom_s2;
};

struct tracker_cell;

/* A model's profile.  Callers get const pointers and only read them. */
struct tracker_profile {
        char *model;
        uint64_t total_calls;
        uint64_t success_count;
        uint64_t fail_count;
        uint64_t total_latency_ms;
        double ema_quality;
        uint64_t updated_at;
        /* Unix seconds when the profile last became degraded under the
         * tracker's degrade threshold (tracker_set_degrade_threshold); 0
         * while it is not degraded.  Kept by every change of the counts. */
        uint64_t degraded_since;
        struct tracker_evidence ev; /* the model's, over all tasks */
        struct tracker_task_stats tasks[TASK__COUNT];
        /* internal */
        struct tracker_profile *hnext;
        struct tracker_profile *dirty_next;
        struct tracker_cell *cells; /* the model's domain cells, newest first */
        bool dirty;
};

/* Evidence per (model, task, domain): the domain is what a router's
 * classifier said a request is about (a subject, a language, a customer).
 * A cell is made when a trace that named a domain completes or is judged,
 * and holds the same counters and evidence as a task, without a latency
 * histogram (the task keeps it).
 *
 * Forgetting is per observation, not per second, so that a model whose
 * quality drops on a domain loses it within tens of calls: `recent` is
 * the evidence discounted by TRACKER_RECENT_KEEP at each judged outcome,
 * `win` the evidence since the last change detected.  A change is
 * detected when, with at least 5 recent outcomes and 5 more in the
 * window, the recent rate is more than 3 standard errors from the
 * window's: the window then restarts from the recent evidence.  rank reads
 * the window. */
#define TRACKER_RECENT_KEEP 0.9 /* recent evidence keeps this much per observation */
#define TRACKER_CELL_MIN 3.0    /* window evidence for a cell to count in its task's sums */

struct tracker_cell {
        const char *domain; /* stored after the struct */
        const char *model;  /* the profile's */
        uint8_t task;       /* enum tracker_task */
        bool dirty;         /* internal: on the change list */
        uint64_t calls;
        uint64_t successes;
        uint64_t failures;
        struct tracker_evidence ev;
        double recent_alpha, recent_beta;
        double win_alpha, win_beta;
        uint64_t updated_at;
        /* internal */
        struct tracker_profile *profile;
        struct tracker_cell *hnext;
        struct tracker_cell *pnext; /* the profile's list */
        struct tracker_cell *dirty_next;
};

/* A pending trace's data.  Callers get const pointers and only read them;
 * the tracker keeps its own links beside it, out of their sight.  The
 * store fills one to load a trace (tracker_load_trace copies it). */
struct tracker_trace {
        char *id;
        char *model;
        char *reason;
        char *domain; /* NULL unless start named one */
        char *repo;   /* NULL unless a code trace named one */
        char **files; /* nfiles repository-relative paths */
        char *output; /* NULL until complete gives one */
        char *base;   /* hex oid of the repo's HEAD at start; NULL: none (no
                       * repo, or a repository with no commit yet) */
        uint64_t seq; /* start order, kept across restarts */
        uint64_t started_at;
        uint64_t completed_at; /* 0 until complete */
        uint32_t latency_ms;
        uint32_t input_tokens;
        uint32_t output_tokens;
        uint32_t uid;
        uint32_t nfiles;
        uint8_t task; /* enum tracker_task */
        bool completed;
};

#define TRACKER_ID_PREFIX_MAX 47 /* so that "<prefix>-<hex counter>" <= 64 bytes */

struct tracker_options {
        const char *id_prefix;    /* generated ids are "<prefix>-<hex counter>";
                                   * at most TRACKER_ID_PREFIX_MAX bytes */
        uint64_t max_models;      /* 0: no limit */
        uint64_t max_pending;     /* 0: no limit */
};

struct tracker;

struct tracker *tracker_new(const struct tracker_options *opts);
void tracker_free(struct tracker *t);

/* Limits may change while running (reload); what exists stays. */
void tracker_set_limits(struct tracker *t, uint64_t max_models, uint64_t max_pending);

struct tracker_start {
        const char *model;
        enum tracker_task task;
        const char *reason;   /* may be NULL: "" */
        const char *domain;   /* may be NULL: none */
        const char *trace_id; /* NULL: generate one */
        const char *repo;     /* may be NULL */
        const char *base;     /* HEAD's hex oid when repo is given; may be NULL */
        const char *const *files;
        uint32_t nfiles;
        uint32_t uid;
        uint64_t now;
};

/* Start a trace.  *id points into the trace (valid while it is pending).
 * A client id pending with the same model and task returns it unchanged. */
int tracker_start(struct tracker *t, const struct tracker_start *s, const char **id);

struct tracker_complete {
        const char *trace_id;
        uint32_t latency_ms;
        uint32_t input_tokens;
        uint32_t output_tokens;
        const char *output; /* may be NULL */
        uint32_t uid;
        uint64_t now;
};

int tracker_complete(struct tracker *t, const struct tracker_complete *c);
int tracker_fail(struct tracker *t, const char *trace_id, uint32_t uid, uint64_t now);

/* Who judged a trace.  Only the conversation is deferred on a code trace
 * with a repo and checked against the caller's uid; git and expiry are the
 * daemon's own judgements. */
enum tracker_source {
        TRACKER_SRC_CONVERSATION,
        TRACKER_SRC_GIT,
        TRACKER_SRC_EXPIRY,
};

struct tracker_result {
        const char *trace_id; /* valid until the next tracker call */
        enum tracker_kind kind;
        double confidence;    /* as scored (0.7c for an inferred accepted_with_edits) */
        bool has_quality;
        double quality;
        bool has_success;
        bool success;
        bool deferred; /* a code trace with a repo: git decides */
};

/* The outcome table of the contract: quality and success of a kind given
 * its confidence. */
void tracker_kind_score(enum tracker_kind kind, double confidence, struct tracker_result *r);

/* The single outcome form.  Fills *res on success. */
int tracker_outcome(struct tracker *t, const char *trace_id, enum tracker_kind kind,
                    double confidence, uint32_t uid, uint64_t now, struct tracker_result *res);

/* tracker_outcome with a source. */
int tracker_resolve(struct tracker *t, const char *trace_id, enum tracker_kind kind,
                    double confidence, uint32_t uid, uint64_t now, enum tracker_source src,
                    struct tracker_result *res);

struct tracker_action {
        const char *trace_id; /* "" is skipped but still "the next action" */
        bool success;
        double confidence;
        const char *output;
};

/* The seed's infer_outcomes_from_action_sequence for action i. */
void tracker_infer_action(const struct tracker_action *acts, size_t n, size_t i,
                          enum tracker_kind *kind, double *confidence);

typedef void (*tracker_result_cb)(void *data, const struct tracker_result *res);

/* The sequence form: infer each action's outcome and resolve the pending
 * ones in order; cb is called for each trace resolved (or deferred).  When
 * any named pending trace belongs to another uid, -EPERM and nothing
 * changes. */
int tracker_sequence(struct tracker *t, const struct tracker_action *acts, size_t n,
                     uint32_t uid, uint64_t now, tracker_result_cb cb, void *data);

/* Resolve as inconclusive the pending traces whose task's time to live
 * (ttl[task] seconds; 0: never) has passed, oldest first, at most max of
 * them; cb is called for each.  Returns how many expired. */
size_t tracker_expire(struct tracker *t, uint64_t now, const uint64_t ttl[TASK__COUNT],
                      size_t max, tracker_result_cb cb, void *data);

/* Remove a model's profile (its pending traces stay).  -ENOENT if none. */
int tracker_forget(struct tracker *t, const char *model);

/* Import a profile: a new model takes it as it is; an existing one is
 * replaced, or merged (counts add; EMAs and mean latencies weighted by
 * calls, or by judged outcomes when neither side has calls).  *created
 * tells which.  -ENOSPC past the model limit. */
int tracker_import(struct tracker *t, const struct tracker_profile *p, bool replace,
                   uint64_t now, bool *created);

/* Domain cells.  At most max_cells exist (0: no limit); past it a new cell
 * is not made, the observation counts at task level only, and
 * tracker_cells_refused counts it. */
void tracker_set_max_cells(struct tracker *t, uint64_t max_cells);
const struct tracker_cell *tracker_cell_get(const struct tracker *t, const char *model,
                                            enum tracker_task task, const char *domain);
/* The profile's cells, in no order. */
const struct tracker_cell *tracker_cell_first(const struct tracker_profile *p);
const struct tracker_cell *tracker_cell_next(const struct tracker_cell *c);
/* The logit of a cell's window, l = ln((a + 1/2) / (b + 1/2)), and its
 * sampling variance nu = 1 / (a + 1/2) + 1 / (b + 1/2) (a, b: win_alpha,
 * win_beta), always written.  True when the window holds at least
 * TRACKER_CELL_MIN, so that the cell counts in its task's sums. */
bool tracker_cell_logit(const struct tracker_cell *c, double *l, double *nu);

/* How many cells the profile has. */
size_t tracker_profile_cells(const struct tracker_profile *p);
/* The profile's cells (of one task, or all: task < 0) sorted by task name
 * then domain (bytewise) into out, which has room for
 * tracker_profile_cells(p).  Returns the count. */
size_t tracker_cells_sorted(const struct tracker_profile *p, int task,
                            const struct tracker_cell **out);
size_t tracker_cell_count(const struct tracker *t);
uint64_t tracker_cells_refused(const struct tracker *t);
/* Remove one cell.  -ENOENT if none. */
int tracker_forget_cell(struct tracker *t, const char *model, enum tracker_task task,
                        const char *domain);
/* Import a cell of an existing profile (-ENOENT without one): a new cell
 * takes src's numbers, an existing one is replaced or merged (counts and
 * evidence add).  -ENOSPC past the cell limit. */
int tracker_import_cell(struct tracker *t, const struct tracker_cell *src, bool replace,
                        uint64_t now, bool *created);

/* Reads. */
const struct tracker_profile *tracker_profile_get(const struct tracker *t, const char *model);
/* Every profile sorted by model id (strcmp order); *out is malloc'ed and
 * owned by the caller.  Returns the count or -ENOMEM. */
long tracker_profiles_sorted(const struct tracker *t, const struct tracker_profile ***out);
const struct tracker_trace *tracker_trace_get(const struct tracker *t, const char *id);
/* Pending traces oldest first: first, then next(prev). */
const struct tracker_trace *tracker_pending_first(const struct tracker *t);
const struct tracker_trace *tracker_pending_next(const struct tracker_trace *tr);
/* Make room for this many pending traces at once (before a load): the
 * table of traces is sized once instead of doubled as they come. */
void tracker_reserve(struct tracker *t, size_t traces);
/* The pending traces of one task, oldest first. */
const struct tracker_trace *tracker_task_first(const struct tracker *t, enum tracker_task task);
const struct tracker_trace *tracker_task_next(const struct tracker_trace *tr);
size_t tracker_profile_count(const struct tracker *t);
size_t tracker_pending_count(const struct tracker *t);
/* The bytes of a pending trace before its id, model, reason and domain
 * (which follow it in the same allocation): its data and the tracker's
 * links.  For the memory benchmark. */
size_t tracker_trace_bytes(void);

double tracker_success_rate(uint64_t successes, uint64_t failures);

/* Evidence faded to `now` under the tracker's half-life (a copy: reads
 * change nothing). */
void tracker_evidence_at(const struct tracker *t, const struct tracker_evidence *e, uint64_t now,
                         struct tracker_evidence *out);
/* Fade alpha, beta and judged from e->at to now by half_life seconds (0:
 * no fading), in place. */
void tracker_evidence_fade(struct tracker_evidence *e, uint64_t now, uint64_t half_life);
/* The posterior's mean and a 95% interval (normal approximation of
 * Beta(1 + alpha, 1 + beta), clamped to [0, 1]). */
void tracker_posterior(const struct tracker_evidence *e, double *mean, double *lo, double *hi);
/* Fading of old evidence; 0 (the default) keeps all evidence alike. */
void tracker_set_half_life(struct tracker *t, uint64_t seconds);
uint64_t tracker_half_life(const struct tracker *t);
/* The sketch bucket of a latency, and a percentile (0..1) of a sketch
 * (the geometric middle of its bucket; -1 when the sketch is empty). */
unsigned tracker_sketch_bucket(uint32_t latency_ms);
double tracker_sketch_percentile(const uint32_t *sketch, double p);
/* The model's latency sketch: its tasks' added up. */
void tracker_profile_sketch(const struct tracker_profile *p, uint32_t *out);
double tracker_profile_avg_latency(const struct tracker_profile *p);
/* fail_count > success_count + threshold. */
bool tracker_profile_degraded(const struct tracker_profile *p, uint64_t threshold);

/* Watching changes as they are made, for counters that live as long as
 * the process (daemon/rpc/metrics.c): each hook that is set is called once the
 * change is made, with the trace's model and task.  A call that fails, and
 * a conversation's outcome deferred to git, call none. */
struct tracker_observer {
        void (*complete)(void *data, const char *model, enum tracker_task task,
                         const struct tracker_complete *c);
        void (*fail)(void *data, const char *model, enum tracker_task task);
        void (*resolve)(void *data, const char *model, enum tracker_task task,
                        const struct tracker_result *r, enum tracker_source src);
        void *data;
};
/* o is copied; NULL: none (the default, so that loading counts nothing). */
void tracker_set_observer(struct tracker *t, const struct tracker_observer *o);
/* The degrade threshold degraded_since is kept for (the configured one;
 * TRACKER_DEGRADE_THRESHOLD until set).  Each change of a profile's counts
 * sets degraded_since to the change's time when the profile crosses into
 * degraded, and to 0 when it leaves, so that a replay of the same changes
 * under the same threshold gives the same times.  A new threshold
 * reconciles every profile at once: one no longer degraded is cleared, one
 * that now is takes its updated_at (the time of its last change: the
 * counts that make it degraded were all there by then).  Profiles whose
 * time changed are reported at the next collect, their updated_at kept.
 * Returns how many changed. */
#define TRACKER_DEGRADE_THRESHOLD 3
size_t tracker_set_degrade_threshold(struct tracker *t, uint64_t threshold);
uint64_t tracker_degrade_threshold(const struct tracker *t);

/* Changes for the store.  tracker_collect calls profile_cb for each profile
 * changed since the last collect (after profile_deleted for each model
 * forgotten), deleted_cb for each stored trace id that left the
 * pending set, then trace_cb for each pending trace that changed, and
 * forgets them.  (A trace that was resolved and started again with the same
 * id shows up in both, deletion first.)  Returns -ENOMEM when a deletion
 * was lost to an allocation failure: the caller must then write the whole
 * state (tracker_mark_all_changed). */
struct tracker_sink {
        void (*profile)(void *data, const struct tracker_profile *p);
        void (*deleted)(void *data, const char *trace_id);
        void (*trace)(void *data, const struct tracker_trace *tr);
        void *data;
        void (*profile_deleted)(void *data, const char *model); /* may be NULL */
        /* Cells changed, after the profiles; cells removed alone (forget of
         * one cell, an import that replaces a profile), before the
         * profiles.  A forgotten profile's cells go with it: no call. */
        void (*cell)(void *data, const struct tracker_cell *c);         /* may be NULL */
        void (*cell_deleted)(void *data, const char *model, enum tracker_task task,
                             const char *domain);                      /* may be NULL */
};
int tracker_collect(struct tracker *t, const struct tracker_sink *sink);
bool tracker_has_changes(const struct tracker *t);
/* Report every profile and pending trace at the next collect (after a
 * failed write, so that a full snapshot is written again). */
void tracker_mark_all_changed(struct tracker *t);

/* Loading from the store at start; loaded rows are not changes (except a
 * profile whose degraded_since the tracker's threshold corrects, as
 * tracker_set_degrade_threshold does).  The tracker copies what it needs. */
int tracker_load_profile(struct tracker *t, const struct tracker_profile *p);
/* A cell of a loaded profile (-ENOENT without one; -EINVAL twice). */
int tracker_load_cell(struct tracker *t, const struct tracker_cell *c);
int tracker_load_trace(struct tracker *t, const struct tracker_trace *tr);

#endif

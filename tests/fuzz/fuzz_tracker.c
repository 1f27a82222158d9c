/* fuzz_tracker.c - libFuzzer target: the pure tracker fed arbitrary
 * sequences of operations, its invariants checked after each one.
 *
 * The input is read as a program: one byte picks an operation (start,
 * complete, fail, outcome, an action sequence, collect, new limits, the
 * clock moving on, expiry, forget, import, or a reload: every profile and
 * pending trace copied into a fresh tracker through tracker_load_*, as the
 * store does at start), the
 * next bytes its arguments, drawn from small pools (4 models, 12 client
 * trace ids, the last generated ids, 3 uids including root) so that
 * operations meet the same traces again.
 *
 * After every operation:
 *   - a failed call changed nothing (profiles, the pending list);
 *   - counts never decrease, a profile or task entry once there stays, and
 *     each count of a model is the sum of its tasks';
 *   - every EMA, success rate and quality is in [0, 1];
 *   - the pending list walks (start order, seq increasing) to exactly
 *     tracker_pending_count traces, each found by its id;
 *   - a trace that was resolved (fail, outcome, sequence) is not pending
 *     until it is started again: never both pending and resolved;
 *   - domain cells (starts name one of 3 domains or none): each belongs to
 *     a profile that has its task, counts no more than the task does, the
 *     task's sums equal those recomputed from its cells, and the cell limit
 *     holds for new cells; forget may drop one cell, a reload loads them;
 *   - an operation that added a profile or a pending trace kept to the
 *     limits.
 * Only forget (the profile goes) and import with replace (the imported
 * counts stand) may lower a model's counts: the baseline starts again.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "tracker.h"

#define NMODELS 4
#define NCLIENT 12
#define NGEN 4
#define NIDS (NCLIENT + NGEN)

static const char *const models[NMODELS] = { "m0", "m1", "m2", "model/three:q4" };
static const uint32_t uids[3] = { 0, 1000, 1001 };
static const char *const domains[4] = { NULL, "law", "math", "art history" };
static const char *const outputs[] = { "", " ", "ok", "\xc2\xa0", "x y", "\xe3\x80\x80z", "\t\n" };
#define NOUTPUTS (sizeof(outputs) / sizeof(outputs[0]))

struct in {
        const uint8_t *p;
        size_t n;
};

static uint8_t next(struct in *in)
{
        if (in->n == 0)
                return 0;
        in->n--;
        return *in->p++;
}

/* What the checks remember between operations. */
struct state {
        struct tracker *t;
        char ids[NIDS][72];      /* client ids, then generated ones */
        bool resolved[NIDS];     /* resolved and not started again */
        unsigned ngen, reloads;
        uint64_t now;
        uint64_t max_models, max_pending, max_cells;
        struct tracker_profile prev[NMODELS];
        bool existed[NMODELS];
};

/* A digest of everything a failed call must leave alone. */
struct snap {
        struct tracker_profile p[NMODELS];
        bool exists[NMODELS];
        uint64_t pending_hash;
        size_t npending, nprofiles, ncells;
};

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
        const unsigned char *s = data;
        for (size_t i = 0; i < len; i++) {
                h ^= s[i];
                h *= 1099511628211ull;
        }
        return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
        return fnv(h, s ? s : "(null)", s ? strlen(s) + 1 : 7);
}

static void snap_take(const struct tracker *t, struct snap *s)
{
        memset(s, 0, sizeof(*s));
        for (int m = 0; m < NMODELS; m++) {
                const struct tracker_profile *p = tracker_profile_get(t, models[m]);
                s->exists[m] = p != NULL;
                if (p)
                        s->p[m] = *p;
        }
        uint64_t h = 1469598103934665603ull;
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                h = fnv_str(h, tr->id);
                h = fnv_str(h, tr->model);
                h = fnv_str(h, tr->reason);
                h = fnv_str(h, tr->repo);
                h = fnv_str(h, tr->output);
                uint64_t nums[] = { tr->seq, tr->started_at, tr->latency_ms, tr->input_tokens,
                                    tr->output_tokens, tr->uid, tr->nfiles, tr->task,
                                    tr->completed };
                h = fnv(h, nums, sizeof(nums));
                for (uint32_t i = 0; i < tr->nfiles; i++)
                        h = fnv_str(h, tr->files[i]);
        }
        s->pending_hash = h;
        s->npending = tracker_pending_count(t);
        s->nprofiles = tracker_profile_count(t);
        s->ncells = tracker_cell_count(t);
}

static bool profile_eq(const struct tracker_profile *a, const struct tracker_profile *b)
{
        if (strcmp(a->model, b->model) != 0 || a->total_calls != b->total_calls ||
            a->success_count != b->success_count || a->fail_count != b->fail_count ||
            a->total_latency_ms != b->total_latency_ms || a->ema_quality != b->ema_quality ||
            a->updated_at != b->updated_at)
                return false;
        for (int k = 0; k < TASK__COUNT; k++) {
                const struct tracker_task_stats *x = &a->tasks[k], *y = &b->tasks[k];
                if (x->present != y->present)
                        return false;
                if (x->present && (x->calls != y->calls || x->successes != y->successes ||
                                   x->failures != y->failures ||
                                   x->avg_latency_ms != y->avg_latency_ms ||
                                   x->ema_quality != y->ema_quality))
                        return false;
        }
        return true;
}

static void snap_same(const struct tracker *t, const struct snap *before)
{
        struct snap now;
        snap_take(t, &now);
        FUZZ_CHECK(now.npending == before->npending);
        FUZZ_CHECK(now.nprofiles == before->nprofiles);
        FUZZ_CHECK(now.ncells == before->ncells);
        FUZZ_CHECK(now.pending_hash == before->pending_hash);
        for (int m = 0; m < NMODELS; m++) {
                FUZZ_CHECK(now.exists[m] == before->exists[m]);
                if (now.exists[m])
                        FUZZ_CHECK(profile_eq(&now.p[m], &before->p[m]));
        }
}

static bool unit_ok(double d)
{
        return isfinite(d) && d >= 0.0 && d <= 1.0;
}

static bool near(double a, double b)
{
        return fabs(a - b) <= 1e-6 * (1.0 + fabs(b));
}

/* The cells of one profile: owned, bounded by their task, summed right. */
static size_t check_cells(const struct tracker *t, const struct tracker_profile *p)
{
        size_t n = 0;
        double c[TASK__COUNT] = { 0 }, s1[TASK__COUNT] = { 0 }, s2[TASK__COUNT] = { 0 };
        for (const struct tracker_cell *cell = tracker_cell_first(p); cell;
             cell = tracker_cell_next(cell)) {
                FUZZ_CHECK(++n <= tracker_cell_count(t));
                FUZZ_CHECK(cell->task < TASK__COUNT && cell->model == p->model);
                FUZZ_CHECK(tracker_cell_get(t, p->model, cell->task, cell->domain) == cell);
                const struct tracker_task_stats *ts = &p->tasks[cell->task];
                FUZZ_CHECK(ts->present);
                FUZZ_CHECK(cell->calls <= ts->calls && cell->successes <= ts->successes &&
                           cell->failures <= ts->failures);
                FUZZ_CHECK(cell->win_alpha >= 0 && cell->win_beta >= 0 &&
                           cell->recent_alpha >= 0 && cell->recent_beta >= 0);
                double l, nu;
                if (tracker_cell_logit(cell, &l, &nu)) {
                        FUZZ_CHECK(isfinite(l) && nu > 0);
                        c[cell->task] += 1;
                        s1[cell->task] += l;
                        s2[cell->task] += l * l - nu;
                }
        }
        for (int k = 0; k < TASK__COUNT; k++) {
                const struct tracker_task_stats *ts = &p->tasks[k];
                if (!ts->present)
                        continue;
                FUZZ_CHECK(near(ts->dom_cells, c[k]) && near(ts->dom_s1, s1[k]) &&
                           near(ts->dom_s2, s2[k]));
        }
        return n;
}

static void check(struct state *st, const struct snap *before)
{
        const struct tracker *t = st->t;

        /* Profiles. */
        size_t np = tracker_profile_count(t), seen = 0, cells = 0;
        FUZZ_CHECK(np >= before->nprofiles);
        if (np > before->nprofiles && st->max_models)
                FUZZ_CHECK(np <= st->max_models);
        for (int m = 0; m < NMODELS; m++) {
                const struct tracker_profile *p = tracker_profile_get(t, models[m]);
                const struct tracker_profile *o = &st->prev[m];
                if (!p) {
                        FUZZ_CHECK(!st->existed[m]);
                        continue;
                }
                seen++;
                FUZZ_CHECK(strcmp(p->model, models[m]) == 0);
                cells += check_cells(t, p);
                if (st->existed[m]) {
                        FUZZ_CHECK(p->total_calls >= o->total_calls);
                        FUZZ_CHECK(p->success_count >= o->success_count);
                        FUZZ_CHECK(p->fail_count >= o->fail_count);
                        FUZZ_CHECK(p->total_latency_ms >= o->total_latency_ms);
                        FUZZ_CHECK(p->updated_at >= o->updated_at);
                }
                FUZZ_CHECK(p->updated_at <= st->now);
                FUZZ_CHECK(unit_ok(p->ema_quality));
                FUZZ_CHECK(unit_ok(tracker_success_rate(p->success_count, p->fail_count)));
                double avg = tracker_profile_avg_latency(p);
                FUZZ_CHECK(isfinite(avg) && avg >= 0.0 && avg <= 65535.0);
                uint64_t calls = 0, succ = 0, fail = 0;
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *ts = &p->tasks[k];
                        if (!ts->present) {
                                FUZZ_CHECK(!st->existed[m] || !o->tasks[k].present);
                                continue;
                        }
                        if (st->existed[m] && o->tasks[k].present) {
                                FUZZ_CHECK(ts->calls >= o->tasks[k].calls);
                                FUZZ_CHECK(ts->successes >= o->tasks[k].successes);
                                FUZZ_CHECK(ts->failures >= o->tasks[k].failures);
                        }
                        FUZZ_CHECK(unit_ok(ts->ema_quality));
                        FUZZ_CHECK(unit_ok(tracker_success_rate(ts->successes, ts->failures)));
                        FUZZ_CHECK(isfinite(ts->avg_latency_ms) && ts->avg_latency_ms >= 0.0 &&
                                   ts->avg_latency_ms <= 65535.0);
                        FUZZ_CHECK(ts->calls > 0 || ts->avg_latency_ms == 0.0);
                        calls += ts->calls;
                        succ += ts->successes;
                        fail += ts->failures;
                }
                FUZZ_CHECK(calls == p->total_calls);
                FUZZ_CHECK(succ == p->success_count);
                FUZZ_CHECK(fail == p->fail_count);
                st->prev[m] = *p;
                st->prev[m].model = (char *)models[m];
                st->existed[m] = true;
        }
        FUZZ_CHECK(seen == np); /* no profile of a model nobody named */
        FUZZ_CHECK(cells == tracker_cell_count(t));
        if (cells > before->ncells && st->max_cells)
                FUZZ_CHECK(cells <= st->max_cells);

        /* Pending traces. */
        size_t n = 0, count = tracker_pending_count(t);
        uint64_t seq = 0;
        FUZZ_CHECK(count <= before->npending + 1);
        if (count > before->npending && st->max_pending)
                FUZZ_CHECK(count <= st->max_pending);
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                FUZZ_CHECK(++n <= count); /* no cycle, no stray */
                FUZZ_CHECK(tracker_trace_get(t, tr->id) == tr);
                FUZZ_CHECK(tr->seq > seq);
                seq = tr->seq;
                FUZZ_CHECK(tr->task < TASK__COUNT);
                FUZZ_CHECK(tr->started_at <= st->now);
                FUZZ_CHECK(tr->completed || (tr->latency_ms == 0 && !tr->output));
                FUZZ_CHECK(strlen(tr->id) >= 1 && strlen(tr->id) <= 128);
        }
        FUZZ_CHECK(n == count);

        /* Never both pending and resolved. */
        for (int i = 0; i < NIDS; i++)
                if (st->resolved[i] && st->ids[i][0])
                        FUZZ_CHECK(tracker_trace_get(t, st->ids[i]) == NULL);
}

static int id_index(const struct state *st, const char *id)
{
        for (int i = 0; i < NIDS; i++)
                if (st->ids[i][0] && strcmp(st->ids[i], id) == 0)
                        return i;
        return -1;
}

static void mark(struct state *st, const char *id, bool resolved)
{
        /* Generated ids may sit in two slots: mark every one. */
        for (int i = 0; i < NIDS; i++)
                if (st->ids[i][0] && strcmp(st->ids[i], id) == 0)
                        st->resolved[i] = resolved;
}

/* ---- the sequence form's callback -------------------------------------- */

struct seq_log {
        struct state *st;
        size_t n;
        char id[8][72];
        bool deferred[8];
};

static void seq_cb(void *data, const struct tracker_result *r)
{
        struct seq_log *log = data;
        FUZZ_CHECK(log->n < 8);
        FUZZ_CHECK(r->kind < KIND__COUNT);
        FUZZ_CHECK(!r->has_quality || unit_ok(r->quality));
        FUZZ_CHECK(strlen(r->trace_id) < sizeof(log->id[0]));
        strcpy(log->id[log->n], r->trace_id);
        log->deferred[log->n] = r->deferred;
        log->n++;
}

/* ---- collect's sink ---------------------------------------------------- */

struct sink_log {
        const struct tracker *t;
        size_t calls;
};

static void sink_profile(void *d, const struct tracker_profile *p)
{
        struct sink_log *s = d;
        FUZZ_CHECK(tracker_profile_get(s->t, p->model) == p);
        s->calls++;
}

static void sink_deleted(void *d, const char *id)
{
        struct sink_log *s = d;
        FUZZ_CHECK(id && id[0]);
        s->calls++;
}

static void sink_profile_deleted(void *d, const char *model)
{
        struct sink_log *s = d;
        FUZZ_CHECK(model && model[0]); /* (it may be back since: reported after) */
        s->calls++;
}

static void sink_trace(void *d, const struct tracker_trace *tr)
{
        struct sink_log *s = d;
        FUZZ_CHECK(tracker_trace_get(s->t, tr->id) == tr);
        s->calls++;
}

/* ---- reload ------------------------------------------------------------ */

/* Copy the state into a fresh tracker as the store's load does, check that
 * it reads back the same, and carry on with the copy. */
static void reload(struct state *st)
{
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "r%u", ++st->reloads);
        struct tracker_options o = {
                .id_prefix = prefix, .max_models = st->max_models, .max_pending = st->max_pending,
        };
        struct tracker *t2 = tracker_new(&o);
        FUZZ_CHECK(t2);
        const struct tracker_profile **all = NULL;
        long n = tracker_profiles_sorted(st->t, &all);
        FUZZ_CHECK(n >= 0);
        for (long i = 0; i < n; i++) {
                if (i > 0)
                        FUZZ_CHECK(strcmp(all[i - 1]->model, all[i]->model) < 0);
                FUZZ_CHECK(tracker_load_profile(t2, all[i]) == 0);
        }
        for (long i = 0; i < n; i++)
                for (const struct tracker_cell *c = tracker_cell_first(all[i]); c;
                     c = tracker_cell_next(c))
                        FUZZ_CHECK(tracker_load_cell(t2, c) == 0);
        free(all);
        tracker_set_max_cells(t2, st->max_cells);
        for (const struct tracker_trace *tr = tracker_pending_first(st->t); tr;
             tr = tracker_pending_next(tr))
                FUZZ_CHECK(tracker_load_trace(t2, tr) == 0);
        struct snap a, b;
        snap_take(st->t, &a);
        snap_take(t2, &b);
        FUZZ_CHECK(a.npending == b.npending && a.nprofiles == b.nprofiles && a.ncells == b.ncells);
        FUZZ_CHECK(a.pending_hash == b.pending_hash);
        for (int m = 0; m < NMODELS; m++) {
                FUZZ_CHECK(a.exists[m] == b.exists[m]);
                if (a.exists[m])
                        FUZZ_CHECK(profile_eq(&a.p[m], &b.p[m]));
        }
        FUZZ_CHECK(!tracker_has_changes(t2)); /* loaded rows are not changes */
        tracker_free(st->t);
        st->t = t2;
}

/* ---- operations -------------------------------------------------------- */

static const char *pick_id(struct state *st, struct in *in)
{
        const char *id = st->ids[next(in) % NIDS];
        return id[0] ? id : st->ids[0];
}

static void op_start(struct state *st, struct in *in)
{
        uint8_t b = next(in);
        int slot = next(in) % (NIDS + 4); /* past NIDS: a generated id */
        const char *files[2] = { "a.c", "dir/b.h" };
        bool code_repo = (b & 0x80) != 0;
        uint8_t u = next(in);
        struct tracker_start s = {
                .model = models[b % NMODELS],
                .task = code_repo ? TASK_CODE : (enum tracker_task)((b >> 2) % TASK__COUNT),
                .reason = (b & 0x40) ? "a reason" : NULL,
                .trace_id = slot < NIDS && st->ids[slot][0] ? st->ids[slot] : NULL,
                .repo = code_repo ? "/srv/repo" : NULL,
                .files = code_repo ? files : NULL,
                .nfiles = code_repo ? (b >> 5) % 3 : 0,
                .uid = uids[u % 3],
                .domain = domains[(u / 3) % 4],
                .now = st->now,
        };
        const struct tracker_trace *old = s.trace_id ? tracker_trace_get(st->t, s.trace_id) : NULL;
        struct snap before;
        snap_take(st->t, &before);
        const char *id = NULL;
        int rc = tracker_start(st->t, &s, &id);
        if (rc < 0) {
                FUZZ_CHECK(rc == -EEXIST || rc == -EPERM || rc == -ENOSPC);
                FUZZ_CHECK(rc != -EEXIST || old);
                FUZZ_CHECK(rc != -EPERM || (old && s.uid != 0));
                snap_same(st->t, &before);
                check(st, &before);
                return;
        }
        const struct tracker_trace *tr = tracker_trace_get(st->t, id);
        FUZZ_CHECK(tr && tr->id == id);
        FUZZ_CHECK(strcmp(tr->model, s.model) == 0 && tr->task == s.task);
        if (old) {
                FUZZ_CHECK(tr == old);
                snap_same(st->t, &before); /* the same start again changes nothing */
        } else {
                FUZZ_CHECK(tr->uid == s.uid && !tr->completed && tr->started_at == st->now);
                FUZZ_CHECK(tracker_pending_count(st->t) == before.npending + 1);
        }
        if (s.trace_id) {
                FUZZ_CHECK(strcmp(id, s.trace_id) == 0);
        } else {
                FUZZ_CHECK(strlen(id) <= 64);
                FUZZ_CHECK(id_index(st, id) < 0); /* generated ids are new */
                snprintf(st->ids[NCLIENT + st->ngen++ % NGEN], sizeof(st->ids[0]), "%s", id);
        }
        mark(st, id, false);
        check(st, &before);
}

static void op_complete(struct state *st, struct in *in)
{
        const char *id = pick_id(st, in);
        uint32_t lat = (uint32_t)next(in) << 8 | next(in);
        uint8_t b = next(in);
        struct tracker_complete c = {
                .trace_id = id,
                .latency_ms = lat,
                .input_tokens = b,
                .output_tokens = (uint32_t)b * 1000u,
                .output = (b & 1) ? outputs[(b >> 1) % NOUTPUTS] : NULL,
                .uid = uids[next(in) % 3],
                .now = st->now,
        };
        struct snap before;
        snap_take(st->t, &before);
        int rc = tracker_complete(st->t, &c);
        if (rc < 0) {
                FUZZ_CHECK(rc == -ENOENT || rc == -EPERM || rc == -EALREADY || rc == -ENOSPC);
                snap_same(st->t, &before);
        } else {
                const struct tracker_trace *tr = tracker_trace_get(st->t, id);
                FUZZ_CHECK(tr && tr->completed && tr->latency_ms == lat);
                FUZZ_CHECK(tracker_profile_get(st->t, tr->model));
        }
        check(st, &before);
}

static void op_fail(struct state *st, struct in *in)
{
        char id[72];
        snprintf(id, sizeof(id), "%s", pick_id(st, in));
        uint32_t uid = uids[next(in) % 3];
        struct snap before;
        snap_take(st->t, &before);
        int rc = tracker_fail(st->t, id, uid, st->now);
        if (rc < 0) {
                FUZZ_CHECK(rc == -ENOENT || rc == -EPERM || rc == -ENOSPC);
                snap_same(st->t, &before);
        } else {
                FUZZ_CHECK(!tracker_trace_get(st->t, id));
                mark(st, id, true);
        }
        check(st, &before);
}

static void op_outcome(struct state *st, struct in *in)
{
        char id[72];
        snprintf(id, sizeof(id), "%s", pick_id(st, in));
        enum tracker_kind kind = (enum tracker_kind)(next(in) % KIND__COUNT);
        double conf = next(in) / 255.0;
        uint32_t uid = uids[next(in) % 3];
        const struct tracker_trace *tr = tracker_trace_get(st->t, id);
        bool repo = tr && tr->repo;
        struct tracker_result res;
        struct snap before;
        snap_take(st->t, &before);
        int rc = tracker_outcome(st->t, id, kind, conf, uid, st->now, &res);
        if (rc < 0) {
                FUZZ_CHECK(rc == -ENOENT || rc == -EPERM || rc == -ENOSPC);
                snap_same(st->t, &before);
        } else {
                FUZZ_CHECK(res.kind == kind);
                FUZZ_CHECK(strcmp(res.trace_id, id) == 0);
                FUZZ_CHECK(!res.has_quality || unit_ok(res.quality));
                FUZZ_CHECK(res.deferred == repo);
                FUZZ_CHECK(!repo == !tracker_trace_get(st->t, id));
                if (!repo)
                        mark(st, id, true);
        }
        check(st, &before);
}

static void op_sequence(struct state *st, struct in *in)
{
        struct tracker_action acts[7];
        char ids[7][72];
        size_t n = next(in) % 8;
        for (size_t a = 0; a < n; a++) {
                uint8_t b = next(in);
                snprintf(ids[a], sizeof(ids[a]), "%s", (b & 7) ? pick_id(st, in) : "");
                acts[a].trace_id = ids[a];
                acts[a].success = (b & 0x18) != 0;
                acts[a].confidence = next(in) / 255.0;
                acts[a].output = outputs[(b >> 5) % NOUTPUTS];
        }
        uint32_t uid = uids[next(in) % 3];
        struct seq_log log = { .st = st };
        struct snap before;
        snap_take(st->t, &before);
        int rc = tracker_sequence(st->t, acts, n, uid, st->now, seq_cb, &log);
        FUZZ_CHECK(log.n <= n);
        if (rc < 0) {
                FUZZ_CHECK(rc == -EPERM || rc == -ENOSPC);
                FUZZ_CHECK(log.n == 0);
                snap_same(st->t, &before);
        } else {
                for (size_t i = 0; i < log.n; i++) {
                        bool pending = tracker_trace_get(st->t, log.id[i]) != NULL;
                        FUZZ_CHECK(log.deferred[i] == pending);
                        if (!pending)
                                mark(st, log.id[i], true);
                }
        }
        check(st, &before);
}

static void op_collect(struct state *st)
{
        struct sink_log s = { .t = st->t };
        struct tracker_sink sink = {
                .profile = sink_profile, .deleted = sink_deleted, .trace = sink_trace, .data = &s,
                .profile_deleted = sink_profile_deleted,
        };
        bool changes = tracker_has_changes(st->t);
        struct snap before;
        snap_take(st->t, &before);
        FUZZ_CHECK(tracker_collect(st->t, &sink) == 0);
        FUZZ_CHECK(!tracker_has_changes(st->t));
        FUZZ_CHECK(s.calls > 0 || !changes);
        size_t once = s.calls;
        FUZZ_CHECK(tracker_collect(st->t, &sink) == 0);
        FUZZ_CHECK(s.calls == once); /* reported once only */
        snap_same(st->t, &before);  /* collecting changes no data */
        check(st, &before);
}

struct expire_log {
        struct state *st;
        size_t n;
};

static void expire_cb(void *data, const struct tracker_result *r)
{
        struct expire_log *log = data;
        FUZZ_CHECK(r->kind == KIND_INCONCLUSIVE && !r->has_quality && !r->has_success);
        FUZZ_CHECK(!r->deferred);
        FUZZ_CHECK(!tracker_trace_get(log->st->t, r->trace_id));
        mark(log->st, r->trace_id, true);
        log->n++;
}

static void op_expire(struct state *st, struct in *in)
{
        uint64_t ttl[TASK__COUNT];
        for (int k = 0; k < TASK__COUNT; k++)
                ttl[k] = next(in) % 8; /* 0: never */
        size_t max = next(in) % 6;
        struct expire_log log = { .st = st };
        struct snap before;
        snap_take(st->t, &before);
        size_t n = tracker_expire(st->t, st->now, ttl, max, expire_cb, &log);
        FUZZ_CHECK(n == log.n && n <= max);
        FUZZ_CHECK(tracker_pending_count(st->t) == before.npending - n);
        /* What is left is not due, unless the model limit held it back. */
        if (n < max && !st->max_models)
                for (const struct tracker_trace *tr = tracker_pending_first(st->t); tr;
                     tr = tracker_pending_next(tr))
                        FUZZ_CHECK(!ttl[tr->task] || tr->started_at + ttl[tr->task] > st->now);
        check(st, &before);
}

static void op_forget(struct state *st, struct in *in)
{
        uint8_t b = next(in);
        int m = b % NMODELS;
        struct snap before;
        snap_take(st->t, &before);
        if (b & 0x80) { /* one cell */
                enum tracker_task k = (enum tracker_task)((b >> 2) % TASK__COUNT);
                const char *d = domains[1 + (b >> 5) % 3];
                bool had = tracker_cell_get(st->t, models[m], k, d) != NULL;
                int rc = tracker_forget_cell(st->t, models[m], k, d);
                FUZZ_CHECK(rc == (had ? 0 : -ENOENT));
                FUZZ_CHECK(!tracker_cell_get(st->t, models[m], k, d));
                FUZZ_CHECK(tracker_cell_count(st->t) == before.ncells - had);
                before.ncells -= had;
                check(st, &before);
                return;
        }
        int rc = tracker_forget(st->t, models[m]);
        if (rc < 0) {
                FUZZ_CHECK(rc == -ENOENT && !before.exists[m]);
                snap_same(st->t, &before);
        } else {
                FUZZ_CHECK(before.exists[m] && !tracker_profile_get(st->t, models[m]));
                FUZZ_CHECK(tracker_profile_count(st->t) == before.nprofiles - 1);
                FUZZ_CHECK(tracker_pending_count(st->t) == before.npending); /* traces stay */
                before.ncells = tracker_cell_count(st->t); /* its cells went with it */
                st->existed[m] = false;
                before.nprofiles--;
        }
        check(st, &before);
}

/* A consistent profile (each count of the model the sum of its tasks'),
 * imported as it is or merged. */
static void op_import(struct state *st, struct in *in)
{
        struct tracker_profile src;
        memset(&src, 0, sizeof(src));
        int m = next(in) % NMODELS;
        uint8_t b = next(in);
        bool replace = b & 1;
        src.model = (char *)models[m];
        src.ema_quality = next(in) / 255.0;
        src.updated_at = st->now;
        for (int k = 0; k < TASK__COUNT; k++) {
                if (!(b & (2u << k)))
                        continue;
                struct tracker_task_stats *ts = &src.tasks[k];
                ts->present = true;
                ts->calls = next(in) % 16;
                ts->successes = next(in) % 16;
                ts->failures = next(in) % 16;
                ts->avg_latency_ms = ts->calls ? next(in) * 100.0 : 0.0;
                ts->ema_quality = next(in) / 255.0;
                src.total_calls += ts->calls;
                src.success_count += ts->successes;
                src.fail_count += ts->failures;
                src.total_latency_ms += (uint64_t)(ts->avg_latency_ms * (double)ts->calls);
        }
        struct snap before;
        snap_take(st->t, &before);
        bool created = false;
        int rc = tracker_import(st->t, &src, replace, st->now, &created);
        if (rc < 0) {
                FUZZ_CHECK(rc == -ENOSPC && !before.exists[m]);
                snap_same(st->t, &before);
        } else {
                const struct tracker_profile *p = tracker_profile_get(st->t, models[m]);
                FUZZ_CHECK(p && created == !before.exists[m]);
                if (replace || created) {
                        FUZZ_CHECK(p->total_calls == src.total_calls);
                        FUZZ_CHECK(p->success_count == src.success_count);
                        FUZZ_CHECK(p->fail_count == src.fail_count);
                        st->existed[m] = false; /* the imported counts stand */
                } else {
                        FUZZ_CHECK(p->total_calls == before.p[m].total_calls + src.total_calls);
                        FUZZ_CHECK(p->success_count ==
                                   before.p[m].success_count + src.success_count);
                }
        }
        check(st, &before);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct in in = { data, size };
        static struct state st;
        memset(&st, 0, sizeof(st));
        st.max_models = next(&in) % 6;   /* 0: no limit */
        st.max_pending = next(&in) % 12;
        st.now = 1;
        struct tracker_options o = {
                .id_prefix = "fz", .max_models = st.max_models, .max_pending = st.max_pending,
        };
        st.t = tracker_new(&o);
        FUZZ_CHECK(st.t);
        for (int i = 0; i < NCLIENT; i++)
                snprintf(st.ids[i], sizeof(st.ids[i]), "c%d", i);

        while (in.n > 0) {
                uint8_t op = next(&in);
                switch (op % 16) {
                case 0: case 1: case 2: case 3:
                        op_start(&st, &in);
                        break;
                case 4: case 5:
                        op_complete(&st, &in);
                        break;
                case 6: case 7:
                        op_fail(&st, &in);
                        break;
                case 8: case 9: case 10:
                        op_outcome(&st, &in);
                        break;
                case 11: case 12:
                        op_sequence(&st, &in);
                        break;
                case 13:
                        op_collect(&st);
                        break;
                case 14: {
                        /* New limits (a reload of the configuration): what
                         * exists stays. */
                        uint8_t b = next(&in);
                        st.max_models = b % 6;
                        st.max_pending = (b >> 3) % 12;
                        st.max_cells = (b >> 7) ? next(&in) % 8 : 0;
                        tracker_set_limits(st.t, st.max_models, st.max_pending);
                        tracker_set_max_cells(st.t, st.max_cells);
                        break;
                }
                default:
                        /* 0x0f..0x7f: the clock; 0x8f: reload, 0x9f: expiry,
                         * 0xaf: forget, 0xbf: import, 0xcf..0xff: reload. */
                        if (!(op & 0x80))
                                st.now += next(&in);
                        else if (op == 0x9f)
                                op_expire(&st, &in);
                        else if (op == 0xaf)
                                op_forget(&st, &in);
                        else if (op == 0xbf)
                                op_import(&st, &in);
                        else
                                reload(&st);
                        break;
                }
        }
        tracker_free(st.t);
        return 0;
}

/* test_journal.c - daemon/core/journal.c: every op is encoded, then applied to a
 * fresh tracker, and must leave the state the same calls made directly
 * left (profiles, tasks, domain cells, pending traces; floats bit for bit,
 * compared through %a).  Entries back to back in one row apply in order.
 * Malformed entries (not msgpack, not a map, unknown op, missing or
 * mistyped keys, a bad task or kind) return a negative errno and an error
 * message, and change nothing.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "proto.h"
#include "tracker.h"

#define BASE_OID "0123456789abcdef0123456789abcdef01234567"

static struct tracker *new_tracker(void)
{
        struct tracker_options o = { .id_prefix = "t-journal" };
        struct tracker *t = tracker_new(&o);
        ck_assert_ptr_nonnull(t);
        return t;
}

static void dump_evidence(FILE *f, const struct tracker_evidence *e)
{
        fprintf(f, " ev %a %a %a %" PRIu64 " %" PRIu64 " %" PRIu64, e->alpha, e->beta, e->judged,
                e->at, e->input_tokens, e->output_tokens);
}

static void dump_cell(FILE *f, const struct tracker_cell *c)
{
        fprintf(f, "    C %s %s %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %a %a %a %" PRIu64,
                c->model, c->domain, c->task, c->calls, c->successes, c->failures,
                c->recent_alpha, c->recent_beta, c->win_alpha, c->win_beta, c->updated_at);
        dump_evidence(f, &c->ev);
        fputc('\n', f);
}

/* The whole visible state as text (malloc'ed); %a prints a double's bits. */
static char *dump(const struct tracker *t)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        ck_assert_ptr_nonnull(f);
        const struct tracker_profile **v = NULL;
        long n = tracker_profiles_sorted(t, &v);
        ck_assert_int_ge(n, 0);
        fprintf(f, "profiles %zu cells %zu pending %zu\n", tracker_profile_count(t),
                tracker_cell_count(t), tracker_pending_count(t));
        for (long i = 0; i < n; i++) {
                const struct tracker_profile *p = v[i];
                fprintf(f, "P %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %" PRIu64,
                        p->model, p->total_calls, p->success_count, p->fail_count,
                        p->total_latency_ms, p->ema_quality, p->updated_at);
                dump_evidence(f, &p->ev);
                fputc('\n', f);
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *ts = &p->tasks[k];
                        if (!ts->present)
                                continue;
                        fprintf(f, "  T %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %a %a %a %a",
                                tracker_task_name((enum tracker_task)k), ts->calls,
                                ts->successes, ts->failures, ts->avg_latency_ms,
                                ts->ema_quality, ts->dom_cells, ts->dom_s1, ts->dom_s2);
                        dump_evidence(f, &ts->ev);
                        fprintf(f, " sketch");
                        for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                                if (ts->latency[b])
                                        fprintf(f, " %d:%u", b, ts->latency[b]);
                        fputc('\n', f);
                }
                size_t nc = tracker_profile_cells(p);
                const struct tracker_cell **cv = calloc(nc ? nc : 1, sizeof(*cv));
                ck_assert_ptr_nonnull(cv);
                ck_assert_uint_eq(tracker_cells_sorted(p, -1, cv), nc);
                for (size_t k = 0; k < nc; k++) {
                        dump_cell(f, cv[k]);
                        /* The lookup finds the very cell the list holds. */
                        ck_assert_ptr_eq(tracker_cell_get(t, p->model,
                                                          (enum tracker_task)cv[k]->task,
                                                          cv[k]->domain),
                                         cv[k]);
                }
                free(cv);
        }
        free(v);
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                fprintf(f, "R %s %s %s [%s] %s %s %s %" PRIu64 " %" PRIu64 " %" PRIu64
                        " %u %u %u %u %u %d files",
                        tr->id, tr->model, tr->reason, tr->domain ? tr->domain : "-",
                        tr->repo ? tr->repo : "-", tr->base ? tr->base : "-",
                        tr->output ? tr->output : "-", tr->seq, tr->started_at,
                        tr->completed_at, tr->latency_ms, tr->input_tokens, tr->output_tokens,
                        tr->uid, tr->task, tr->completed);
                for (uint32_t i = 0; i < tr->nfiles; i++)
                        fprintf(f, " %s", tr->files[i]);
                fputc('\n', f);
        }
        fclose(f);
        return buf;
}

static void assert_same(const struct tracker *a, const struct tracker *b)
{
        char *x = dump(a), *y = dump(b);
        ck_assert_msg(strcmp(x, y) == 0, "direct:\n%s\njournal:\n%s", x, y);
        free(x);
        free(y);
}

/* ---- the pair: a tracker driven directly, one by its journal ---------- */

struct pair {
        struct tracker *direct;  /* the live daemon's tracker */
        struct tracker *replay;  /* each entry applied as it is recorded */
        msgpack_sbuffer row;     /* every entry back to back, as a journal row */
        unsigned entries;
};

static void pair_init(struct pair *p)
{
        p->direct = new_tracker();
        p->replay = new_tracker();
        msgpack_sbuffer_init(&p->row);
        p->entries = 0;
}

static void pair_free(struct pair *p)
{
        tracker_free(p->direct);
        tracker_free(p->replay);
        msgpack_sbuffer_destroy(&p->row);
}

/* Record e as the daemon does after a change: encode, apply to the
 * replaying tracker, and compare. */
static void record(struct pair *p, const struct journal_entry *e)
{
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        ck_assert_int_eq(journal_encode(e, &sb), 0);
        ck_assert_uint_gt(sb.size, 0);
        ck_assert_int_eq(journal_encode(e, &p->row), 0);
        p->entries++;
        size_t off = 0;
        char err[256] = "";
        int r = journal_apply(p->replay, sb.data, sb.size, &off, err, sizeof(err));
        ck_assert_msg(r == 0, "%s: %d %s", journal_op_name(e->op), r, err);
        ck_assert_uint_eq(off, sb.size);
        msgpack_sbuffer_destroy(&sb);
        assert_same(p->direct, p->replay);
}

/* start: the generated id is what the journal holds.  Returns a copy of
 * the id that outlives the trace (one of a few rotating buffers). */
static const char *p_start(struct pair *p, const struct tracker_start *s, const char *reason_in_journal)
{
        static char ids[8][64];
        static int k;
        const char *id = NULL;
        ck_assert_int_eq(tracker_start(p->direct, s, &id), 0);
        char *copy = ids[k++ % 8];
        snprintf(copy, sizeof(ids[0]), "%s", id);
        struct journal_entry e = {
                .op = JOURNAL_START, .at = s->now, .uid = s->uid, .trace_id = copy,
                .model = s->model, .task = s->task, .reason = reason_in_journal,
                .domain = s->domain, .repo = s->repo, .files = s->files, .nfiles = s->nfiles,
                .base = s->base,
        };
        record(p, &e);
        return copy;
}

static void p_complete(struct pair *p, const char *id, uint32_t lat, uint32_t in, uint32_t out,
                       const char *output, uint32_t uid, uint64_t now)
{
        struct tracker_complete c = { .trace_id = id, .latency_ms = lat, .input_tokens = in,
                                      .output_tokens = out, .output = output, .uid = uid,
                                      .now = now };
        ck_assert_int_eq(tracker_complete(p->direct, &c), 0);
        struct journal_entry e = { .op = JOURNAL_COMPLETE, .at = now, .uid = uid, .trace_id = id,
                                   .latency_ms = lat, .input_tokens = in, .output_tokens = out,
                                   .output = output };
        record(p, &e);
}

static void p_outcome(struct pair *p, const char *id, enum tracker_kind kind, double conf,
                      uint32_t uid, uint64_t now, enum tracker_source src, bool want_deferred)
{
        struct tracker_result res;
        char idcopy[80];
        snprintf(idcopy, sizeof(idcopy), "%s", id);
        ck_assert_int_eq(tracker_resolve(p->direct, idcopy, kind, conf, uid, now, src, &res), 0);
        ck_assert_int_eq(res.deferred, want_deferred);
        struct journal_entry e = { .op = JOURNAL_OUTCOME, .at = now, .uid = uid,
                                   .trace_id = idcopy, .kind = res.kind,
                                   .confidence = res.confidence, .source = src,
                                   .deferred = res.deferred,
                                   .evidence = src == TRACKER_SRC_GIT ? "3 of 3 lines" : NULL };
        record(p, &e);
}

/* ---- every op ---------------------------------------------------------- */

START_TEST(test_every_op_replays_the_same_state)
{
        struct pair p;
        pair_init(&p);
        static const char *const files[] = { "src/a.c", "include/b.h", "" };

        /* start without a domain, generated id */
        const char *gen = p_start(&p, &(struct tracker_start){ .model = "m1", .task = TASK_GENERATE,
                                                               .reason = "cheapest", .uid = 1000,
                                                               .now = 100 },
                                  "cheapest");
        ck_assert_str_eq(gen, "t-journal-1");
        /* start with a domain and a client id, no reason */
        const char *dom = p_start(&p, &(struct tracker_start){ .model = "m1",
                                                               .task = TASK_REASONING,
                                                               .domain = "math",
                                                               .trace_id = "router:7",
                                                               .uid = 1001, .now = 101 },
                                  NULL);
        /* a code trace with a repo, files and a base */
        const char *code = p_start(&p, &(struct tracker_start){ .model = "m2", .task = TASK_CODE,
                                                                .reason = "code", .domain = "c",
                                                                .repo = "/srv/src/x",
                                                                .files = files, .nfiles = 3,
                                                                .base = BASE_OID, .uid = 1000,
                                                                .now = 102 },
                                   "code");
        /* a repo without a base (a repository with no commit yet) */
        const char *code2 = p_start(&p, &(struct tracker_start){ .model = "m2", .task = TASK_CODE,
                                                                 .reason = "r",
                                                                 .repo = "/srv/src/y",
                                                                 .uid = 1000, .now = 103 },
                                    "r");
        ck_assert_uint_eq(tracker_pending_count(p.replay), 4);
        ck_assert_str_eq(tracker_trace_get(p.replay, "router:7")->domain, "math");
        ck_assert_uint_eq(tracker_trace_get(p.replay, code)->nfiles, 3);
        ck_assert_str_eq(tracker_trace_get(p.replay, code)->base, BASE_OID);

        /* complete, with an output and without */
        p_complete(&p, gen, 812, 900, 240, "line one\nline two", 1000, 110);
        p_complete(&p, dom, 1500, 10, 20, NULL, 1001, 111);
        p_complete(&p, code, 333, 1, 2, "int main(void)\n{\n}\n", 1000, 112);
        p_complete(&p, code2, 7, 0, 0, "x", 1000, 113);
        ck_assert_str_eq(tracker_trace_get(p.replay, gen)->output, "line one\nline two");

        /* outcome from the conversation: an inferred confidence that is not
         * a round number */
        p_outcome(&p, gen, KIND_ACCEPTED_WITH_EDITS, 0.7 * 0.9, 1000, 120,
                  TRACKER_SRC_CONVERSATION, false);
        p_outcome(&p, dom, KIND_REJECTED, 0.6, 1001, 121, TRACKER_SRC_CONVERSATION, false);
        const struct tracker_profile *m1 = tracker_profile_get(p.replay, "m1");
        ck_assert_ptr_nonnull(m1);
        ck_assert_uint_eq(m1->total_calls, 2);
        ck_assert_ptr_nonnull(tracker_cell_get(p.replay, "m1", TASK_REASONING, "math"));

        /* deferred: the conversation's view of a git-judged trace changes
         * nothing, the trace stays pending */
        p_outcome(&p, code, KIND_ACCEPTED, 0.8, 1000, 122, TRACKER_SRC_CONVERSATION, true);
        ck_assert_ptr_nonnull(tracker_trace_get(p.replay, code));
        /* git judges it, then the expiry source judges the other */
        p_outcome(&p, code, KIND_APPLIED, 1.0, 0, 123, TRACKER_SRC_GIT, false);
        ck_assert_ptr_null(tracker_trace_get(p.replay, code));
        ck_assert_ptr_nonnull(tracker_cell_get(p.replay, "m2", TASK_CODE, "c"));
        p_outcome(&p, code2, KIND_INCONCLUSIVE, 0.0, 0, 124, TRACKER_SRC_EXPIRY, false);

        /* fail, with an error and without */
        const char *f1 = p_start(&p, &(struct tracker_start){ .model = "m1", .task = TASK_EMBED,
                                                              .reason = "", .domain = "math",
                                                              .uid = 1000, .now = 130 },
                                 "");
        char f1id[64];
        snprintf(f1id, sizeof(f1id), "%s", f1);
        ck_assert_int_eq(tracker_fail(p.direct, f1id, 1000, 131), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_FAIL, .at = 131, .uid = 1000,
                                            .trace_id = f1id, .error = "timeout" });
        const char *f2 = p_start(&p, &(struct tracker_start){ .model = "m1", .task = TASK_EMBED,
                                                              .reason = "", .uid = 1000,
                                                              .now = 132 },
                                 "");
        snprintf(f1id, sizeof(f1id), "%s", f2);
        ck_assert_int_eq(tracker_fail(p.direct, f1id, 1000, 133), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_FAIL, .at = 133, .uid = 1000,
                                            .trace_id = f1id });
        ck_assert_uint_eq(tracker_profile_get(p.replay, "m1")->fail_count, 3);

        /* expire, through tracker_expire as commit.c does */
        const char *old = p_start(&p, &(struct tracker_start){ .model = "m2",
                                                               .task = TASK_CLASSIFY,
                                                               .reason = "", .domain = "spam",
                                                               .uid = 1000, .now = 140 },
                                  "");
        char oldid[64];
        snprintf(oldid, sizeof(oldid), "%s", old);
        uint64_t ttl[TASK__COUNT] = { 0, 0, 5, 0, 0 };
        ck_assert_uint_eq(tracker_expire(p.direct, 150, ttl, 10, NULL, NULL), 1);
        record(&p, &(struct journal_entry){ .op = JOURNAL_EXPIRE, .at = 150, .trace_id = oldid });
        ck_assert_ptr_null(tracker_trace_get(p.replay, oldid));

        /* forget one cell, then a model, then a cell that is not there */
        ck_assert_int_eq(tracker_forget_cell(p.direct, "m1", TASK_REASONING, "math"), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_FORGET, .at = 160, .model = "m1",
                                            .task = TASK_REASONING, .domain = "math" });
        ck_assert_ptr_null(tracker_cell_get(p.replay, "m1", TASK_REASONING, "math"));
        ck_assert_ptr_nonnull(tracker_cell_get(p.replay, "m1", TASK_EMBED, "math"));
        ck_assert_int_eq(tracker_forget(p.direct, "m2"), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_FORGET, .at = 161, .model = "m2" });
        ck_assert_ptr_null(tracker_profile_get(p.replay, "m2"));
        ck_assert_ptr_null(tracker_cell_get(p.replay, "m2", TASK_CODE, "c"));
        record(&p, &(struct journal_entry){ .op = JOURNAL_FORGET, .at = 162, .model = "nobody" });

        /* import: a new model, then a merge and a replace of an existing one */
        struct tracker_profile imp = {
                .model = "m3", .total_calls = 10, .success_count = 7, .fail_count = 3,
                .total_latency_ms = 12345, .ema_quality = 0.1 + 0.2, .updated_at = 99,
                .ev = { .alpha = 6.5, .beta = 2.25, .judged = 9.0, .at = 98,
                        .input_tokens = 1000, .output_tokens = 500 },
        };
        imp.tasks[TASK_CODE] = (struct tracker_task_stats){
                .present = true, .calls = 10, .successes = 7, .failures = 3,
                .avg_latency_ms = 1234.5, .ema_quality = 1.0 / 3.0,
                .ev = { .alpha = 6.5, .beta = 2.25, .judged = 9.0, .at = 98,
                        .input_tokens = 1000, .output_tokens = 500 },
        };
        bool created;
        ck_assert_int_eq(tracker_import(p.direct, &imp, false, 170, &created), 0);
        ck_assert(created);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT, .at = 170, .model = "m3",
                                            .profile = &imp, .replace = false });
        imp.model = "m1";
        ck_assert_int_eq(tracker_import(p.direct, &imp, false, 171, &created), 0);
        ck_assert(!created);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT, .at = 171, .model = "m1",
                                            .profile = &imp, .replace = false });
        ck_assert_uint_eq(tracker_profile_get(p.replay, "m1")->total_calls, 12);

        /* import_cell: new, merged, then replaced */
        struct tracker_cell cell = {
                .domain = "rust", .model = "m3", .task = TASK_CODE, .calls = 4, .successes = 3,
                .failures = 1, .ev = { .alpha = 2.7, .beta = 0.3, .judged = 3.0, .at = 97,
                                       .input_tokens = 40, .output_tokens = 41 },
                .recent_alpha = 2.43, .recent_beta = 0.27, .win_alpha = 2.7, .win_beta = 0.3,
                .updated_at = 96,
        };
        ck_assert_int_eq(tracker_import_cell(p.direct, &cell, false, 180, &created), 0);
        ck_assert(created);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT_CELL, .at = 180, .model = "m3",
                                            .cell = &cell, .replace = false });
        ck_assert_int_eq(tracker_import_cell(p.direct, &cell, false, 181, &created), 0);
        ck_assert(!created);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT_CELL, .at = 181, .model = "m3",
                                            .cell = &cell, .replace = false });
        ck_assert_uint_eq(tracker_cell_get(p.replay, "m3", TASK_CODE, "rust")->calls, 8);
        cell.calls = 1;
        ck_assert_int_eq(tracker_import_cell(p.direct, &cell, true, 182, &created), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT_CELL, .at = 182, .model = "m3",
                                            .cell = &cell, .replace = true });
        ck_assert_uint_eq(tracker_cell_get(p.replay, "m3", TASK_CODE, "rust")->calls, 1);

        /* a replacing import drops the profile's cells */
        imp.model = "m3";
        ck_assert_int_eq(tracker_import(p.direct, &imp, true, 190, &created), 0);
        record(&p, &(struct journal_entry){ .op = JOURNAL_IMPORT, .at = 190, .model = "m3",
                                            .profile = &imp, .replace = true });
        ck_assert_ptr_null(tracker_cell_get(p.replay, "m3", TASK_CODE, "rust"));
        ck_assert_uint_eq(tracker_profile_get(p.replay, "m3")->total_calls, 10);

        /* The same entries back to back in one row, on a third tracker. */
        struct tracker *t3 = new_tracker();
        size_t off = 0;
        unsigned applied = 0;
        while (off < p.row.size) {
                char err[256] = "";
                int r = journal_apply(t3, p.row.data, p.row.size, &off, err, sizeof(err));
                ck_assert_msg(r == 0, "entry %u: %d %s", applied, r, err);
                applied++;
        }
        ck_assert_uint_eq(applied, p.entries);
        assert_same(p.direct, t3);
        tracker_free(t3);
        pair_free(&p);
}
END_TEST

/* The op names are the journal column's. */
START_TEST(test_op_names)
{
        static const char *const want[JOURNAL__COUNT] = {
                "start", "complete", "fail", "outcome", "expire", "forget", "import",
                "import_cell",
        };
        for (int i = 0; i < JOURNAL__COUNT; i++)
                ck_assert_str_eq(journal_op_name((enum journal_op)i), want[i]);
        ck_assert_str_eq(journal_op_name(JOURNAL__COUNT), "?");
}
END_TEST

/* The encoding is a map of the documented keys; floats are float64. */
START_TEST(test_encoding_shape)
{
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        struct journal_entry e = { .op = JOURNAL_OUTCOME, .at = 42, .uid = 7, .trace_id = "x",
                                   .kind = KIND_ACCEPTED, .confidence = 0.1,
                                   .source = TRACKER_SRC_GIT, .evidence = "why" };
        ck_assert_int_eq(journal_encode(&e, &sb), 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(off, sb.size);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_MAP);
        ck_assert_uint_eq(u.data.via.map.size, 9); /* op at uid id kind confidence source deferred evidence */
        ck_assert(proto_str_eq(proto_map_get(&u.data, "op"), "outcome"));
        ck_assert(proto_str_eq(proto_map_get(&u.data, "source"), "git"));
        ck_assert(proto_str_eq(proto_map_get(&u.data, "kind"), "accepted"));
        const msgpack_object *c = proto_map_get(&u.data, "confidence");
        ck_assert_int_eq(c->type, MSGPACK_OBJECT_FLOAT64);
        ck_assert(c->via.f64 == 0.1);
        ck_assert_uint_eq(proto_map_get(&u.data, "at")->via.u64, 42);
        ck_assert_uint_eq(proto_map_get(&u.data, "uid")->via.u64, 7);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---- malformed entries ------------------------------------------------- */

static void noop_profile(void *d, const struct tracker_profile *p) {}
static void noop_deleted(void *d, const char *id) {}
static void noop_trace(void *d, const struct tracker_trace *tr) {}

/* A tracker with a profile, a cell, a judged trace, a pending one (y) and
 * a completed one (z). */
static struct tracker *twin(void)
{
        struct tracker *t = new_tracker();
        {
                struct tracker_start s = { .model = "m", .task = TASK_CODE, .reason = "",
                                           .domain = "d", .trace_id = "x", .uid = 5, .now = 1 };
                const char *id;
                ck_assert_int_eq(tracker_start(t, &s, &id), 0);
                s.trace_id = "y";
                ck_assert_int_eq(tracker_start(t, &s, &id), 0);
                s.trace_id = "z";
                ck_assert_int_eq(tracker_start(t, &s, &id), 0);
                struct tracker_complete c = { .trace_id = "x", .latency_ms = 5, .uid = 5, .now = 2 };
                ck_assert_int_eq(tracker_complete(t, &c), 0);
                c.trace_id = "z";
                ck_assert_int_eq(tracker_complete(t, &c), 0);
                struct tracker_result res;
                ck_assert_int_eq(tracker_outcome(t, "x", KIND_ACCEPTED, 0.5, 5, 3, &res), 0);
        }
        return t;
}

/* Two trackers in the same state, the second with its changes collected. */
static void twins(struct tracker **a, struct tracker **b)
{
        *a = twin();
        *b = twin();
        struct tracker_sink sink = { .profile = noop_profile, .deleted = noop_deleted,
                                     .trace = noop_trace };
        ck_assert_int_eq(tracker_collect(*b, &sink), 0);
        ck_assert(!tracker_has_changes(*b));
}

/* Apply bytes that must be refused with rc and an error containing want;
 * the tracker is left as it was. */
static void refused(const void *data, size_t len, int rc, const char *want)
{
        struct tracker *a, *b;
        twins(&a, &b);
        size_t off = 0;
        char err[256] = "";
        int r = journal_apply(b, data, len, &off, err, sizeof(err));
        ck_assert_msg(r == rc, "returned %d (%s), want %d", r, err, rc);
        ck_assert_msg(err[0], "no error message (rc %d)", r);
        ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
        ck_assert(!tracker_has_changes(b));
        assert_same(a, b);
        tracker_free(a);
        tracker_free(b);
}

START_TEST(test_not_msgpack)
{
        static const unsigned char bad[] = { 0xc1, 0x01, 0x02 }; /* 0xc1: never used */
        refused(bad, sizeof(bad), -EBADMSG, "not msgpack");
        /* Truncated: a map of 3 with one key. */
        static const unsigned char cut[] = { 0x83, 0xa2, 'o', 'p' };
        refused(cut, sizeof(cut), -EBADMSG, "not msgpack");
        refused("", 0, -EBADMSG, "not msgpack");
        /* *off moves to the end: the rest of the row cannot be read. */
        struct tracker *t = new_tracker();
        size_t off = 0;
        char err[128] = "";
        ck_assert_int_eq(journal_apply(t, bad, sizeof(bad), &off, err, sizeof(err)), -EBADMSG);
        ck_assert_uint_eq(off, sizeof(bad));
        off = 0;
        ck_assert_int_eq(journal_apply(t, NULL, 0, &off, err, sizeof(err)), -EBADMSG);
        tracker_free(t);
}
END_TEST

START_TEST(test_not_a_map)
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        proto_pack_cstr(&pk, "op");
        proto_pack_cstr(&pk, "start");
        refused(sb.data, sb.size, -EINVAL, "not a msgpack map");
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_uint64(&pk, 7);
        refused(sb.data, sb.size, -EINVAL, "not a msgpack map");
        msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Apply a map packed from key, type, value arguments ('s' str, 'u' u64,
 * 'i' i64, 'd' double, 'b' bool, 'n' nil, 'a' an int count and a string
 * array whose NULLs are packed as integers), which must be refused. */
static void refused_map(int rc, const char *want, int n, const char *spec, ...)
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        va_list ap;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, (size_t)n);
        va_start(ap, spec);
        for (int i = 0; i < n; i++) {
                proto_pack_cstr(&pk, va_arg(ap, const char *));
                switch (spec[i]) {
                case 's': proto_pack_cstr(&pk, va_arg(ap, const char *)); break;
                case 'u': msgpack_pack_uint64(&pk, va_arg(ap, uint64_t)); break;
                case 'd': msgpack_pack_double(&pk, va_arg(ap, double)); break;
                case 'b': va_arg(ap, int) ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk); break;
                case 'i': msgpack_pack_int64(&pk, va_arg(ap, int64_t)); break;
                case 'n': msgpack_pack_nil(&pk); break;
                case 'a': {
                        int cnt = va_arg(ap, int);
                        const char *const *v = va_arg(ap, const char *const *);
                        msgpack_pack_array(&pk, (size_t)cnt);
                        for (int k = 0; k < cnt; k++) {
                                if (v[k])
                                        proto_pack_cstr(&pk, v[k]);
                                else
                                        msgpack_pack_uint64(&pk, 1); /* not a string */
                        }
                        break;
                }
                }
        }
        va_end(ap);
        refused(sb.data, sb.size, rc, want);
        msgpack_sbuffer_destroy(&sb);
}

#define U(x) ((uint64_t)(x))

START_TEST(test_unknown_op)
{
        refused_map(-EINVAL, "unknown op", 4, "suus", "op", "explode", "at", U(1), "uid", U(0),
                    "id", "y");
        refused_map(-EINVAL, "unknown op", 3, "uus", "at", U(1), "uid", U(0), "id", "y");
        /* "op" of the wrong type */
        refused_map(-EINVAL, "unknown op", 4, "uuus", "op", U(3), "at", U(1),
                    "uid", U(0), "id", "y");
}
END_TEST

START_TEST(test_missing_keys)
{
        /* every op but forget and the imports needs an id */
        refused_map(-EINVAL, "'id' missing", 6, "suusuu", "op", "complete", "at", U(1), "uid",
                    U(5), "model", "m", "latency", U(3), "in", U(1));
        refused_map(-EINVAL, "'id' missing", 3, "suu", "op", "fail", "at", U(1), "uid", U(5));
        refused_map(-EINVAL, "'id' missing", 3, "suu", "op", "expire", "at", U(1), "uid", U(5));
        /* start without task, without model */
        refused_map(-EINVAL, "bad start", 6, "suusss", "op", "start", "at", U(1), "uid", U(5),
                    "id", "z", "model", "m", "reason", "");
        refused_map(-EINVAL, "bad start", 6, "suusss", "op", "start", "at", U(1), "uid", U(5),
                    "id", "z", "task", "code", "reason", "");
        /* outcome without kind, without source */
        refused_map(-EINVAL, "bad outcome", 7, "suussdb", "op", "outcome", "at", U(1), "uid", U(5),
                    "id", "y", "source", "conversation", "confidence", 0.5, "deferred", 0);
        refused_map(-EINVAL, "bad outcome", 7, "suussdb", "op", "outcome", "at", U(1), "uid", U(5),
                    "id", "y", "kind", "accepted", "confidence", 0.5, "deferred", 0);
        /* forget without a model; of a cell without its task */
        refused_map(-EINVAL, "'model' missing", 3, "suu", "op", "forget", "at", U(1), "uid", U(0));
        refused_map(-EINVAL, "forget", 5, "suuss", "op", "forget", "at", U(1), "uid", U(0),
                    "model", "m", "domain", "d");
        /* import without a profile; import_cell without a cell */
        refused_map(-EINVAL, "import", 5, "suusb", "op", "import", "at", U(1), "uid", U(0),
                    "model", "m", "replace", 1);
        refused_map(-EINVAL, "import_cell", 5, "suusb", "op", "import_cell", "at", U(1), "uid",
                    U(0), "model", "m", "replace", 1);
}
END_TEST

START_TEST(test_bad_values)
{
        /* a task or a kind that is not one */
        refused_map(-EINVAL, "bad start", 7, "suussss", "op", "start", "at", U(1), "uid", U(5),
                    "id", "z", "model", "m", "task", "cooking", "reason", "");
        refused_map(-EINVAL, "bad outcome", 8, "suusssdb", "op", "outcome", "at", U(1), "uid",
                    U(5), "id", "y", "kind", "great", "source", "git", "confidence", 0.5,
                    "deferred", 0);
        refused_map(-EINVAL, "forget", 6, "suusss", "op", "forget", "at", U(1), "uid", U(0),
                    "model", "m", "task", "cooking", "domain", "d");
        /* keys of the wrong type */
        refused_map(-EINVAL, "'at' has the wrong type", 4, "ssus", "op", "fail", "at", "now",
                    "uid", U(5), "id", "y");
        refused_map(-EINVAL, "'id' has the wrong type", 4, "suuu", "op", "fail", "at", U(1),
                    "uid", U(5), "id", U(9));
        refused_map(-EINVAL, "'latency' has the wrong type", 5, "suuss", "op", "complete", "at",
                    U(1), "uid", U(5), "id", "y", "latency", "slow");
        refused_map(-EINVAL, "bad outcome", 8, "suusssub", "op", "outcome",
                    "at", U(1), "uid", U(5), "id", "y", "kind", "accepted", "source", "git",
                    "confidence", U(1), "deferred", 0);
        /* a negative time is not a time */
        refused_map(-EINVAL, "'at' has the wrong type", 4, "siuus", "op", "fail", "at",
                    (int64_t)-1, "uid", U(5), "id", "y");
        /* files that are not all strings */
        static const char *const files[] = { "a.c", NULL };
        refused_map(-EINVAL, "start", 9, "suusssssa", "op", "start", "at", U(1), "uid", U(5),
                    "id", "z", "model", "m", "task", "code", "reason", "", "repo", "/r", "files",
                    2, files);
}
END_TEST

/* Entries that decode but that the tracker refuses: its errno, a message
 * naming the op and the id. */
START_TEST(test_refused_by_the_tracker)
{
        refused_map(-ENOENT, "journal entry complete nope", 5, "suusu", "op", "complete", "at",
                    U(1), "uid", U(5), "id", "nope", "latency", U(3));
        refused_map(-EPERM, "journal entry fail y", 4, "suus", "op", "fail", "at", U(9), "uid",
                    U(6), "id", "y");
        refused_map(-EALREADY, "journal entry complete z", 5, "suusu", "op", "complete", "at",
                    U(1), "uid", U(5), "id", "z", "latency", U(3));
        /* import_cell of a model without a profile */
        struct tracker_cell c = { .domain = "d", .model = "ghost", .task = TASK_CODE, .calls = 1 };
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        ck_assert_int_eq(journal_encode(&(struct journal_entry){ .op = JOURNAL_IMPORT_CELL,
                                                                 .at = 1, .model = "ghost",
                                                                 .cell = &c }, &sb), 0);
        refused(sb.data, sb.size, -ENOENT, "import_cell");
        msgpack_sbuffer_destroy(&sb);
}
END_TEST

static Suite *journal_suite(void)
{
        Suite *su = suite_create("journal");
        TCase *tc = tcase_create("journal");
        tcase_add_test(tc, test_every_op_replays_the_same_state);
        tcase_add_test(tc, test_op_names);
        tcase_add_test(tc, test_encoding_shape);
        tcase_add_test(tc, test_not_msgpack);
        tcase_add_test(tc, test_not_a_map);
        tcase_add_test(tc, test_unknown_op);
        tcase_add_test(tc, test_missing_keys);
        tcase_add_test(tc, test_bad_values);
        tcase_add_test(tc, test_refused_by_the_tracker);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(journal_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

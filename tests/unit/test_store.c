/* test_store.c - the SQLite store: a tracker's state survives a close and a
 * reopen bit for bit; newer, foreign and corrupt databases are refused and
 * left alone; a batch commits whole or not at all; a bad task name in the
 * database fails the load; journal changes go into rows of several, which
 * replay whole and in order; a finished batch is handed out again empty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "store.h"
#include "tracker.h"

extern const unsigned store_nmigrations;

/* ---- helpers ------------------------------------------------------------ */

static char tmpdir[64];

static void setup_dir(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_store.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void teardown_dir(void)
{
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *db_path(const char *name)
{
        static char buf[256];
        snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
        return buf;
}

struct done {
        int calls;
        int status;
        char msg[256];
        int order[8];
};

struct done_ref {
        struct done *d;
        int tag;
};

static void on_done(void *data, int status, const char *errmsg)
{
        struct done_ref *ref = data;
        struct done *d = ref->d;
        ck_assert_ptr_nonnull(errmsg);
        if (d->calls < 8)
                d->order[d->calls] = ref->tag;
        d->calls++;
        if (status < 0 && d->status == 0) {
                d->status = status;
                snprintf(d->msg, sizeof(d->msg), "%s", errmsg);
        }
}

static void on_closed(void *data)
{
        (*(int *)data)++;
}

static struct store *open_store(uv_loop_t *loop, const char *path)
{
        struct store *s = NULL;
        char err[512] = "";
        int r = store_open(&s, path, loop, err, sizeof(err));
        ck_assert_msg(r == 0, "store_open: %d %s", r, err);
        ck_assert_ptr_nonnull(s);
        return s;
}

static void close_store(uv_loop_t *loop, struct store *s)
{
        int closed = 0;
        store_close(s, on_closed, &closed);
        ck_assert_uint_eq(store_inflight(s), 0); /* s lives until the close callback */
        ck_assert_int_eq(closed, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(closed, 1);
}

/* Collect t's changes and submit them; returns the batch's row count. */
static size_t submit_changes(struct store *s, struct tracker *t, struct done_ref *ref)
{
        struct store_batch *b = store_batch_new();
        struct tracker_sink sink;
        ck_assert_ptr_nonnull(b);
        store_batch_sink(b, &sink);
        ck_assert_int_eq(tracker_collect(t, &sink), 0);
        ck_assert_int_eq(store_batch_status(b), 0);
        size_t rows = store_batch_rows(b);
        ck_assert_int_eq(store_submit(s, b, on_done, ref), 0);
        return rows;
}

static void run_until(uv_loop_t *loop, const struct done *d, int calls)
{
        while (d->calls < calls)
                uv_run(loop, UV_RUN_ONCE);
}

static struct tracker *new_tracker(void)
{
        struct tracker_options o = { .id_prefix = "t" };
        struct tracker *t = tracker_new(&o);
        ck_assert_ptr_nonnull(t);
        return t;
}

/* HEAD's oid when a code trace with a repo started. */
#define TEST_BASE "0123456789abcdef0123456789abcdef01234567"

static const char *start(struct tracker *t, const char *id, const char *model, enum tracker_task task,
                         const char *reason, const char *repo, const char *const *files,
                         uint32_t nfiles, uint32_t uid, uint64_t now)
{
        struct tracker_start st = {
                .model = model, .task = task, .reason = reason, .trace_id = id, .repo = repo,
                .files = files, .nfiles = nfiles, .uid = uid, .now = now,
                .base = repo ? TEST_BASE : NULL,
        };
        const char *out = NULL;
        ck_assert_int_eq(tracker_start(t, &st, &out), 0);
        ck_assert_ptr_nonnull(out);
        return out;
}

static void complete(struct tracker *t, const char *id, uint32_t latency, uint32_t in, uint32_t outk,
                     const char *output, uint64_t now)
{
        struct tracker_complete c = {
                .trace_id = id, .latency_ms = latency, .input_tokens = in,
                .output_tokens = outk, .output = output, .uid = 0, .now = now,
        };
        ck_assert_int_eq(tracker_complete(t, &c), 0);
}

static void outcome(struct tracker *t, const char *id, enum tracker_kind kind, double c, uint64_t now)
{
        struct tracker_result res;
        ck_assert_int_eq(tracker_outcome(t, id, kind, c, 0, now, &res), 0);
}

static void assert_str_eq_null(const char *a, const char *b)
{
        if (!a || !b)
                ck_assert_ptr_eq(a, b);
        else
                ck_assert_str_eq(a, b);
}

/* Every profile and pending trace field is identical; floats exactly. */
static void assert_same_state(const struct tracker *a, const struct tracker *b)
{
        const struct tracker_profile **pa = NULL, **pb = NULL;
        long na = tracker_profiles_sorted(a, &pa), nb = tracker_profiles_sorted(b, &pb);
        ck_assert_int_ge(na, 1);
        ck_assert_int_eq(na, nb);
        for (long i = 0; i < na; i++) {
                const struct tracker_profile *x = pa[i], *y = pb[i];
                ck_assert_str_eq(x->model, y->model);
                ck_assert_uint_eq(x->total_calls, y->total_calls);
                ck_assert_uint_eq(x->success_count, y->success_count);
                ck_assert_uint_eq(x->fail_count, y->fail_count);
                ck_assert_uint_eq(x->total_latency_ms, y->total_latency_ms);
                ck_assert(x->ema_quality == y->ema_quality);
                ck_assert_uint_eq(x->updated_at, y->updated_at);
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *u = &x->tasks[k], *v = &y->tasks[k];
                        ck_assert_int_eq(u->present, v->present);
                        if (!u->present)
                                continue;
                        ck_assert_uint_eq(u->calls, v->calls);
                        ck_assert_uint_eq(u->successes, v->successes);
                        ck_assert_uint_eq(u->failures, v->failures);
                        ck_assert(u->avg_latency_ms == v->avg_latency_ms);
                        ck_assert(u->ema_quality == v->ema_quality);
                }
        }
        free(pa);
        free(pb);

        ck_assert_uint_eq(tracker_pending_count(a), tracker_pending_count(b));
        const struct tracker_trace *x = tracker_pending_first(a), *y = tracker_pending_first(b);
        for (; x && y; x = tracker_pending_next(x), y = tracker_pending_next(y)) {
                ck_assert_str_eq(x->id, y->id);
                ck_assert_str_eq(x->model, y->model);
                ck_assert_str_eq(x->reason, y->reason);
                assert_str_eq_null(x->repo, y->repo);
                assert_str_eq_null(x->output, y->output);
                assert_str_eq_null(x->base, y->base);
                ck_assert_uint_eq(x->completed_at, y->completed_at);
                ck_assert_uint_eq(x->nfiles, y->nfiles);
                for (uint32_t i = 0; i < x->nfiles; i++)
                        ck_assert_str_eq(x->files[i], y->files[i]);
                ck_assert_uint_eq(x->seq, y->seq);
                ck_assert_uint_eq(x->started_at, y->started_at);
                ck_assert_uint_eq(x->latency_ms, y->latency_ms);
                ck_assert_uint_eq(x->input_tokens, y->input_tokens);
                ck_assert_uint_eq(x->output_tokens, y->output_tokens);
                ck_assert_uint_eq(x->uid, y->uid);
                ck_assert_uint_eq(x->task, y->task);
                ck_assert_int_eq(x->completed, y->completed);
        }
        ck_assert_ptr_null(x);
        ck_assert_ptr_null(y);
}

static struct tracker *reload(uv_loop_t *loop, const char *path)
{
        struct store *s = open_store(loop, path);
        struct tracker *t = new_tracker();
        char err[512] = "";
        int r = store_load(s, t, err, sizeof(err));
        ck_assert_msg(r == 0, "store_load: %d %s", r, err);
        ck_assert(!tracker_has_changes(t));
        close_store(loop, s);
        return t;
}

static char *read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        char *buf = malloc(1 << 16);
        ck_assert_ptr_nonnull(buf);
        *len = fread(buf, 1, 1 << 16, f);
        fclose(f);
        return buf;
}

static void write_file(const char *path, const char *text, size_t len)
{
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(text, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
}

static bool exists(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_round_trip)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        /* Two missing directories: store_open creates them (0700). */
        char path[256];
        snprintf(path, sizeof(path), "%s/state/outcomed/outcomed.db", tmpdir);
        struct store *s = open_store(&loop, path);
        struct stat st;
        ck_assert_int_eq(stat(db_path("state/outcomed"), &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0700);

        struct tracker *t = new_tracker();
        static const char *const files1[] = { "src/main.c", "include/a b.h", "docs/ü.md" };
        static const char *const files2[] = { "" };
        const char *t1 = start(t, NULL, "m1", TASK_CODE, "cheapest", "/srv/repo", files1, 3, 1000, 100);
        start(t, "client:id-2", "m1", TASK_GENERATE, NULL, NULL, NULL, 0, 1001, 101);
        const char *t3 = start(t, NULL, "m2", TASK_EMBED, "r3", "/r", files2, 1, 0, 102);
        /* Ids of traces resolved below are the test's own: the tracker
         * frees its copy. */
        const char *t4 = "t4:resolved";
        start(t, t4, "m2", TASK_CLASSIFY, "r4", NULL, NULL, 0, 5, 103);
        complete(t, t1, 123, 10, 20, "int main(void) { return 0; }\n", 110);
        complete(t, "client:id-2", 7, 0, 0, NULL, 111);
        complete(t, t4, 50, 1, 2, "label", 112);
        outcome(t, t4, KIND_ACCEPTED, 0.9, 113);          /* resolved: deleted */
        outcome(t, t1, KIND_ACCEPTED, 0.3, 114);          /* code with repo: deferred */
        const char *t5 = "t5:failed";
        start(t, t5, "m3", TASK_REASONING, "r5", NULL, NULL, 0, 7, 115);
        ck_assert_int_eq(tracker_fail(t, t5, 7, 116), 0); /* resolved */

        struct done d = { 0 };
        struct done_ref r1 = { &d, 1 }, r2 = { &d, 2 }, r3 = { &d, 3 };
        ck_assert_uint_gt(submit_changes(s, t, &r1), 0);
        /* A second and third batch before the loop runs: FIFO. */
        complete(t, t3, 4000000000u, 4294967295u, 1, "", 120);
        outcome(t, "client:id-2", KIND_ACCEPTED_WITH_EDITS, 0.37, 121);
        const char *t6 = start(t, NULL, "m1", TASK_REASONING, "r6", NULL, NULL, 0, 0, 122);
        complete(t, t6, 3, 0, 0, NULL, 123);
        submit_changes(s, t, &r2);
        ck_assert_uint_eq(submit_changes(s, t, &r3), 0); /* nothing changed */
        ck_assert_uint_eq(store_inflight(s), 3);
        run_until(&loop, &d, 3);
        ck_assert_uint_eq(store_inflight(s), 0);
        ck_assert_msg(d.status == 0, "commit: %d %s", d.status, d.msg);
        ck_assert_int_eq(d.order[0], 1);
        ck_assert_int_eq(d.order[1], 2);
        ck_assert_int_eq(d.order[2], 3);
        close_store(&loop, s);

        struct tracker *t2 = reload(&loop, path);
        assert_same_state(t, t2);
        ck_assert_ptr_null(tracker_trace_get(t2, t4));
        ck_assert_ptr_null(tracker_trace_get(t2, t5));
        const struct tracker_trace *tr = tracker_trace_get(t2, t3);
        ck_assert_ptr_nonnull(tr);
        ck_assert_uint_eq(tr->nfiles, 1);
        ck_assert_str_eq(tr->files[0], "");
        ck_assert_str_eq(tr->output, "");
        ck_assert_str_eq(tr->base, TEST_BASE);
        ck_assert_uint_eq(tr->completed_at, 120);
        tr = tracker_trace_get(t2, t1);
        ck_assert_ptr_nonnull(tr);
        ck_assert_str_eq(tr->base, TEST_BASE);
        ck_assert_uint_eq(tr->completed_at, 110);

        /* Reopening a migrated database changes nothing; a later batch
         * updates rows in place. */
        s = open_store(&loop, path);
        outcome(t, t3, KIND_REJECTED, 0.25, 130);
        memset(&d, 0, sizeof(d));
        submit_changes(s, t, &r1);
        close_store(&loop, s); /* runs the callback itself */
        ck_assert_int_eq(d.calls, 1);
        ck_assert_int_eq(d.status, 0);
        struct tracker *t3b = reload(&loop, path);
        assert_same_state(t, t3b);

        store_close(NULL, NULL, NULL);
        tracker_free(t);
        tracker_free(t2);
        tracker_free(t3b);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("newer.db");
        sqlite3 *db;
        char sql[64];
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", store_nmigrations + 1);
        ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        size_t len0;
        char *before = read_file(path, &len0);

        struct store *s = NULL;
        char err[512] = "";
        ck_assert_int_lt(store_open(&s, path, &loop, err, sizeof(err)), 0);
        ck_assert_ptr_null(s);
        ck_assert_msg(strstr(err, "newer than this outcomed knows"), "err: %s", err);
        ck_assert_msg(strstr(err, path), "err: %s", err);

        size_t len1;
        char *after = read_file(path, &len1);
        ck_assert_uint_eq(len0, len1);
        ck_assert(memcmp(before, after, len0) == 0);
        free(before);
        free(after);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_not_a_database_refused)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("notes.txt");
        char text[4096];
        size_t n = 0;
        while (n + 64 < sizeof(text))
                n += (size_t)snprintf(text + n, sizeof(text) - n, "this is not a database %zu\n", n);
        write_file(path, text, n);

        struct store *s = NULL;
        char err[512] = "";
        ck_assert_int_lt(store_open(&s, path, &loop, err, sizeof(err)), 0);
        ck_assert_ptr_null(s);
        ck_assert_msg(strstr(err, "not a usable SQLite database"), "err: %s", err);

        size_t len;
        char *after = read_file(path, &len);
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(after, text, n) == 0);
        free(after);
        char side[300];
        snprintf(side, sizeof(side), "%s-wal", path);
        ck_assert(!exists(side));
        snprintf(side, sizeof(side), "%s-journal", path);
        ck_assert(!exists(side));
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_corrupt_database_refused)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("corrupt.db");
        struct store *s = open_store(&loop, path);
        close_store(&loop, s);

        /* Overwrite page 2 (a table's root page) with garbage. */
        sqlite3 *db;
        char buf[32] = "";
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        long page = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        int fd = open(path, O_WRONLY);
        ck_assert_int_ge(fd, 0);
        memset(buf, 0xa5, sizeof(buf));
        for (long off = page; off < 2 * page; off += (long)sizeof(buf))
                ck_assert_int_eq(pwrite(fd, buf, sizeof(buf), off), (ssize_t)sizeof(buf));
        close(fd);

        /* A current database in WAL mode is checked beside the load:
         * store_open may succeed, the load then fails. */
        char err[512] = "";
        s = NULL;
        int r = store_open(&s, path, &loop, err, sizeof(err));
        if (r == 0) {
                struct tracker *t = new_tracker();
                ck_assert_int_lt(store_load(s, t, err, sizeof(err)), 0);
                tracker_free(t);
                close_store(&loop, s);
        } else {
                ck_assert_ptr_null(s);
        }
        ck_assert_msg(strstr(err, path), "err: %s", err);
        ck_assert_msg(strstr(err, "corrupt") || strstr(err, "malformed"), "err: %s", err);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* The same damage in a table the load never reads (the journal, here
 * after the rows of the first snapshot): only the quick_check beside the
 * load can see it, and the load must fail all the same. */
START_TEST(test_corrupt_unread_page_refused)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("corrupt2.db");
        struct store *s = open_store(&loop, path);
        struct done d = { 0 };
        struct done_ref ref = { &d, 1 };
        struct store_batch *b = store_batch_new();
        char blob[3000];
        memset(blob, 'x', sizeof(blob));
        for (int i = 0; i < 200; i++) /* rows of one change: many journal pages */
                ck_assert_int_eq(store_batch_add_entry(b, 1, "start", "id", "m", blob,
                                                       sizeof(blob)), 0);
        ck_assert_int_eq(store_submit(s, b, on_done, &ref), 0);
        run_until(&loop, &d, 1);
        ck_assert_msg(d.status == 0, "commit: %d %s", d.status, d.msg);
        close_store(&loop, s);

        /* The journal's last page, in a file checkpointed at close. */
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *q;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &q, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        long page = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
        sqlite3_close(db);
        long pages = (long)st.st_size / page;
        ck_assert_int_gt(pages, 20);
        int fd = open(path, O_WRONLY);
        ck_assert_int_ge(fd, 0);
        char junk[64];
        memset(junk, 0x5a, sizeof(junk));
        long at = (pages / 2) * page; /* a page in the middle of the journal's */
        for (long off = at; off < at + page; off += (long)sizeof(junk))
                ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
        close(fd);

        char err[512] = "";
        s = NULL;
        ck_assert_msg(store_open(&s, path, &loop, err, sizeof(err)) == 0, "open: %s", err);
        struct tracker *t = new_tracker();
        ck_assert_int_lt(store_load(s, t, err, sizeof(err)), 0);
        tracker_free(t);
        close_store(&loop, s);
        ck_assert_msg(strstr(err, path) && strstr(err, "corrupt"), "err: %s", err);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_restart_same_id_in_one_batch)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("same.db");
        struct store *s = open_store(&loop, path);
        struct tracker *t = new_tracker();
        struct done d = { 0 };
        struct done_ref ref = { &d, 1 };

        start(t, "same", "m1", TASK_CODE, "first", NULL, NULL, 0, 10, 100);
        submit_changes(s, t, &ref);
        run_until(&loop, &d, 1);

        /* Resolved, then started again with the same id, in one batch. */
        outcome(t, "same", KIND_APPLIED, 0, 101);
        start(t, "same", "m2", TASK_GENERATE, "second", NULL, NULL, 0, 11, 102);
        ck_assert_uint_eq(submit_changes(s, t, &ref), 3); /* m1's profile, 1 deletion, 1 trace */
        run_until(&loop, &d, 2);
        ck_assert_msg(d.status == 0, "commit: %d %s", d.status, d.msg);
        close_store(&loop, s);

        struct tracker *t2 = reload(&loop, path);
        assert_same_state(t, t2);
        const struct tracker_trace *tr = tracker_trace_get(t2, "same");
        ck_assert_ptr_nonnull(tr);
        ck_assert_str_eq(tr->model, "m2");
        ck_assert_str_eq(tr->reason, "second");
        ck_assert_uint_eq(tr->task, TASK_GENERATE);
        ck_assert_uint_eq(tr->uid, 11);
        ck_assert_uint_eq(tr->seq, 2);
        tracker_free(t);
        tracker_free(t2);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* Replay callback: appends each row's blob and notes its op. */
struct rows {
        char data[65536];
        size_t len;
        int n;
        char ops[8][16];
};

static int collect_row(void *data, uint64_t id, uint64_t at, const char *op, const void *blob,
                       size_t len, char *err, size_t errlen)
{
        struct rows *r = data;
        ck_assert_uint_le(r->len + len, sizeof(r->data));
        memcpy(r->data + r->len, blob, len);
        r->len += len;
        if (r->n < 8)
                snprintf(r->ops[r->n], sizeof(r->ops[0]), "%s", op);
        r->n++;
        return 0;
}

START_TEST(test_journal_rows)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("rows.db");
        struct store *s = open_store(&loop, path);
        struct done d = { 0 };
        struct done_ref ref = { &d, 1 };
        char want[65536];
        size_t wlen = 0;

        /* 2,500 changes of 10 bytes in one batch: rows of at most 1,024. */
        struct store_batch *b = store_batch_reuse(s);
        ck_assert_ptr_nonnull(b);
        for (int i = 0; i < 2500; i++) {
                char one[16];
                snprintf(one, sizeof(one), "%09d;", i);
                ck_assert_int_eq(store_batch_add_entry(b, 100 + (uint64_t)i, "start", "id", "m",
                                                       one, 10), 0);
                memcpy(want + wlen, one, 10);
                wlen += 10;
        }
        ck_assert_uint_eq(store_batch_entries(b), 2500);
        ck_assert_int_eq(store_submit(s, b, on_done, &ref), 0);
        run_until(&loop, &d, 1);
        ck_assert_msg(d.status == 0, "commit: %d %s", d.status, d.msg);

        /* The finished batch comes back, empty. */
        struct store_batch *again = store_batch_reuse(s);
        ck_assert_ptr_eq(again, b);
        ck_assert_uint_eq(store_batch_entries(again), 0);
        ck_assert_uint_eq(store_batch_rows(again), 0);
        ck_assert_int_eq(store_batch_status(again), 0);
        ck_assert_int_eq(store_batch_add_entry(again, 9999, "fail", "x", NULL, "single", 6), 0);
        memcpy(want + wlen, "single", 6);
        wlen += 6;
        ck_assert_int_eq(store_submit(s, again, on_done, &ref), 0);
        run_until(&loop, &d, 2);
        ck_assert_msg(d.status == 0, "commit: %d %s", d.status, d.msg);
        struct store_batch *spare = store_batch_reuse(s);
        ck_assert_ptr_eq(spare, again);
        store_batch_free(spare);
        close_store(&loop, s);

        s = open_store(&loop, path);
        struct rows r = { .len = 0 };
        char err[256] = "";
        ck_assert_int_eq(store_replay(s, collect_row, &r, err, sizeof(err)), 4);
        ck_assert_int_eq(r.n, 4);
        ck_assert_str_eq(r.ops[0], "batch");
        ck_assert_str_eq(r.ops[2], "batch");
        ck_assert_str_eq(r.ops[3], "fail"); /* a row of one change keeps its op */
        ck_assert_uint_eq(r.len, wlen);
        ck_assert_int_eq(memcmp(r.data, want, wlen), 0);
        close_store(&loop, s);

        /* A row's `at` is its latest change's, and trace_id/model are set
         * for a row of one change only. */
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT at, trace_id IS NULL FROM journal ORDER BY id",
                                            -1, &st, NULL), SQLITE_OK);
        uint64_t ats[4];
        int nulls[4];
        for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
                ats[i] = (uint64_t)sqlite3_column_int64(st, 0);
                nulls[i] = sqlite3_column_int(st, 1);
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        ck_assert_uint_eq(ats[0], 100 + 1023);
        ck_assert_uint_eq(ats[2], 100 + 2499);
        ck_assert_uint_eq(ats[3], 9999);
        ck_assert_int_eq(nulls[0], 1);
        ck_assert_int_eq(nulls[3], 0);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static void put_trace(const struct tracker_sink *sink, const char *id, uint64_t seq)
{
        struct tracker_trace tr = {
                .id = (char *)id, .model = "m", .reason = "", .seq = seq, .task = TASK_EMBED,
        };
        sink->trace(sink->data, &tr);
}

START_TEST(test_failed_batch_rolls_back)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("rollback.db");
        struct store *s = open_store(&loop, path);
        struct done d = { 0 };
        struct done_ref ref = { &d, 1 };

        /* Two traces with one seq break UNIQUE: the whole batch, profile
         * included, is rolled back. */
        struct store_batch *b = store_batch_new();
        struct tracker_sink sink;
        store_batch_sink(b, &sink);
        struct tracker_profile p = { .model = "lost", .ema_quality = 0.5 };
        sink.profile(sink.data, &p);
        put_trace(&sink, "a", 1);
        put_trace(&sink, "b", 1);
        ck_assert_uint_eq(store_batch_rows(b), 3);
        ck_assert_int_eq(store_submit(s, b, on_done, &ref), 0);
        run_until(&loop, &d, 1);
        ck_assert_int_eq(d.status, -EIO);
        ck_assert_msg(strstr(d.msg, "UNIQUE"), "msg: %s", d.msg);

        /* The writer carries on with the next batch. */
        b = store_batch_new();
        store_batch_sink(b, &sink);
        put_trace(&sink, "c", 3);
        d.status = 0;
        ck_assert_int_eq(store_submit(s, b, on_done, &ref), 0);
        run_until(&loop, &d, 2);
        ck_assert_int_eq(d.status, 0);

        /* Once store_close has begun, a submit is refused (and the batch
         * freed: valgrind checks). */
        int closed = 0;
        store_close(s, on_closed, &closed);
        ck_assert_int_eq(store_submit(s, store_batch_new(), on_done, &ref), -ESHUTDOWN);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(closed, 1);
        ck_assert_int_eq(d.calls, 2);

        struct tracker *t = reload(&loop, path);
        ck_assert_uint_eq(tracker_profile_count(t), 0);
        ck_assert_uint_eq(tracker_pending_count(t), 1);
        ck_assert_ptr_nonnull(tracker_trace_get(t, "c"));
        tracker_free(t);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_bad_task_name_refused)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        const char *path = db_path("badtask.db");
        struct store *s = open_store(&loop, path);
        struct tracker *t = new_tracker();
        struct done d = { 0 };
        struct done_ref ref = { &d, 1 };
        start(t, "x", "m1", TASK_CODE, "", NULL, NULL, 0, 0, 1);
        submit_changes(s, t, &ref);
        close_store(&loop, s);
        tracker_free(t);

        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, "UPDATE pending SET task = 'cooking'", NULL, NULL, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

        s = open_store(&loop, path);
        t = new_tracker();
        char err[512] = "";
        ck_assert_int_eq(store_load(s, t, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, "unknown task \"cooking\""), "err: %s", err);
        close_store(&loop, s);
        tracker_free(t);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *store_suite(void)
{
        Suite *su = suite_create("store");
        TCase *tc = tcase_create("store");
        tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_newer_schema_refused);
        tcase_add_test(tc, test_not_a_database_refused);
        tcase_add_test(tc, test_corrupt_database_refused);
        tcase_add_test(tc, test_corrupt_unread_page_refused);
        tcase_add_test(tc, test_restart_same_id_in_one_batch);
        tcase_add_test(tc, test_journal_rows);
        tcase_add_test(tc, test_failed_batch_rolls_back);
        tcase_add_test(tc, test_bad_task_name_refused);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(store_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* test_history.c - the history's rows in a real SQLite file
 * (daemon/store/history.c): rows written by the store's writer with a
 * batch add up per minute and per hour (with the latency sketch), a
 * domain's per day; reads bucket them, take latencies from the hours,
 * price tokens, fade nothing without a half-life, refuse past 10,000
 * points naming the limit; pruning deletes rows older than the cut only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <ftw.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "history.h"
#include "rollup.h"
#include "store.h"

static char tmpdir[64];
static char path[128];
static uv_loop_t loop;
static struct store *store;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(p);
}

static void setup(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_history.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(path, sizeof(path), "%s/db", tmpdir);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        char err[512];
        ck_assert_msg(store_open(&store, path, &loop, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
        if (store)
                store_close(store, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int done_calls, done_status;
static void on_done(void *data, int status, const char *errmsg)
{
        (void)data;
        (void)errmsg;
        done_calls++;
        done_status = status;
}

/* Commit r's rows (and a snapshot pruning before `prune`, when set). */
static void commit(struct rollup *r, uint64_t prune)
{
        struct store_batch *b = store_batch_new();
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(store_batch_set_rollup(b, r), 0);
        if (prune)
                store_batch_set_snapshot(b, prune);
        int before = done_calls;
        ck_assert_int_eq(store_submit(store, b, on_done, NULL), 0);
        while (done_calls == before)
                uv_run(&loop, UV_RUN_ONCE);
        ck_assert_int_eq(done_status, 0);
}

static void add(struct rollup *r, const char *model, enum tracker_task task, const char *domain,
                uint64_t t, uint64_t calls, uint32_t ms, double ema)
{
        struct rollup_point p = { .t = t, .calls = calls, .successes = calls, .judged = 1,
                                  .quality_sum = 0.5, .input_tokens = 1000 * calls,
                                  .output_tokens = 500 * calls, .has_latency = true,
                                  .has_ema = !domain, .ema = ema, .has_ev = true,
                                  .ev = { .alpha = ema * 10, .beta = (1 - ema) * 10, .at = t } };
        p.latency[tracker_sketch_bucket(ms)] = (uint32_t)calls;
        ck_assert_int_eq(rollup_add(r, model, task, domain, &p), 0);
}

/* Read and unpack: the reply's result (or error) object, zone kept in u. */
static msgpack_object read_q(const struct rollup_query *q, msgpack_unpacked *u, msgpack_sbuffer *sb,
                             enum proto_error *code)
{
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        struct config_price price = { .model = "a", .input_per_mtok = 2, .output_per_mtok = 10 };
        struct history_context ctx = { .now = 10000000, .prices = &price, .nprices = 1 };
        msgpack_sbuffer_init(sb);
        *code = history_read(db, q, &ctx, 7, sb);
        sqlite3_close(db);
        msgpack_unpacked_init(u);
        ck_assert_int_eq(msgpack_unpack_next(u, sb->data, sb->size, NULL), MSGPACK_UNPACK_SUCCESS);
        msgpack_object o = u->data;
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(o.via.array.size, 4);
        return *code == PROTO_OK ? o.via.array.ptr[3] : o.via.array.ptr[2];
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
        const msgpack_object *v = proto_map_get(map, key);
        ck_assert_msg(v != NULL, "no %s", key);
        return v;
}

static uint64_t u64_at(const msgpack_object *series, const char *key, size_t i)
{
        const msgpack_object *a = get(series, key);
        ck_assert_uint_gt(a->via.array.size, i);
        return a->via.array.ptr[i].via.u64;
}

static double f64_at(const msgpack_object *series, const char *key, size_t i)
{
        const msgpack_object *a = get(series, key);
        ck_assert_uint_gt(a->via.array.size, i);
        ck_assert_int_eq(a->via.array.ptr[i].type, MSGPACK_OBJECT_FLOAT64);
        return a->via.array.ptr[i].via.f64;
}

START_TEST(minutes_hours_and_buckets)
{
        struct rollup *r = rollup_new();
        /* Model a, code: minutes 0, 1 and 61 (hour 0 and hour 1), in two
         * batches; model b, embed: one minute.  */
        add(r, "a", TASK_CODE, NULL, 3600 * 100 + 0, 2, 100, 0.2);
        add(r, "a", TASK_CODE, NULL, 3600 * 100 + 60, 1, 1000, 0.4);
        commit(r, 0);
        add(r, "a", TASK_CODE, NULL, 3600 * 100 + 61 * 60, 4, 100, 0.6);
        add(r, "b", TASK_EMBED, NULL, 3600 * 100 + 5, 1, 10, 0.9);
        add(r, "a", TASK_CODE, NULL, 3600 * 100 + 60 + 30, 1, 1000, 0.5); /* minute 1 again */
        commit(r, 0);

        struct rollup_query q = { .task = -1, .since = 0, .until = 3600 * 200, .bucket_s = 3600 };
        msgpack_unpacked u;
        msgpack_sbuffer sb;
        enum proto_error code;
        msgpack_object res = read_q(&q, &u, &sb, &code);
        ck_assert_int_eq(code, PROTO_OK);
        ck_assert_uint_eq(get(&res, "points")->via.u64, 3);
        ck_assert_uint_eq(get(&res, "bucket_s")->via.u64, 3600);
        const msgpack_object *series = get(&res, "series");
        ck_assert_uint_eq(series->via.array.size, 2);
        const msgpack_object *a = &series->via.array.ptr[0];
        ck_assert(proto_str_eq(get(a, "model"), "a"));
        ck_assert(proto_str_eq(get(a, "task"), "code"));
        ck_assert_ptr_null(proto_map_get(a, "domain"));
        ck_assert_uint_eq(u64_at(a, "t", 0), 3600 * 100);
        ck_assert_uint_eq(u64_at(a, "t", 1), 3600 * 101);
        ck_assert_uint_eq(u64_at(a, "calls", 0), 4);
        ck_assert_uint_eq(u64_at(a, "calls", 1), 4);
        ck_assert_uint_eq(u64_at(a, "judged", 0), 3);
        ck_assert_double_eq_tol(f64_at(a, "quality", 0), 0.5, 1e-12);
        ck_assert_double_eq_tol(f64_at(a, "ema", 0), 0.5, 1e-12); /* the hour's last row */
        ck_assert_double_eq_tol(f64_at(a, "ema", 1), 0.6, 1e-12);
        /* 2 of 4 calls at 100 ms, 2 at 1000: p95 in the 1000 ms bucket. */
        ck_assert_double_eq_tol(f64_at(a, "latency_p95_ms", 0), 1000, 100);
        ck_assert_double_eq_tol(f64_at(a, "latency_p50_ms", 1), 100, 10);
        ck_assert_double_eq_tol(f64_at(a, "cost", 0), (4000 * 2 + 2000 * 10) / 1e6, 1e-12);
        double mean = f64_at(a, "posterior_mean", 1), lo = f64_at(a, "posterior_lo", 1);
        ck_assert_double_eq_tol(mean, 7.0 / 12.0, 1e-12); /* Beta(1 + 6, 1 + 4) */
        ck_assert(lo < mean);
        const msgpack_object *b = &series->via.array.ptr[1];
        ck_assert(proto_str_eq(get(b, "model"), "b"));
        ck_assert_double_eq(f64_at(b, "cost", 0), 0.0); /* no price */
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);

        /* Minute buckets of model a: latencies come from their hours. */
        q = (struct rollup_query){ .model = "a", .task = TASK_CODE, .since = 3600 * 100,
                                   .until = 3600 * 102, .bucket_s = 120 };
        res = read_q(&q, &u, &sb, &code);
        ck_assert_int_eq(code, PROTO_OK);
        series = get(&res, "series");
        ck_assert_uint_eq(series->via.array.size, 1);
        a = &series->via.array.ptr[0];
        ck_assert_uint_eq(get(&res, "points")->via.u64, 2); /* minutes 0-1 and 61 */
        ck_assert_uint_eq(u64_at(a, "calls", 0), 4);
        ck_assert_uint_eq(u64_at(a, "t", 1), 3600 * 100 + 60 * 60);
        ck_assert_double_eq_tol(f64_at(a, "latency_p95_ms", 0), 1000, 100); /* hour 0's */
        ck_assert_double_eq_tol(f64_at(a, "latency_p95_ms", 1), 100, 10);   /* hour 1's */
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
        rollup_free(r);
}
END_TEST

START_TEST(domains_limit_and_prune)
{
        struct rollup *r = rollup_new();
        add(r, "a", TASK_CODE, "rust", 86400 * 10 + 500, 3, 100, 0.3);
        add(r, "a", TASK_CODE, "go", 86400 * 10 + 500, 1, 100, 0.3);
        for (uint64_t m = 0; m < 10001; m++)
                add(r, "z", TASK_REASONING, NULL, 86400 * 20 + m * 60, 1, 5, 0.5);
        commit(r, 0);

        struct rollup_query q = { .task = -1, .domain = "rust", .since = 0, .until = 86400 * 30,
                                  .bucket_s = 86400 };
        msgpack_unpacked u;
        msgpack_sbuffer sb;
        enum proto_error code;
        msgpack_object res = read_q(&q, &u, &sb, &code);
        ck_assert_int_eq(code, PROTO_OK);
        const msgpack_object *series = get(&res, "series");
        ck_assert_uint_eq(series->via.array.size, 1);
        const msgpack_object *a = &series->via.array.ptr[0];
        ck_assert(proto_str_eq(get(a, "domain"), "rust"));
        ck_assert_uint_eq(u64_at(a, "calls", 0), 3);
        ck_assert_uint_eq(u64_at(a, "t", 0), 86400 * 10);
        ck_assert_int_eq(get(a, "ema")->via.array.ptr[0].type, MSGPACK_OBJECT_NIL);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);

        /* 10,001 minutes of z: one point past the limit. */
        q = (struct rollup_query){ .task = -1, .since = 0, .until = 86400 * 30, .bucket_s = 60 };
        res = read_q(&q, &u, &sb, &code);
        ck_assert_int_eq(code, PROTO_BAD_REQUEST);
        const msgpack_object *msg = get(&res, "message");
        ck_assert_msg(strncmp(msg->via.str.ptr, "history: 10001 points over the limit of 10000",
                              45) == 0,
                      "%.*s", (int)msg->via.str.size, msg->via.str.ptr);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
        q.bucket_s = 120; /* 5,001 points */
        res = read_q(&q, &u, &sb, &code);
        ck_assert_int_eq(code, PROTO_OK);
        ck_assert_uint_eq(get(&res, "points")->via.u64, 5001);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);

        /* Pruning before day 20 + 100 minutes: the domains' day and z's
         * first 100 minutes and the two hours that start before the cut go;
         * the rest stays. */
        commit(r, 86400 * 20 + 6000);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        const char *counts = "SELECT (SELECT count(*) FROM history_minute),"
                             " (SELECT count(*) FROM history_hour), (SELECT count(*) FROM history_day)";
        ck_assert_int_eq(sqlite3_prepare_v2(db, counts, -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 10001 - 100);
        ck_assert_int_eq(sqlite3_column_int(st, 1), 167 - 2); /* hours 0..166 */
        ck_assert_int_eq(sqlite3_column_int(st, 2), 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        rollup_free(r);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("history");
        TCase *tc = tcase_create("store");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, minutes_hours_and_buckets);
        tcase_add_test(tc, domains_limit_and_prune);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* test_rollup.c - the history's pure accumulation (daemon/core/rollup.c)
 * on a bare tracker: each change lands in its series' minute (a domain's
 * in its day) with the task's EMA and evidence after it; inconclusive
 * outcomes, outcomes deferred to git and failed calls add nothing; the
 * rollup and another observer both see every change; the compact latency
 * sketch round-trips and refuses malformed bytes; points merge. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "tracker.h"

static struct tracker *t;
static struct rollup *r;

static void setup(void)
{
        struct tracker_options o = { .id_prefix = "t" };
        t = tracker_new(&o);
        r = rollup_new();
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(rollup_watch(r, t), 0);
}

static void teardown(void)
{
        tracker_free(t);
        rollup_free(r);
}

static void start(const char *id, const char *model, enum tracker_task task, const char *domain,
                  const char *repo, uint64_t now)
{
        struct tracker_start s = { .model = model, .task = task, .trace_id = id, .domain = domain,
                                   .repo = repo, .now = now };
        const char *got;
        ck_assert_int_eq(tracker_start(t, &s, &got), 0);
}

static void complete(const char *id, uint32_t ms, uint64_t now)
{
        struct tracker_complete c = { .trace_id = id, .latency_ms = ms, .input_tokens = 10,
                                      .output_tokens = 20, .now = now };
        ck_assert_int_eq(tracker_complete(t, &c), 0);
}

static void outcome(const char *id, enum tracker_kind kind, double conf, uint64_t now)
{
        struct tracker_result res;
        ck_assert_int_eq(tracker_outcome(t, id, kind, conf, 0, now, &res), 0);
}

static const struct rollup_row *row(const char *model, enum tracker_task task, const char *domain,
                                    uint64_t at)
{
        const struct rollup_row *rows;
        size_t n = rollup_rows(r, &rows);
        for (size_t i = 0; i < n; i++)
                if (strcmp(rows[i].model, model) == 0 && rows[i].task == task &&
                    rows[i].p.t == at &&
                    (domain ? rows[i].domain && strcmp(rows[i].domain, domain) == 0
                            : !rows[i].domain))
                        return &rows[i];
        return NULL;
}

START_TEST(changes_land_in_their_minute)
{
        start("a", "m", TASK_CODE, NULL, NULL, 1000);
        complete("a", 120, 1001);
        outcome("a", KIND_ACCEPTED, 0.8, 1019); /* minute 960..1019 */
        start("b", "m", TASK_CODE, NULL, NULL, 1020);
        complete("b", 300, 1021);               /* minute 1020.. */
        ck_assert_int_eq(tracker_fail(t, "b", 0, 1022), 0);
        const struct rollup_row *a = row("m", TASK_CODE, NULL, 960);
        const struct rollup_row *b = row("m", TASK_CODE, NULL, 1020);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(a->p.calls, 1);
        ck_assert_uint_eq(a->p.successes, 1);
        ck_assert_uint_eq(a->p.failures, 0);
        ck_assert_uint_eq(a->p.judged, 1);
        ck_assert_double_eq_tol(a->p.quality_sum, 0.8, 1e-12);
        ck_assert_uint_eq(a->p.input_tokens, 10);
        ck_assert_uint_eq(a->p.output_tokens, 20);
        ck_assert(a->p.has_latency);
        ck_assert_uint_eq(a->p.latency[tracker_sketch_bucket(120)], 1);
        ck_assert_uint_eq(b->p.calls, 1);
        ck_assert_uint_eq(b->p.failures, 1);
        ck_assert_uint_eq(b->p.judged, 0);
        /* The EMA and evidence are the task's after the minute's last change. */
        const struct tracker_profile *p = tracker_profile_get(t, "m");
        ck_assert(b->p.has_ema && b->p.has_ev);
        ck_assert_double_eq_tol(b->p.ema, p->tasks[TASK_CODE].ema_quality, 1e-12);
        ck_assert_double_eq_tol(b->p.ev.alpha, p->tasks[TASK_CODE].ev.alpha, 1e-12);
        ck_assert_double_eq_tol(b->p.ev.beta, p->tasks[TASK_CODE].ev.beta, 1e-12);
        ck_assert(a->p.ema != b->p.ema);
        const struct rollup_row *rows;
        ck_assert_uint_eq(rollup_rows(r, &rows), 2);
}
END_TEST

START_TEST(domains_by_day_and_nothing_for_no_change)
{
        start("a", "m", TASK_GENERATE, "rust", NULL, 86400 * 3 + 5);
        complete("a", 50, 86400 * 3 + 6);
        outcome("a", KIND_REJECTED, 1.0, 86400 * 3 + 7000);
        const struct rollup_row *d = row("m", TASK_GENERATE, "rust", 86400 * 3);
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(d->p.calls, 1);
        ck_assert_uint_eq(d->p.failures, 1);
        ck_assert_uint_eq(d->p.judged, 1);
        ck_assert(!d->p.has_ema);
        ck_assert(d->p.has_ev);
        const struct tracker_cell *c = tracker_cell_get(t, "m", TASK_GENERATE, "rust");
        ck_assert_ptr_nonnull(c);
        ck_assert_double_eq_tol(d->p.ev.beta, c->ev.beta, 1e-12);
        /* The task's rows are per minute beside it. */
        ck_assert_ptr_nonnull(row("m", TASK_GENERATE, NULL, 86400 * 3));
        ck_assert_ptr_nonnull(row("m", TASK_GENERATE, NULL, 86400 * 3 + 6960));

        rollup_clear(r);
        start("i", "m", TASK_GENERATE, NULL, NULL, 10);
        outcome("i", KIND_INCONCLUSIVE, 0, 11);                  /* no change */
        start("g", "m", TASK_CODE, NULL, "/repo", 12);
        outcome("g", KIND_ACCEPTED, 0.9, 13);                   /* deferred to git */
        struct tracker_complete bad = { .trace_id = "nope", .now = 14 };
        ck_assert_int_eq(tracker_complete(t, &bad), -ENOENT); /* failed: nothing */
        const struct rollup_row *rows;
        ck_assert_uint_eq(rollup_rows(r, &rows), 0);
        /* git's judgement counts. */
        struct tracker_result res;
        ck_assert_int_eq(tracker_resolve(t, "g", KIND_APPLIED, 1.0, 0, 70, TRACKER_SRC_GIT, &res), 0);
        ck_assert_uint_eq(rollup_rows(r, &rows), 1);
        ck_assert_uint_eq(rows[0].p.successes, 1);
        ck_assert_double_eq_tol(rows[0].p.quality_sum, 1.0, 1e-12);
}
END_TEST

static int other_calls;
static void other_change(void *data, const struct tracker_change *ch)
{
        (void)data;
        (void)ch;
        other_calls++;
}
static int other_fails;
static void other_fail(void *data, const char *model, enum tracker_task task)
{
        (void)data;
        (void)model;
        (void)task;
        other_fails++;
}

START_TEST(every_observer_sees_every_change)
{
        struct tracker_observer o = { .change = other_change, .fail = other_fail };
        ck_assert_int_eq(tracker_add_observer(t, &o), 0);
        start("a", "m", TASK_CODE, NULL, NULL, 1);
        complete("a", 1, 2);
        ck_assert_int_eq(tracker_fail(t, "a", 0, 3), 0);
        ck_assert_int_eq(other_calls, 2);
        ck_assert_int_eq(other_fails, 1);
        const struct rollup_row *rows;
        ck_assert_uint_eq(rollup_rows(r, &rows), 1);
        ck_assert_uint_eq(rows[0].p.failures, 1);
        ck_assert_int_eq(tracker_add_observer(t, &o), 0);
        ck_assert_int_eq(tracker_add_observer(t, &o), 0);
        ck_assert_int_eq(tracker_add_observer(t, &o), -ENOSPC); /* TRACKER_OBSERVERS */
}
END_TEST

START_TEST(sketch_round_trip_and_malformed)
{
        uint32_t sk[TRACKER_SKETCH_BUCKETS] = { 0 }, back[TRACKER_SKETCH_BUCKETS] = { 0 };
        sk[0] = 1;
        sk[5] = 127;
        sk[6] = 128;
        sk[40] = 300000;
        sk[TRACKER_SKETCH_BUCKETS - 1] = UINT32_MAX;
        uint8_t enc[ROLLUP_SKETCH_MAX];
        size_t n = rollup_sketch_encode(sk, enc);
        ck_assert_uint_eq(n, 2 + 2 + 3 + 4 + 6);
        ck_assert_int_eq(rollup_sketch_add(back, enc, n), 0);
        ck_assert_mem_eq(sk, back, sizeof(sk));
        ck_assert_int_eq(rollup_sketch_add(back, enc, n), 0); /* adds, saturating */
        ck_assert_uint_eq(back[40], 600000);
        ck_assert_uint_eq(back[TRACKER_SKETCH_BUCKETS - 1], UINT32_MAX);
        const uint8_t cut[] = { 5, 0x80 };
        const uint8_t bad_bucket[] = { TRACKER_SKETCH_BUCKETS, 1 };
        const uint8_t too_long[] = { 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
        ck_assert_int_eq(rollup_sketch_add(back, cut, sizeof(cut)), -EINVAL);
        ck_assert_int_eq(rollup_sketch_add(back, bad_bucket, sizeof(bad_bucket)), -EINVAL);
        ck_assert_int_eq(rollup_sketch_add(back, too_long, sizeof(too_long)), -EINVAL);
        memset(sk, 0, sizeof(sk));
        ck_assert_uint_eq(rollup_sketch_encode(sk, enc), 0);
}
END_TEST

START_TEST(points_merge_later_wins)
{
        struct rollup_point a = { .t = 0, .calls = 2, .has_ema = true, .ema = 0.1,
                                  .has_ev = true, .ev = { .alpha = 1 } };
        struct rollup_point b = { .t = 60, .calls = 3, .failures = 1, .has_latency = true };
        b.latency[3] = 2;
        rollup_point_merge(&a, &b); /* b has no EMA: a's stays */
        ck_assert_uint_eq(a.calls, 5);
        ck_assert_uint_eq(a.failures, 1);
        ck_assert_double_eq(a.ema, 0.1);
        ck_assert(a.has_latency);
        ck_assert_uint_eq(a.latency[3], 2);
        struct rollup_point c = { .has_ema = true, .ema = 0.7, .has_ev = true, .ev = { .alpha = 4 } };
        rollup_point_merge(&a, &c);
        ck_assert_double_eq(a.ema, 0.7);
        ck_assert_double_eq(a.ev.alpha, 4);
        ck_assert(!rollup_point_empty(&a));
        struct rollup_point z = { 0 };
        ck_assert(rollup_point_empty(&z));
}
END_TEST

START_TEST(swap_keeps_watching)
{
        struct rollup *other = rollup_new();
        start("a", "m", TASK_CODE, NULL, NULL, 1);
        complete("a", 1, 2);
        rollup_swap(r, other);
        const struct rollup_row *rows;
        ck_assert_uint_eq(rollup_rows(r, &rows), 0);
        ck_assert_uint_eq(rollup_rows(other, &rows), 1);
        ck_assert_int_eq(tracker_fail(t, "a", 0, 3), 0); /* still r's tracker */
        ck_assert_uint_eq(rollup_rows(r, &rows), 1);
        ck_assert_uint_eq(rows[0].p.failures, 1);
        rollup_free(other);
}
END_TEST

START_TEST(many_series_grow_the_table)
{
        char model[32];
        struct rollup_point p = { .calls = 1 };
        for (int i = 0; i < 5000; i++) {
                snprintf(model, sizeof(model), "m%d", i % 1000);
                p.t = (uint64_t)(i / 1000) * 60;
                ck_assert_int_eq(rollup_add(r, model, TASK_EMBED, NULL, &p), 0);
                ck_assert_int_eq(rollup_add(r, model, TASK_EMBED, NULL, &p), 0);
        }
        const struct rollup_row *rows;
        ck_assert_uint_eq(rollup_rows(r, &rows), 5000);
        for (size_t i = 0; i < 5000; i++)
                ck_assert_uint_eq(rows[i].p.calls, 2);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("rollup");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, changes_land_in_their_minute);
        tcase_add_test(tc, domains_by_day_and_nothing_for_no_change);
        tcase_add_test(tc, every_observer_sees_every_change);
        tcase_add_test(tc, sketch_round_trip_and_malformed);
        tcase_add_test(tc, points_merge_later_wins);
        tcase_add_test(tc, swap_keeps_watching);
        tcase_add_test(tc, many_series_grow_the_table);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

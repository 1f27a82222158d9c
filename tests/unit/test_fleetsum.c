/* test_fleetsum.c - Check tests of fleetsum.c: a tracker's additive
 * evidence as rows, and the fleet view built from several hosts' rows: the
 * sums (counts, posteriors, tokens, sketches, cells), host_id order making
 * them bit-identical whatever order the rows come in, the EMA of the own
 * host, and the cell limit. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fleetsum.h"
#include "rank.h"

/* A host's tracker with n traces of model m on generate (domain dom, or
 * none), judged with confidences from seed. */
static struct tracker *host_tracker(unsigned seed, int n, const char *m, const char *dom)
{
        struct tracker_options o = { .id_prefix = "t" };
        struct tracker *t = tracker_new(&o);
        ck_assert_ptr_nonnull(t);
        for (int i = 0; i < n; i++) {
                struct tracker_start s = { .model = m, .task = TASK_GENERATE, .domain = dom,
                                           .now = 1000 + (uint64_t)i };
                const char *id;
                ck_assert_int_eq(tracker_start(t, &s, &id), 0);
                char *copy = strdup(id);
                struct tracker_complete c = { .trace_id = copy, .latency_ms = 10u * (unsigned)i + seed,
                                              .input_tokens = 7, .output_tokens = 11,
                                              .now = 1000 + (uint64_t)i };
                ck_assert_int_eq(tracker_complete(t, &c), 0);
                struct tracker_result r;
                double conf = (double)((seed * 7919u + (unsigned)i * 104729u) % 1000) / 1000.0;
                ck_assert_int_eq(tracker_outcome(t, copy, (seed + (unsigned)i) % 3 ? KIND_ACCEPTED
                                                                               : KIND_REJECTED,
                                                 conf, 0, 1000 + (uint64_t)i, &r), 0);
                free(copy);
        }
        return t;
}

/* Rows of several hosts, tagged, in one array. */
static size_t gather(struct tracker **ts, const char **hosts, size_t nh, struct fleetsum_row **out)
{
        struct fleetsum_row *all = NULL;
        size_t n = 0;
        for (size_t h = 0; h < nh; h++) {
                struct fleetsum_row *rows;
                long k = fleetsum_snapshot(ts[h], &rows);
                ck_assert_int_ge(k, 0);
                all = realloc(all, (n + (size_t)k) * sizeof(*all));
                for (long i = 0; i < k; i++) {
                        rows[i].host = hosts[h];
                        all[n++] = rows[i];
                }
                free(rows);
        }
        *out = all;
        return n;
}

START_TEST(sums_are_the_hosts_evidence_added_in_host_order)
{
        const char *hosts[3] = { "a", "b", "c" };
        struct tracker *ts[3] = { host_tracker(1, 9, "m", "billing"), host_tracker(2, 14, "m", "billing"),
                                  host_tracker(3, 5, "m", NULL) };
        struct fleetsum_row *rows;
        size_t n = gather(ts, hosts, 3, &rows);
        qsort(rows, n, sizeof(*rows), fleetsum_row_cmp);
        struct fleetsum_options o = { .self = "b", .degrade_threshold = 3 };
        struct tracker *view;
        ck_assert_int_eq(fleetsum_build(rows, n, &o, &view), 0);
        const struct tracker_profile *p = tracker_profile_get(view, "m");
        ck_assert_ptr_nonnull(p);
        double alpha = 0, beta = 0, judged = 0, talpha = 0;
        uint64_t calls = 0, succ = 0, in = 0, lat = 0;
        uint32_t sketch_total = 0;
        for (int h = 0; h < 3; h++) {
                const struct tracker_profile *hp = tracker_profile_get(ts[h], "m");
                alpha += hp->ev.alpha;
                beta += hp->ev.beta;
                judged += hp->ev.judged;
                talpha += hp->tasks[TASK_GENERATE].ev.alpha;
                calls += hp->total_calls;
                succ += hp->success_count;
                in += hp->ev.input_tokens;
                lat += hp->total_latency_ms;
                for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                        sketch_total += hp->tasks[TASK_GENERATE].latency[b];
        }
        /* bit for bit: the same additions in the same order */
        ck_assert(memcmp(&p->ev.alpha, &alpha, sizeof(double)) == 0);
        ck_assert(memcmp(&p->ev.beta, &beta, sizeof(double)) == 0);
        ck_assert(memcmp(&p->ev.judged, &judged, sizeof(double)) == 0);
        ck_assert(memcmp(&p->tasks[TASK_GENERATE].ev.alpha, &talpha, sizeof(double)) == 0);
        ck_assert_uint_eq(p->total_calls, calls);
        ck_assert_uint_eq(p->success_count, succ);
        ck_assert_uint_eq(p->ev.input_tokens, in);
        ck_assert_uint_eq(p->total_latency_ms, lat);
        uint32_t got = 0;
        for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                got += p->tasks[TASK_GENERATE].latency[b];
        ck_assert_uint_eq(got, sketch_total);
        ck_assert_uint_eq(got, 28);
        /* the cell: hosts a and b had it */
        const struct tracker_cell *c = tracker_cell_get(view, "m", TASK_GENERATE, "billing");
        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(c->calls, 23);
        double wa = tracker_cell_get(ts[0], "m", TASK_GENERATE, "billing")->win_alpha +
                    tracker_cell_get(ts[1], "m", TASK_GENERATE, "billing")->win_alpha;
        ck_assert(memcmp(&c->win_alpha, &wa, sizeof(double)) == 0);
        /* the EMA is the own host's */
        const struct tracker_profile *bp = tracker_profile_get(ts[1], "m");
        ck_assert(memcmp(&p->ema_quality, &bp->ema_quality, sizeof(double)) == 0);
        tracker_free(view);
        free(rows);
        for (int h = 0; h < 3; h++)
                tracker_free(ts[h]);
}
END_TEST

START_TEST(any_arrival_order_gives_the_same_rank)
{
        const char *hosts[3] = { "h1", "h2", "h3" };
        struct tracker *ts[3] = { host_tracker(5, 12, "x", "d"), host_tracker(6, 7, "x", NULL),
                                  host_tracker(7, 20, "x", "e") };
        struct tracker *ts2[3] = { host_tracker(9, 6, "y", NULL), host_tracker(10, 3, "y", "d"),
                                   host_tracker(11, 4, "y", NULL) };
        struct fleetsum_row *r1, *r2;
        size_t n1 = gather(ts, hosts, 3, &r1);
        size_t n2 = gather(ts2, hosts, 3, &r2);
        struct fleetsum_row *all = malloc((n1 + n2) * sizeof(*all));
        memcpy(all, r1, n1 * sizeof(*all));
        memcpy(all + n1, r2, n2 * sizeof(*all));
        size_t n = n1 + n2;
        struct fleetsum_options o = { .self = "h1", .degrade_threshold = 3 };
        struct rank_item *first = NULL;
        struct tracker *first_view = NULL;
        long nfirst = 0;
        for (int round = 0; round < 5; round++) {
                /* shuffle, then sort as the fleet thread does */
                for (size_t i = n - 1; i > 0; i--) {
                        size_t j = (size_t)(((unsigned)round * 2654435761u + i * 40503u) % (i + 1));
                        struct fleetsum_row tmp = all[i];
                        all[i] = all[j];
                        all[j] = tmp;
                }
                qsort(all, n, sizeof(*all), fleetsum_row_cmp);
                struct tracker *view;
                ck_assert_int_eq(fleetsum_build(all, n, &o, &view), 0);
                struct rank_options ro = { .task = TASK_GENERATE, .strategy = RANK_THOMPSON,
                                           .seed = 42, .now = 2000, .degrade_threshold = 3 };
                struct rank_item *items;
                long k = rank_compute(view, &ro, &items);
                ck_assert_int_eq(k, 2);
                if (!first) {
                        first = items;
                        first_view = view;
                        nfirst = k;
                } else {
                        for (long i = 0; i < k; i++) {
                                ck_assert_str_eq(items[i].model, first[i].model);
                                ck_assert(memcmp(&items[i].score, &first[i].score,
                                                 sizeof(double)) == 0);
                                ck_assert(memcmp(&items[i].mean, &first[i].mean,
                                                 sizeof(double)) == 0);
                        }
                        free(items);
                }
                /* the items point into the view: keep the first one alive */
                if (round > 0)
                        tracker_free(view);
        }
        ck_assert_int_eq(nfirst, 2);
        free(first);
        tracker_free(first_view);
        free(all);
        free(r1);
        free(r2);
        for (int h = 0; h < 3; h++) {
                tracker_free(ts[h]);
                tracker_free(ts2[h]);
        }
}
END_TEST

START_TEST(cells_past_the_limit_count_at_task_level)
{
        const char *hosts[2] = { "a", "b" };
        struct tracker *ts[2] = { host_tracker(1, 4, "m", "one"), host_tracker(2, 4, "m", "two") };
        struct fleetsum_row *rows;
        size_t n = gather(ts, hosts, 2, &rows);
        qsort(rows, n, sizeof(*rows), fleetsum_row_cmp);
        struct fleetsum_options o = { .self = "a", .degrade_threshold = 3, .max_cells = 1 };
        struct tracker *view;
        ck_assert_int_eq(fleetsum_build(rows, n, &o, &view), 0);
        ck_assert_uint_eq(tracker_cell_count(view), 1);
        ck_assert_ptr_nonnull(tracker_cell_get(view, "m", TASK_GENERATE, "one"));
        ck_assert_uint_eq(tracker_profile_get(view, "m")->tasks[TASK_GENERATE].calls, 8);
        tracker_free(view);
        free(rows);
        tracker_free(ts[0]);
        tracker_free(ts[1]);
}
END_TEST

START_TEST(snapshot_rows_compare)
{
        struct tracker *t = host_tracker(4, 3, "m", "d");
        struct fleetsum_row *a, *b;
        long na = fleetsum_snapshot(t, &a);
        ck_assert_int_eq(na, 3); /* the model's totals, generate's, the cell */
        ck_assert_uint_eq(a[0].task, FLEETSUM_MODEL);
        ck_assert_str_eq(a[2].domain, "d");
        long nb = fleetsum_snapshot(t, &b);
        ck_assert_int_eq(nb, na);
        for (long i = 0; i < na; i++)
                ck_assert(fleetsum_row_same(&a[i], &b[i]));
        b[1].ev.alpha += 1e-12;
        ck_assert(!fleetsum_row_same(&a[1], &b[1]));
        free(a);
        free(b);
        tracker_free(t);
}
END_TEST

static Suite *fleetsum_suite(void)
{
        Suite *s = suite_create("fleetsum");
        TCase *tc = tcase_create("fleetsum");
        tcase_add_test(tc, sums_are_the_hosts_evidence_added_in_host_order);
        tcase_add_test(tc, any_arrival_order_gives_the_same_rank);
        tcase_add_test(tc, cells_past_the_limit_count_at_task_level);
        tcase_add_test(tc, snapshot_rows_compare);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(fleetsum_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

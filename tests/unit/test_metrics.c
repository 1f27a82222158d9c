/* test_metrics.c - Check tests of daemon/rpc/metrics.c on a bare tracker: what
 * the tracker's observer counts (and what it must not: failed calls,
 * outcomes deferred to git, expiries' source), the text's histogram lines,
 * label escaping, and the overflow series past METRICS_SERIES_MAX. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "rpc.h"
#include "tracker.h"

struct fixture {
        struct tracker *t;
        struct metrics *m;
        struct rpc_env env;
};

static void setup(struct fixture *f)
{
        struct tracker_options o = { .id_prefix = "t" };
        memset(f, 0, sizeof(*f));
        f->t = tracker_new(&o);
        f->m = metrics_new();
        ck_assert_ptr_nonnull(f->t);
        ck_assert_ptr_nonnull(f->m);
        metrics_watch(f->m, f->t);
        f->env.tracker = f->t;
}

static void teardown(struct fixture *f)
{
        tracker_free(f->t);
        metrics_free(f->m);
}

static char *render(struct fixture *f)
{
        char *text;
        size_t len;
        ck_assert_int_eq(metrics_render(f->m, &f->env, 1000, &text, &len), 0);
        ck_assert_uint_eq(strlen(text), len);
        ck_assert(len > 0 && text[len - 1] == '\n');
        return text;
}

static void has_line(const char *text, const char *line)
{
        size_t n = strlen(line);
        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        ck_abort_msg("no line '%s' in:\n%s", line, text);
}

static void no_text(const char *text, const char *what)
{
        ck_assert_msg(strstr(text, what) == NULL, "'%s' should not be in:\n%s", what, text);
}

static const char *start(struct fixture *f, const char *model, enum tracker_task task,
                         const char *id, const char *repo)
{
        struct tracker_start s = { .model = model, .task = task, .trace_id = id, .repo = repo,
                                   .now = 1 };
        const char *got;
        ck_assert_int_eq(tracker_start(f->t, &s, &got), 0);
        return id;
}

static void complete(struct fixture *f, const char *id, uint32_t ms, uint32_t in, uint32_t out)
{
        struct tracker_complete c = { .trace_id = id, .latency_ms = ms, .input_tokens = in,
                                      .output_tokens = out, .now = 2 };
        ck_assert_int_eq(tracker_complete(f->t, &c), 0);
}

START_TEST(counts_what_changed_only)
{
        struct fixture f;
        setup(&f);
        struct tracker_result r;
        complete(&f, start(&f, "m", TASK_GENERATE, "a", NULL), 20, 3, 0);
        /* A second complete fails: not counted. */
        struct tracker_complete again = { .trace_id = "a", .latency_ms = 99999, .now = 3 };
        ck_assert_int_eq(tracker_complete(f.t, &again), -EALREADY);
        ck_assert_int_eq(tracker_outcome(f.t, "a", KIND_ACCEPTED, 1.0, 0, 3, &r), 0);
        /* Unknown traces: nothing. */
        ck_assert_int_eq(tracker_fail(f.t, "nosuch", 0, 3), -ENOENT);
        ck_assert_int_eq(tracker_outcome(f.t, "nosuch", KIND_REJECTED, 1.0, 0, 3, &r), -ENOENT);
        /* A code trace with a repo: the conversation's outcome is deferred
         * (not counted), git's is. */
        start(&f, "m", TASK_CODE, "c", "/repo");
        complete(&f, "c", 81921, 0, 0);
        ck_assert_int_eq(tracker_outcome(f.t, "c", KIND_ACCEPTED, 1.0, 0, 4, &r), 0);
        ck_assert(r.deferred);
        ck_assert_int_eq(tracker_resolve(f.t, "c", KIND_BODY_MODIFIED, 0, 0, 5, TRACKER_SRC_GIT,
                                         &r), 0);
        /* Expiry. */
        start(&f, "m", TASK_CLASSIFY, "e", NULL);
        const uint64_t ttl[TASK__COUNT] = { [TASK_CLASSIFY] = 1 };
        ck_assert_uint_eq(tracker_expire(f.t, 100, ttl, 10, NULL, NULL), 1);
        start(&f, "m", TASK_CLASSIFY, "f", NULL);
        ck_assert_int_eq(tracker_fail(f.t, "f", 0, 6), 0);

        char *text = render(&f);
        const char *g = "gen_ai_request_model=\"m\",outcomed_task=\"generate\"";
        char line[512];
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_bucket{%s,le=\"0.01\"} 0", g);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_bucket{%s,le=\"0.02\"} 1", g);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_sum{%s} 0.020", g);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_token_usage_bucket{%s,gen_ai_token_type=\"input\",le=\"1\"} 0", g);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_token_usage_bucket{%s,gen_ai_token_type=\"input\",le=\"4\"} 1", g);
        has_line(text, line);
        no_text(text, "gen_ai_token_type=\"output\"");
        snprintf(line, sizeof(line), "outcomed_calls_total{%s,status=\"completed\"} 1", g);
        has_line(text, line);
        snprintf(line, sizeof(line), "outcomed_outcomes_total{%s,kind=\"accepted\",source=\"conversation\"} 1", g);
        has_line(text, line);
        /* 81921 ms: above the last bound, only in +Inf. */
        const char *c = "gen_ai_request_model=\"m\",outcomed_task=\"code\"";
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_bucket{%s,le=\"81.92\"} 0", c);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_bucket{%s,le=\"+Inf\"} 1", c);
        has_line(text, line);
        snprintf(line, sizeof(line), "gen_ai_client_operation_duration_seconds_sum{%s} 81.921", c);
        has_line(text, line);
        snprintf(line, sizeof(line), "outcomed_outcomes_total{%s,kind=\"body_modified\",source=\"git\"} 1", c);
        has_line(text, line);
        no_text(text, "kind=\"accepted\",source=\"conversation\"} 2");
        snprintf(line, sizeof(line), "outcomed_outcomes_total{%s,kind=\"accepted\",source=\"conversation\"}", c);
        no_text(text, line);
        const char *k = "gen_ai_request_model=\"m\",outcomed_task=\"classify\"";
        snprintf(line, sizeof(line), "outcomed_outcomes_total{%s,kind=\"inconclusive\",source=\"expiry\"} 1", k);
        has_line(text, line);
        snprintf(line, sizeof(line), "outcomed_calls_total{%s,status=\"failed\"} 1", k);
        has_line(text, line);
        has_line(text, "outcomed_metrics_series 3");
        free(text);
        teardown(&f);
}
END_TEST

START_TEST(escapes_label_values)
{
        struct fixture f;
        setup(&f);
        start(&f, "a\\b\"c\nd", TASK_EMBED, "x", NULL);
        ck_assert_int_eq(tracker_fail(f.t, "x", 0, 2), 0);
        char *text = render(&f);
        has_line(text, "outcomed_calls_total{gen_ai_operation_name=\"embeddings\","
                       "gen_ai_request_model=\"a\\\\b\\\"c\\nd\",outcomed_task=\"embed\","
                       "status=\"failed\"} 1");
        has_line(text, "# TYPE outcomed_calls_total counter");
        free(text);
        teardown(&f);
}
END_TEST

START_TEST(overflow_past_the_cap)
{
        struct fixture f;
        setup(&f);
        char model[32], id[32];
        for (int i = 0; i < METRICS_SERIES_MAX + 2; i++) {
                snprintf(model, sizeof(model), "m%05d", i);
                snprintf(id, sizeof(id), "i%d", i);
                start(&f, model, TASK_REASONING, id, NULL);
                complete(&f, id, 5, 0, 0);
                ck_assert_int_eq(tracker_fail(f.t, id, 0, 2), 0);
        }
        ck_assert_uint_eq(metrics_series_count(f.m), METRICS_SERIES_MAX);
        char *text = render(&f);
        has_line(text, "outcomed_calls_total{otel_metric_overflow=\"true\",status=\"failed\"} 2");
        has_line(text, "gen_ai_client_operation_duration_seconds_count"
                       "{otel_metric_overflow=\"true\"} 2");
        has_line(text, "outcomed_calls_total{gen_ai_request_model=\"m00999\","
                       "outcomed_task=\"reasoning\",status=\"failed\"} 1");
        no_text(text, "m01000");
        has_line(text, "outcomed_metrics_omitted 2");
        free(text);
        teardown(&f);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("metrics");
        TCase *tc = tcase_create("metrics");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, counts_what_changed_only);
        tcase_add_test(tc, escapes_label_values);
        tcase_add_test(tc, overflow_past_the_cap);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

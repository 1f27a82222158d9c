/* ctl_history.c - outcomectl history: what the daemon's series did over
 * time (the `history` method), a table of buckets per (model, task) or
 * per domain, or the reply as JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* A time: @UNIX (unix seconds), or a duration before now. */
static int parse_when(struct ctl *ctl, const char *opt, const char *s, uint64_t now, uint64_t *out)
{
        if (s[0] == '@') {
                char *end;
                unsigned long long v = strtoull(s + 1, &end, 10);
                if (end == s + 1 || *end || s[1] == '-') {
                        ctl_usage(ctl, "%s: '%s' is not @UNIX_SECONDS", opt, s);
                        return -1;
                }
                *out = v;
                return 0;
        }
        uint64_t ago;
        if (ctl_opt_duration(ctl, opt, s, &ago) < 0)
                return -1;
        *out = ago > now ? 0 : now - ago;
        return 0;
}

static const msgpack_object *col(const msgpack_object *series, const char *key, uint32_t i)
{
        static const msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
        const msgpack_object *a = ctl_get(series, key);
        if (!a || a->type != MSGPACK_OBJECT_ARRAY || i >= a->via.array.size)
                return &nil;
        return &a->via.array.ptr[i];
}

static void print_series(const msgpack_object *s)
{
        size_t ml = 0, tl = 0, dl = 0;
        const char *model = ctl_get_str(s, "model", &ml), *task = ctl_get_str(s, "task", &tl);
        const char *domain = ctl_get_str(s, "domain", &dl);
        ctl_put_text(model ? model : "-", model ? ml : 1, 0);
        fputs("  ", stdout);
        ctl_put_text(task ? task : "-", task ? tl : 1, 0);
        if (domain) {
                fputs("  domain ", stdout);
                ctl_put_text(domain, dl, 0);
        }
        putchar('\n');
        printf("%-19s %6s %5s %5s %6s %7s %5s %-17s %7s %7s %8s %8s %9s\n", "TIME", "CALLS", "OK",
               "FAIL", "JUDGED", "QUALITY", "EMA", "POSTERIOR", "P50ms", "P95ms", "IN_TOK",
               "OUT_TOK", "COST");
        const msgpack_object *t = ctl_get(s, "t");
        uint32_t n = t && t->type == MSGPACK_OBJECT_ARRAY ? t->via.array.size : 0;
        for (uint32_t i = 0; i < n; i++) {
                char when[32], calls[24], ok[24], fail[24], judged[24], q[24], ema[24], mean[24],
                        lo[24], hi[24], p50[24], p95[24], in[24], out[24], cost[32], post[96];
                ctl_fmt_time(when, sizeof(when), col(s, "t", i));
                ctl_fmt_num(calls, sizeof(calls), col(s, "calls", i), 0, false);
                ctl_fmt_num(ok, sizeof(ok), col(s, "successes", i), 0, false);
                ctl_fmt_num(fail, sizeof(fail), col(s, "failures", i), 0, false);
                ctl_fmt_num(judged, sizeof(judged), col(s, "judged", i), 0, false);
                ctl_fmt_num(q, sizeof(q), col(s, "quality", i), 3, false);
                ctl_fmt_num(ema, sizeof(ema), col(s, "ema", i), 3, false);
                ctl_fmt_num(mean, sizeof(mean), col(s, "posterior_mean", i), 2, false);
                ctl_fmt_num(lo, sizeof(lo), col(s, "posterior_lo", i), 2, false);
                ctl_fmt_num(hi, sizeof(hi), col(s, "posterior_hi", i), 2, false);
                ctl_fmt_num(p50, sizeof(p50), col(s, "latency_p50_ms", i), 0, false);
                ctl_fmt_num(p95, sizeof(p95), col(s, "latency_p95_ms", i), 0, false);
                ctl_fmt_num(in, sizeof(in), col(s, "input_tokens", i), 0, false);
                ctl_fmt_num(out, sizeof(out), col(s, "output_tokens", i), 0, false);
                ctl_fmt_num(cost, sizeof(cost), col(s, "cost", i), 4, true);
                if (strcmp(mean, "-") == 0)
                        snprintf(post, sizeof(post), "-");
                else
                        snprintf(post, sizeof(post), "%s [%s,%s]", mean, lo, hi);
                printf("%-19s %6s %5s %5s %6s %7s %5s %-17s %7s %7s %8s %8s %9s\n", when, calls,
                       ok, fail, judged, q, ema, post, p50, p95, in, out, cost);
        }
}

/* The command's own options, all with a value, in the order of `names`. */
enum { H_MODEL, H_TASK, H_DOMAIN, H_SINCE, H_UNTIL, H_BUCKET, H__COUNT };

/* The request: the strings as given, the times and the width as numbers. */
static void pack_args(msgpack_packer *pk, const char *const val[H__COUNT], const uint64_t num[H__COUNT])
{
        static const char *const keys[H__COUNT] = { "model", "task", "domain", "since", "until",
                                                    "bucket_s" };
        size_t n = 0;
        for (int i = 0; i < H__COUNT; i++)
                n += val[i] != NULL;
        msgpack_pack_array(pk, 1);
        msgpack_pack_map(pk, n);
        for (int i = 0; i < H__COUNT; i++) {
                if (!val[i])
                        continue;
                if (i < H_SINCE) {
                        ctl_pack_str(pk, keys[i], val[i]);
                } else {
                        ctl_pack_key(pk, keys[i]);
                        msgpack_pack_uint64(pk, num[i]);
                }
        }
}

static int run_history(struct ctl *ctl, int argc, char **argv)
{
        const char *val[H__COUNT] = { NULL };
        uint64_t num[H__COUNT] = { 0 }, now = (uint64_t)time(NULL);
        const struct ctl_opt opts[] = {
                CTL_STR("model", &val[H_MODEL]), CTL_STR("task", &val[H_TASK]),
                CTL_STR("domain", &val[H_DOMAIN]), CTL_STR("since", &val[H_SINCE]),
                CTL_STR("until", &val[H_UNTIL]), CTL_STR("bucket", &val[H_BUCKET]),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 0, "");
        if (status != CTL_GO)
                return status;
        if ((val[H_SINCE] && parse_when(ctl, "--since", val[H_SINCE], now, &num[H_SINCE]) < 0) ||
            (val[H_UNTIL] && parse_when(ctl, "--until", val[H_UNTIL], now, &num[H_UNTIL]) < 0) ||
            (val[H_BUCKET] && ctl_opt_duration(ctl, "--bucket", val[H_BUCKET], &num[H_BUCKET]) < 0))
                return CTL_EXIT_USAGE;
        if (val[H_BUCKET] && (num[H_BUCKET] < 60 || num[H_BUCKET] % 60))
                return ctl_usage(ctl, "--bucket: a whole number of minutes (60s or more)");

        msgpack_packer *pk = ctl_begin(ctl, "history");
        if (!pk)
                return CTL_EXIT_CONNECT;
        pack_args(pk, val, num);
        struct oc_reply reply = { 0 };
        status = ctl_call(ctl, &reply);
        if (status != CTL_EXIT_OK)
                return status;
        const msgpack_object *series = ctl_get(reply.result, "series");
        if (ctl->json || !series || series->type != MSGPACK_OBJECT_ARRAY) {
                status = ctl_print_json(reply.result);
        } else if (series->via.array.size == 0) {
                printf("no activity in that time\n");
        } else {
                for (uint32_t i = 0; i < series->via.array.size; i++) {
                        if (i)
                                putchar('\n');
                        print_series(&series->via.array.ptr[i]);
                }
        }
        oc_reply_destroy(&reply);
        return status;
}

CTL_COMMAND(history, run_history,
        "show what each model did over time, bucket by bucket",
        "Usage: outcomectl history [--model MODEL] [--task TASK] [--domain DOMAIN]\n"
        "                          [--since WHEN] [--until WHEN] [--bucket DURATION]\n"
        "\n"
        "Print the daemon's history: for each model and task (or each model and task\n"
        "of one domain), one line per bucket of time that had any activity: calls,\n"
        "successes (OK), failures, judged outcomes, their mean quality, the EMA and\n"
        "the posterior's mean and 95% interval at the bucket's end, latency p50 and p95\n"
        "(from hourly sketches), tokens, and the cost at the configured prices.  Times\n"
        "are local.  The daemon keeps [store] history_days of it (default 30).\n"
        "\n"
        "Options:\n"
        "  --model MODEL     one model's series only\n"
        "  --task TASK       one task's (generate, embed, classify, code, reasoning)\n"
        "  --domain DOMAIN   that domain's series (kept per day) instead of the tasks'\n"
        "  --since WHEN      from this time (default: 7 days before --until), rounded\n"
        "                    down to its bucket's start; WHEN is a duration before now\n"
        "                    (90s, 30m, 12h, 7d) or @UNIX_SECONDS\n"
        "  --until WHEN      buckets that start before this time (default: now)\n"
        "  --bucket DURATION the width of a bucket: a whole number of minutes, at most\n"
        "                    31d (default 1h)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'; --json prints the reply: for\n"
        "                    each series a column per figure (see protocol/README.md)\n"
        "\n"
        "At most 10,000 points (buckets over all series) come in one answer; past that\n"
        "the daemon says how many there would be: narrow --since/--until, or widen\n"
        "--bucket.\n"
        "\n"
        "Examples:\n"
        "  outcomectl history --model claude-sonnet --task code --since 2d\n"
        "  outcomectl history --bucket 1d --since 30d\n"
        "  outcomectl history --domain rust --bucket 1d --json | jq '.series[].calls'\n");

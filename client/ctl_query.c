/* ctl_query.c - outcomectl's read-only commands: query (the profile table
 * and the pending-trace table), ping and stats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define NAME_WIDTH_MAX 64   /* longer names overflow their column */

static int clamp_width(size_t len, int min)
{
        if (len < (size_t)min)
                return min;
        return len > NAME_WIDTH_MAX ? NAME_WIDTH_MAX : (int)len;
}

static void put_str_field(const msgpack_object *map, const char *key, int width)
{
        size_t len = 0;
        const char *s = ctl_get_str(map, key, &len);
        if (s == NULL)
                ctl_put_text("-", 1, width);
        else
                ctl_put_text(s, len, width);
}

/* success_rate (0..1) as a percentage, "-" when absent. */
static void fmt_rate(char *buf, size_t len, const msgpack_object *o)
{
        if (o == NULL || (o->type != MSGPACK_OBJECT_FLOAT64 && o->type != MSGPACK_OBJECT_FLOAT32 &&
                          o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)) {
                snprintf(buf, len, "-");
                return;
        }
        double v = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)o->via.u64 : o->via.f64;
        snprintf(buf, len, "%.1f%%", v * 100.0);
}

/* One row of the profile table: the model's or a task's numbers. */
static void put_numbers(const msgpack_object *m, const char *calls, const char *ok, const char *fail)
{
        char c[24], s[24], f[24], rate[16], lat[32], ema[24];

        ctl_fmt_num(c, sizeof(c), ctl_get(m, calls), 0, false);
        ctl_fmt_num(s, sizeof(s), ctl_get(m, ok), 0, false);
        ctl_fmt_num(f, sizeof(f), ctl_get(m, fail), 0, false);
        fmt_rate(rate, sizeof(rate), ctl_get(m, "success_rate"));
        ctl_fmt_num(lat, sizeof(lat), ctl_get(m, "avg_latency_ms"), 1, true);
        ctl_fmt_num(ema, sizeof(ema), ctl_get(m, "ema_quality"), 3, true);
        printf(" %7s %7s %7s %8s %9s %6s", c, s, f, rate, lat, ema);
}

static int cmp_key(const void *a, const void *b)
{
        const msgpack_object_kv *x = *(const msgpack_object_kv *const *)a;
        const msgpack_object_kv *y = *(const msgpack_object_kv *const *)b;
        if (x->key.type != MSGPACK_OBJECT_STR || y->key.type != MSGPACK_OBJECT_STR)
                return 0;
        uint32_t n = x->key.via.str.size < y->key.via.str.size ? x->key.via.str.size : y->key.via.str.size;
        int c = memcmp(x->key.via.str.ptr, y->key.via.str.ptr, n);
        if (c != 0)
                return c;
        return (x->key.via.str.size > y->key.via.str.size) - (x->key.via.str.size < y->key.via.str.size);
}

/* The sorted pairs of a map; NULL when out of memory (reported). */
static const msgpack_object_kv **sorted_pairs(const msgpack_object *map)
{
        const msgpack_object_kv **kv = malloc((map->via.map.size + 1) * sizeof(*kv));
        if (kv == NULL) {
                fputs("outcomectl: out of memory\n", stderr);
                return NULL;
        }
        for (uint32_t t = 0; t < map->via.map.size; t++)
                kv[t] = &map->via.map.ptr[t];
        qsort(kv, map->via.map.size, sizeof(*kv), cmp_key);
        return kv;
}

/* The domain cells of one task, indented below it. */
static int print_cells(const msgpack_object *p, const msgpack_object_kv *task, int width)
{
        const msgpack_object *domains = ctl_get(p, "domains");
        if (domains == NULL || domains->type != MSGPACK_OBJECT_MAP)
                return 0;
        for (uint32_t t = 0; t < domains->via.map.size; t++) {
                const msgpack_object_kv *dt = &domains->via.map.ptr[t];
                if (cmp_key(&dt, &task) != 0 || dt->val.type != MSGPACK_OBJECT_MAP)
                        continue;
                const msgpack_object_kv **kv = sorted_pairs(&dt->val);
                if (kv == NULL)
                        return -1;
                for (uint32_t d = 0; d < dt->val.via.map.size; d++) {
                        fputs("    ", stdout);
                        if (kv[d]->key.type == MSGPACK_OBJECT_STR)
                                ctl_put_text(kv[d]->key.via.str.ptr, kv[d]->key.via.str.size,
                                             width - 4);
                        put_numbers(&kv[d]->val, "calls", "successes", "failures");
                        putchar('\n');
                }
                free(kv);
        }
        return 0;
}

static int print_profiles(const msgpack_object *list)
{
        if (list->via.array.size == 0) {
                puts("no models");
                return CTL_EXIT_OK;
        }
        /* The name column fits the longest model and indented task. */
        size_t w = 5;
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                const msgpack_object *p = &list->via.array.ptr[i];
                size_t len;
                if (ctl_get_str(p, "model", &len) && len > w)
                        w = len;
                const msgpack_object *tasks = ctl_get(p, "tasks");
                if (tasks && tasks->type == MSGPACK_OBJECT_MAP)
                        for (uint32_t t = 0; t < tasks->via.map.size; t++)
                                if (tasks->via.map.ptr[t].key.type == MSGPACK_OBJECT_STR &&
                                    tasks->via.map.ptr[t].key.via.str.size + 2 > w)
                                        w = tasks->via.map.ptr[t].key.via.str.size + 2;
                /* Domain cells are indented by 4. */
                const msgpack_object *doms = ctl_get(p, "domains");
                for (uint32_t t = 0; doms && doms->type == MSGPACK_OBJECT_MAP && t < doms->via.map.size; t++) {
                        const msgpack_object *dm = &doms->via.map.ptr[t].val;
                        for (uint32_t d = 0; dm->type == MSGPACK_OBJECT_MAP && d < dm->via.map.size; d++)
                                if (dm->via.map.ptr[d].key.type == MSGPACK_OBJECT_STR &&
                                    dm->via.map.ptr[d].key.via.str.size + 4 > w)
                                        w = dm->via.map.ptr[d].key.via.str.size + 4;
                }
        }
        int width = clamp_width(w, 5);

        printf("%-*s %7s %7s %7s %8s %9s %6s  %s\n", width, "MODEL", "CALLS", "OK", "FAIL", "SUCCESS",
               "AVG_MS", "EMA", "DEGRADED");
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                const msgpack_object *p = &list->via.array.ptr[i];
                char deg[8], since[32];
                put_str_field(p, "model", width);
                put_numbers(p, "total_calls", "success_count", "fail_count");
                ctl_fmt_num(deg, sizeof(deg), ctl_get(p, "degraded"), 0, false);
                if (ctl_fmt_time(since, sizeof(since), ctl_get(p, "degraded_since")))
                        printf("  %s since %s\n", deg, since);
                else
                        printf("  %s\n", deg);

                const msgpack_object *tasks = ctl_get(p, "tasks");
                if (tasks == NULL || tasks->type != MSGPACK_OBJECT_MAP || tasks->via.map.size == 0)
                        continue;
                const msgpack_object_kv **kv = sorted_pairs(tasks);
                if (kv == NULL)
                        return CTL_EXIT_DAEMON;
                for (uint32_t t = 0; t < tasks->via.map.size; t++) {
                        fputs("  ", stdout);
                        if (kv[t]->key.type == MSGPACK_OBJECT_STR)
                                ctl_put_text(kv[t]->key.via.str.ptr, kv[t]->key.via.str.size, width - 2);
                        else
                                ctl_put_text("?", 1, width - 2);
                        put_numbers(&kv[t]->val, "calls", "successes", "failures");
                        putchar('\n');
                        if (print_cells(p, kv[t], width) < 0) {
                                free(kv);
                                return CTL_EXIT_DAEMON;
                        }
                }
                free(kv);
        }
        return CTL_EXIT_OK;
}

static int print_pending(const msgpack_object *list)
{
        if (list->via.array.size == 0) {
                puts("no pending traces");
                return CTL_EXIT_OK;
        }
        size_t wid = 8, wmodel = 5, wtask = 4, len;
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                const msgpack_object *p = &list->via.array.ptr[i];
                if (ctl_get_str(p, "trace_id", &len) && len > wid)
                        wid = len;
                if (ctl_get_str(p, "model", &len) && len > wmodel)
                        wmodel = len;
                if (ctl_get_str(p, "task", &len) && len > wtask)
                        wtask = len;
        }
        int w1 = clamp_width(wid, 8), w2 = clamp_width(wmodel, 5), w3 = clamp_width(wtask, 4);

        printf("%-*s %-*s %-*s %-19s %-4s %9s %8s %8s  %s\n", w1, "TRACE_ID", w2, "MODEL", w3, "TASK",
               "STARTED", "DONE", "LAT_MS", "IN_TOK", "OUT_TOK", "REASON");
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                const msgpack_object *p = &list->via.array.ptr[i];
                const msgpack_object *st = ctl_get(p, "started_at");
                const msgpack_object *done = ctl_get(p, "completed");
                bool completed = done && done->type == MSGPACK_OBJECT_BOOLEAN && done->via.boolean;
                char started[32] = "-", lat[32] = "-", in[24] = "-", out[24] = "-";

                if (st && (st->type == MSGPACK_OBJECT_POSITIVE_INTEGER || st->type == MSGPACK_OBJECT_FLOAT64)) {
                        time_t t = st->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (time_t)st->via.u64
                                                                              : (time_t)st->via.f64;
                        struct tm tm;
                        if (localtime_r(&t, &tm))
                                strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S", &tm);
                }
                if (completed) {
                        ctl_fmt_num(lat, sizeof(lat), ctl_get(p, "latency_ms"), 1, false);
                        ctl_fmt_num(in, sizeof(in), ctl_get(p, "input_tokens"), 0, false);
                        ctl_fmt_num(out, sizeof(out), ctl_get(p, "output_tokens"), 0, false);
                }
                put_str_field(p, "trace_id", w1);
                putchar(' ');
                put_str_field(p, "model", w2);
                putchar(' ');
                put_str_field(p, "task", w3);
                printf(" %-19s %-4s %9s %8s %8s  ", started, completed ? "yes" : "no", lat, in, out);
                size_t rlen = 0;
                const char *reason = ctl_get_str(p, "reason", &rlen);
                if (reason)
                        ctl_put_text(reason, rlen, 0);
                putchar('\n');
        }
        return CTL_EXIT_OK;
}

/* The pending table (arg non-NULL) or the profile table. */
static int print_query(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        bool pending = arg != NULL;
        const msgpack_object *list = ctl_get(result, pending ? "pending" : "profiles");

        (void)ctl;
        if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
                return CTL_PRINT_JSON;
        return pending ? print_pending(list) : print_profiles(list);
}

static int run_query(struct ctl *ctl, int argc, char **argv)
{
        const char *model = NULL, *task = NULL, *domain = NULL, *scope = NULL;
        bool pending = false, have_threshold = false, have_limit = false, domains = false;
        uint32_t threshold = 0, limit = 0;
        const struct ctl_opt opts[] = {
                CTL_VALUE("model", ctl_opt_text, &model, NULL),
                CTL_VALUE("task", ctl_opt_text, &task, NULL),
                CTL_VALUE("degrade-threshold", ctl_opt_u32, &threshold, &have_threshold),
                CTL_FLAG("pending", &pending),
                CTL_VALUE("limit", ctl_opt_u32, &limit, &have_limit),
                CTL_FLAG("domains", &domains),
                CTL_VALUE("domain", ctl_opt_text, &domain, NULL),
                CTL_VALUE("scope", ctl_opt_text, &scope, NULL),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 0, "");
        if (status != CTL_GO)
                return status;
        if (pending && (task || have_threshold || domains || domain))
                return ctl_usage(ctl, "--pending takes only --model and --limit");
        if (!pending && have_limit)
                return ctl_usage(ctl, "--limit goes with --pending");

        const struct ctl_arg args[] = {
                CTL_ARG_B("pending", pending, true), CTL_ARG_S("model", model),
                CTL_ARG_S("task", task), CTL_ARG_S("domain", domain),
                CTL_ARG_U("degrade_threshold", have_threshold, threshold),
                CTL_ARG_U("limit", have_limit, limit), CTL_ARG_B("domains", domains, true),
                CTL_ARG_S("scope", scope),
        };
        return CTL_CALL(ctl, "query", args, print_query, pending ? &pending : NULL);
}

CTL_COMMAND(query, run_query,
        "show the models' profiles, or the pending traces",
        "Usage: outcomectl query [--model MODEL] [--task TASK] [--degrade-threshold N]\n"
        "                        [--domains | --domain DOMAIN]\n"
        "       outcomectl query --pending [--model MODEL] [--limit N]\n"
        "\n"
        "Without --pending: a table with a row per model (sorted by model id) and,\n"
        "indented below it, a row per task:\n"
        "  CALLS     completed calls (model) / calls (task)\n"
        "  OK, FAIL  successes and failures from outcomes and 'fail'\n"
        "  SUCCESS   OK / (OK + FAIL); 50% before any\n"
        "  AVG_MS    mean latency of the completed calls\n"
        "  EMA       quality average, moved 20% toward each judged quality; starts\n"
        "            at 0.5\n"
        "  DEGRADED  yes when FAIL > OK + the degrade threshold, and since when it\n"
        "            is degraded under the daemon's configured threshold\n"
        "With --domains, each task's domain cells below it (evidence per domain:\n"
        "calls, OK, FAIL, SUCCESS; latency and EMA are kept per task only).\n"
        "\n"
        "With --pending: the traces started and not yet resolved, oldest first, with\n"
        "when they started, whether 'complete' came, its latency and tokens, and the\n"
        "routing reason.\n"
        "\n"
        "Options:\n"
        "  --model MODEL           only this model (nothing when it is unknown)\n"
        "  --task TASK             only models with calls of this task, and only it\n"
        "  --degrade-threshold N   the threshold for DEGRADED (integer; default: the\n"
        "                          daemon's configuration, 3)\n"
        "  --domains               also each task's domain cells\n"
        "  --domain DOMAIN         also the cells of this domain only\n"
        "  --scope fleet|host      every host's evidence summed (the default with a\n"
        "                          [fleet] section) or this host's alone\n"
        "  --pending               list the pending traces instead\n"
        "  --limit N               at most N pending traces (default 1000)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                          as in 'outcomectl --help'; --json prints the\n"
        "                          daemon's answer with every field\n"
        "\n"
        "Examples:\n"
        "  outcomectl query\n"
        "  outcomectl query --task code --degrade-threshold 5\n"
        "  outcomectl query --task reasoning --domains\n"
        "  outcomectl query --pending --model gpt-4o --limit 20\n");

/* ---- ping, stats ------------------------------------------------------ */

static int print_ping(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        size_t len;
        const char *v = ctl_get_str(result, "version", &len);

        (void)ctl;
        (void)arg;
        if (v == NULL)
                return CTL_PRINT_JSON;
        ctl_put_text(v, len, 0);
        putchar('\n');
        return CTL_EXIT_OK;
}

CTL_NOARGS_COMMAND(ping, print_ping,
        "check that the daemon answers; prints its version",
        "Usage: outcomectl ping\n"
        "\n"
        "Ask the daemon for its version and print it.  Exit status 0 means the daemon\n"
        "answers on its socket; 3 that it cannot be reached.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Example:\n"
        "  outcomectl --timeout 2 ping || echo 'outcomed is not answering'\n");

/* 'key: value' lines. */
static int print_stats(struct ctl *ctl, const msgpack_object *m, void *arg)
{
        (void)ctl;
        (void)arg;
        if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
                return CTL_PRINT_JSON;
        for (uint32_t i = 0; i < m->via.map.size; i++) {
                ctl_put_value(&m->via.map.ptr[i].key);
                fputs(": ", stdout);
                ctl_put_value(&m->via.map.ptr[i].val);
                putchar('\n');
        }
        return CTL_EXIT_OK;
}

CTL_NOARGS_COMMAND(stats, print_stats,
        "show the daemon's counters as 'key: value' lines",
        "Usage: outcomectl stats\n"
        "\n"
        "Print the daemon's counters, one 'key: value' line each: at least version,\n"
        "uptime_s, connections, requests_total, errors_total (error replies and failed\n"
        "notifications), notify_errors_total, pending (traces) and profiles (models).\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n");

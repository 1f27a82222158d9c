/* ctl_report.c - `outcomectl report --html FILE`: what the daemon learned,
 * as one self-contained HTML page that opens from disk with no network.
 *
 * It asks the daemon for `stats`, `query` (every profile, no domains),
 * `rank` for each task some model has, and `history` over --since in
 * buckets sized to keep the answer under the daemon's point limit (a
 * daemon without `history` gives a report of the current evidence only).
 * The answers go into the page as one JSON document, every '<' written
 * \u003c so that no text in it can end its <script> element; uPlot and
 * report/report.js (embedded at build time, see client/meson.build) draw
 * the page from it in the browser.  The file is written through a
 * temporary file renamed over FILE.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "json.h"

/* Embedded by tools/embed_text.py (report_assets.c). */
extern const char report_uplot_js[], report_uplot_css[], report_js[], report_css[];

#define REPORT_DEFAULT_SINCE "7d"
#define REPORT_MAX_SINCE_S (366ull * 86400)
/* About this many buckets across the window: a plot a person can read,
 * and with 40 (model, task) series still under the 10,000-point limit. */
#define REPORT_BUCKETS 240

static const char *const report_tasks[] = { "generate", "embed", "classify", "code", "reasoning" };
#define N_TASKS (sizeof(report_tasks) / sizeof(report_tasks[0]))

/* Bucket sizes to pick from, in seconds: the shape of the history plots. */
static const uint32_t report_buckets[] = {
        60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400,
        14 * 86400, 31 * 86400,
};
#define N_BUCKETS (sizeof(report_buckets) / sizeof(report_buckets[0]))

struct report {
        const char *since_arg;
        uint64_t since, until, generated_at;
        uint32_t bucket_s;
        struct oc_reply stats, query, history;
        struct oc_reply rank[N_TASKS];
        bool have_rank[N_TASKS];
        bool have_history;
        char history_note[512];   /* why there is no history, when there is none */
};

/* --since: a duration (ctl_opt_duration) of 1m to 366d, into
 * *(uint64_t *)dst in seconds.  0, or -1 after a usage error. */
static int report_opt_since(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        uint64_t secs;
        if (ctl_opt_duration(ctl, opt, arg, &secs) < 0)
                return -1;
        if (secs > REPORT_MAX_SINCE_S) {
                ctl_usage(ctl, "%s is too long: '%s' (at most 366d)", opt, arg);
                return -1;
        }
        if (secs < 60) {
                ctl_usage(ctl, "%s is too short: '%s' (at least 1m)", opt, arg);
                return -1;
        }
        *(uint64_t *)dst = secs;
        return 0;
}

/* The smallest bucket size from report_buckets[] at or after index `from`
 * that cuts span into at most REPORT_BUCKETS buckets; the index. */
static size_t pick_bucket(uint64_t span, size_t from)
{
        size_t i = from;
        while (i + 1 < N_BUCKETS && span / report_buckets[i] > REPORT_BUCKETS)
                i++;
        return i;
}

/* `history` over [since, until].  A daemon over its point limit is asked
 * again with the next bucket size; one without the method leaves the
 * report without history (have_history false, the reason in the note).
 * Returns an exit status. */
static int fetch_history(struct ctl *ctl, struct report *r)
{
        char err[512];
        size_t b = pick_bucket(r->until - r->since, 0);

        for (;;) {
                msgpack_packer *pk = ctl_begin(ctl, "history");
                if (pk == NULL)
                        return CTL_EXIT_CONNECT;
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 3);
                ctl_pack_key(pk, "since");
                msgpack_pack_uint64(pk, r->since);
                ctl_pack_key(pk, "until");
                msgpack_pack_uint64(pk, r->until);
                ctl_pack_u32(pk, "bucket_s", report_buckets[b]);
                struct oc_reply reply;
                if (oc_call(ctl->client, &reply, err, sizeof(err)) < 0) {
                        fprintf(stderr, "outcomectl: %s\n", err);
                        return CTL_EXIT_CONNECT;
                }
                if (reply.code == NULL) {
                        r->history = reply;
                        r->have_history = true;
                        r->bucket_s = report_buckets[b];
                        return CTL_EXIT_OK;
                }
                bool unknown = strcmp(reply.code, "unknown_method") == 0;
                bool too_many = strcmp(reply.code, "bad_request") == 0 &&
                                strstr(reply.message, "over the limit") != NULL &&
                                b + 1 < N_BUCKETS;
                if (unknown)
                        snprintf(r->history_note, sizeof(r->history_note),
                                 "no history from this daemon (it answers history with %s: %s)",
                                 reply.code, reply.message);
                else if (!too_many)
                        fprintf(stderr, "outcomectl: history: %s: %s\n", reply.code, reply.message);
                oc_reply_destroy(&reply);
                if (unknown)
                        return CTL_EXIT_OK;
                if (!too_many)
                        return CTL_EXIT_DAEMON;
                b++;
        }
}

/* Whether some profile of the `query` result has stats for task. */
static bool task_seen(const msgpack_object *query, const char *task)
{
        const msgpack_object *profiles = ctl_get(query, "profiles");
        if (profiles == NULL || profiles->type != MSGPACK_OBJECT_ARRAY)
                return false;
        for (uint32_t i = 0; i < profiles->via.array.size; i++)
                if (ctl_get(ctl_get(&profiles->via.array.ptr[i], "tasks"), task) != NULL)
                        return true;
        return false;
}

static int fetch(struct ctl *ctl, struct report *r)
{
        int status = ctl_call_noargs(ctl, "stats", &r->stats);
        if (status == CTL_EXIT_OK)
                status = ctl_call_noargs(ctl, "query", &r->query);
        for (size_t t = 0; status == CTL_EXIT_OK && t < N_TASKS; t++) {
                if (!task_seen(r->query.result, report_tasks[t]))
                        continue;
                msgpack_packer *pk = ctl_begin(ctl, "rank");
                if (pk == NULL)
                        return CTL_EXIT_CONNECT;
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 1);
                ctl_pack_str(pk, "task", report_tasks[t]);
                status = ctl_call(ctl, &r->rank[t]);
                r->have_rank[t] = status == CTL_EXIT_OK;
        }
        if (status == CTL_EXIT_OK)
                status = fetch_history(ctl, r);
        return status;
}

static void report_free(struct report *r)
{
        oc_reply_destroy(&r->stats);
        oc_reply_destroy(&r->query);
        if (r->have_history)
                oc_reply_destroy(&r->history);
        for (size_t t = 0; t < N_TASKS; t++)
                if (r->have_rank[t])
                        oc_reply_destroy(&r->rank[t]);
}

/* ---- the page ---------------------------------------------------------- */

/* The data document: the daemon's answers as JSON. */
static int write_data(FILE *f, const struct report *r)
{
        fprintf(f, "{\"generated_at\":%" PRIu64 ",\"since\":%" PRIu64 ",\"until\":%" PRIu64
                ",\"since_arg\":", r->generated_at, r->since, r->until);
        json_print_string(f, r->since_arg, strlen(r->since_arg));
        fputs(",\"stats\":", f);
        json_print(f, r->stats.result);
        fputs(",\"query\":", f);
        json_print(f, r->query.result);
        fputs(",\"rank\":{", f);
        const char *sep = "";
        for (size_t t = 0; t < N_TASKS; t++) {
                if (!r->have_rank[t])
                        continue;
                fprintf(f, "%s\"%s\":", sep, report_tasks[t]);
                json_print(f, r->rank[t].result);
                sep = ",";
        }
        fputs("},\"history\":", f);
        if (r->have_history)
                json_print(f, r->history.result);
        else
                fputs("null", f);
        fputs(",\"history_note\":", f);
        json_print_string(f, r->history_note, strlen(r->history_note));
        fputs("}", f);
        return ferror(f) ? -1 : 0;
}

static int write_page(FILE *f, void *arg)
{
        const struct report *r = arg;
        char *data = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&data, &len);
        if (m == NULL)
                return -1;
        int rc = write_data(m, r);
        if (fclose(m) != 0 || rc < 0) {
                free(data);
                errno = errno ? errno : EIO;
                return -1;
        }

        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              /* Nothing in the page may reach the network. */
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
              "<title>outcomed report</title>\n<style>\n", f);
        fputs(report_uplot_css, f);
        fputs("</style>\n<style>\n", f);
        fputs(report_css, f);
        fputs("</style>\n</head>\n<body>\n"
              "<noscript>This report draws its tables and charts with JavaScript; its data is "
              "the JSON in the element #report-data.</noscript>\n"
              "<main id=\"report\"></main>\n"
              "<script type=\"application/json\" id=\"report-data\">", f);
        /* JSON has '<' only inside strings, where \u003c means the same. */
        for (size_t i = 0; i < len; i++) {
                if (data[i] == '<')
                        fputs("\\u003c", f);
                else
                        putc(data[i], f);
        }
        free(data);
        fputs("</script>\n<script>\n", f);
        fputs(report_uplot_js, f);
        fputs("\n</script>\n<script>\n", f);
        fputs(report_js, f);
        fputs("</script>\n</body>\n</html>\n", f);
        return ferror(f) ? -1 : 0;
}

/* The number of (model, task) series and points the history holds. */
static void history_counts(const struct report *r, uint64_t *series, uint64_t *points)
{
        *series = *points = 0;
        if (!r->have_history)
                return;
        const msgpack_object *s = ctl_get(r->history.result, "series");
        const msgpack_object *p = ctl_get(r->history.result, "points");
        if (s != NULL && s->type == MSGPACK_OBJECT_ARRAY)
                *series = s->via.array.size;
        if (p != NULL && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *points = p->via.u64;
}

static int str_cmp(const void *a, const void *b)
{
        const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
        const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
        int c = memcmp(x->ptr, y->ptr, x->size < y->size ? x->size : y->size);
        return c != 0 ? c : (x->size > y->size) - (x->size < y->size);
}

/* The string values of `key` in the maps of array `list`, appended to v. */
static size_t collect(const msgpack_object *list, const char *key, const msgpack_object_str **v,
                      size_t n)
{
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size;
             i++) {
                const msgpack_object *o = ctl_get(&list->via.array.ptr[i], key);
                if (o != NULL && o->type == MSGPACK_OBJECT_STR)
                        v[n++] = &o->via.str;
        }
        return n;
}

/* The models and tasks the page shows: those with stats now and those of
 * the history, as report.js counts them.  -1 when out of memory. */
static int count_shown(const struct report *r, size_t *models, unsigned *tasks)
{
        const msgpack_object *profiles = ctl_get(r->query.result, "profiles");
        const msgpack_object *series = r->have_history ? ctl_get(r->history.result, "series") : NULL;
        size_t cap = (profiles && profiles->type == MSGPACK_OBJECT_ARRAY ? profiles->via.array.size : 0) +
                     (series && series->type == MSGPACK_OBJECT_ARRAY ? series->via.array.size : 0);
        const msgpack_object_str **v = malloc((cap ? cap : 1) * sizeof(*v));
        if (v == NULL)
                return -1;
        size_t n = collect(series, "task", v, 0);
        *tasks = 0;
        for (size_t t = 0; t < N_TASKS; t++) {
                bool seen = r->have_rank[t];
                for (size_t i = 0; i < n && !seen; i++)
                        seen = v[i]->size == strlen(report_tasks[t]) &&
                               memcmp(v[i]->ptr, report_tasks[t], v[i]->size) == 0;
                *tasks += seen;
        }
        n = collect(series, "model", v, collect(profiles, "model", v, 0));
        qsort(v, n, sizeof(*v), str_cmp);
        *models = 0;
        for (size_t i = 0; i < n; i++)
                *models += i == 0 || str_cmp(&v[i - 1], &v[i]) != 0;
        free(v);
        return 0;
}

static int say_written(struct ctl *ctl, const char *path, const struct report *r)
{
        size_t models;
        unsigned tasks;
        if (count_shown(r, &models, &tasks) < 0) {
                fprintf(stderr, "outcomectl: report: out of memory\n");
                return CTL_EXIT_DAEMON;
        }
        uint64_t series, points;
        history_counts(r, &series, &points);

        if (ctl->json) {
                printf("{\"file\":");
                json_print_string(stdout, path, strlen(path));
                printf(",\"since\":%" PRIu64 ",\"until\":%" PRIu64 ",\"models\":%zu"
                       ",\"tasks\":%u,\"history\":%s,\"bucket_s\":%" PRIu32 ",\"series\":%" PRIu64
                       ",\"points\":%" PRIu64 "}\n", r->since, r->until, models, tasks,
                       r->have_history ? "true" : "false", r->bucket_s, series, points);
                return CTL_EXIT_OK;
        }
        printf("wrote ");
        ctl_put_text(path, strlen(path), 0);
        printf(": %zu model%s, %u task%s", models, models == 1 ? "" : "s", tasks,
               tasks == 1 ? "" : "s");
        if (r->have_history)
                printf(", history of the last %s in %" PRIu32 " s buckets (%" PRIu64
                       " series, %" PRIu64 " points)\n", r->since_arg, r->bucket_s, series, points);
        else
                printf("; no history from this daemon (no history method)\n");
        return CTL_EXIT_OK;
}

static int run_report(struct ctl *ctl, int argc, char **argv)
{
        struct report r = { .since_arg = REPORT_DEFAULT_SINCE };
        const char *html = NULL;
        uint64_t span;
        const struct ctl_opt opts[] = { CTL_STR("html", &html), CTL_STR("since", &r.since_arg) };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, -1, "");
        if (status != CTL_GO)
                return status;
        if (report_opt_since(ctl, "--since", r.since_arg, &span) < 0)
                return CTL_EXIT_USAGE;
        if (html == NULL)
                return ctl_usage(ctl, "--html FILE is required");
        if (html[0] == '\0')
                return ctl_usage(ctl, "--html: FILE must not be empty");
        if (ctl_positionals(ctl, argc, argv, 0, "") < 0)
                return CTL_EXIT_USAGE;

        r.generated_at = r.until = (uint64_t)time(NULL);
        r.since = r.until - span;
        status = fetch(ctl, &r);
        if (status == CTL_EXIT_OK) {
                char err[1024];
                if (ctl_write_file(html, write_page, &r, err, sizeof(err)) < 0) {
                        fprintf(stderr, "outcomectl: report: %s\n", err);
                        status = CTL_EXIT_DAEMON;
                } else {
                        status = say_written(ctl, html, &r);
                }
        }
        report_free(&r);
        return status;
}

CTL_COMMAND(report, run_report,
        "write an HTML report of what the daemon learned, with plots",
        "Usage: outcomectl report --html FILE [--since DURATION]\n"
        "\n"
        "Write one self-contained HTML page of what the daemon learned: per task, the\n"
        "current ranking (the posterior mean and its 95% interval, judged outcomes, p50\n"
        "latency, cost per accepted outcome) and the models sidelined as degraded, with\n"
        "why and since when; and, from the daemon's `history`, plots over the last\n"
        "DURATION per model: quality (EMA, and the posterior mean with its interval\n"
        "band), calls and failures, latency p50 and p95, and cost per accepted outcome.\n"
        "A daemon without `history` gives the current evidence only, and the plots say\n"
        "\"no history from this daemon\".\n"
        "\n"
        "The page carries its data, charts (uPlot), script and style inline: it opens\n"
        "from disk in a browser with no network, and can be mailed or archived as it is.\n"
        "It is written to a temporary file in FILE's directory and renamed over FILE.\n"
        "\n"
        "Options:\n"
        "  --html FILE         the page to write (required)\n"
        "  --since DURATION    how far back the plots go: a whole number and a unit,\n"
        "                      s, m, h, d or w (90m, 36h, 7d; default 7d, at most 366d);\n"
        "                      the buckets are sized to give about 240 points a model\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                      as in 'outcomectl --help'; with --json, what was written\n"
        "                      is printed as {\"file\", \"since\", \"until\", \"models\",\n"
        "                      \"tasks\", \"history\", \"bucket_s\", \"series\", \"points\"}\n"
        "\n"
        "Examples:\n"
        "  outcomectl report --html report.html && xdg-open report.html\n"
        "  outcomectl report --html /srv/www/outcomed/today.html --since 36h\n");

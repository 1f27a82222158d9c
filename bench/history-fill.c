/* history-fill - write days of made-up history into an outcomed database
 * through the store's own API (store_open, a batch with its rollup rows,
 * store_submit), as the daemon's writer does: for benchmarks of `history`
 * and for tests that need weeks of rows, which cannot be fed through the
 * socket in a test's time.
 *
 * Each (model, task) series gets one row a minute (calls, successes,
 * failures, judged outcomes, quality, tokens, a latency per call, and its
 * EMA and evidence drifting), an hour per batch; with --domains each
 * series' domains get a row a day.  The numbers come from a fixed seed:
 * the same arguments write the same rows.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "rollup.h"
#include "store.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: history-fill --db FILE [--days N] [--models M] [--tasks T]\n"
                "                    [--domains D] [--end UNIX] [--every MINUTES] [--seed S]\n"
                "\n"
                "Write N days of history rows (what outcomed's `history` reads) for M models x\n"
                "T tasks into FILE (created, or an existing outcomed database; not while a\n"
                "daemon uses it), through the store's own writer.  Models are named\n"
                "model-00, model-01, ...; tasks are the first T of generate, embed, classify,\n"
                "code, reasoning.\n"
                "\n"
                "  --db FILE       the database (required)\n"
                "  --days N        days of rows, ending at --end (default 30)\n"
                "  --models M      models (default 20, at most 1000)\n"
                "  --tasks T       tasks per model (default 5, at most 5)\n"
                "  --domains D     D domains per series (domain-0, ...), a row a day each\n"
                "                  (default 0)\n"
                "  --end UNIX      the end of the last day written (default now, rounded\n"
                "                  down to the minute)\n"
                "  --every MIN     a row every MIN minutes of each series (default 1)\n"
                "  --seed S        the pseudo-random numbers' seed (default 1)\n"
                "\n"
                "Example: 30 days for 20 models x 5 tasks (4,320,000 minute rows, the\n"
                "benchmark's), then read an hour-bucketed model back:\n"
                "  history-fill --db /tmp/h.db --days 30 --models 20 --tasks 5\n"
                "  outcomed --db /tmp/h.db --socket /tmp/h.sock &\n"
                "  outcomectl --socket /tmp/h.sock history --model model-03 --since 30d\n");
}

static uint64_t rng_state;

static double rnd(void) /* [0, 1): splitmix64 */
{
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        return (double)(z >> 11) / 9007199254740992.0;
}

static int pending;
static int failed;

static void on_done(void *data, int status, const char *errmsg)
{
        (void)data;
        pending--;
        if (status < 0) {
                fprintf(stderr, "history-fill: a batch failed: %s\n", errmsg);
                failed = 1;
        }
}

/* A series' state as it drifts. */
struct fill_series {
        char model[32];
        enum tracker_task task;
        double rate;    /* success probability */
        double ema;
        struct tracker_evidence ev;
        double lat_ms;  /* typical latency */
};

static void fill_point(struct fill_series *s, uint64_t t, struct rollup_point *p)
{
        memset(p, 0, sizeof(*p));
        p->t = t;
        s->rate += (rnd() - 0.5) * 0.02;
        s->rate = s->rate < 0.05 ? 0.05 : s->rate > 0.99 ? 0.99 : s->rate;
        p->calls = 1 + (uint64_t)(rnd() * 4);
        for (uint64_t i = 0; i < p->calls; i++) {
                bool ok = rnd() < s->rate;
                *(ok ? &p->successes : &p->failures) += 1;
                double q = ok ? 0.6 + 0.4 * rnd() : 0.3 * rnd();
                if (rnd() < 0.8) {
                        p->judged++;
                        p->quality_sum += q;
                        s->ema = s->ema * (1.0 - TRACKER_EMA_ALPHA) + q * TRACKER_EMA_ALPHA;
                        s->ev.alpha += q;
                        s->ev.beta += 1.0 - q;
                }
                uint32_t ms = (uint32_t)(s->lat_ms * exp((rnd() - 0.5) * 1.5));
                p->latency[tracker_sketch_bucket(ms)]++;
                p->input_tokens += 200 + (uint64_t)(rnd() * 800);
                p->output_tokens += 50 + (uint64_t)(rnd() * 400);
        }
        s->ev.at = t + 59;
        p->has_latency = p->has_ema = p->has_ev = true;
        p->ema = s->ema;
        p->ev = s->ev;
}

int main(int argc, char **argv)
{
        const char *db = NULL;
        long days = 30, models = 20, tasks = 5, domains = 0, every = 1;
        uint64_t end = (uint64_t)time(NULL), seed = 1;
        static const struct option opts[] = {
                { "db", required_argument, NULL, 'D' },     { "days", required_argument, NULL, 'd' },
                { "models", required_argument, NULL, 'm' }, { "tasks", required_argument, NULL, 't' },
                { "domains", required_argument, NULL, 'o' }, { "end", required_argument, NULL, 'e' },
                { "every", required_argument, NULL, 'v' },  { "seed", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },         { 0 },
        };
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'D': db = optarg; break;
                case 'd': days = strtol(optarg, NULL, 10); break;
                case 'm': models = strtol(optarg, NULL, 10); break;
                case 't': tasks = strtol(optarg, NULL, 10); break;
                case 'o': domains = strtol(optarg, NULL, 10); break;
                case 'e': end = strtoull(optarg, NULL, 10); break;
                case 'v': every = strtol(optarg, NULL, 10); break;
                case 's': seed = strtoull(optarg, NULL, 10); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!db || optind != argc || days < 1 || days > 3650 || models < 1 || models > 1000 ||
            tasks < 1 || tasks > TASK__COUNT || domains < 0 || domains > 100 || every < 1 ||
            every > 1440) {
                usage(stderr);
                return 2;
        }
        rng_state = seed;
        end -= end % ROLLUP_MINUTE;
        uint64_t start = end - (uint64_t)days * ROLLUP_DAY;
        size_t n = (size_t)(models * tasks);
        struct fill_series *series = calloc(n, sizeof(*series));
        struct rollup *acc = rollup_new();
        uv_loop_t loop;
        struct store *store = NULL;
        char err[512];
        if (!series || !acc || uv_loop_init(&loop) < 0) {
                fprintf(stderr, "history-fill: out of memory\n");
                return 1;
        }
        if (store_open(&store, db, &loop, err, sizeof(err)) < 0) {
                fprintf(stderr, "history-fill: %s\n", err);
                return 1;
        }
        for (size_t i = 0; i < n; i++) {
                struct fill_series *s = &series[i];
                snprintf(s->model, sizeof(s->model), "model-%02zu", i / (size_t)tasks);
                s->task = (enum tracker_task)(i % (size_t)tasks);
                s->rate = 0.5 + 0.45 * rnd();
                s->ema = TRACKER_PRIOR;
                s->lat_ms = 200 + 3000 * rnd();
        }
        uint64_t rows = 0;
        struct rollup_point p, day;
        for (uint64_t h = start; h < end && !failed; h += ROLLUP_HOUR) {
                for (size_t i = 0; i < n; i++) {
                        for (uint64_t t = h; t < h + ROLLUP_HOUR && t < end;
                             t += (uint64_t)every * ROLLUP_MINUTE) {
                                fill_point(&series[i], t, &p);
                                if (rollup_add(acc, series[i].model, series[i].task, NULL, &p) < 0)
                                        failed = 1;
                                rows++;
                        }
                        /* A domain's day: written with the day's first hour. */
                        for (long d = 0; d < domains && (h - start) % ROLLUP_DAY == 0; d++) {
                                char name[32];
                                snprintf(name, sizeof(name), "domain-%ld", d);
                                fill_point(&series[i], h, &day);
                                day.calls *= 100;
                                if (rollup_add(acc, series[i].model, series[i].task, name, &day) < 0)
                                        failed = 1;
                                rows++;
                        }
                }
                struct store_batch *b = store_batch_new();
                if (!b || store_batch_set_rollup(b, acc) < 0 ||
                    store_submit(store, b, on_done, NULL) < 0) {
                        fprintf(stderr, "history-fill: out of memory\n");
                        failed = 1;
                        break;
                }
                pending++;
                while (pending > 2)
                        uv_run(&loop, UV_RUN_ONCE);
        }
        store_close(store, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        rollup_free(acc);
        free(series);
        if (failed)
                return 1;
        printf("history-fill: %" PRIu64 " rows, %ld days of %ld models x %ld tasks%s into %s\n",
               rows, days, models, tasks, domains ? " with domains" : "", db);
        return 0;
}

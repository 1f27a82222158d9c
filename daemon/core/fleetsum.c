/* fleetsum.c - a host's additive evidence as rows, and the fleet view:
 * every host's rows summed in host_id order into a tracker of its own.
 * See fleetsum.h for what is summed and what stays per host. */
#include "fleetsum.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int fleetsum__task_order(uint8_t task)
{
        return task == FLEETSUM_MODEL ? -1 : (int)task;
}

int fleetsum_key_cmp(const struct fleetsum_row *a, const struct fleetsum_row *b)
{
        int c = strcmp(a->model, b->model);
        if (c)
                return c;
        int ta = fleetsum__task_order(a->task), tb = fleetsum__task_order(b->task);
        if (ta != tb)
                return ta < tb ? -1 : 1;
        return strcmp(a->domain, b->domain);
}

int fleetsum_row_cmp(const void *pa, const void *pb)
{
        const struct fleetsum_row *a = pa, *b = pb;
        int c = fleetsum_key_cmp(a, b);
        if (c)
                return c;
        return strcmp(a->host ? a->host : "", b->host ? b->host : "");
}

int fleetsum_row_same(const struct fleetsum_row *a, const struct fleetsum_row *b)
{
        return a->calls == b->calls && a->successes == b->successes &&
               a->failures == b->failures &&
               memcmp(&a->latency_sum_ms, &b->latency_sum_ms, sizeof(double)) == 0 &&
               memcmp(&a->ema, &b->ema, sizeof(double)) == 0 &&
               memcmp(&a->ev.alpha, &b->ev.alpha, sizeof(double)) == 0 &&
               memcmp(&a->ev.beta, &b->ev.beta, sizeof(double)) == 0 &&
               memcmp(&a->ev.judged, &b->ev.judged, sizeof(double)) == 0 &&
               a->ev.at == b->ev.at && a->ev.input_tokens == b->ev.input_tokens &&
               a->ev.output_tokens == b->ev.output_tokens &&
               memcmp(&a->recent_alpha, &b->recent_alpha, sizeof(double)) == 0 &&
               memcmp(&a->recent_beta, &b->recent_beta, sizeof(double)) == 0 &&
               memcmp(&a->win_alpha, &b->win_alpha, sizeof(double)) == 0 &&
               memcmp(&a->win_beta, &b->win_beta, sizeof(double)) == 0 &&
               a->updated_at == b->updated_at &&
               memcmp(a->sketch, b->sketch, sizeof(a->sketch)) == 0;
}

/* ---- a host's snapshot ------------------------------------------------- */

long fleetsum_snapshot(const struct tracker *t, struct fleetsum_row **out)
{
        const struct tracker_profile **all;
        long np = tracker_profiles_sorted(t, &all);
        if (np < 0)
                return -ENOMEM;
        size_t n = 0;
        for (long i = 0; i < np; i++) {
                n++;
                for (int k = 0; k < TASK__COUNT; k++)
                        n += all[i]->tasks[k].present;
                n += tracker_profile_cells(all[i]);
        }
        struct fleetsum_row *rows = calloc(n ? n : 1, sizeof(*rows));
        if (!rows) {
                free(all);
                return -ENOMEM;
        }
        size_t j = 0;
        for (long i = 0; i < np; i++) {
                const struct tracker_profile *p = all[i];
                struct fleetsum_row *r = &rows[j++];
                r->model = p->model;
                r->domain = "";
                r->task = FLEETSUM_MODEL;
                r->calls = p->total_calls;
                r->successes = p->success_count;
                r->failures = p->fail_count;
                r->latency_sum_ms = (double)p->total_latency_ms;
                r->ema = p->ema_quality;
                r->ev = p->ev;
                r->updated_at = p->updated_at;
                for (int k = 0; k < TASK__COUNT; k++) {
                        const struct tracker_task_stats *ts = &p->tasks[k];
                        if (!ts->present)
                                continue;
                        r = &rows[j++];
                        r->model = p->model;
                        r->domain = "";
                        r->task = (uint8_t)k;
                        r->calls = ts->calls;
                        r->successes = ts->successes;
                        r->failures = ts->failures;
                        r->latency_sum_ms = ts->avg_latency_ms * (double)ts->calls;
                        r->ema = ts->ema_quality;
                        r->ev = ts->ev;
                        r->updated_at = p->updated_at;
                        memcpy(r->sketch, ts->latency, sizeof(r->sketch));
                }
                for (const struct tracker_cell *c = tracker_cell_first(p); c;
                     c = tracker_cell_next(c)) {
                        r = &rows[j++];
                        r->model = p->model;
                        r->domain = c->domain;
                        r->task = c->task;
                        r->calls = c->calls;
                        r->successes = c->successes;
                        r->failures = c->failures;
                        r->ev = c->ev;
                        r->recent_alpha = c->recent_alpha;
                        r->recent_beta = c->recent_beta;
                        r->win_alpha = c->win_alpha;
                        r->win_beta = c->win_beta;
                        r->updated_at = c->updated_at;
                }
        }
        free(all);
        qsort(rows, j, sizeof(*rows), fleetsum_row_cmp);
        *out = rows;
        return (long)j;
}

/* ---- the sum ------------------------------------------------------------ */

static uint64_t fleetsum__add(uint64_t a, uint64_t b)
{
        return a + b < a ? UINT64_MAX : a + b;
}

/* One key's rows [0, n), in host order, summed into *s (host NULL). */
static void fleetsum__sum(const struct fleetsum_row *rows, size_t n, uint64_t half_life,
                          const char *self, struct fleetsum_row *s)
{
        uint64_t at = 0;
        for (size_t i = 0; i < n; i++)
                at = rows[i].ev.at > at ? rows[i].ev.at : at;
        *s = (struct fleetsum_row){ .model = rows[0].model, .domain = rows[0].domain,
                                    .task = rows[0].task, .ema = TRACKER_PRIOR };
        s->ev.at = at;
        for (size_t i = 0; i < n; i++) {
                const struct fleetsum_row *r = &rows[i];
                struct tracker_evidence e = r->ev;
                tracker_evidence_fade(&e, at, half_life);
                s->calls = fleetsum__add(s->calls, r->calls);
                s->successes = fleetsum__add(s->successes, r->successes);
                s->failures = fleetsum__add(s->failures, r->failures);
                s->latency_sum_ms += r->latency_sum_ms;
                s->ev.alpha += e.alpha;
                s->ev.beta += e.beta;
                s->ev.judged += e.judged;
                s->ev.input_tokens = fleetsum__add(s->ev.input_tokens, e.input_tokens);
                s->ev.output_tokens = fleetsum__add(s->ev.output_tokens, e.output_tokens);
                s->recent_alpha += r->recent_alpha;
                s->recent_beta += r->recent_beta;
                s->win_alpha += r->win_alpha;
                s->win_beta += r->win_beta;
                s->updated_at = r->updated_at > s->updated_at ? r->updated_at : s->updated_at;
                for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++) {
                        uint64_t v = (uint64_t)s->sketch[b] + r->sketch[b];
                        s->sketch[b] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
                }
                if (self && r->host && strcmp(r->host, self) == 0)
                        s->ema = r->ema;
        }
}

/* Load one model: its summed rows sums[0, n), the model's totals first
 * when there are any. */
static int fleetsum__load_model(struct tracker *t, const struct fleetsum_row *sums, size_t n)
{
        struct tracker_profile p;
        memset(&p, 0, sizeof(p));
        p.model = (char *)sums[0].model;
        p.ema_quality = TRACKER_PRIOR;
        for (size_t i = 0; i < n; i++) {
                const struct fleetsum_row *s = &sums[i];
                if (s->task == FLEETSUM_MODEL) {
                        p.total_calls = s->calls;
                        p.success_count = s->successes;
                        p.fail_count = s->failures;
                        p.total_latency_ms = (uint64_t)s->latency_sum_ms;
                        p.ema_quality = s->ema;
                        p.ev = s->ev;
                        p.updated_at = s->updated_at;
                } else if (!s->domain[0] && s->task < TASK__COUNT) {
                        struct tracker_task_stats *ts = &p.tasks[s->task];
                        ts->present = true;
                        ts->calls = s->calls;
                        ts->successes = s->successes;
                        ts->failures = s->failures;
                        ts->avg_latency_ms = s->calls ? s->latency_sum_ms / (double)s->calls : 0;
                        ts->ema_quality = s->ema;
                        ts->ev = s->ev;
                        memcpy(ts->latency, s->sketch, sizeof(ts->latency));
                }
        }
        int r = tracker_load_profile(t, &p);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const struct fleetsum_row *s = &sums[i];
                if (!s->domain[0] || s->task >= TASK__COUNT)
                        continue;
                struct tracker_cell c = {
                        .model = s->model, .domain = s->domain, .task = s->task,
                        .calls = s->calls, .successes = s->successes, .failures = s->failures,
                        .ev = s->ev, .updated_at = s->updated_at,
                        .recent_alpha = s->recent_alpha, .recent_beta = s->recent_beta,
                        .win_alpha = s->win_alpha, .win_beta = s->win_beta,
                };
                bool created;
                r = tracker_import_cell(t, &c, true, s->updated_at, &created);
                if (r == -ENOMEM)
                        return r; /* -ENOSPC: past the cell limit, the task's totals hold it */
        }
        return 0;
}

int fleetsum_build(const struct fleetsum_row *rows, size_t n, const struct fleetsum_options *o,
                   struct tracker **out)
{
        struct tracker_options to = { .id_prefix = "fleet" };
        struct tracker *t = tracker_new(&to);
        if (!t)
                return -ENOMEM;
        tracker_set_half_life(t, o->half_life);
        tracker_set_degrade_threshold(t, o->degrade_threshold);
        tracker_set_max_cells(t, o->max_cells);
        struct fleetsum_row *sums = NULL;
        size_t cap = 0;
        int r = 0;
        for (size_t i = 0; i < n && r == 0;) {
                size_t m = 0; /* summed keys of this model */
                size_t j = i;
                while (j < n && strcmp(rows[j].model, rows[i].model) == 0) {
                        size_t k = j;
                        while (k < n && fleetsum_key_cmp(&rows[k], &rows[j]) == 0)
                                k++;
                        if (m == cap) {
                                size_t nc = cap ? 2 * cap : 16;
                                struct fleetsum_row *v = realloc(sums, nc * sizeof(*v));
                                if (!v) {
                                        r = -ENOMEM;
                                        break;
                                }
                                sums = v;
                                cap = nc;
                        }
                        fleetsum__sum(&rows[j], k - j, o->half_life, o->self, &sums[m++]);
                        j = k;
                }
                if (r == 0)
                        r = fleetsum__load_model(t, sums, m);
                i = j;
        }
        free(sums);
        if (r < 0) {
                tracker_free(t);
                return r;
        }
        *out = t;
        return 0;
}

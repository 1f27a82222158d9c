/* rollup.c - per-minute accumulation of the tracker's changes for the
 * history, and the arithmetic of points (see rollup.h). */
#include "rollup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "siphash.h"

struct rollup {
        struct rollup_row *rows;
        size_t n, cap;
        uint32_t *slots; /* open addressing: row index + 1, 0 empty */
        size_t nslots;   /* a power of two, at least 2n */
        int status;
        struct tracker *t; /* the watched tracker */
};

/* ---- points ------------------------------------------------------------ */

void rollup_point_merge(struct rollup_point *dst, const struct rollup_point *src)
{
        dst->calls += src->calls;
        dst->successes += src->successes;
        dst->failures += src->failures;
        dst->judged += src->judged;
        dst->quality_sum += src->quality_sum;
        dst->input_tokens += src->input_tokens;
        dst->output_tokens += src->output_tokens;
        if (src->has_ema) {
                dst->has_ema = true;
                dst->ema = src->ema;
        }
        if (src->has_ev) {
                dst->has_ev = true;
                dst->ev = src->ev;
        }
        if (src->has_latency) {
                dst->has_latency = true;
                for (unsigned i = 0; i < TRACKER_SKETCH_BUCKETS; i++) {
                        uint64_t s = (uint64_t)dst->latency[i] + src->latency[i];
                        dst->latency[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
                }
        }
}

bool rollup_point_empty(const struct rollup_point *p)
{
        return !p->calls && !p->successes && !p->failures && !p->judged && !p->has_latency &&
               !p->input_tokens && !p->output_tokens;
}

size_t rollup_sketch_encode(const uint32_t *sketch, uint8_t *out)
{
        size_t n = 0;
        for (unsigned i = 0; i < TRACKER_SKETCH_BUCKETS; i++) {
                uint32_t v = sketch[i];
                if (!v)
                        continue;
                out[n++] = (uint8_t)i;
                do {
                        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                        v >>= 7;
                } while (v);
        }
        return n;
}

int rollup_sketch_add(uint32_t *sketch, const uint8_t *in, size_t len)
{
        size_t i = 0;
        while (i < len) {
                unsigned b = in[i++];
                uint64_t v = 0;
                unsigned shift = 0;
                for (;;) {
                        if (i >= len || shift > 28)
                                return -EINVAL;
                        uint8_t byte = in[i++];
                        v |= (uint64_t)(byte & 0x7f) << shift;
                        shift += 7;
                        if (!(byte & 0x80))
                                break;
                }
                if (b >= TRACKER_SKETCH_BUCKETS)
                        return -EINVAL;
                uint64_t s = sketch[b] + v;
                sketch[b] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
        }
        return 0;
}

/* ---- the table of rows ------------------------------------------------- */

struct rollup *rollup_new(void)
{
        return calloc(1, sizeof(struct rollup));
}

static void rollup__free_rows(struct rollup *r)
{
        for (size_t i = 0; i < r->n; i++) {
                free((char *)r->rows[i].model);
                free((char *)r->rows[i].domain);
        }
}

void rollup_free(struct rollup *r)
{
        if (r) {
                rollup__free_rows(r);
                free(r->rows);
                free(r->slots);
        }
        free(r);
}

void rollup_clear(struct rollup *r)
{
        rollup__free_rows(r);
        r->n = 0;
        r->status = 0;
        if (r->slots)
                memset(r->slots, 0, r->nslots * sizeof(*r->slots));
}

void rollup_swap(struct rollup *a, struct rollup *b)
{
        struct rollup tmp = *a;
        struct tracker *ta = a->t, *tb = b->t;
        *a = *b;
        *b = tmp;
        a->t = ta; /* each keeps the tracker it watches */
        b->t = tb;
}

size_t rollup_rows(const struct rollup *r, const struct rollup_row **rows)
{
        *rows = r->rows;
        return r->n;
}

int rollup_status(const struct rollup *r)
{
        return r->status;
}

static uint64_t rollup__hash(const char *model, enum tracker_task task, const char *domain,
                             uint64_t t)
{
        uint64_t h = siphash_str(model) ^ (t * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)task << 56);
        if (domain)
                h ^= siphash_str(domain) * 31u + 1u;
        return h;
}

static bool rollup__same(const struct rollup_row *w, const char *model, enum tracker_task task,
                         const char *domain, uint64_t t)
{
        return w->p.t == t && w->task == task && strcmp(w->model, model) == 0 &&
               (domain ? w->domain && strcmp(w->domain, domain) == 0 : !w->domain);
}

static int rollup__rehash(struct rollup *r, size_t nslots)
{
        uint32_t *slots = calloc(nslots, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < r->n; i++) {
                const struct rollup_row *w = &r->rows[i];
                size_t k = rollup__hash(w->model, w->task, w->domain, w->p.t) & (nslots - 1);
                while (slots[k])
                        k = (k + 1) & (nslots - 1);
                slots[k] = (uint32_t)i + 1;
        }
        free(r->slots);
        r->slots = slots;
        r->nslots = nslots;
        return 0;
}

/* The row of a series at t (already rounded), made when missing. */
static struct rollup_row *rollup__row(struct rollup *r, const char *model, enum tracker_task task,
                                      const char *domain, uint64_t t)
{
        if ((r->n + 1) * 2 > r->nslots && rollup__rehash(r, r->nslots ? r->nslots * 2 : 64) < 0)
                return NULL;
        size_t k = rollup__hash(model, task, domain, t) & (r->nslots - 1);
        while (r->slots[k]) {
                struct rollup_row *w = &r->rows[r->slots[k] - 1];
                if (rollup__same(w, model, task, domain, t))
                        return w;
                k = (k + 1) & (r->nslots - 1);
        }
        struct rollup_row *rows = grow_to(r->rows, &r->cap, r->n + 1, sizeof(*rows), 32);
        if (!rows)
                return NULL;
        r->rows = rows;
        char *m = strdup(model), *d = domain ? strdup(domain) : NULL;
        if (!m || (domain && !d)) {
                free(m);
                free(d);
                return NULL;
        }
        struct rollup_row *w = &r->rows[r->n];
        memset(w, 0, sizeof(*w));
        w->model = m;
        w->domain = d;
        w->task = task;
        w->p.t = t;
        r->slots[k] = (uint32_t)++r->n;
        return w;
}

int rollup_add(struct rollup *r, const char *model, enum tracker_task task, const char *domain,
               const struct rollup_point *p)
{
        uint64_t span = domain ? ROLLUP_DAY : ROLLUP_MINUTE;
        struct rollup_row *w = rollup__row(r, model, task, domain, p->t - p->t % span);
        if (!w) {
                r->status = -ENOMEM;
                return -ENOMEM;
        }
        rollup_point_merge(&w->p, p);
        return 0;
}

/* ---- watching the tracker ---------------------------------------------- */

static void rollup__on_change(void *data, const struct tracker_change *ch)
{
        struct rollup *r = data;
        struct rollup_point p = { .t = ch->now };
        const struct tracker_complete *c = ch->complete;
        const struct tracker_result *res = ch->result;
        if (c) {
                p.calls = 1;
                p.input_tokens = c->input_tokens;
                p.output_tokens = c->output_tokens;
                p.has_latency = true;
                p.latency[tracker_sketch_bucket(c->latency_ms)] = 1;
        } else if (!res) {
                p.failures = 1;
        } else {
                if (!res->has_quality && !res->has_success)
                        return; /* inconclusive: nothing changed */
                if (res->has_quality) {
                        p.judged = 1;
                        p.quality_sum = res->quality;
                }
                if (res->has_success)
                        *(res->success ? &p.successes : &p.failures) = 1;
        }
        const struct tracker_profile *pr = tracker_profile_get(r->t, ch->model);
        if (pr && pr->tasks[ch->task].present) {
                p.has_ema = p.has_ev = true;
                p.ema = pr->tasks[ch->task].ema_quality;
                p.ev = pr->tasks[ch->task].ev;
        }
        rollup_add(r, ch->model, ch->task, NULL, &p);
        if (!ch->domain)
                return;
        p.has_ema = p.has_ev = false;
        const struct tracker_cell *cell = tracker_cell_get(r->t, ch->model, ch->task, ch->domain);
        if (cell) {
                p.has_ev = true;
                p.ev = cell->ev;
        }
        rollup_add(r, ch->model, ch->task, ch->domain, &p);
}

int rollup_watch(struct rollup *r, struct tracker *t)
{
        r->t = t;
        const struct tracker_observer o = { .change = rollup__on_change, .data = r };
        return tracker_add_observer(t, &o);
}

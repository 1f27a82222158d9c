/* history.c - the history's rows in SQLite: the writer's upserts and
 * pruning, the read behind `history`, and the thread-pool reader (see
 * history.h).
 */
#include "history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "proto.h"

/* ---- writing ----------------------------------------------------------- */

enum {
        HW_SERIES_GET,
        HW_SERIES_PUT,
        HW_MINUTE_PUT,
        HW_HOUR_GET,
        HW_HOUR_PUT,
        HW_DAY_GET,
        HW_DAY_PUT,
        HW_PRUNE_MINUTE,
        HW_PRUNE_HOUR,
        HW_PRUNE_DAY,
        HW__COUNT
};

#define HW_COLS                                                                          \
        " (series, t, calls, successes, failures, judged, quality_sum, input_tokens,"    \
        " output_tokens, ema, alpha, beta, ev_at"
#define HW_VALUES " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13"
#define HW_UPSERT                                                                        \
        " ON CONFLICT (series, t) DO UPDATE SET calls = calls + excluded.calls,"         \
        " successes = successes + excluded.successes,"                                   \
        " failures = failures + excluded.failures, judged = judged + excluded.judged,"   \
        " quality_sum = quality_sum + excluded.quality_sum,"                             \
        " input_tokens = input_tokens + excluded.input_tokens,"                          \
        " output_tokens = output_tokens + excluded.output_tokens,"                       \
        " ema = coalesce(excluded.ema, ema), alpha = coalesce(excluded.alpha, alpha),"   \
        " beta = coalesce(excluded.beta, beta), ev_at = coalesce(excluded.ev_at, ev_at)"
/* Oldest first, a slice at a time, so that one commit never grows long. */
#define HW_PRUNE(table)                                                                  \
        "DELETE FROM " table " WHERE (series, t) IN (SELECT series, t FROM " table      \
        " WHERE series IN (SELECT id FROM history_series) AND t < ?1 LIMIT ?2)"

static const char *const hw_sql[HW__COUNT] = {
        [HW_SERIES_GET] = "SELECT id FROM history_series WHERE model = ?1 AND task = ?2"
                          " AND domain = ?3",
        [HW_SERIES_PUT] = "INSERT INTO history_series (model, task, domain) VALUES (?1, ?2, ?3)",
        [HW_MINUTE_PUT] = "INSERT INTO history_minute" HW_COLS ")" HW_VALUES ")" HW_UPSERT,
        [HW_HOUR_GET] = "SELECT latency FROM history_hour WHERE series = ?1 AND t = ?2",
        [HW_HOUR_PUT] = "INSERT INTO history_hour" HW_COLS ", latency)" HW_VALUES ", ?14)" HW_UPSERT
                        ", latency = excluded.latency",
        [HW_DAY_GET] = "SELECT latency FROM history_day WHERE series = ?1 AND t = ?2",
        [HW_DAY_PUT] = "INSERT INTO history_day" HW_COLS ", latency)" HW_VALUES ", ?14)" HW_UPSERT
                       ", latency = excluded.latency",
        [HW_PRUNE_MINUTE] = HW_PRUNE("history_minute"),
        [HW_PRUNE_HOUR] = HW_PRUNE("history_hour"),
        [HW_PRUNE_DAY] = HW_PRUNE("history_day"),
};

struct history_writer {
        sqlite3 *db;
        sqlite3_stmt *st[HW__COUNT];
};

int history_writer_open(sqlite3 *db, struct history_writer **out)
{
        struct history_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return SQLITE_NOMEM;
        w->db = db;
        for (int i = 0; i < HW__COUNT; i++) {
                int rc = sqlite3_prepare_v3(db, hw_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                            &w->st[i], NULL);
                if (rc != SQLITE_OK) {
                        history_writer_close(w);
                        return rc;
                }
        }
        *out = w;
        return SQLITE_OK;
}

void history_writer_close(struct history_writer *w)
{
        if (!w)
                return;
        for (int i = 0; i < HW__COUNT; i++)
                sqlite3_finalize(w->st[i]);
        free(w);
}

/* Step a bound statement to its end and reset it. */
static int hw__run(sqlite3_stmt *st, int rc)
{
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
}

static int hw__series(struct history_writer *w, const struct rollup_row *row, int64_t *id)
{
        const char *task = tracker_task_name(row->task), *domain = row->domain ? row->domain : "";
        for (int k = HW_SERIES_GET; k <= HW_SERIES_PUT; k++) {
                sqlite3_stmt *st = w->st[k];
                int rc = sqlite3_bind_text(st, 1, row->model, -1, SQLITE_STATIC);
                if (rc == SQLITE_OK)
                        rc = sqlite3_bind_text(st, 2, task, -1, SQLITE_STATIC);
                if (rc == SQLITE_OK)
                        rc = sqlite3_bind_text(st, 3, domain, -1, SQLITE_STATIC);
                if (rc == SQLITE_OK)
                        rc = sqlite3_step(st);
                bool found = k == HW_SERIES_GET && rc == SQLITE_ROW;
                if (found)
                        *id = sqlite3_column_int64(st, 0);
                else if (k == HW_SERIES_PUT && rc == SQLITE_DONE)
                        *id = sqlite3_last_insert_rowid(w->db);
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                if (found || (k == HW_SERIES_PUT && rc == SQLITE_DONE))
                        return SQLITE_OK;
                if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                        return rc;
        }
        return SQLITE_ERROR;
}

/* Bind a point's 13 columns. */
static int hw__bind_point(sqlite3_stmt *st, int64_t series, const struct rollup_point *p)
{
        int rc = sqlite3_bind_int64(st, 1, series);
        const int64_t ints[] = { (int64_t)p->t,      (int64_t)p->calls,  (int64_t)p->successes,
                                 (int64_t)p->failures, (int64_t)p->judged };
        for (int i = 0; rc == SQLITE_OK && i < 5; i++)
                rc = sqlite3_bind_int64(st, 2 + i, ints[i]);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_double(st, 7, p->quality_sum);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 8, (int64_t)p->input_tokens);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 9, (int64_t)p->output_tokens);
        if (rc == SQLITE_OK && p->has_ema)
                rc = sqlite3_bind_double(st, 10, p->ema);
        if (rc == SQLITE_OK && p->has_ev)
                rc = sqlite3_bind_double(st, 11, p->ev.alpha);
        if (rc == SQLITE_OK && p->has_ev)
                rc = sqlite3_bind_double(st, 12, p->ev.beta);
        if (rc == SQLITE_OK && p->has_ev)
                rc = sqlite3_bind_int64(st, 13, (int64_t)p->ev.at);
        return rc;
}

/* Upsert an hour's or a day's point, its latency sketch added to the
 * stored one. */
static int hw__put_span(struct history_writer *w, int get, int put, int64_t series,
                        const struct rollup_point *p)
{
        uint32_t sketch[TRACKER_SKETCH_BUCKETS];
        memcpy(sketch, p->latency, sizeof(sketch));
        bool any = p->has_latency;
        sqlite3_stmt *st = w->st[get];
        int rc = sqlite3_bind_int64(st, 1, series);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, (int64_t)p->t);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const void *blob = sqlite3_column_blob(st, 0);
                int len = sqlite3_column_bytes(st, 0);
                if (blob && len > 0 && rollup_sketch_add(sketch, blob, (size_t)len) == 0)
                        any = true;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
                return rc;
        uint8_t enc[ROLLUP_SKETCH_MAX];
        size_t n = rollup_sketch_encode(sketch, enc);
        st = w->st[put];
        rc = hw__bind_point(st, series, p);
        if (rc == SQLITE_OK && any)
                rc = sqlite3_bind_blob(st, 14, enc, (int)n, SQLITE_TRANSIENT);
        return hw__run(st, rc);
}

int history_write(struct history_writer *w, const struct rollup *r)
{
        const struct rollup_row *rows;
        size_t n = rollup_rows(r, &rows);
        /* Consecutive minutes of one series and hour go to the hour at once
         * (the filler writes series by series; the daemon's batches rarely
         * span two minutes). */
        struct rollup_point hour;
        int64_t hour_series = -1, series = -1;
        const struct rollup_row *prev = NULL;
        int rc = SQLITE_OK;
        for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                const struct rollup_row *row = &rows[i];
                if (!prev || prev->task != row->task || strcmp(prev->model, row->model) != 0 ||
                    (prev->domain ? !row->domain || strcmp(prev->domain, row->domain) != 0
                                  : row->domain != NULL))
                        rc = hw__series(w, row, &series);
                prev = row;
                if (rc != SQLITE_OK)
                        break;
                if (row->domain) {
                        rc = hw__put_span(w, HW_DAY_GET, HW_DAY_PUT, series, &row->p);
                        continue;
                }
                rc = hw__run(w->st[HW_MINUTE_PUT],
                             hw__bind_point(w->st[HW_MINUTE_PUT], series, &row->p));
                uint64_t h = row->p.t - row->p.t % ROLLUP_HOUR;
                if (rc == SQLITE_OK && hour_series >= 0 && (hour_series != series || hour.t != h)) {
                        rc = hw__put_span(w, HW_HOUR_GET, HW_HOUR_PUT, hour_series, &hour);
                        hour_series = -1;
                }
                if (hour_series < 0) {
                        memset(&hour, 0, sizeof(hour));
                        hour.t = h;
                        hour_series = series;
                }
                rollup_point_merge(&hour, &row->p);
        }
        if (rc == SQLITE_OK && hour_series >= 0)
                rc = hw__put_span(w, HW_HOUR_GET, HW_HOUR_PUT, hour_series, &hour);
        return rc;
}

int history_prune(struct history_writer *w, uint64_t before, uint64_t max, uint64_t *deleted)
{
        *deleted = 0;
        for (int k = HW_PRUNE_MINUTE; k <= HW_PRUNE_DAY; k++) {
                sqlite3_stmt *st = w->st[k];
                int rc = sqlite3_bind_int64(st, 1, (int64_t)before);
                if (rc == SQLITE_OK)
                        rc = sqlite3_bind_int64(st, 2, (int64_t)max);
                rc = hw__run(st, rc);
                if (rc != SQLITE_OK)
                        return rc;
                *deleted += (uint64_t)sqlite3_changes(w->db);
        }
        return SQLITE_OK;
}

/* ---- reading ----------------------------------------------------------- */

#define HR_COLS                                                                          \
        "SELECT s.id, s.model, s.task, r.t, r.calls, r.successes, r.failures, r.judged," \
        " r.quality_sum, r.input_tokens, r.output_tokens, r.ema, r.alpha, r.beta, r.ev_at"
#define HR_WHERE                                                                         \
        " r ON r.series = s.id WHERE s.domain = ?1 AND (?2 IS NULL OR s.model = ?2)"     \
        " AND (?3 IS NULL OR s.task = ?3) AND r.t >= ?4 AND r.t < ?5"                    \
        " ORDER BY s.model, s.task, r.t"

/* The hourly latencies of one series, for buckets read from minutes. */
#define HR_LATENCY "SELECT t, latency FROM history_hour WHERE series = ?1 AND t >= ?2 AND t < ?3" \
                   " ORDER BY t"

/* One series of the reply, its buckets in time order. */
struct hr_series {
        char *model;
        char *task;
        struct rollup_point *pts;
        size_t n, cap;
};

struct hr_state {
        const struct rollup_query *q;
        const struct history_context *ctx;
        struct hr_series *series;
        size_t nseries, cap;
        uint64_t points; /* counted on past the limit, to say how many */
        bool oom;
};

static struct rollup_point *hr__push(struct hr_state *s, int64_t id_changed, const char *model,
                                     const char *task)
{
        if (id_changed) {
                struct hr_series *v = grow_to(s->series, &s->cap, s->nseries + 1, sizeof(*v), 16);
                if (!v)
                        return NULL;
                s->series = v;
                struct hr_series *se = &s->series[s->nseries];
                memset(se, 0, sizeof(*se));
                se->model = strdup(model);
                se->task = strdup(task);
                s->nseries++;
                if (!se->model || !se->task)
                        return NULL;
        }
        struct hr_series *se = &s->series[s->nseries - 1];
        struct rollup_point *pts = grow_to(se->pts, &se->cap, se->n + 1, sizeof(*pts), 64);
        if (!pts)
                return NULL;
        se->pts = pts;
        struct rollup_point *p = &se->pts[se->n++];
        memset(p, 0, sizeof(*p));
        return p;
}

/* A row's point. */
static void hr__row_point(sqlite3_stmt *st, struct rollup_point *p)
{
        p->t = (uint64_t)sqlite3_column_int64(st, 3);
        p->calls = (uint64_t)sqlite3_column_int64(st, 4);
        p->successes = (uint64_t)sqlite3_column_int64(st, 5);
        p->failures = (uint64_t)sqlite3_column_int64(st, 6);
        p->judged = (uint64_t)sqlite3_column_int64(st, 7);
        p->quality_sum = sqlite3_column_double(st, 8);
        p->input_tokens = (uint64_t)sqlite3_column_int64(st, 9);
        p->output_tokens = (uint64_t)sqlite3_column_int64(st, 10);
        p->has_ema = sqlite3_column_type(st, 11) != SQLITE_NULL;
        p->ema = sqlite3_column_double(st, 11);
        p->has_ev = sqlite3_column_type(st, 12) != SQLITE_NULL;
        p->ev.alpha = sqlite3_column_double(st, 12);
        p->ev.beta = sqlite3_column_double(st, 13);
        p->ev.at = (uint64_t)sqlite3_column_int64(st, 14);
        const void *blob = sqlite3_column_count(st) > 15 ? sqlite3_column_blob(st, 15) : NULL;
        int len = blob ? sqlite3_column_bytes(st, 15) : 0;
        p->has_latency = len > 0 && rollup_sketch_add(p->latency, blob, (size_t)len) == 0;
}

/* Buckets read from minutes take their latencies from the hours: a bucket
 * shorter than an hour its hour's, a longer one the hours that start in
 * it. */
static int hr__minute_latency(sqlite3 *db, sqlite3_stmt *lat, int64_t id, struct hr_series *se,
                              uint64_t bucket_s)
{
        if (!se->n)
                return SQLITE_OK;
        uint64_t from = se->pts[0].t - se->pts[0].t % ROLLUP_HOUR;
        uint64_t to = se->pts[se->n - 1].t + bucket_s;
        int rc = sqlite3_bind_int64(lat, 1, id);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(lat, 2, (int64_t)from);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(lat, 3, (int64_t)to);
        size_t k = 0;
        while (rc == SQLITE_OK && (rc = sqlite3_step(lat)) == SQLITE_ROW) {
                uint64_t h = (uint64_t)sqlite3_column_int64(lat, 0);
                const void *blob = sqlite3_column_blob(lat, 1);
                int len = sqlite3_column_bytes(lat, 1);
                if (!blob || len <= 0) {
                        rc = SQLITE_OK;
                        continue;
                }
                for (; k < se->n; k++) {
                        struct rollup_point *p = &se->pts[k];
                        bool in = bucket_s < ROLLUP_HOUR ? p->t - p->t % ROLLUP_HOUR == h
                                                         : p->t == h - h % bucket_s;
                        if (in) {
                                p->has_latency |= rollup_sketch_add(p->latency, blob,
                                                                    (size_t)len) == 0;
                                /* Several short buckets share this hour. */
                                for (size_t j = k + 1; bucket_s < ROLLUP_HOUR && j < se->n &&
                                                       se->pts[j].t - se->pts[j].t % ROLLUP_HOUR == h;
                                     j++)
                                        se->pts[j].has_latency |=
                                                rollup_sketch_add(se->pts[j].latency, blob,
                                                                  (size_t)len) == 0;
                                break;
                        }
                        if (p->t > h)
                                break;
                }
                rc = SQLITE_OK;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        (void)db;
        sqlite3_reset(lat);
        sqlite3_clear_bindings(lat);
        return rc;
}

static void hr__nil_or(msgpack_packer *pk, bool set, double v)
{
        if (set)
                msgpack_pack_double(pk, v);
        else
                msgpack_pack_nil(pk);
}

static const struct config_price *hr__price(const struct history_context *ctx, const char *model)
{
        for (size_t i = 0; i < ctx->nprices; i++)
                if (strcmp(ctx->prices[i].model, model) == 0)
                        return &ctx->prices[i];
        return NULL;
}

enum hr_col {
        HC_T, HC_CALLS, HC_SUCCESSES, HC_FAILURES, HC_JUDGED, HC_QUALITY, HC_EMA, HC_MEAN,
        HC_LO, HC_HI, HC_P50, HC_P95, HC_IN, HC_OUT, HC_COST, HC__COUNT
};

static const char *const hr_col_names[HC__COUNT] = {
        "t", "calls", "successes", "failures", "judged", "quality", "ema", "posterior_mean",
        "posterior_lo", "posterior_hi", "latency_p50_ms", "latency_p95_ms", "input_tokens",
        "output_tokens", "cost",
};

static void hr__pack_series(msgpack_packer *pk, const struct hr_state *s, const struct hr_series *se)
{
        const struct rollup_query *q = s->q;
        const struct config_price *price = hr__price(s->ctx, se->model);
        msgpack_pack_map(pk, 2 + (q->domain ? 1 : 0) + HC__COUNT);
        proto_pack_kv_str(pk, "model", se->model);
        proto_pack_kv_str(pk, "task", se->task);
        if (q->domain)
                proto_pack_kv_str(pk, "domain", q->domain);
        for (int c = 0; c < HC__COUNT; c++) {
                proto_pack_cstr(pk, hr_col_names[c]);
                msgpack_pack_array(pk, se->n);
                for (size_t i = 0; i < se->n; i++) {
                        const struct rollup_point *p = &se->pts[i];
                        double mean = 0, lo = 0, hi = 0, pc = -1;
                        if ((c == HC_MEAN || c == HC_LO || c == HC_HI) && p->has_ev) {
                                struct tracker_evidence e = p->ev;
                                uint64_t end = p->t + q->bucket_s;
                                tracker_evidence_fade(&e, end < s->ctx->now ? end : s->ctx->now,
                                                      s->ctx->half_life_s);
                                tracker_posterior(&e, &mean, &lo, &hi);
                        }
                        if ((c == HC_P50 || c == HC_P95) && p->has_latency)
                                pc = tracker_sketch_percentile(p->latency, c == HC_P50 ? 0.5 : 0.95);
                        switch (c) {
                        case HC_T: msgpack_pack_uint64(pk, p->t); break;
                        case HC_CALLS: msgpack_pack_uint64(pk, p->calls); break;
                        case HC_SUCCESSES: msgpack_pack_uint64(pk, p->successes); break;
                        case HC_FAILURES: msgpack_pack_uint64(pk, p->failures); break;
                        case HC_JUDGED: msgpack_pack_uint64(pk, p->judged); break;
                        case HC_QUALITY:
                                hr__nil_or(pk, p->judged > 0,
                                           p->quality_sum / (double)(p->judged ? p->judged : 1));
                                break;
                        case HC_EMA: hr__nil_or(pk, p->has_ema, p->ema); break;
                        case HC_MEAN: hr__nil_or(pk, p->has_ev, mean); break;
                        case HC_LO: hr__nil_or(pk, p->has_ev, lo); break;
                        case HC_HI: hr__nil_or(pk, p->has_ev, hi); break;
                        case HC_P50:
                        case HC_P95: hr__nil_or(pk, pc >= 0, pc); break;
                        case HC_IN: msgpack_pack_uint64(pk, p->input_tokens); break;
                        case HC_OUT: msgpack_pack_uint64(pk, p->output_tokens); break;
                        case HC_COST:
                                msgpack_pack_double(
                                        pk, price ? ((double)p->input_tokens * price->input_per_mtok +
                                                     (double)p->output_tokens *
                                                             price->output_per_mtok) /
                                                            1e6
                                                  : 0.0);
                                break;
                        }
                }
        }
}

static void hr__free(struct hr_state *s)
{
        for (size_t i = 0; i < s->nseries; i++) {
                free(s->series[i].model);
                free(s->series[i].task);
                free(s->series[i].pts);
        }
        free(s->series);
}

enum proto_error history_read(sqlite3 *db, const struct rollup_query *q,
                              const struct history_context *ctx, uint32_t msgid,
                              msgpack_sbuffer *sb)
{
        msgpack_packer pk;
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        const char *table = q->domain                      ? "history_day"
                            : q->bucket_s % ROLLUP_HOUR == 0 ? "history_hour"
                                                             : "history_minute";
        bool with_latency = strcmp(table, "history_minute") != 0;
        char sql[512];
        snprintf(sql, sizeof(sql), HR_COLS "%s FROM history_series s JOIN %s" HR_WHERE,
                 with_latency ? ", r.latency" : "", table);
        sqlite3_stmt *st = NULL, *lat = NULL;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK && !with_latency)
                rc = sqlite3_prepare_v2(db, HR_LATENCY, -1, &lat, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 1, q->domain ? q->domain : "", -1, SQLITE_STATIC);
        if (rc == SQLITE_OK && q->model)
                rc = sqlite3_bind_text(st, 2, q->model, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK && q->task >= 0)
                rc = sqlite3_bind_text(st, 3, tracker_task_name((enum tracker_task)q->task), -1,
                                       SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 4, (int64_t)q->since);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 5, (int64_t)q->until);

        struct hr_state s = { .q = q, .ctx = ctx };
        int64_t cur = -1;
        uint64_t cur_bt = 0;
        struct rollup_point *bucket = NULL;
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                rc = SQLITE_OK;
                int64_t id = sqlite3_column_int64(st, 0);
                struct rollup_point row = { 0 };
                hr__row_point(st, &row);
                uint64_t bt = row.t - row.t % q->bucket_s;
                if (id == cur && bt == cur_bt) {
                        if (bucket)
                                rollup_point_merge(bucket, &row);
                        continue;
                }
                cur_bt = bt;
                if (id != cur && cur >= 0 && lat && s.points <= ROLLUP_MAX_POINTS)
                        rc = hr__minute_latency(db, lat, cur, &s.series[s.nseries - 1], q->bucket_s);
                s.points++;
                if (s.points > ROLLUP_MAX_POINTS) {
                        bucket = NULL; /* only counted from here on */
                        cur = id;
                        continue;
                }
                bucket = hr__push(&s, id != cur, (const char *)sqlite3_column_text(st, 1),
                                  (const char *)sqlite3_column_text(st, 2));
                cur = id;
                if (!bucket) {
                        s.oom = true;
                        break;
                }
                row.t = bt;
                *bucket = row;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        if (rc == SQLITE_OK && !s.oom && cur >= 0 && lat && s.points <= ROLLUP_MAX_POINTS)
                rc = hr__minute_latency(db, lat, cur, &s.series[s.nseries - 1], q->bucket_s);
        enum proto_error code = PROTO_OK;
        char msg[256];
        if (s.oom) {
                code = PROTO_INTERNAL;
                snprintf(msg, sizeof(msg), "history: out of memory");
        } else if (rc != SQLITE_OK) {
                code = PROTO_INTERNAL;
                snprintf(msg, sizeof(msg), "history: reading the database failed: %s",
                         sqlite3_errmsg(db));
        } else if (s.points > ROLLUP_MAX_POINTS) {
                code = PROTO_BAD_REQUEST;
                snprintf(msg, sizeof(msg),
                         "history: %llu points over the limit of %u; narrow since/until or raise "
                         "bucket_s",
                         (unsigned long long)s.points, (unsigned)ROLLUP_MAX_POINTS);
        }
        sqlite3_finalize(st);
        sqlite3_finalize(lat);
        if (code != PROTO_OK) {
                proto_pack_error(&pk, msgid, code, msg);
                hr__free(&s);
                return code;
        }
        proto_pack_ok_head(&pk, msgid);
        msgpack_pack_map(&pk, 5);
        proto_pack_kv_u64(&pk, "bucket_s", q->bucket_s);
        proto_pack_kv_u64(&pk, "since", q->since);
        proto_pack_kv_u64(&pk, "until", q->until);
        proto_pack_kv_u64(&pk, "points", s.points);
        proto_pack_cstr(&pk, "series");
        msgpack_pack_array(&pk, s.nseries);
        for (size_t i = 0; i < s.nseries; i++)
                hr__pack_series(&pk, &s, &s.series[i]);
        hr__free(&s);
        return PROTO_OK;
}

/* ---- the daemon's reader ------------------------------------------------ */

struct history_reader {
        uv_loop_t *loop;
        const struct config *cfg;
};

/* One request on the thread pool, with copies of all it reads. */
struct hr_job {
        uv_work_t work;
        struct rpc_later *later;
        char *path;
        char *model, *domain;
        struct rollup_query q;
        struct history_context ctx;
        struct config_price *prices;
        size_t nprices;
        msgpack_sbuffer sb;
};

static void hr__job_free(struct hr_job *j)
{
        for (size_t i = 0; i < j->nprices; i++)
                free(j->prices[i].model);
        free(j->prices);
        free(j->path);
        free(j->model);
        free(j->domain);
        msgpack_sbuffer_destroy(&j->sb);
        free(j);
}

/* A read is bulk work beside the loop's short requests: the pool's
 * threads run it at a lower priority, so that on a busy machine the
 * scheduler prefers the loop (and other clients' replies) to it.  Only
 * `history` uses libuv's pool in outcomed. */
#define HISTORY_READ_NICE 10

static void hr__work(uv_work_t *w)
{
        static _Thread_local bool niced;
        if (!niced) {
                niced = true;
                errno = 0;
                int cur = getpriority(PRIO_PROCESS, (id_t)gettid());
                if (errno == 0 && cur < HISTORY_READ_NICE)
                        setpriority(PRIO_PROCESS, (id_t)gettid(), HISTORY_READ_NICE);
        }
        struct hr_job *j = w->data;
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(j->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_busy_timeout(db, 5000);
                history_read(db, &j->q, &j->ctx, j->later->msgid, &j->sb);
        } else {
                msgpack_packer pk;
                msgpack_packer_init(&pk, &j->sb, msgpack_sbuffer_write);
                char msg[512];
                snprintf(msg, sizeof(msg), "history: cannot open %s: %s", j->path,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                proto_pack_error(&pk, j->later->msgid, PROTO_INTERNAL, msg);
        }
        sqlite3_close(db);
}

static void hr__after(uv_work_t *w, int status)
{
        struct hr_job *j = w->data;
        (void)status; /* never cancelled: the work always ran */
        j->later->answer(j->later, j->sb.data, j->sb.size, false);
        hr__job_free(j);
}

static char *hr__dup(const char *s, bool *oom)
{
        char *d = s ? strdup(s) : NULL;
        if (s && !d)
                *oom = true;
        return d;
}

static int hr__read(void *data, const struct rollup_query *q, struct rpc_later *later)
{
        struct history_reader *h = data;
        struct hr_job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        bool oom = false;
        msgpack_sbuffer_init(&j->sb);
        j->later = later;
        j->q = *q;
        j->path = hr__dup(h->cfg->db_path, &oom);
        j->q.model = j->model = hr__dup(q->model, &oom);
        j->q.domain = j->domain = hr__dup(q->domain, &oom);
        j->prices = calloc(h->cfg->nprices ? h->cfg->nprices : 1, sizeof(*j->prices));
        oom |= !j->prices;
        for (size_t i = 0; !oom && i < h->cfg->nprices; i++) {
                j->prices[i] = h->cfg->prices[i];
                j->prices[i].model = hr__dup(h->cfg->prices[i].model, &oom);
                j->nprices++;
        }
        j->ctx = (struct history_context){ .now = (uint64_t)time(NULL),
                                           .half_life_s = h->cfg->half_life_s,
                                           .prices = j->prices,
                                           .nprices = j->nprices };
        j->work.data = j;
        if (oom || uv_queue_work(h->loop, &j->work, hr__work, hr__after) < 0) {
                hr__job_free(j);
                return -ENOMEM;
        }
        return 0;
}

struct history_reader *history_reader_new(uv_loop_t *loop, const struct config *cfg)
{
        struct history_reader *h = calloc(1, sizeof(*h));
        if (h) {
                h->loop = loop;
                h->cfg = cfg;
        }
        return h;
}

void history_reader_free(struct history_reader *h)
{
        free(h);
}

void history_reader_hooks(struct history_reader *h, struct rpc_history *hooks)
{
        hooks->read = hr__read;
        hooks->data = h;
}

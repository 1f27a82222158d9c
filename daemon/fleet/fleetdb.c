/* fleetdb.c - the fleet thread's copy of every host's evidence, in memory
 * and in SQLite (fleet_hosts, fleet_evidence: schema 010).  See fleetdb.h. */
#include "fleetdb.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows --------------------------------------------------------------- */

/* model and domain in one block, owned by the row (model points at it). */
static int fleet__row_own(struct fleetsum_row *dst, const struct fleetsum_row *src,
                          const char *host)
{
        size_t lm = strlen(src->model) + 1, ld = strlen(src->domain) + 1;
        char *b = malloc(lm + ld);
        if (!b)
                return -ENOMEM;
        *dst = *src;
        dst->model = memcpy(b, src->model, lm);
        dst->domain = memcpy(b + lm, src->domain, ld);
        dst->host = host;
        return 0;
}

int fleet_rows_copy(const struct fleetsum_row *src, size_t n, struct fleetsum_row **dst)
{
        struct fleetsum_row *v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (fleet__row_own(&v[i], &src[i], NULL) < 0) {
                        fleet_rows_free(v, i);
                        return -ENOMEM;
                }
        }
        *dst = v;
        return 0;
}

void fleet_rows_free(struct fleetsum_row *rows, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free((char *)rows[i].model);
        free(rows);
}

/* ---- the cache ---------------------------------------------------------- */

static long fleet__host_index(const struct fleet_cache *c, const char *id, int *found)
{
        size_t lo = 0, hi = c->nhosts;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int k = strcmp(c->hosts[mid]->id, id);
                if (k == 0) {
                        *found = 1;
                        return (long)mid;
                }
                if (k < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = 0;
        return (long)lo;
}

struct fleet_host *fleet_cache_host(const struct fleet_cache *c, const char *id)
{
        int found;
        long i = fleet__host_index(c, id, &found);
        return found ? c->hosts[i] : NULL;
}

struct fleet_host *fleet_cache_host_add(struct fleet_cache *c, const char *id)
{
        int found;
        long i = fleet__host_index(c, id, &found);
        if (found)
                return c->hosts[i];
        if (strlen(id) > FLEETSUM_HOST_MAX)
                return NULL;
        struct fleet_host **v = realloc(c->hosts, (c->nhosts + 1) * sizeof(*v));
        if (!v)
                return NULL;
        c->hosts = v;
        struct fleet_host *h = calloc(1, sizeof(*h));
        if (!h)
                return NULL;
        strcpy(h->id, id);
        memmove(&v[i + 1], &v[i], (c->nhosts - (size_t)i) * sizeof(*v));
        v[i] = h;
        c->nhosts++;
        return h;
}

void fleet_host_clear(struct fleet_host *h)
{
        for (size_t i = 0; i < h->nrows; i++)
                free((char *)h->rows[i].model);
        h->nrows = h->nsorted = 0;
}

void fleet_cache_host_drop(struct fleet_cache *c, const char *id)
{
        int found;
        long i = fleet__host_index(c, id, &found);
        if (!found)
                return;
        struct fleet_host *h = c->hosts[i];
        fleet_host_clear(h);
        free(h->rows);
        free(h);
        memmove(&c->hosts[i], &c->hosts[i + 1], (c->nhosts - (size_t)i - 1) * sizeof(*c->hosts));
        c->nhosts--;
}

void fleet_cache_free(struct fleet_cache *c)
{
        while (c->nhosts)
                fleet_cache_host_drop(c, c->hosts[c->nhosts - 1]->id);
        free(c->hosts);
        c->hosts = NULL;
}

static int fleet__key_cmp(const void *a, const void *b)
{
        return fleetsum_key_cmp(a, b);
}

int fleet_host_put(struct fleet_host *h, const struct fleetsum_row *src, int deleted)
{
        struct fleetsum_row *hit = h->nsorted ? bsearch(src, h->rows, h->nsorted, sizeof(*h->rows),
                                                        fleet__key_cmp)
                                              : NULL;
        for (size_t i = h->nsorted; !hit && i < h->nrows; i++)
                if (fleetsum_key_cmp(&h->rows[i], src) == 0)
                        hit = &h->rows[i];
        if (deleted) {
                if (hit) {
                        size_t i = (size_t)(hit - h->rows);
                        free((char *)hit->model);
                        memmove(hit, hit + 1, (h->nrows - i - 1) * sizeof(*hit));
                        h->nrows--;
                        if (i < h->nsorted)
                                h->nsorted--;
                }
                return 0;
        }
        struct fleetsum_row own;
        if (fleet__row_own(&own, src, h->id) < 0)
                return -ENOMEM;
        if (hit) {
                free((char *)hit->model);
                *hit = own;
                return 0;
        }
        if (h->nrows == h->cap) {
                size_t nc = h->cap ? 2 * h->cap : 64;
                struct fleetsum_row *v = realloc(h->rows, nc * sizeof(*v));
                if (!v) {
                        free((char *)own.model);
                        return -ENOMEM;
                }
                h->rows = v;
                h->cap = nc;
        }
        h->rows[h->nrows++] = own;
        return 0;
}

void fleet_host_sort(struct fleet_host *h)
{
        if (h->nsorted != h->nrows)
                qsort(h->rows, h->nrows, sizeof(*h->rows), fleet__key_cmp);
        h->nsorted = h->nrows;
}

long fleet_cache_rows(const struct fleet_cache *c, struct fleetsum_row **out)
{
        size_t n = 0;
        for (size_t i = 0; i < c->nhosts; i++)
                n += c->hosts[i]->nrows;
        struct fleetsum_row *v = malloc((n ? n : 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < c->nhosts; i++) {
                if (c->hosts[i]->nrows) /* rows is NULL until the first */
                        memcpy(&v[k], c->hosts[i]->rows, c->hosts[i]->nrows * sizeof(*v));
                k += c->hosts[i]->nrows;
        }
        qsort(v, n, sizeof(*v), fleetsum_row_cmp);
        *out = v;
        return (long)n;
}

/* ---- SQLite ------------------------------------------------------------- */

struct fleetdb {
        sqlite3 *db;
};

int fleetdb_open(struct fleetdb **out, const char *path, char *err, size_t errlen)
{
        struct fleetdb *f = calloc(1, sizeof(*f));
        if (!f) {
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        int rc = sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                snprintf(err, errlen, "%s: cannot open for the fleet evidence: %s", path,
                         f->db ? sqlite3_errmsg(f->db) : sqlite3_errstr(rc));
                fleetdb_close(f);
                return -1;
        }
        sqlite3_busy_timeout(f->db, 10000);
        /* A copy of what PostgreSQL holds: losing its last write to a power
         * cut costs a catch-up, not evidence. */
        sqlite3_exec(f->db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
        *out = f;
        return 0;
}

void fleetdb_close(struct fleetdb *db)
{
        if (!db)
                return;
        sqlite3_close(db->db);
        free(db);
}

static int fleetdb__err(struct fleetdb *db, const char *what, char *err, size_t errlen)
{
        snprintf(err, errlen, "fleet evidence in SQLite: %s: %s", what, sqlite3_errmsg(db->db));
        return -1;
}

int fleetdb_load(struct fleetdb *db, struct fleet_cache *c, char *err, size_t errlen)
{
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db->db, "SELECT host_id, version, seen_at FROM fleet_hosts", -1,
                               &st, NULL) != SQLITE_OK)
                return fleetdb__err(db, "reading hosts", err, errlen);
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct fleet_host *h =
                        fleet_cache_host_add(c, (const char *)sqlite3_column_text(st, 0));
                if (h) {
                        h->version = sqlite3_column_int64(st, 1);
                        h->seen_at = sqlite3_column_int64(st, 2);
                }
        }
        sqlite3_finalize(st);
        if (sqlite3_prepare_v2(db->db,
                               "SELECT host_id, model, task, domain, calls, successes, failures, "
                               "latency_sum_ms, ema, alpha, beta, judged, at, input_tokens, "
                               "output_tokens, recent_alpha, recent_beta, win_alpha, win_beta, "
                               "updated_at, sketch FROM fleet_evidence",
                               -1, &st, NULL) != SQLITE_OK)
                return fleetdb__err(db, "reading evidence", err, errlen);
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct fleet_host *h = fleet_cache_host(c, (const char *)sqlite3_column_text(st, 0));
                if (!h)
                        continue;
                struct fleetsum_row r;
                memset(&r, 0, sizeof(r));
                r.model = (const char *)sqlite3_column_text(st, 1);
                r.task = (uint8_t)sqlite3_column_int(st, 2);
                r.domain = (const char *)sqlite3_column_text(st, 3);
                r.calls = (uint64_t)sqlite3_column_int64(st, 4);
                r.successes = (uint64_t)sqlite3_column_int64(st, 5);
                r.failures = (uint64_t)sqlite3_column_int64(st, 6);
                r.latency_sum_ms = sqlite3_column_double(st, 7);
                r.ema = sqlite3_column_double(st, 8);
                r.ev.alpha = sqlite3_column_double(st, 9);
                r.ev.beta = sqlite3_column_double(st, 10);
                r.ev.judged = sqlite3_column_double(st, 11);
                r.ev.at = (uint64_t)sqlite3_column_int64(st, 12);
                r.ev.input_tokens = (uint64_t)sqlite3_column_int64(st, 13);
                r.ev.output_tokens = (uint64_t)sqlite3_column_int64(st, 14);
                r.recent_alpha = sqlite3_column_double(st, 15);
                r.recent_beta = sqlite3_column_double(st, 16);
                r.win_alpha = sqlite3_column_double(st, 17);
                r.win_beta = sqlite3_column_double(st, 18);
                r.updated_at = (uint64_t)sqlite3_column_int64(st, 19);
                const unsigned char *sk = sqlite3_column_blob(st, 20);
                if (sk && sqlite3_column_bytes(st, 20) == 4 * TRACKER_SKETCH_BUCKETS)
                        for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                                r.sketch[b] = (uint32_t)sk[4 * b] | (uint32_t)sk[4 * b + 1] << 8 |
                                              (uint32_t)sk[4 * b + 2] << 16 |
                                              (uint32_t)sk[4 * b + 3] << 24;
                if (!r.model || !r.domain || fleet_host_put(h, &r, 0) < 0) {
                        sqlite3_finalize(st);
                        snprintf(err, errlen, "fleet evidence in SQLite: out of memory");
                        return -1;
                }
        }
        sqlite3_finalize(st);
        for (size_t i = 0; i < c->nhosts; i++)
                fleet_host_sort(c->hosts[i]);
        return 0;
}

static int fleetdb__save_host(sqlite3_stmt *ins_h, sqlite3_stmt *ins_e, const char *id,
                              const struct fleet_host *h)
{
        sqlite3_reset(ins_h);
        sqlite3_bind_text(ins_h, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_h, 2, h->version);
        sqlite3_bind_int64(ins_h, 3, h->seen_at);
        if (sqlite3_step(ins_h) != SQLITE_DONE)
                return -1;
        for (size_t i = 0; i < h->nrows; i++) {
                const struct fleetsum_row *r = &h->rows[i];
                unsigned char sk[4 * TRACKER_SKETCH_BUCKETS];
                for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                        for (int k = 0; k < 4; k++)
                                sk[4 * b + k] = (unsigned char)(r->sketch[b] >> (8 * k));
                sqlite3_stmt *s = ins_e;
                sqlite3_reset(s);
                sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 2, r->model, -1, SQLITE_STATIC);
                sqlite3_bind_int(s, 3, r->task);
                sqlite3_bind_text(s, 4, r->domain, -1, SQLITE_STATIC);
                sqlite3_bind_int64(s, 5, (int64_t)r->calls);
                sqlite3_bind_int64(s, 6, (int64_t)r->successes);
                sqlite3_bind_int64(s, 7, (int64_t)r->failures);
                sqlite3_bind_double(s, 8, r->latency_sum_ms);
                sqlite3_bind_double(s, 9, r->ema);
                sqlite3_bind_double(s, 10, r->ev.alpha);
                sqlite3_bind_double(s, 11, r->ev.beta);
                sqlite3_bind_double(s, 12, r->ev.judged);
                sqlite3_bind_int64(s, 13, (int64_t)r->ev.at);
                sqlite3_bind_int64(s, 14, (int64_t)r->ev.input_tokens);
                sqlite3_bind_int64(s, 15, (int64_t)r->ev.output_tokens);
                sqlite3_bind_double(s, 16, r->recent_alpha);
                sqlite3_bind_double(s, 17, r->recent_beta);
                sqlite3_bind_double(s, 18, r->win_alpha);
                sqlite3_bind_double(s, 19, r->win_beta);
                sqlite3_bind_int64(s, 20, (int64_t)r->updated_at);
                sqlite3_bind_blob(s, 21, sk, sizeof(sk), SQLITE_TRANSIENT);
                if (sqlite3_step(s) != SQLITE_DONE)
                        return -1;
        }
        return 0;
}

int fleetdb_save(struct fleetdb *db, const struct fleet_cache *c, char *err, size_t errlen)
{
        sqlite3_stmt *st[4] = { 0 };
        static const char *const sql[4] = {
                "DELETE FROM fleet_hosts",
                "DELETE FROM fleet_evidence",
                "INSERT INTO fleet_hosts (host_id, version, seen_at) VALUES (?1, ?2, ?3)",
                "INSERT INTO fleet_evidence (host_id, model, task, domain, calls, successes, "
                "failures, latency_sum_ms, ema, alpha, beta, judged, at, input_tokens, "
                "output_tokens, recent_alpha, recent_beta, win_alpha, win_beta, updated_at, "
                "sketch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                "?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        };
        int r = -1;
        if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                return fleetdb__err(db, "BEGIN", err, errlen);
        for (int i = 0; i < 4; i++)
                if (sqlite3_prepare_v2(db->db, sql[i], -1, &st[i], NULL) != SQLITE_OK)
                        goto out;
        if (sqlite3_step(st[0]) != SQLITE_DONE || sqlite3_step(st[1]) != SQLITE_DONE)
                goto out;
        for (size_t i = 0; i < c->nhosts; i++)
                if (fleetdb__save_host(st[2], st[3], c->hosts[i]->id, c->hosts[i]) < 0)
                        goto out;
        if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
                r = 0;
out:
        if (r < 0) {
                fleetdb__err(db, "writing", err, errlen);
                sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        }
        for (int i = 0; i < 4; i++)
                sqlite3_finalize(st[i]);
        return r;
}

int64_t fleetdb_state_get(struct fleetdb *db, const char *key)
{
        sqlite3_stmt *st;
        int64_t v = -1;
        if (!db || sqlite3_prepare_v2(db->db, "SELECT value FROM fleet_state WHERE key = ?1", -1,
                                      &st, NULL) != SQLITE_OK)
                return -1;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

int fleetdb_state_set(struct fleetdb *db, const char *key, int64_t value)
{
        sqlite3_stmt *st;
        if (!db || sqlite3_prepare_v2(db->db,
                                      "INSERT OR REPLACE INTO fleet_state (key, value) VALUES (?1, ?2)",
                                      -1, &st, NULL) != SQLITE_OK)
                return -1;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, value);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -1;
}

/* fleet.c - the fleet thread: publishes this host's additive evidence to
 * PostgreSQL, reads every host's, and hands the loop a fleet view.
 *
 *   loop (timer, every sync_interval_ms)          fleet thread
 *   snapshot of the tracker, copied  ---- mutex, pipe byte ---->  diff against
 *                                                 the last batch sent; BEGIN,
 *                                                 upsert changed rows, tombstone
 *                                                 removed ones, fleet_hosts.version
 *                                                 = next, NOTIFY, COMMIT
 *                                                 read hosts whose version moved
 *                                                 (rows with version above the last
 *                                                 seen), keep them (fleetdb.c), sum
 *   env->fleet.view = the new view  <--- uv_async ---  (fleetsum_build)
 *
 * A batch is the host's current values, so a retry or a replay after a
 * crash never counts twice; versions are per host, and each host writes
 * its rows and its version in one transaction, so a reader that asks for
 * rows above the last version it saw of a host misses nothing.
 *
 * Faults:
 *   - PostgreSQL down or unreachable (at start or later): one warning, the
 *     last fleet evidence (from SQLite at start) keeps being served,
 *     reconnects with backoff (250 ms doubling to 5 s), then a full batch
 *     and a read catch up.
 *   - A configuration PostgreSQL refuses (bad conninfo, a password in it,
 *     wrong password, missing role or database) or a schema newer than this
 *     binary: one error line, host-only service (fleet scope answers with
 *     this host's evidence), a quiet retry every 30 s.
 *   - Another daemon publishing under the same host_id: it holds the
 *     host's advisory lock; this one logs it, serves host-only and tries
 *     again every 5 s.  Rows are keyed by host, so nothing is summed twice.
 */
#include "fleet.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleetdb.h"
#include "fleetsum.h"
#include "journal.h"
#include "log.h"
#include "proto.h"
#include "siphash.h"

/* schema/pg/NNN_*.sql, embedded by tools/embed_sql.py. */
extern const char *const fleet_pg_migrations[];
extern const unsigned fleet_pg_nmigrations;

enum fleet__state {
        FLEET_CONNECTING,
        FLEET_OK,
        FLEET_DOWN,      /* unreachable: last fleet evidence served */
        FLEET_REFUSED,   /* configuration refused, newer schema: host-only */
        FLEET_DUPLICATE, /* another daemon holds this host_id: host-only */
};

static const char *const fleet__state_names[] = { "connecting", "ok", "down", "host_only",
                                                  "duplicate_host_id" };

/* A forget with fleet scope, on its way to PostgreSQL or back from it. */
struct fleet__forget {
        char *model;
        char *domain; /* NULL: the whole model */
        int task;     /* with domain */
        char host[FLEETSUM_HOST_MAX + 1]; /* who asked (read ones) */
};

struct fleet__hostinfo {
        char id[FLEETSUM_HOST_MAX + 1];
        int64_t version, seen_at;
        size_t rows;
};

struct fleet {
        uv_loop_t *loop;
        struct rpc_env *env;
        const struct config *cfg;
        uv_timer_t timer;
        uv_async_t async;
        int closing_handles;
        pthread_t thread;
        bool started;
        int wake[2]; /* the loop writes a byte: a snapshot waits, or stop */
        char host_id[FLEETSUM_HOST_MAX + 1];
        char *conninfo;
        uint64_t last_mark; /* loop: the counters at the last snapshot */
        bool marked;

        pthread_mutex_t mu; /* guards what follows, up to the thread's own */
        bool stop;
        struct fleetsum_row *outbox; /* owned copy; NULL: none */
        size_t noutbox;
        uint32_t interval_ms, ttl_days, delay_ms;
        uint64_t half_life, degrade_threshold, max_cells;
        struct tracker *view_ready; /* built, for the loop to take */
        bool view_drop;             /* host-only: the loop drops its view */
        enum fleet__state state;
        char error[512];            /* the last problem, for stats */
        uint64_t last_sync_ms;      /* wall clock of the last completed read */
        uint64_t rows_sent, rows_read, errors, batches;
        struct fleet__hostinfo *hosts;
        size_t nhosts;
        struct fleet__forget *forget_out, *forget_in; /* to PostgreSQL; to apply */
        size_t nforget_out, nforget_in;

        /* the thread's own */
        PGconn *pg;
        struct fleet_cache cache;
        struct fleetdb *db;
        struct fleetsum_row *sent; /* the last batch committed (owned) */
        size_t nsent;
        int64_t version;
        bool full;                 /* next batch: every row, and tombstones for the rest */
        int logged;                /* the state last logged (-1: none) */
        char logged_error[512];
        uint64_t last_heartbeat_ms;
        int64_t forget_id;         /* the last fleet_forgets row applied; -1: none yet */
        bool db_dirty;             /* the cache changed since its last save */
        uint64_t db_saved_ms;
};

/* The SQLite copy is written at most this often (and when the thread
 * stops): it only serves a restart while PostgreSQL is down. */
#define FLEET_SAVE_MS 5000

static uint64_t fleet__now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- host_id ------------------------------------------------------------ */

int fleet_default_host_id(char out[33], unsigned uid)
{
        /* outcomed's own keys: the machine id is never shown, and another
         * program's hash of it does not match this one. */
        static const uint8_t k1[SIPHASH_KEY_BYTES] = { 0x6f, 0x75, 0x74, 0x63, 0x6f, 0x6d, 0x65, 0x64,
                                                       0x2d, 0x66, 0x6c, 0x65, 0x65, 0x74, 0x2d, 0x31 };
        static const uint8_t k2[SIPHASH_KEY_BYTES] = { 0x6f, 0x75, 0x74, 0x63, 0x6f, 0x6d, 0x65, 0x64,
                                                       0x2d, 0x66, 0x6c, 0x65, 0x65, 0x74, 0x2d, 0x32 };
        char buf[128];
        FILE *f = fopen("/etc/machine-id", "r");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, 64, f);
        fclose(f);
        while (n && isspace((unsigned char)buf[n - 1]))
                n--;
        if (n == 0)
                return -1;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ":%u", uid);
        snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, siphash24(k1, buf, n), siphash24(k2, buf, n));
        return 0;
}

/* ---- the thread: state and logging -------------------------------------- */

static void fleet__set_state(struct fleet *f, enum fleet__state s, const char *error)
{
        pthread_mutex_lock(&f->mu);
        f->state = s;
        if (error)
                snprintf(f->error, sizeof(f->error), "%s", error);
        else if (s == FLEET_OK)
                f->error[0] = '\0';
        if (s == FLEET_REFUSED || s == FLEET_DUPLICATE) {
                f->view_drop = true;
                if (f->view_ready) {
                        tracker_free(f->view_ready);
                        f->view_ready = NULL;
                }
        }
        pthread_mutex_unlock(&f->mu);
        if (s == FLEET_REFUSED || s == FLEET_DUPLICATE)
                uv_async_send(&f->async);
}

/* Log a problem once: again only when it changes (being unreachable is
 * one problem, whatever libpq says each time). */
static void fleet__log_problem(struct fleet *f, enum fleet__state s, const char *msg)
{
        if (f->logged == (int)s && (s == FLEET_DOWN || strcmp(f->logged_error, msg) == 0))
                return;
        f->logged = (int)s;
        snprintf(f->logged_error, sizeof(f->logged_error), "%s", msg);
        if (s == FLEET_DOWN)
                log_warn("fleet: PostgreSQL is unreachable (%s); serving this host's evidence and "
                         "the last fleet evidence, retrying", msg);
        else if (s == FLEET_DUPLICATE)
                log_error("fleet: %s", msg);
        else
                log_error("fleet: %s; serving this host's evidence only (host-only) until the "
                          "configuration or the database is fixed",
                          msg);
}

/* Wait up to ms for a byte on the wake pipe or a notification; true when
 * the thread must stop. */
static bool fleet__wait(struct fleet *f, uint32_t ms)
{
        struct pollfd p[2] = { { .fd = f->wake[0], .events = POLLIN }, { .fd = -1 } };
        int n = 1;
        if (f->pg && PQsocket(f->pg) >= 0) {
                p[1] = (struct pollfd){ .fd = PQsocket(f->pg), .events = POLLIN };
                n = 2;
        }
        if (poll(p, (nfds_t)n, (int)ms) > 0) {
                if (p[0].revents) {
                        char b[64];
                        while (read(f->wake[0], b, sizeof(b)) > 0)
                                ;
                }
                if (n == 2 && p[1].revents) {
                        PQconsumeInput(f->pg);
                        PGnotify *nt;
                        while ((nt = PQnotifies(f->pg)))
                                PQfreemem(nt);
                }
        }
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        return stop;
}

/* ---- the thread: PostgreSQL ---------------------------------------------- */

static void fleet__disconnect(struct fleet *f)
{
        if (f->pg)
                PQfinish(f->pg);
        f->pg = NULL;
}

/* Run a command; true when it gave `want`.  err gets the message. */
static bool fleet__ok(PGresult *res, ExecStatusType want, char *err, size_t errlen)
{
        bool ok = res && PQresultStatus(res) == want;
        if (!ok && err) {
                const char *m = res ? PQresultErrorMessage(res) : "no result";
                snprintf(err, errlen, "%.*s", (int)strcspn(m, "\n"), m);
        }
        return ok;
}

static bool fleet__exec(struct fleet *f, const char *sql, char *err, size_t errlen)
{
        PGresult *res = PQexec(f->pg, sql);
        bool ok = fleet__ok(res, PGRES_COMMAND_OK, err, errlen);
        PQclear(res);
        return ok;
}

/* A command with text parameters; true when it succeeded. */
static bool fleet__command(struct fleet *f, const char *sql, int n, const char *const *params,
                           char *err, size_t errlen)
{
        PGresult *res = PQexecParams(f->pg, sql, n, NULL, params, NULL, NULL, 0);
        bool ok = fleet__ok(res, PGRES_COMMAND_OK, err, errlen);
        PQclear(res);
        return ok;
}

/* Migrate under a transaction-wide advisory lock (hosts starting together
 * take turns).  0; -1 with err: a failure; -2: the schema is newer. */
static int fleet__migrate(struct fleet *f, char *err, size_t errlen)
{
        if (!fleet__exec(f, "BEGIN", err, errlen))
                return -1;
        PGresult *res = PQexec(f->pg, "SELECT pg_advisory_xact_lock(7306384937105236582)");
        bool ok = fleet__ok(res, PGRES_TUPLES_OK, err, errlen);
        PQclear(res);
        if (!ok || !fleet__exec(f,
                                "CREATE TABLE IF NOT EXISTS outcomed_fleet_schema "
                                "(version integer NOT NULL)",
                                err, errlen))
                goto fail;
        res = PQexec(f->pg, "SELECT version FROM outcomed_fleet_schema");
        if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                PQclear(res);
                goto fail;
        }
        long have = PQntuples(res) ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
        PQclear(res);
        if (have < 0) {
                if (!fleet__exec(f, "INSERT INTO outcomed_fleet_schema VALUES (0)", err, errlen))
                        goto fail;
                have = 0;
        }
        if (have > (long)fleet_pg_nmigrations) {
                snprintf(err, errlen,
                         "the PostgreSQL schema is version %ld, newer than this outcomed knows "
                         "(%u): upgrade outcomed on this host",
                         have, fleet_pg_nmigrations);
                fleet__exec(f, "ROLLBACK", NULL, 0);
                return -2;
        }
        for (unsigned i = (unsigned)have + 1; i <= fleet_pg_nmigrations; i++) {
                char sql[96];
                if (!fleet__exec(f, fleet_pg_migrations[i - 1], err, errlen))
                        goto fail;
                snprintf(sql, sizeof(sql), "UPDATE outcomed_fleet_schema SET version = %u", i);
                if (!fleet__exec(f, sql, err, errlen))
                        goto fail;
        }
        if (!fleet__exec(f, "COMMIT", err, errlen))
                goto fail;
        return 0;
fail:
        fleet__exec(f, "ROLLBACK", NULL, 0);
        return -1;
}

/* The server's notices ("relation already exists, skipping") are no news:
 * libpq would print them on stderr. */
static void fleet__notice(void *arg, const char *message)
{
        (void)arg;
        log_debug("fleet: PostgreSQL: %.*s", (int)strcspn(message, "\n"), message);
}

/* A libpq connection failure that retrying will not cure. */
static bool fleet__refused(const char *msg)
{
        static const char *const fatal[] = {
                "password authentication failed", "no password supplied",
                "does not exist", "authentication failed", "permission denied",
                "invalid connection option", "pg_hba.conf",
        };
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
                if (strstr(msg, fatal[i]))
                        return true;
        return false;
}

/* Connect, migrate, take the host's lock, LISTEN.  0; -1: retry soon
 * (down); -2: refused (host-only); -3: duplicate host_id. */
static int fleet__connect(struct fleet *f, char *err, size_t errlen)
{
        /* Defaults the conninfo (expanded from dbname) may override: a
         * server gone silent over TCP is noticed within about 20 s, so
         * the thread (and a stop that joins it) never waits for ever. */
        const char *keys[] = { "connect_timeout", "keepalives_idle", "keepalives_interval",
                               "keepalives_count", "tcp_user_timeout", "dbname",
                               "fallback_application_name", NULL };
        const char *vals[] = { "5", "10", "5", "2", "20000", f->conninfo, "outcomed", NULL };
        f->pg = PQconnectdbParams(keys, vals, 1);
        if (!f->pg) {
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        if (PQstatus(f->pg) != CONNECTION_OK) {
                const char *m = PQerrorMessage(f->pg);
                /* libpq's message may span lines; the last line says why */
                snprintf(err, errlen, "%s", m);
                for (char *p = err; *p; p++)
                        if (*p == '\n')
                                *p = (p[1] ? ' ' : '\0');
                fleet__disconnect(f);
                return fleet__refused(err) ? -2 : -1;
        }
        PQsetNoticeProcessor(f->pg, fleet__notice, NULL);
        int r = fleet__migrate(f, err, errlen);
        if (r < 0) {
                bool refused = r == -2 || fleet__refused(err);
                fleet__disconnect(f);
                return refused ? -2 : -1;
        }
        const char *p[1] = { f->host_id };
        PGresult *res = PQexecParams(f->pg, "SELECT pg_try_advisory_lock(hashtext('outcomed fleet ' || $1))",
                                     1, NULL, p, NULL, NULL, 0);
        if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                PQclear(res);
                fleet__disconnect(f);
                return -1;
        }
        bool locked = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!locked) {
                snprintf(err, errlen,
                         "another outcomed publishes as host_id '%s' (it holds the host's lock in "
                         "PostgreSQL): this one publishes nothing and serves host-only evidence "
                         "until that one stops; give each daemon its own [fleet] host_id",
                         f->host_id);
                fleet__disconnect(f);
                return -3;
        }
        if (!fleet__exec(f, "LISTEN outcomed_fleet", err, errlen)) {
                fleet__disconnect(f);
                return -1;
        }
        res = PQexecParams(f->pg, "SELECT version FROM fleet_hosts WHERE host_id = $1", 1, NULL, p,
                           NULL, NULL, 0);
        if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                PQclear(res);
                fleet__disconnect(f);
                return -1;
        }
        if (PQntuples(res)) {
                int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                f->version = v > f->version ? v : f->version;
        }
        PQclear(res);
        f->full = true;
        return 0;
}

/* ---- the thread: publishing --------------------------------------------- */

static const char *fleet__task_text(uint8_t task)
{
        return task == FLEETSUM_MODEL ? "*" : tracker_task_name((enum tracker_task)task);
}

#define FLEET_UPSERT_PARAMS 23

static bool fleet__upsert(struct fleet *f, const struct fleetsum_row *r, char *err, size_t errlen)
{
        char num[FLEET_UPSERT_PARAMS][32];
        char sketch[TRACKER_SKETCH_BUCKETS * 11 + 3];
        const char *v[FLEET_UPSERT_PARAMS];
        v[0] = f->host_id;
        v[1] = r->model;
        v[2] = fleet__task_text(r->task);
        v[3] = r->domain;
        snprintf(num[4], 32, "%" PRId64, f->version);
        snprintf(num[5], 32, "%" PRIu64, r->calls);
        snprintf(num[6], 32, "%" PRIu64, r->successes);
        snprintf(num[7], 32, "%" PRIu64, r->failures);
        const double d[] = { r->latency_sum_ms, r->ema, r->ev.alpha, r->ev.beta, r->ev.judged };
        for (int i = 0; i < 5; i++)
                snprintf(num[8 + i], 32, "%.17g", d[i]);
        snprintf(num[13], 32, "%" PRIu64, r->ev.at);
        snprintf(num[14], 32, "%" PRIu64, r->ev.input_tokens);
        snprintf(num[15], 32, "%" PRIu64, r->ev.output_tokens);
        const double w[] = { r->recent_alpha, r->recent_beta, r->win_alpha, r->win_beta };
        for (int i = 0; i < 4; i++)
                snprintf(num[16 + i], 32, "%.17g", w[i]);
        snprintf(num[20], 32, "%" PRIu64, r->updated_at);
        size_t k = 0;
        sketch[k++] = '{';
        for (int b = 0; b < TRACKER_SKETCH_BUCKETS; b++)
                k += (size_t)snprintf(sketch + k, sizeof(sketch) - k, "%s%" PRIu32, b ? "," : "",
                                      r->sketch[b]);
        snprintf(sketch + k, sizeof(sketch) - k, "}");
        for (int i = 4; i < 21; i++)
                v[i] = num[i];
        v[21] = sketch;
        v[22] = "false";
        PGresult *res = PQexecPrepared(f->pg, "upsert", FLEET_UPSERT_PARAMS, v, NULL, NULL, 0);
        bool ok = fleet__ok(res, PGRES_COMMAND_OK, err, errlen);
        PQclear(res);
        return ok;
}

static bool fleet__tombstone(struct fleet *f, const struct fleetsum_row *r, char *err,
                             size_t errlen)
{
        char ver[32];
        snprintf(ver, sizeof(ver), "%" PRId64, f->version);
        const char *v[5] = { f->host_id, r->model, fleet__task_text(r->task), r->domain, ver };
        return fleet__command(f,
                              "UPDATE fleet_evidence SET deleted = true, version = $5 "
                              "WHERE host_id = $1 AND model = $2 AND task = $3 AND "
                              "domain = $4 AND NOT deleted",
                              5, v, err, errlen);
}

static bool fleet__prepare(struct fleet *f, char *err, size_t errlen)
{
        PGresult *res = PQprepare(
                f->pg, "upsert",
                "INSERT INTO fleet_evidence (host_id, model, task, domain, version, calls, "
                "successes, failures, latency_sum_ms, ema, alpha, beta, judged, at, input_tokens, "
                "output_tokens, recent_alpha, recent_beta, win_alpha, win_beta, updated_at, "
                "sketch, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                "$14, $15, $16, $17, $18, $19, $20, $21, $22, $23) "
                "ON CONFLICT (host_id, model, task, domain) DO UPDATE SET "
                "version = EXCLUDED.version, deleted = false, calls = EXCLUDED.calls, "
                "successes = EXCLUDED.successes, failures = EXCLUDED.failures, "
                "latency_sum_ms = EXCLUDED.latency_sum_ms, ema = EXCLUDED.ema, "
                "alpha = EXCLUDED.alpha, beta = EXCLUDED.beta, judged = EXCLUDED.judged, "
                "at = EXCLUDED.at, input_tokens = EXCLUDED.input_tokens, "
                "output_tokens = EXCLUDED.output_tokens, recent_alpha = EXCLUDED.recent_alpha, "
                "recent_beta = EXCLUDED.recent_beta, win_alpha = EXCLUDED.win_alpha, "
                "win_beta = EXCLUDED.win_beta, updated_at = EXCLUDED.updated_at, "
                "sketch = EXCLUDED.sketch",
                FLEET_UPSERT_PARAMS, NULL);
        bool ok = fleet__ok(res, PGRES_COMMAND_OK, err, errlen);
        PQclear(res);
        return ok;
}

/* Publish snap (sorted by key) as the next version: the rows that differ
 * from the last batch sent (all of them after a reconnect, with every
 * other row of this host made a tombstone).  0 with *sent the number of
 * rows written; -1 with err. */
static int fleet__publish(struct fleet *f, const struct fleetsum_row *snap, size_t n,
                          uint32_t delay_ms, size_t *sent, char *err, size_t errlen)
{
        *sent = 0;
        if (f->full && !fleet__prepare(f, err, errlen))
                return -1;
        /* What changed, first: nothing, and no batch is written. */
        size_t i = 0, j = 0, changes = 0;
        const struct fleetsum_row *old = f->full ? NULL : f->sent;
        size_t nold = f->full ? 0 : f->nsent;
        while (i < n || j < nold) {
                int c = i == n ? 1 : j == nold ? -1 : fleetsum_key_cmp(&snap[i], &old[j]);
                if (c < 0 || c > 0 || !fleetsum_row_same(&snap[i], &old[j]))
                        changes++;
                if (c <= 0)
                        i++;
                if (c >= 0)
                        j++;
        }
        if (!changes && !f->full)
                return 0;
        f->version++;
        if (!fleet__exec(f, "BEGIN", err, errlen))
                return -1;
        i = j = 0;
        while (i < n || j < nold) {
                int c = i == n ? 1 : j == nold ? -1 : fleetsum_key_cmp(&snap[i], &old[j]);
                bool ok = true;
                if (c < 0 || (c == 0 && !fleetsum_row_same(&snap[i], &old[j])))
                        ok = fleet__upsert(f, &snap[i], err, errlen);
                else if (c > 0)
                        ok = fleet__tombstone(f, &old[j], err, errlen);
                if (!ok)
                        goto fail;
                if (c != 0 || !fleetsum_row_same(&snap[i], &old[j]))
                        (*sent)++;
                if (c <= 0)
                        i++;
                if (c >= 0)
                        j++;
        }
        char ver[32];
        snprintf(ver, sizeof(ver), "%" PRId64, f->version);
        const char *v[2] = { f->host_id, ver };
        if (f->full && !fleet__command(f,
                                       "UPDATE fleet_evidence SET deleted = true, version = $2 "
                                       "WHERE host_id = $1 AND version < $2 AND NOT deleted",
                                       2, v, err, errlen))
                goto fail;
        bool ok = fleet__command(f,
                                 "INSERT INTO fleet_hosts (host_id, version, seen_at) VALUES "
                                 "($1, $2, now()) ON CONFLICT (host_id) DO UPDATE SET "
                                 "version = EXCLUDED.version, seen_at = now()",
                                 2, v, err, errlen);
        if (!ok || !fleet__exec(f, "NOTIFY outcomed_fleet", err, errlen))
                goto fail;
        if (delay_ms) /* tests: a batch held open, so that a kill lands during a sync */
                usleep(delay_ms * 1000u);
        if (!fleet__exec(f, "COMMIT", err, errlen))
                goto fail;
        f->full = false;
        f->last_heartbeat_ms = fleet__now_ms();
        return 0;
fail:
        fleet__exec(f, "ROLLBACK", NULL, 0);
        return -1;
}

/* ---- the thread: forgets ------------------------------------------------ */

static void fleet__forgets_free(struct fleet__forget *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].model);
                free(v[i].domain);
        }
        free(v);
}

static int fleet__forget_push(struct fleet__forget **v, size_t *n, const char *model, int task,
                              const char *domain, const char *host)
{
        struct fleet__forget *nv = realloc(*v, (*n + 1) * sizeof(*nv));
        if (!nv)
                return -ENOMEM;
        *v = nv;
        struct fleet__forget *e = &nv[*n];
        memset(e, 0, sizeof(*e));
        e->model = strdup(model);
        e->domain = domain ? strdup(domain) : NULL;
        e->task = task;
        snprintf(e->host, sizeof(e->host), "%s", host ? host : "");
        if (!e->model || (domain && !e->domain)) {
                free(e->model);
                free(e->domain);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

/* Send the forgets asked here (v[0, n), taken from forget_out); those
 * that fail go back to the queue. */
static int fleet__forgets_send(struct fleet *f, struct fleet__forget *v, size_t n, char *err,
                               size_t errlen)
{
        size_t i = 0;
        for (; i < n; i++) {
                const char *p[4] = { f->host_id, v[i].model,
                                     v[i].domain ? tracker_task_name((enum tracker_task)v[i].task) : "",
                                     v[i].domain ? v[i].domain : "" };
                if (!fleet__command(f,
                                    "INSERT INTO fleet_forgets (host_id, model, task, domain) "
                                    "VALUES ($1, $2, $3, $4)",
                                    4, p, err, errlen))
                        break;
        }
        if (i < n) { /* put back, before any asked meanwhile */
                pthread_mutex_lock(&f->mu);
                for (size_t k = 0; k < f->nforget_out; k++)
                        fleet__forget_push(&v, &n, f->forget_out[k].model, f->forget_out[k].task,
                                           f->forget_out[k].domain, NULL);
                fleet__forgets_free(f->forget_out, f->nforget_out);
                f->forget_out = v;
                f->nforget_out = n;
                for (size_t k = 0; k < i; k++) { /* sent already */
                        free(v[k].model);
                        free(v[k].domain);
                }
                memmove(v, v + i, (n - i) * sizeof(*v));
                f->nforget_out = n - i;
                pthread_mutex_unlock(&f->mu);
                return -1;
        }
        fleet__forgets_free(v, n);
        return 0;
}

/* Read the other hosts' forgets since the last applied, for the loop to
 * apply.  A host that joins starts from the newest: older forgets are
 * about evidence it never had. */
static int fleet__forgets_read(struct fleet *f, char *err, size_t errlen)
{
        PGresult *res;
        if (f->forget_id < 0) {
                res = PQexec(f->pg, "SELECT coalesce(max(id), 0) FROM fleet_forgets");
                if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                        PQclear(res);
                        return -1;
                }
                f->forget_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                PQclear(res);
                fleetdb_state_set(f->db, "forget_id", f->forget_id);
                return 0;
        }
        char from[32];
        snprintf(from, sizeof(from), "%" PRId64, f->forget_id);
        const char *p[1] = { from };
        res = PQexecParams(f->pg,
                           "SELECT id, host_id, model, task, domain FROM fleet_forgets "
                           "WHERE id > $1 ORDER BY id LIMIT 10000",
                           1, NULL, p, NULL, NULL, 0);
        if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                PQclear(res);
                return -1;
        }
        int n = PQntuples(res);
        bool any = false;
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < n; i++) {
                f->forget_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
                const char *host = PQgetvalue(res, i, 1);
                if (strcmp(host, f->host_id) == 0)
                        continue; /* applied when it was asked */
                const char *task = PQgetvalue(res, i, 3);
                enum tracker_task t = TASK_GENERATE;
                bool cell = task[0] != '\0';
                if (cell && tracker_task_parse(task, strlen(task), &t) < 0)
                        continue;
                if (fleet__forget_push(&f->forget_in, &f->nforget_in, PQgetvalue(res, i, 2),
                                       (int)t, cell ? PQgetvalue(res, i, 4) : NULL, host) == 0)
                        any = true;
        }
        pthread_mutex_unlock(&f->mu);
        PQclear(res);
        if (n)
                fleetdb_state_set(f->db, "forget_id", f->forget_id);
        if (any)
                uv_async_send(&f->async);
        return 0;
}

/* ---- the thread: reading ------------------------------------------------ */

static bool fleet__parse_row(PGresult *res, int i, struct fleetsum_row *r, bool *deleted)
{
        memset(r, 0, sizeof(*r));
        r->model = PQgetvalue(res, i, 0);
        const char *task = PQgetvalue(res, i, 1);
        enum tracker_task t;
        if (strcmp(task, "*") == 0)
                r->task = FLEETSUM_MODEL;
        else if (tracker_task_parse(task, strlen(task), &t) == 0)
                r->task = (uint8_t)t;
        else
                return false;
        r->domain = PQgetvalue(res, i, 2);
        *deleted = PQgetvalue(res, i, 3)[0] == 't';
        r->calls = strtoull(PQgetvalue(res, i, 4), NULL, 10);
        r->successes = strtoull(PQgetvalue(res, i, 5), NULL, 10);
        r->failures = strtoull(PQgetvalue(res, i, 6), NULL, 10);
        r->latency_sum_ms = strtod(PQgetvalue(res, i, 7), NULL);
        r->ema = strtod(PQgetvalue(res, i, 8), NULL);
        r->ev.alpha = strtod(PQgetvalue(res, i, 9), NULL);
        r->ev.beta = strtod(PQgetvalue(res, i, 10), NULL);
        r->ev.judged = strtod(PQgetvalue(res, i, 11), NULL);
        r->ev.at = strtoull(PQgetvalue(res, i, 12), NULL, 10);
        r->ev.input_tokens = strtoull(PQgetvalue(res, i, 13), NULL, 10);
        r->ev.output_tokens = strtoull(PQgetvalue(res, i, 14), NULL, 10);
        r->recent_alpha = strtod(PQgetvalue(res, i, 15), NULL);
        r->recent_beta = strtod(PQgetvalue(res, i, 16), NULL);
        r->win_alpha = strtod(PQgetvalue(res, i, 17), NULL);
        r->win_beta = strtod(PQgetvalue(res, i, 18), NULL);
        r->updated_at = strtoull(PQgetvalue(res, i, 19), NULL, 10);
        const char *s = PQgetvalue(res, i, 20);
        if (*s == '{')
                s++;
        for (int b = 0; b < TRACKER_SKETCH_BUCKETS && *s && *s != '}'; b++) {
                char *end;
                unsigned long long u = strtoull(s, &end, 10);
                r->sketch[b] = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
                s = *end == ',' ? end + 1 : end;
        }
        return r->model[0] && strlen(r->model) <= 65536 && strlen(r->domain) <= 4 * PROTO_DOMAIN_MAX;
}

/* Read what moved since the last read.  Returns how many rows were read,
 * *changed set when the sums must be built again; -1 with err. */
static long fleet__read(struct fleet *f, uint32_t ttl_days, bool *changed, char *err,
                        size_t errlen)
{
        long nread = 0;
        *changed = false;
        if (!fleet__exec(f, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen))
                return -1;
        char ttl[16];
        snprintf(ttl, sizeof(ttl), "%" PRIu32, ttl_days);
        const char *tp[1] = { ttl };
        PGresult *hosts = PQexecParams(f->pg,
                                       "SELECT host_id, version, extract(epoch FROM seen_at)::bigint "
                                       "FROM fleet_hosts WHERE seen_at > now() - "
                                       "make_interval(days => $1::int) ORDER BY host_id",
                                       1, NULL, tp, NULL, NULL, 0);
        if (!fleet__ok(hosts, PGRES_TUPLES_OK, err, errlen))
                goto fail;
        int nh = PQntuples(hosts);
        /* Hosts gone (not seen for host_ttl_days) leave the sums. */
        for (size_t i = 0; i < f->cache.nhosts;) {
                bool present = false;
                for (int k = 0; k < nh && !present; k++)
                        present = strcmp(PQgetvalue(hosts, k, 0), f->cache.hosts[i]->id) == 0;
                if (present) {
                        i++;
                        continue;
                }
                fleet_cache_host_drop(&f->cache, f->cache.hosts[i]->id);
                *changed = true;
        }
        for (int k = 0; k < nh; k++) {
                const char *id = PQgetvalue(hosts, k, 0);
                int64_t version = strtoll(PQgetvalue(hosts, k, 1), NULL, 10);
                struct fleet_host *h = fleet_cache_host(&f->cache, id);
                if (!h && !(h = fleet_cache_host_add(&f->cache, id)))
                        continue; /* too long an id, or out of memory: left out */
                h->seen_at = strtoll(PQgetvalue(hosts, k, 2), NULL, 10);
                if (version == h->version)
                        continue;
                if (version < h->version) { /* the database was replaced: read it all */
                        fleet_host_clear(h);
                        h->version = 0;
                }
                char from[32];
                snprintf(from, sizeof(from), "%" PRId64, h->version);
                const char *p[2] = { id, from };
                PGresult *res = PQexecParams(
                        f->pg,
                        "SELECT model, task, domain, deleted, calls, successes, failures, "
                        "latency_sum_ms, ema, alpha, beta, judged, at, input_tokens, "
                        "output_tokens, recent_alpha, recent_beta, win_alpha, win_beta, "
                        "updated_at, sketch FROM fleet_evidence WHERE host_id = $1 AND "
                        "version > $2",
                        2, NULL, p, NULL, NULL, 0);
                if (!fleet__ok(res, PGRES_TUPLES_OK, err, errlen)) {
                        PQclear(res);
                        goto fail;
                }
                for (int i = 0; i < PQntuples(res); i++) {
                        struct fleetsum_row r;
                        bool deleted;
                        if (!fleet__parse_row(res, i, &r, &deleted))
                                continue;
                        if (fleet_host_put(h, &r, deleted) < 0) {
                                PQclear(res);
                                snprintf(err, errlen, "out of memory");
                                goto fail;
                        }
                        nread++;
                }
                PQclear(res);
                fleet_host_sort(h);
                h->version = version;
                *changed = true;
        }
        PQclear(hosts);
        hosts = NULL;
        if (!fleet__exec(f, "COMMIT", err, errlen))
                goto fail;
        if (*changed)
                f->db_dirty = true;
        return nread;
fail:
        PQclear(hosts);
        fleet__exec(f, "ROLLBACK", NULL, 0);
        return -1;
}

/* Sum the cache into a view and hand it to the loop; note the hosts for
 * stats and `hosts`. */
static void fleet__post_view(struct fleet *f)
{
        pthread_mutex_lock(&f->mu);
        struct fleetsum_options o = { .self = f->host_id, .half_life = f->half_life,
                                      .degrade_threshold = f->degrade_threshold,
                                      .max_cells = f->max_cells };
        pthread_mutex_unlock(&f->mu);
        struct fleetsum_row *rows;
        long n = fleet_cache_rows(&f->cache, &rows);
        struct tracker *view = NULL;
        if (n < 0 || fleetsum_build(rows, (size_t)n, &o, &view) < 0) {
                if (n >= 0)
                        free(rows);
                log_warn("fleet: out of memory building the fleet view; the last one stays");
                return;
        }
        free(rows);
        struct fleet__hostinfo *hi = calloc(f->cache.nhosts + 1, sizeof(*hi));
        for (size_t i = 0; hi && i < f->cache.nhosts; i++) {
                const struct fleet_host *h = f->cache.hosts[i];
                memcpy(hi[i].id, h->id, sizeof(hi[i].id));
                hi[i].version = h->version;
                hi[i].seen_at = h->seen_at;
                hi[i].rows = h->nrows;
        }
        pthread_mutex_lock(&f->mu);
        if (f->view_ready)
                tracker_free(f->view_ready);
        f->view_ready = view;
        f->view_drop = false;
        if (hi) {
                free(f->hosts);
                f->hosts = hi;
                f->nhosts = f->cache.nhosts;
        }
        pthread_mutex_unlock(&f->mu);
        uv_async_send(&f->async);
}

/* ---- the thread --------------------------------------------------------- */

static void fleet__save(struct fleet *f, bool now)
{
        uint64_t ms = fleet__now_ms();
        if (!f->db || !f->db_dirty || (!now && ms - f->db_saved_ms < FLEET_SAVE_MS))
                return;
        char e[300];
        if (fleetdb_save(f->db, &f->cache, e, sizeof(e)) < 0)
                log_warn("fleet: %s", e);
        f->db_dirty = false;
        f->db_saved_ms = ms;
}

static void fleet__count_error(struct fleet *f, const char *msg)
{
        pthread_mutex_lock(&f->mu);
        f->errors++;
        snprintf(f->error, sizeof(f->error), "%s", msg);
        pthread_mutex_unlock(&f->mu);
}

/* A snapshot not published: kept for the next attempt unless a newer one
 * came meanwhile. */
static void fleet__outbox_return(struct fleet *f, struct fleetsum_row *snap, size_t n)
{
        pthread_mutex_lock(&f->mu);
        if (!f->outbox) {
                f->outbox = snap;
                f->noutbox = n;
                snap = NULL;
        }
        pthread_mutex_unlock(&f->mu);
        if (snap)
                fleet_rows_free(snap, n);
}

static void *fleet__thread(void *arg)
{
        struct fleet *f = arg;
        char err[512];
        uint32_t backoff = 250;
        pthread_setname_np(pthread_self(), "outcomed-fleet");
        f->forget_id = fleetdb_state_get(f->db, "forget_id");
        for (;;) {
                pthread_mutex_lock(&f->mu);
                uint32_t interval = f->interval_ms, ttl = f->ttl_days, delay = f->delay_ms;
                bool stop = f->stop;
                pthread_mutex_unlock(&f->mu);
                if (stop)
                        break;
                if (!f->pg) {
                        int r = fleet__connect(f, err, sizeof(err));
                        if (r < 0) {
                                enum fleet__state s = r == -2   ? FLEET_REFUSED
                                                      : r == -3 ? FLEET_DUPLICATE
                                                                : FLEET_DOWN;
                                fleet__set_state(f, s, err);
                                fleet__log_problem(f, s, err);
                                uint32_t wait = s == FLEET_REFUSED ? 30000 : s == FLEET_DUPLICATE ? 5000 : backoff;
                                if (s == FLEET_DOWN)
                                        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                                if (fleet__wait(f, wait))
                                        break;
                                continue;
                        }
                        if (f->logged >= 0)
                                log_info("fleet: connected to PostgreSQL as host_id '%s'; catching up",
                                         f->host_id);
                        else
                                log_info("fleet: connected to PostgreSQL as host_id '%s'", f->host_id);
                        f->logged = -1;
                        f->logged_error[0] = '\0';
                        backoff = 250;
                        fleet__set_state(f, FLEET_OK, NULL);
                        fleet__post_view(f); /* after host-only: the view again */
                }
                /* What the loop handed over: forgets, the newest snapshot. */
                pthread_mutex_lock(&f->mu);
                struct fleet__forget *forgets = f->forget_out;
                size_t nforgets = f->nforget_out;
                struct fleetsum_row *snap = f->outbox;
                size_t nsnap = f->noutbox;
                f->forget_out = NULL;
                f->outbox = NULL;
                f->nforget_out = f->noutbox = 0;
                pthread_mutex_unlock(&f->mu);
                bool failed = fleet__forgets_send(f, forgets, nforgets, err, sizeof(err)) < 0 ||
                              fleet__forgets_read(f, err, sizeof(err)) < 0;
                if (snap && failed) {
                        fleet__outbox_return(f, snap, nsnap);
                        snap = NULL;
                }
                if (snap) {
                        size_t sent;
                        if (fleet__publish(f, snap, nsnap, delay, &sent, err, sizeof(err)) < 0) {
                                failed = true;
                                fleet__outbox_return(f, snap, nsnap);
                        } else {
                                fleet_rows_free(f->sent, f->nsent);
                                f->sent = snap;
                                f->nsent = nsnap;
                                pthread_mutex_lock(&f->mu);
                                f->rows_sent += sent;
                                f->batches += sent > 0;
                                pthread_mutex_unlock(&f->mu);
                        }
                } else if (!failed && fleet__now_ms() - f->last_heartbeat_ms > 60000) {
                        const char *p[1] = { f->host_id };
                        failed = !fleet__command(f,
                                                 "UPDATE fleet_hosts SET seen_at = now() "
                                                 "WHERE host_id = $1",
                                                 1, p, err, sizeof(err));
                        f->last_heartbeat_ms = fleet__now_ms();
                }
                if (!failed) {
                        bool changed;
                        long n = fleet__read(f, ttl, &changed, err, sizeof(err));
                        if (n < 0) {
                                failed = true;
                        } else {
                                pthread_mutex_lock(&f->mu);
                                f->rows_read += (uint64_t)n;
                                f->last_sync_ms = fleet__now_ms();
                                pthread_mutex_unlock(&f->mu);
                                if (changed)
                                        fleet__post_view(f);
                        }
                }
                if (failed) {
                        fleet__count_error(f, err);
                        if (PQstatus(f->pg) != CONNECTION_OK) {
                                fleet__disconnect(f);
                                fleet__set_state(f, FLEET_DOWN, err);
                                fleet__log_problem(f, FLEET_DOWN, err);
                                continue;
                        }
                        log_warn("fleet: %s", err);
                }
                fleet__save(f, false);
                if (fleet__wait(f, interval))
                        break;
        }
        fleet__save(f, true);
        fleet__disconnect(f);
        return NULL;
}

/* ---- the loop ----------------------------------------------------------- */

/* Another host's forget with fleet scope, applied to this host's evidence
 * and journaled as a local forget. */
static void fleet__apply_forget(struct fleet *f, const struct fleet__forget *g)
{
        struct rpc_env *env = f->env;
        enum tracker_task task = (enum tracker_task)g->task;
        bool forgotten = (g->domain ? tracker_forget_cell(env->tracker, g->model, task, g->domain)
                                    : tracker_forget(env->tracker, g->model)) == 0;
        if (!forgotten)
                return;
        struct journal_entry e = { .op = JOURNAL_FORGET, .at = (uint64_t)time(NULL),
                                   .model = g->model, .task = task, .domain = g->domain };
        if (env->journal.record && env->journal.record(env->journal.data, &e) < 0)
                log_warn("fleet: the forget of '%s' asked by host '%s' could not be journaled",
                         g->model, g->host);
        log_info("fleet: forgot '%s'%s%s%s%s, as host '%s' asked", g->model,
                 g->domain ? " (" : "", g->domain ? tracker_task_name(task) : "",
                 g->domain ? " / " : "", g->domain ? g->domain : "", g->host);
}

static void fleet__on_async(uv_async_t *h)
{
        struct fleet *f = h->data;
        pthread_mutex_lock(&f->mu);
        struct fleet__forget *forgets = f->forget_in;
        size_t nforgets = f->nforget_in;
        f->forget_in = NULL;
        f->nforget_in = 0;
        struct tracker *view = f->view_ready;
        bool drop = f->view_drop;
        f->view_ready = NULL;
        f->view_drop = false;
        pthread_mutex_unlock(&f->mu);
        if (view || drop) {
                tracker_free(f->env->fleet.view);
                f->env->fleet.view = view;
        }
        for (size_t i = 0; i < nforgets; i++)
                fleet__apply_forget(f, &forgets[i]);
        fleet__forgets_free(forgets, nforgets);
        if (nforgets)
                f->marked = false; /* publish the tombstones at the next tick */
}

static int fleet__forget(void *data, const char *model, int task, const char *domain)
{
        struct fleet *f = data;
        pthread_mutex_lock(&f->mu);
        int r = fleet__forget_push(&f->forget_out, &f->nforget_out, model, task, domain, NULL);
        pthread_mutex_unlock(&f->mu);
        ssize_t w = write(f->wake[1], "f", 1);
        (void)w;
        return r;
}

/* The counters that move when the tracker changes. */
static uint64_t fleet__mark(const struct rpc_env *env)
{
        return env->counters.requests_total + env->counters.expired_total +
               env->counters.git_judged_total + env->counters.reloads_total;
}

static void fleet__on_timer(uv_timer_t *t)
{
        struct fleet *f = t->data;
        uint64_t mark = fleet__mark(f->env);
        if (f->marked && mark == f->last_mark)
                return;
        struct fleetsum_row *snap, *copy;
        long n = fleetsum_snapshot(f->env->tracker, &snap);
        if (n < 0)
                return;
        int r = fleet_rows_copy(snap, (size_t)n, &copy);
        free(snap);
        if (r < 0)
                return;
        f->marked = true;
        f->last_mark = mark;
        pthread_mutex_lock(&f->mu);
        struct fleetsum_row *old = f->outbox;
        size_t nold = f->noutbox;
        f->outbox = copy;
        f->noutbox = (size_t)n;
        pthread_mutex_unlock(&f->mu);
        if (old)
                fleet_rows_free(old, nold);
        ssize_t w = write(f->wake[1], "s", 1);
        (void)w;
}

/* A map of n pairs, its first two host_id and state; the lock taken. */
static void fleet__pack_head(struct fleet *f, msgpack_packer *pk, uint32_t n)
{
        pthread_mutex_lock(&f->mu);
        msgpack_pack_map(pk, n);
        proto_pack_kv_str(pk, "host_id", f->host_id);
        proto_pack_kv_str(pk, "state", fleet__state_names[f->state]);
}

static void fleet__pack_state(void *data, msgpack_packer *pk, uint64_t now)
{
        struct fleet *f = data;
        fleet__pack_head(f, pk, 11);
        proto_pack_kv_bool(pk, "serving_fleet", f->env->fleet.view != NULL);
        proto_pack_kv_str(pk, "error", f->error);
        proto_pack_kv_u64(pk, "last_sync_at", f->last_sync_ms / 1000);
        uint64_t ms = fleet__now_ms();
        proto_pack_kv_u64(pk, "lag_ms", f->last_sync_ms && ms > f->last_sync_ms ? ms - f->last_sync_ms : 0);
        proto_pack_kv_u64(pk, "rows_sent_total", f->rows_sent);
        proto_pack_kv_u64(pk, "rows_read_total", f->rows_read);
        proto_pack_kv_u64(pk, "batches_total", f->batches);
        proto_pack_kv_u64(pk, "errors_total", f->errors);
        proto_pack_kv_u64(pk, "hosts_seen", f->nhosts);
        pthread_mutex_unlock(&f->mu);
        (void)now;
}

static void fleet__pack_host(msgpack_packer *pk, const struct fleet__hostinfo *h, bool self)
{
        msgpack_pack_map(pk, 5);
        proto_pack_kv_str(pk, "host_id", h->id);
        proto_pack_kv_bool(pk, "self", self);
        proto_pack_kv_u64(pk, "version", (uint64_t)h->version);
        proto_pack_kv_u64(pk, "seen_at", (uint64_t)h->seen_at);
        proto_pack_kv_u64(pk, "rows", h->rows);
}

static void fleet__pack_hosts(void *data, msgpack_packer *pk, uint64_t now)
{
        struct fleet *f = data;
        fleet__pack_head(f, pk, 3);
        proto_pack_cstr(pk, "hosts");
        msgpack_pack_array(pk, (uint32_t)f->nhosts);
        for (size_t i = 0; i < f->nhosts; i++)
                fleet__pack_host(pk, &f->hosts[i], strcmp(f->hosts[i].id, f->host_id) == 0);
        pthread_mutex_unlock(&f->mu);
        (void)now;
}

static void fleet__read_config(struct fleet *f)
{
        const struct config *c = f->cfg;
        f->interval_ms = c->fleet_sync_interval_ms;
        f->ttl_days = c->fleet_host_ttl_days;
        f->delay_ms = c->fleet_debug_sync_delay_ms;
        f->half_life = c->half_life_s;
        f->degrade_threshold = c->degrade_threshold;
        f->max_cells = c->limits.domains;
}

void fleet_reconfigure(struct fleet *f)
{
        if (!f)
                return;
        pthread_mutex_lock(&f->mu);
        fleet__read_config(f);
        pthread_mutex_unlock(&f->mu);
        uv_timer_set_repeat(&f->timer, f->cfg->fleet_sync_interval_ms);
        f->marked = false; /* the view's options may have changed: publish and sum again */
        ssize_t w = write(f->wake[1], "r", 1);
        (void)w;
}

/* A password in the connection string would show in `ps`-like places and
 * in PostgreSQL's errors: only a passfile (passfile=, PGPASSFILE,
 * ~/.pgpass) may hold it.  0, or -1 with err: why the conninfo is refused. */
static int fleet__check_conninfo(const char *conninfo, char *err, size_t errlen)
{
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
        if (!opts) {
                snprintf(err, errlen, "[fleet] conninfo cannot be parsed: %.*s",
                         perr ? (int)strcspn(perr, "\n") : 13, perr ? perr : "out of memory");
                PQfreemem(perr);
                return -1;
        }
        int r = 0;
        for (PQconninfoOption *o = opts; o->keyword; o++)
                if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
                        snprintf(err, errlen, "[fleet] conninfo holds a password: put it in a "
                                 "passfile (passfile=PATH or PGPASSFILE) instead");
                        r = -1;
                }
        PQconninfoFree(opts);
        return r;
}

int fleet_open(struct fleet **out, uv_loop_t *loop, struct rpc_env *env, const struct config *cfg,
               char *err, size_t errlen)
{
        *out = NULL;
        if (!cfg->fleet_conninfo)
                return 0;
        struct fleet *f = calloc(1, sizeof(*f));
        if (!f || !(f->conninfo = strdup(cfg->fleet_conninfo))) {
                free(f);
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        f->loop = loop;
        f->env = env;
        f->cfg = cfg;
        f->logged = -1;
        f->wake[0] = f->wake[1] = -1;
        if (cfg->fleet_host_id)
                snprintf(f->host_id, sizeof(f->host_id), "%s", cfg->fleet_host_id);
        else if (fleet_default_host_id(f->host_id, (unsigned)geteuid()) < 0) {
                snprintf(err, errlen, "[fleet] host_id is not set and /etc/machine-id cannot be "
                         "read to derive it: set host_id");
                free(f->conninfo);
                free(f);
                return -1;
        }
        pthread_mutex_init(&f->mu, NULL);
        fleet__read_config(f);
        if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
                snprintf(err, errlen, "fleet: pipe: %s", strerror(errno));
                pthread_mutex_destroy(&f->mu);
                free(f->conninfo);
                free(f);
                return -1;
        }
        char e[512];
        if (fleetdb_open(&f->db, cfg->db_path, e, sizeof(e)) < 0) {
                log_warn("fleet: %s; the fleet evidence is not kept across restarts", e);
                f->db = NULL;
        }
        uv_timer_init(loop, &f->timer);
        uv_async_init(loop, &f->async, fleet__on_async);
        f->timer.data = f->async.data = f;
        env->fleet = (struct rpc_fleet){ .configured = true, .pack_state = fleet__pack_state,
                                         .pack_hosts = fleet__pack_hosts,
                                         .forget = fleet__forget, .data = f };
        if (fleet__check_conninfo(f->conninfo, e, sizeof(e)) < 0) {
                /* Host-only, said once; no thread. */
                f->state = FLEET_REFUSED;
                snprintf(f->error, sizeof(f->error), "%s", e);
                log_error("fleet: %s; serving this host's evidence only (host-only)", e);
                *out = f;
                return 0;
        }
        f->state = FLEET_CONNECTING;
        /* The last fleet evidence, served from the first request on, before
         * PostgreSQL is reached (or when it cannot be). */
        if (f->db && fleetdb_load(f->db, &f->cache, e, sizeof(e)) < 0)
                log_warn("fleet: %s", e);
        else if (f->cache.nhosts) {
                fleet__post_view(f);
                fleet__on_async(&f->async); /* taken now, not at the loop's first turn */
        }
        uv_timer_start(&f->timer, fleet__on_timer, 0, cfg->fleet_sync_interval_ms);
        uv_unref((uv_handle_t *)&f->timer);
        int r = pthread_create(&f->thread, NULL, fleet__thread, f);
        if (r != 0) {
                snprintf(err, errlen, "fleet: cannot start its thread: %s", strerror(r));
                *out = f;
                fleet_close(f);
                *out = NULL;
                return -1;
        }
        f->started = true;
        log_info("fleet: host_id '%s', sync every %u ms", f->host_id, cfg->fleet_sync_interval_ms);
        *out = f;
        return 0;
}

static void fleet__closed(uv_handle_t *h)
{
        struct fleet *f = h->data;
        if (--f->closing_handles)
                return;
        fleet_rows_free(f->outbox, f->noutbox);
        fleet_rows_free(f->sent, f->nsent);
        if (f->view_ready)
                tracker_free(f->view_ready);
        fleet_cache_free(&f->cache);
        fleet__forgets_free(f->forget_out, f->nforget_out);
        fleet__forgets_free(f->forget_in, f->nforget_in);
        fleetdb_close(f->db);
        free(f->hosts);
        pthread_mutex_destroy(&f->mu);
        close(f->wake[0]);
        close(f->wake[1]);
        free(f->conninfo);
        free(f);
}

void fleet_close(struct fleet *f)
{
        if (!f)
                return;
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_mutex_unlock(&f->mu);
        ssize_t w = write(f->wake[1], "q", 1);
        (void)w;
        if (f->started)
                pthread_join(f->thread, NULL);
        f->started = false;
        tracker_free(f->env->fleet.view);
        f->env->fleet = (struct rpc_fleet){ 0 };
        f->closing_handles = 2;
        uv_close((uv_handle_t *)&f->timer, fleet__closed);
        uv_close((uv_handle_t *)&f->async, fleet__closed);
}

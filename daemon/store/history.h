/* history.h - the history's rows in SQLite: written by the store's writer
 * thread inside each batch's transaction, read for `history` on a worker
 * thread with a read-only connection of its own, so that a long read never
 * holds up the loop (see schema/009_history.sql for the tables).
 */
#ifndef OUTCOMED_HISTORY_H
#define OUTCOMED_HISTORY_H

#include <msgpack.h>
#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "rollup.h"
#include "rpc.h"

/* ---- writing (the writer's connection, inside its transaction) ---------- */

struct history_writer;

/* Prepare the statements on db.  SQLite's result code. */
int history_writer_open(sqlite3 *db, struct history_writer **out);
void history_writer_close(struct history_writer *w); /* accepts NULL */
/* Add the rows to their series: each minute's row, its hour's (with the
 * latency sketch) and a domain's day.  SQLite's result code. */
int history_write(struct history_writer *w, const struct rollup *r);
/* Delete rows that start before `before` (unix seconds), at most about
 * `max` of each table; *deleted gets how many went.  SQLite's result code. */
int history_prune(struct history_writer *w, uint64_t before, uint64_t max, uint64_t *deleted);

/* ---- reading ----------------------------------------------------------- */

/* What the reply depends on beside the query. */
struct history_context {
        uint64_t now;                   /* unix seconds: evidence is faded to at most this */
        uint64_t half_life_s;           /* the configured fading (0: none) */
        const struct config_price *prices; /* for cost */
        size_t nprices;
};

/* Run q on db and pack the whole reply, `[1, msgid, nil, {...}]` or the
 * error (bad_request past ROLLUP_MAX_POINTS, internal when SQLite fails),
 * into sb.  Returns the error code packed (PROTO_OK on success). */
enum proto_error history_read(sqlite3 *db, const struct rollup_query *q,
                              const struct history_context *ctx, uint32_t msgid,
                              msgpack_sbuffer *sb);

/* The daemon's reader: each request runs on libuv's thread pool with a
 * read-only connection of its own to cfg->db_path. */
struct history_reader;
struct history_reader *history_reader_new(uv_loop_t *loop, const struct config *cfg);
/* Requests still running keep their own copies: free it after the loop
 * has run them out. */
void history_reader_free(struct history_reader *h);
/* rpc's hook (rpc_env.history). */
void history_reader_hooks(struct history_reader *h, struct rpc_history *hooks);

#endif

/* store.h - SQLite persistence of the tracker's state, behind a batch
 * interface.
 *
 * The loop thread collects the tracker's changes into a batch (copies of the
 * changed rows) and submits it; a writer thread of the store's own, with its
 * own sqlite3 connection, commits each batch in one transaction and hands it
 * back to the loop through a uv_async_t, where the done callback runs.
 * Batches commit in the order they were submitted.
 *
 * Opening applies the numbered migrations of schema/ (PRAGMA user_version)
 * and refuses a database newer than this binary, or one that is corrupt.
 * Loading happens on the loop thread before anything is served.
 */
#ifndef OUTCOMED_STORE_H
#define OUTCOMED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "tracker.h"

struct store;
struct store_batch;

struct store_batch *store_batch_new(void);
/* An empty batch: the last one the store finished with, its memory kept,
 * or a new one.  Loop thread only. */
struct store_batch *store_batch_reuse(struct store *s);
void store_batch_free(struct store_batch *b); /* accepts NULL */
/* A tracker sink that copies rows into b (tracker_collect(t, &sink)). */
void store_batch_sink(struct store_batch *b, struct tracker_sink *sink);
/* The batch holds the whole state (after tracker_mark_all_changed): its
 * commit first deletes every stored profile and pending trace.  This is how
 * the daemon recovers from a failed write, whose deletions it no longer
 * knows. */
void store_batch_set_full(struct store_batch *b);
/* Journal changes, committed before the snapshot rows of the same batch:
 * a row of one change, or a row (op "batch") of several, their maps back
 * to back.  `op` must be a static string; the rest is copied.
 * 0 or -ENOMEM. */
int store_batch_add_entry(struct store_batch *b, uint64_t at, const char *op,
                          const char *trace_id, const char *model, const void *data, size_t len);
size_t store_batch_entries(const struct store_batch *b);
/* The batch's snapshot rows (collected when it was sealed) are the state
 * as of its last journal row: record that, so start-up replays only what
 * follows.  prune_before (unix seconds, 0: never) also deletes a slice of
 * journal rows older than that which the snapshot already covers. */
void store_batch_set_snapshot(struct store_batch *b, uint64_t prune_before);
/* The history's rows of the changes in this batch, committed in its
 * transaction: b takes r's rows and r is left empty.  0 or -ENOMEM (the
 * batch is then incomplete). */
struct rollup;
int store_batch_set_rollup(struct store_batch *b, struct rollup *r);
/* Write something even when the batch is empty (a probe of the disk). */
void store_batch_set_probe(struct store_batch *b);
/* After the commit: how many journal rows were pruned. */
uint64_t store_batch_pruned(const struct store_batch *b);
/* Rows in the batch (profiles + traces + deletions + journal rows). */
size_t store_batch_rows(const struct store_batch *b);
/* 0, or -ENOMEM if a copy failed: the batch is then incomplete. */
int store_batch_status(const struct store_batch *b);

/* status: 0 committed, or a negative errno (the batch was rolled back).
 * The callback owns nothing: the store frees the batch after it returns. */
typedef void (*store_done_cb)(void *data, int status, const char *errmsg);

/* Open (creating it and its missing parent directory) and migrate. */
int store_open(struct store **out, const char *path, uv_loop_t *loop, char *err, size_t errlen);
/* Load every profile and pending trace into t (pending in start order). */
int store_load(struct store *s, struct tracker *t, char *err, size_t errlen);
/* Replay the journal rows written after the last snapshot, in order, on
 * the calling thread (after store_load); a row's blob holds one or more
 * changes back to back.  cb returns 0 or a negative errno
 * that stops the replay.  Returns the number of rows replayed or a
 * negative errno with err filled. */
typedef int (*store_replay_cb)(void *data, uint64_t id, uint64_t at, const char *op,
                               const void *blob, size_t len, char *err, size_t errlen);
long store_replay(struct store *s, store_replay_cb cb, void *data, char *err, size_t errlen);
/* Hand b over (ownership passes, also on failure); cb runs on the loop
 * thread once it is committed or failed. */
int store_submit(struct store *s, struct store_batch *b, store_done_cb cb, void *data);
/* Commit with synchronous=FULL (survives power loss) or NORMAL (survives a
 * crash of the process); sleep debug_delay_ms before each commit (a test
 * setting: it makes batches grow, to show group commit).  Takes effect at
 * the next commit. */
void store_set_sync(struct store *s, bool full, unsigned debug_delay_ms);
/* Batches submitted and not yet done. */
size_t store_inflight(const struct store *s);
/* Wait (blocking the caller) until every submitted batch is committed, then
 * stop the thread and close the database.  Done callbacks of the last
 * batches run inside this call.  on_closed runs once the async handle is
 * closed (the loop must run once more).  Accepts NULL. */
void store_close(struct store *s, void (*on_closed)(void *data), void *data);

#endif

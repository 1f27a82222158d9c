/* commit.h - group commit: the loop side of durability.
 *
 * Every state change is recorded as a journal entry in the open batch.  Once
 * per loop iteration (a uv_check handle), when no commit is running, the
 * open batch is sealed and handed to the store's writer thread; while that
 * commit runs, the next batch fills, so a commit carries everything that
 * arrived during the previous one.  Replies wait (`commit_hold`) for the
 * batch that holds their change (durability = ack), or go at once and the
 * batch is sealed on a timer (durability = relaxed).
 *
 * Every snapshot_interval_ms the sealed batch also carries the tracker's
 * changed rows, marked as the state as of its last entry.  A failed commit
 * fails that batch and the open one (`failed` hook: their replies become
 * `unavailable`), the state is rebuilt from the database, and writes are
 * refused until a probe commit succeeds again.
 *
 * Loading (start-up and rebuild) is reload.h's; expiry.h's timer records
 * its changes here.
 */
#ifndef OUTCOMED_COMMIT_H
#define OUTCOMED_COMMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "journal.h"
#include "rpc.h"
#include "store.h"

struct commit;

struct commit_hooks {
        /* Replies waiting for batches up to seq may go. */
        void (*committed)(void *data, uint64_t seq);
        /* Batches from seq on are lost: answer their changes `unavailable`. */
        void (*failed)(void *data, uint64_t seq);
        void *data;
};

/* Load the state into a new tracker (env->tracker) and get ready.  Returns
 * 0 or a negative errno with err filled. */
int commit_open(struct commit **out, uv_loop_t *loop, struct store *store, struct rpc_env *env,
                const struct config *cfg, char *err, size_t errlen);
void commit_set_hooks(struct commit *c, const struct commit_hooks *hooks);

/* Record one change in the open batch.  0 or -ENOMEM. */
int commit_record(struct commit *c, const struct journal_entry *e);
/* The reply to the request just handled waits for the open batch: its
 * sequence number. */
uint64_t commit_hold(struct commit *c);
bool commit_writable(const struct commit *c);
/* Durability ack or fsync: replies wait for commits. */
bool commit_acks(const struct commit *c);
/* Apply a reloaded configuration (intervals, durability, TTLs). */
void commit_reconfigure(struct commit *c);

/* Shutdown: seal what is open, with a snapshot, and submit it; the caller
 * then closes the store, which waits for it.  Stops the timers. */
int commit_final(struct commit *c);
/* Close the handles; memory is freed in their close callbacks. */
void commit_close(struct commit *c);

#endif

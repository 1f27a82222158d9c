/* commit.c - group commit and its snapshots, and the way back from a
 * failed write.  See commit.h for the design; the state is loaded by
 * reload.c, overdue traces are resolved by expiry.c.
 *
 * Batches are numbered: `open_seq` is the batch filling now; at most one
 * batch (`inflight_seq`) is being committed by the store's writer thread.
 * Only the loop thread runs this code.
 */
#include "commit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expiry.h"
#include "log.h"
#include "reload.h"

struct commit {
        uv_check_t check;       /* seals the open batch after each loop iteration */
        uv_timer_t flush_timer; /* relaxed: seals every flush_interval_ms */
        uv_timer_t snap_timer;  /* asks for a snapshot every snapshot_interval_ms */
        struct expiry *expiry;  /* resolves overdue traces through commit_record */
        uv_timer_t probe_timer; /* while unwritable: try a write every second */
        int open_handles;

        uv_loop_t *loop;
        struct store *store;
        struct rpc_env *env;
        const struct config *cfg;
        struct commit_hooks hooks;

        struct store_batch *open;
        uint64_t open_seq;
        uint64_t open_entries;
        bool open_needed;       /* a reply waits for it, even if it holds no entry */
        bool inflight;
        uint64_t inflight_seq;
        uint64_t inflight_entries;
        bool inflight_snapshot;
        bool inflight_probe;
        bool snapshot_due;
        uint64_t unsnapped;     /* entries recorded since the last snapshot was sealed */
        bool writable;
        bool closing;
        msgpack_sbuffer scratch; /* one entry's encoding */
};

/* ---- sealing ----------------------------------------------------------- */

static void commit__done(void *data, int status, const char *errmsg);

/* Seal the open batch and hand it to the writer.  `force` seals even while
 * a commit runs (at shutdown: the store keeps the order). */
static int commit__seal(struct commit *c, bool force, bool probe)
{
        if (c->inflight && !force)
                return 0;
        bool snap = c->snapshot_due || force;
        if (!c->open_entries && !c->open_needed && !snap && !probe)
                return 0;
        if (!c->open && !(c->open = store_batch_reuse(c->store)))
                return -ENOMEM; /* try again at the next iteration */
        struct store_batch *next = store_batch_reuse(c->store);
        if (!next)
                return -ENOMEM;
        struct store_batch *b = c->open;
        if (snap) {
                struct tracker_sink sink;
                store_batch_sink(b, &sink);
                if (tracker_collect(c->env->tracker, &sink) < 0) {
                        /* A deletion was lost: write the whole state. */
                        tracker_mark_all_changed(c->env->tracker);
                        store_batch_set_full(b);
                        tracker_collect(c->env->tracker, &sink);
                }
                uint64_t days = c->cfg->history_days;
                uint64_t now = (uint64_t)time(NULL);
                store_batch_set_snapshot(b, days && now > days * 86400 ? now - days * 86400 : 0);
                c->snapshot_due = false;
                c->unsnapped = 0;
        }
        if (probe)
                store_batch_set_probe(b);
        c->inflight = true;
        c->inflight_seq = c->open_seq;
        c->inflight_entries = c->open_entries;
        c->inflight_snapshot = snap;
        c->inflight_probe = probe;
        c->open = next;
        c->open_seq++;
        c->open_entries = 0;
        c->open_needed = false;
        return store_submit(c->store, b, commit__done, c);
}

/* Relaxed: a batch this big is sealed without waiting for the flush
 * timer, so that a busy daemon's batches stay a few MiB (and their memory
 * is reused, see store_batch_reuse) instead of a whole interval's worth. */
#define COMMIT_SEAL_ENTRIES 32768

static void commit__on_check(uv_check_t *h)
{
        struct commit *c = h->data;
        if (c->writable &&
            (commit_acks(c) || c->snapshot_due || c->open_entries >= COMMIT_SEAL_ENTRIES))
                commit__seal(c, false, false);
}

static void commit__on_flush_timer(uv_timer_t *h)
{
        struct commit *c = h->data;
        if (c->writable)
                commit__seal(c, false, false);
}

/* Ask for a snapshot with the next sealed batch (the check handle runs
 * right after this timer, in the same loop iteration), when anything
 * changed since the last one. */
static void commit__on_snap_timer(uv_timer_t *h)
{
        struct commit *c = h->data;
        if (tracker_has_changes(c->env->tracker) || c->unsnapped)
                c->snapshot_due = true;
}

static void commit__on_probe(uv_timer_t *h)
{
        struct commit *c = h->data;
        if (!c->writable && !c->inflight)
                commit__seal(c, false, true);
}

/* Fail the batch that was committing and the open one, and rebuild the
 * state from what the database holds. */
static void commit__fail(struct commit *c, uint64_t seq, const char *errmsg)
{
        if (c->writable)
                log_error("write to %s failed: %s; changes are refused (unavailable) until it "
                          "can be written again",
                          c->cfg->db_path, errmsg && *errmsg ? errmsg : "unknown error");
        c->writable = false;
        c->env->counters.commit_errors_total++;
        c->env->counters.unavailable_total += c->inflight_entries + c->open_entries;
        store_batch_free(c->open);
        c->open = store_batch_reuse(c->store); /* NULL is handled at the next record */
        c->open_entries = 0;
        c->open_needed = false;
        c->open_seq++;
        if (c->hooks.failed)
                c->hooks.failed(c->hooks.data, seq);
        char err[512];
        int r = reload_state(c->store, c->env, c->cfg, err, sizeof(err));
        if (r < 0)
                log_error("cannot reload the state from %s: %s; serving the state in memory",
                          c->cfg->db_path, err);
        else
                log_info("state reloaded from %s (%zu profiles, %zu pending traces)",
                         c->cfg->db_path, tracker_profile_count(c->env->tracker),
                         tracker_pending_count(c->env->tracker));
        uv_timer_start(&c->probe_timer, commit__on_probe, 1000, 1000);
}

static void commit__done(void *data, int status, const char *errmsg)
{
        struct commit *c = data;
        uint64_t seq = c->inflight_seq;
        c->inflight = false;
        if (status < 0) {
                if (c->inflight_probe && !c->writable) {
                        /* Still unwritable: memory already matches the disk,
                         * nothing to fail, reload or log again. */
                } else if (!c->closing) {
                        commit__fail(c, seq, errmsg);
                } else {
                        c->env->counters.commit_errors_total++;
                        log_error("the last write to %s failed: %s", c->cfg->db_path, errmsg);
                }
                return;
        }
        struct rpc_counters *k = &c->env->counters;
        k->commits_total++;
        k->journal_total += c->inflight_entries;
        k->snapshots_total += c->inflight_snapshot;
        k->last_commit_at = (uint64_t)time(NULL);
        if (!c->writable && !c->closing) {
                log_info("%s can be written again; accepting changes", c->cfg->db_path);
                c->writable = true;
                uv_timer_stop(&c->probe_timer);
        }
        if (c->hooks.committed)
                c->hooks.committed(c->hooks.data, seq);
        /* What arrived during this commit goes now, without waiting for the
         * loop to wake up for another reason. */
        if (!c->closing && commit_acks(c) && c->writable)
                commit__seal(c, false, false);
}

/* ---- the interface ----------------------------------------------------- */

bool commit_acks(const struct commit *c)
{
        return c->cfg->durability != DURABILITY_RELAXED;
}

bool commit_writable(const struct commit *c)
{
        return c->writable;
}

int commit_record(struct commit *c, const struct journal_entry *e)
{
        if (!c->open && !(c->open = store_batch_reuse(c->store)))
                return -ENOMEM;
        msgpack_sbuffer_clear(&c->scratch);
        int r = journal_encode(e, &c->scratch);
        if (r == 0)
                r = store_batch_add_entry(c->open, e->at, journal_op_name(e->op), e->trace_id,
                                          e->model, c->scratch.data, c->scratch.size);
        if (r == 0) {
                c->open_entries++;
                c->unsnapped++;
        }
        return r;
}

uint64_t commit_hold(struct commit *c)
{
        c->open_needed = true;
        return c->open_seq;
}

void commit_set_hooks(struct commit *c, const struct commit_hooks *hooks)
{
        c->hooks = hooks ? *hooks : (struct commit_hooks){ 0 };
}

void commit_reconfigure(struct commit *c)
{
        const struct config *cfg = c->cfg;
        store_set_sync(c->store, cfg->durability == DURABILITY_FSYNC, cfg->debug_commit_delay_ms);
        if (commit_acks(c))
                uv_timer_stop(&c->flush_timer);
        else
                uv_timer_start(&c->flush_timer, commit__on_flush_timer, cfg->flush_interval_ms,
                               cfg->flush_interval_ms);
        uv_timer_start(&c->snap_timer, commit__on_snap_timer, cfg->snapshot_interval_ms,
                       cfg->snapshot_interval_ms);
        expiry_start(c->expiry);
        tracker_set_limits(c->env->tracker, cfg->limits.models, cfg->limits.pending);
        tracker_set_max_cells(c->env->tracker, cfg->limits.domains);
        tracker_set_half_life(c->env->tracker, cfg->half_life_s);
        /* A new threshold moves degraded_since of the profiles it affects:
         * a snapshot at once puts that on disk, so that a restart replays
         * only changes made under the new threshold. */
        if (tracker_set_degrade_threshold(c->env->tracker, cfg->degrade_threshold))
                c->snapshot_due = true;
}

int commit_open(struct commit **out, uv_loop_t *loop, struct store *store, struct rpc_env *env,
                const struct config *cfg, char *err, size_t errlen)
{
        struct commit *c = calloc(1, sizeof(*c));
        if (!c || !(c->open = store_batch_new())) {
                free(c);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        c->loop = loop;
        c->store = store;
        c->env = env;
        c->cfg = cfg;
        c->open_seq = 1;
        c->writable = true;
        msgpack_sbuffer_init(&c->scratch);
        int r = reload_state(store, env, cfg, err, errlen);
        if (r == 0 && !(c->expiry = expiry_new(loop, c, env, cfg))) {
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
        }
        if (r < 0) {
                store_batch_free(c->open);
                msgpack_sbuffer_destroy(&c->scratch);
                free(c);
                return r;
        }
        /* What the replay changed is written with the first snapshot. */
        c->snapshot_due = tracker_has_changes(env->tracker);

        uv_check_init(loop, &c->check);
        uv_timer_init(loop, &c->flush_timer);
        uv_timer_init(loop, &c->snap_timer);
        uv_timer_init(loop, &c->probe_timer);
        c->check.data = c->flush_timer.data = c->snap_timer.data = c;
        c->probe_timer.data = c;
        uv_check_start(&c->check, commit__on_check);
        commit_reconfigure(c);
        *out = c;
        return 0;
}

int commit_final(struct commit *c)
{
        c->closing = true;
        c->hooks = (struct commit_hooks){ 0 };
        uv_check_stop(&c->check);
        uv_timer_stop(&c->flush_timer);
        uv_timer_stop(&c->snap_timer);
        expiry_stop(c->expiry);
        uv_timer_stop(&c->probe_timer);
        if (!c->writable)
                return 0; /* nothing was accepted since the reload: the disk has it all */
        return commit__seal(c, true, false);
}

static void commit__on_close(uv_handle_t *h)
{
        struct commit *c = h->data;
        if (--c->open_handles == 0) {
                store_batch_free(c->open);
                msgpack_sbuffer_destroy(&c->scratch);
                free(c);
        }
}

void commit_close(struct commit *c)
{
        if (!c)
                return;
        expiry_close(c->expiry);
        c->open_handles = 4;
        uv_close((uv_handle_t *)&c->check, commit__on_close);
        uv_close((uv_handle_t *)&c->flush_timer, commit__on_close);
        uv_close((uv_handle_t *)&c->snap_timer, commit__on_close);
        uv_close((uv_handle_t *)&c->probe_timer, commit__on_close);
}

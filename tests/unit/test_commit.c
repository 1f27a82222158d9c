/* test_commit.c - daemon/store/commit.c on a real store (a temporary SQLite
 * file) and a real uv loop: group commit (the changes recorded while a
 * commit runs go in the next batch, as one journal row), the `committed`
 * hook in batch order, a reply with no change of its own still waiting for
 * its batch, relaxed durability sealing on the flush timer, snapshots every
 * snapshot_interval_ms (and none before), expiry journaled, limits and
 * durability reloaded, the state loaded again from snapshot and journal,
 * and a failed write (the database locked by another connection past
 * busy_timeout): `failed` hook, unwritable, state rebuilt from disk, then
 * writable again once a probe commits.  Every test ends with
 * uv_loop_close() == 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "commit.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "rpc.h"
#include "store.h"
#include "tracker.h"

static char tmpdir[64];

static void setup_dir(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_commit.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        log_set_level(LOG_LVL_ERROR); /* the failed-write test logs on purpose */
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void teardown_dir(void)
{
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a daemon's loop side, without the server ---------------------------- */

#define MAX_EVENTS 64

struct harness {
        uv_loop_t loop;
        struct config cfg;
        struct rpc_env env;
        struct store *store;
        struct commit *commit;
        /* the hooks, in the order they ran: +seq committed, -seq failed */
        long events[MAX_EVENTS];
        int nevents;
        uint64_t event_at[MAX_EVENTS]; /* uv_now */
};

static void on_committed(void *data, uint64_t seq)
{
        struct harness *h = data;
        ck_assert_int_lt(h->nevents, MAX_EVENTS);
        h->event_at[h->nevents] = uv_now(&h->loop);
        h->events[h->nevents++] = (long)seq;
}

static void on_failed(void *data, uint64_t seq)
{
        struct harness *h = data;
        ck_assert_int_lt(h->nevents, MAX_EVENTS);
        h->event_at[h->nevents] = uv_now(&h->loop);
        h->events[h->nevents++] = -(long)seq;
}

static const char *db_file(void)
{
        static char buf[128];
        snprintf(buf, sizeof(buf), "%s/outcomed.db", tmpdir);
        return buf;
}

/* Defaults, the database in tmpdir, nothing due by itself: no snapshot,
 * no expiry unless a test asks (the traces' times are long past). */
static void harness_config(struct harness *h)
{
        memset(h, 0, sizeof(*h));
        config_init(&h->cfg);
        ck_assert_int_eq(config_set_str(&h->cfg.db_path, db_file()), 0);
        h->cfg.snapshot_interval_ms = 3600000;
        h->cfg.expiry_interval_s = 86400;
        for (int i = 0; i < TASK__COUNT; i++)
                h->cfg.ttl_s[i] = 0;
}

static void harness_open(struct harness *h)
{
        char err[512] = "";
        ck_assert_int_eq(uv_loop_init(&h->loop), 0);
        h->env.cfg = &h->cfg;
        int r = store_open(&h->store, h->cfg.db_path, &h->loop, err, sizeof(err));
        ck_assert_msg(r == 0, "store_open: %s", err);
        r = commit_open(&h->commit, &h->loop, h->store, &h->env, &h->cfg, err, sizeof(err));
        ck_assert_msg(r == 0, "commit_open: %s", err);
        ck_assert_ptr_nonnull(h->env.tracker);
        struct commit_hooks hooks = { on_committed, on_failed, h };
        commit_set_hooks(h->commit, &hooks);
}

/* Shut down as main.c does; the loop must have nothing left. */
static void harness_close(struct harness *h)
{
        ck_assert_int_eq(commit_final(h->commit), 0);
        store_close(h->store, NULL, NULL);
        commit_close(h->commit);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&h->loop), 0);
        tracker_free(h->env.tracker);
        h->env.tracker = NULL;
}

static void harness_free(struct harness *h)
{
        config_free(&h->cfg);
}

/* One iteration that may wait, then the check phase again at once: what
 * a test records outside the loop is sealed as if a callback had recorded
 * it (the daemon records from its read callbacks, and the check handle
 * runs right after them). */
static void run_once(uv_loop_t *loop)
{
        uv_run(loop, UV_RUN_ONCE);
        uv_run(loop, UV_RUN_NOWAIT);
}

/* Run the loop until cond holds (Check's timeout catches a hang). */
#define RUN_UNTIL(h, cond)                          \
        do {                                        \
                uv_run(&(h)->loop, UV_RUN_NOWAIT);  \
                while (!(cond))                     \
                        run_once(&(h)->loop);       \
        } while (0)

/* Start a trace in the tracker and journal it, as rpc does; the id is
 * copied to out. */
static void do_start(struct harness *h, const char *id, const char *model, enum tracker_task task,
                     uint64_t now)
{
        struct tracker_start s = { .model = model, .task = task, .reason = "", .trace_id = id,
                                   .uid = 1000, .now = now };
        const char *out;
        ck_assert_int_eq(tracker_start(h->env.tracker, &s, &out), 0);
        struct journal_entry e = { .op = JOURNAL_START, .at = now, .uid = 1000, .trace_id = out,
                                   .model = model, .task = task, .reason = "" };
        ck_assert_int_eq(commit_record(h->commit, &e), 0);
}

/* The journal rows on disk, "op:bytes" joined by spaces, read with a
 * connection of the test's own. */
static void journal_rows(char *buf, size_t len, uint64_t *snapshot_upto)
{
        sqlite3 *db;
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_open_v2(db_file(), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT op, trace_id FROM journal ORDER BY id",
                                            -1, &st, NULL), SQLITE_OK);
        buf[0] = '\0';
        while (sqlite3_step(st) == SQLITE_ROW) {
                size_t n = strlen(buf);
                const char *tid = (const char *)sqlite3_column_text(st, 1);
                snprintf(buf + n, len - n, "%s%s:%s", n ? " " : "", sqlite3_column_text(st, 0),
                         tid ? tid : "-");
        }
        sqlite3_finalize(st);
        if (snapshot_upto) {
                ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = "
                                                    "'snapshot_upto'", -1, &st, NULL), SQLITE_OK);
                ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
                *snapshot_upto = (uint64_t)sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
        }
        sqlite3_close(db);
}

/* ---- group commit ------------------------------------------------------- */

START_TEST(test_group_commit)
{
        struct harness h;
        harness_config(&h);
        h.cfg.debug_commit_delay_ms = 150; /* each commit takes this long: batches grow */
        harness_open(&h);
        ck_assert(commit_acks(h.commit));
        ck_assert(commit_writable(h.commit));

        /* batch 1: one change; it is sealed at the end of the iteration */
        do_start(&h, "a", "m", TASK_CODE, 100);
        ck_assert_uint_eq(commit_hold(h.commit), 1);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(h.nevents, 0); /* committing: 150 ms */
        /* batch 2 fills while batch 1 commits: three changes, two replies */
        do_start(&h, "b", "m", TASK_CODE, 101);
        ck_assert_uint_eq(commit_hold(h.commit), 2);
        do_start(&h, "c", "m", TASK_CODE, 102);
        do_start(&h, "d", "m", TASK_CODE, 103);
        ck_assert_uint_eq(commit_hold(h.commit), 2);
        uv_run(&h.loop, UV_RUN_NOWAIT); /* a commit runs: batch 2 is not sealed */
        RUN_UNTIL(&h, h.nevents >= 1);
        ck_assert_int_eq(h.events[0], 1);
        /* batch 2 was handed over as batch 1 finished: it is committing
         * now, and what is held from here on waits for batch 3 */
        ck_assert_uint_eq(commit_hold(h.commit), 3);
        RUN_UNTIL(&h, h.nevents >= 3);
        ck_assert_int_eq(h.events[1], 2);
        ck_assert_int_eq(h.events[2], 3); /* an empty batch, for the reply that waited */
        /* batch 2 took its own commit time after batch 1 */
        ck_assert_uint_ge(h.event_at[1] - h.event_at[0], 140);
        ck_assert_uint_eq(h.env.counters.commits_total, 3);
        ck_assert_uint_eq(h.env.counters.journal_total, 4);
        ck_assert_uint_eq(h.env.counters.snapshots_total, 0);

        char rows[512];
        uint64_t upto;
        journal_rows(rows, sizeof(rows), &upto);
        ck_assert_str_eq(rows, "start:a batch:-"); /* one row of one, one row of three */
        ck_assert_uint_eq(upto, 0);                /* no snapshot yet */

        /* Nothing recorded and nothing held: no batch. */
        uv_run(&h.loop, UV_RUN_NOWAIT);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(h.nevents, 3);
        harness_close(&h);

        /* commit_final wrote a snapshot: the state comes back from it */
        journal_rows(rows, sizeof(rows), &upto);
        ck_assert_uint_eq(upto, 2);
        harness_open(&h);
        ck_assert_uint_eq(tracker_pending_count(h.env.tracker), 4);
        ck_assert_ptr_nonnull(tracker_trace_get(h.env.tracker, "d"));
        ck_assert_uint_eq(h.env.counters.replayed, 0);
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* Without a snapshot, a restart replays the journal rows: every change of
 * a row of several. */
START_TEST(test_reload_replays_the_journal)
{
        struct harness h;
        harness_config(&h);
        h.cfg.debug_commit_delay_ms = 100;
        harness_open(&h);
        do_start(&h, "a", "m1", TASK_CODE, 100);
        commit_hold(h.commit);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        do_start(&h, "b", "m1", TASK_CODE, 101);
        struct tracker_complete cp = { .trace_id = "b", .latency_ms = 40, .uid = 1000, .now = 102 };
        ck_assert_int_eq(tracker_complete(h.env.tracker, &cp), 0);
        ck_assert_int_eq(commit_record(h.commit, &(struct journal_entry){
                                 .op = JOURNAL_COMPLETE, .at = 102, .uid = 1000,
                                 .trace_id = "b", .latency_ms = 40 }), 0);
        commit_hold(h.commit);
        RUN_UNTIL(&h, h.nevents >= 2);
        ck_assert_int_eq(h.events[1], 2);

        /* The process dies: no final snapshot.  The store still closes so
         * that the test leaks nothing; what it holds was committed. */
        store_close(h.store, NULL, NULL);
        commit_close(h.commit);
        uv_run(&h.loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&h.loop), 0);
        tracker_free(h.env.tracker);
        h.env.tracker = NULL;
        h.nevents = 0;

        harness_open(&h);
        ck_assert_uint_eq(h.env.counters.replayed, 3); /* start a, start b, complete b */
        ck_assert_uint_eq(tracker_pending_count(h.env.tracker), 2);
        const struct tracker_trace *b = tracker_trace_get(h.env.tracker, "b");
        ck_assert_ptr_nonnull(b);
        ck_assert(b->completed);
        ck_assert_uint_eq(b->latency_ms, 40);
        /* what the replay changed goes with the first snapshot */
        RUN_UNTIL(&h, h.env.counters.snapshots_total >= 1);
        ck_assert(!tracker_has_changes(h.env.tracker));
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* ---- durability = relaxed ------------------------------------------------ */

START_TEST(test_relaxed_flush_timer)
{
        struct harness h;
        harness_config(&h);
        h.cfg.durability = DURABILITY_RELAXED;
        h.cfg.flush_interval_ms = 500;
        harness_open(&h);
        ck_assert(!commit_acks(h.commit));
        uint64_t t0 = uv_now(&h.loop);
        do_start(&h, "a", "m", TASK_GENERATE, 100);
        do_start(&h, "b", "m", TASK_GENERATE, 100);
        /* no reply waits: the check handle seals nothing */
        uv_run(&h.loop, UV_RUN_NOWAIT);
        uv_run(&h.loop, UV_RUN_NOWAIT);
        ck_assert_uint_eq(store_inflight(h.store), 0);
        RUN_UNTIL(&h, h.nevents >= 1);
        ck_assert_int_eq(h.events[0], 1);
        ck_assert_uint_ge(h.event_at[0] - t0, 490); /* the flush timer sealed it */
        ck_assert_uint_eq(h.env.counters.journal_total, 2);
        char rows[256];
        journal_rows(rows, sizeof(rows), NULL);
        ck_assert_str_eq(rows, "batch:-");

        /* reload to ack: the next change is sealed at once */
        h.cfg.durability = DURABILITY_ACK;
        commit_reconfigure(h.commit);
        ck_assert(commit_acks(h.commit));
        t0 = uv_now(&h.loop);
        do_start(&h, "c", "m", TASK_GENERATE, 100);
        ck_assert_uint_eq(commit_hold(h.commit), 2);
        RUN_UNTIL(&h, h.nevents >= 2);
        ck_assert_int_eq(h.events[1], 2);
        ck_assert_uint_lt(h.event_at[1] - t0, 400); /* not the flush timer's 500 ms */
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------ */

START_TEST(test_snapshot_interval)
{
        struct harness h;
        harness_config(&h);
        harness_open(&h);
        uint64_t now = (uint64_t)time(NULL);
        do_start(&h, "old", "m", TASK_GENERATE, 100); /* older than history_days */
        commit_hold(h.commit);
        RUN_UNTIL(&h, h.nevents >= 1);
        do_start(&h, "new", "m", TASK_GENERATE, now);
        commit_hold(h.commit);
        RUN_UNTIL(&h, h.nevents >= 2);
        /* no snapshot within the hour: the rows stay changes */
        ck_assert_uint_eq(h.env.counters.snapshots_total, 0);
        ck_assert(tracker_has_changes(h.env.tracker));
        char rows[256];
        uint64_t upto;
        journal_rows(rows, sizeof(rows), &upto);
        ck_assert_str_eq(rows, "start:old start:new");
        ck_assert_uint_eq(upto, 0);

        /* reload to 50 ms: the next snapshot writes the changed rows */
        h.cfg.snapshot_interval_ms = 50;
        commit_reconfigure(h.commit);
        uint64_t t0 = uv_now(&h.loop);
        RUN_UNTIL(&h, h.env.counters.snapshots_total >= 1);
        ck_assert_uint_ge(uv_now(&h.loop) - t0, 45);
        ck_assert(!tracker_has_changes(h.env.tracker));
        journal_rows(rows, sizeof(rows), &upto);
        ck_assert_uint_eq(upto, 2); /* the snapshot is the state as of row 2 */
        /* the snapshot covers them: rows older than history_days go */
        ck_assert_str_eq(rows, "start:new");

        /* Nothing changed since: no more snapshots, no more commits (the
         * snapshot timer wakes the loop every 50 ms). */
        uint64_t commits = h.env.counters.commits_total;
        t0 = uv_now(&h.loop);
        while (uv_now(&h.loop) - t0 < 200)
                uv_run(&h.loop, UV_RUN_ONCE);
        ck_assert_uint_eq(h.env.counters.snapshots_total, 1);
        ck_assert_uint_eq(h.env.counters.commits_total, commits);
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* ---- expiry --------------------------------------------------------------- */

START_TEST(test_expiry)
{
        struct harness h;
        harness_config(&h);
        harness_open(&h); /* no TTLs yet: nothing expires */
        uint64_t now = (uint64_t)time(NULL);
        do_start(&h, "old", "m", TASK_CLASSIFY, now - 61);
        do_start(&h, "young", "m", TASK_CLASSIFY, now - 5);
        do_start(&h, "forever", "m", TASK_GENERATE, now - 1000000);
        commit_hold(h.commit);
        RUN_UNTIL(&h, h.nevents >= 1);
        ck_assert_uint_eq(h.env.counters.expired_total, 0);
        /* a reload sets TTLs (generate: still never); the expiry timer
         * runs at once after it */
        h.cfg.ttl_s[TASK_CLASSIFY] = 60;
        h.cfg.expiry_interval_s = 1;
        commit_reconfigure(h.commit);
        RUN_UNTIL(&h, h.env.counters.expired_total >= 1);
        ck_assert_uint_eq(h.env.counters.expired_total, 1);
        ck_assert_ptr_null(tracker_trace_get(h.env.tracker, "old"));
        ck_assert_ptr_nonnull(tracker_trace_get(h.env.tracker, "young"));
        ck_assert_ptr_nonnull(tracker_trace_get(h.env.tracker, "forever"));
        ck_assert_ptr_nonnull(tracker_profile_get(h.env.tracker, "m")); /* resolved into it */
        /* the expiry is journaled and committed like any change */
        RUN_UNTIL(&h, h.env.counters.journal_total >= 4);
        char rows[256];
        journal_rows(rows, sizeof(rows), NULL);
        ck_assert_str_eq(rows, "batch:- expire:old");
        harness_close(&h);

        /* and it survives a restart (the TTLs kept: "old" is gone already) */
        h.nevents = 0;
        harness_open(&h);
        ck_assert_ptr_null(tracker_trace_get(h.env.tracker, "old"));
        ck_assert_uint_eq(tracker_pending_count(h.env.tracker), 2);
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* ---- reloading limits ----------------------------------------------------- */

START_TEST(test_reconfigure_limits)
{
        struct harness h;
        harness_config(&h);
        harness_open(&h);
        struct tracker *t = h.env.tracker;
        const char *id;
        struct tracker_start s = { .model = "m1", .task = TASK_CODE, .reason = "", .now = 1 };
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);

        h.cfg.limits.pending = 1;
        h.cfg.limits.models = 1;
        h.cfg.limits.domains = 1;
        h.cfg.half_life_s = 3600;
        commit_reconfigure(h.commit);
        ck_assert_uint_eq(tracker_half_life(t), 3600);
        /* one pending already: the next start is refused */
        ck_assert_int_eq(tracker_start(t, &s, &id), -ENOSPC);

        h.cfg.limits.pending = 10;
        commit_reconfigure(h.commit);
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        /* one model at most: once m2 has a profile, a trace of a third
         * model is refused at start, until the limit is raised */
        s.model = "m2";
        s.domain = "d1";
        s.trace_id = "x";
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        struct tracker_result res;
        ck_assert_int_eq(tracker_outcome(t, "x", KIND_REJECTED, 1.0, 0, 2, &res), 0);
        ck_assert_uint_eq(tracker_profile_count(t), 1);
        s.trace_id = "y";
        s.model = "m3";
        ck_assert_int_eq(tracker_start(t, &s, &id), -ENOSPC);
        h.cfg.limits.models = 2;
        commit_reconfigure(h.commit);
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        /* one cell at most: m2's second domain counts at task level only */
        s.model = "m2";
        s.domain = "d2";
        s.trace_id = "z";
        ck_assert_int_eq(tracker_start(t, &s, &id), 0);
        ck_assert_int_eq(tracker_outcome(t, "z", KIND_REJECTED, 1.0, 0, 3, &res), 0);
        ck_assert_uint_eq(tracker_cell_count(t), 1);
        ck_assert_uint_eq(tracker_cells_refused(t), 1);
        harness_close(&h);
        harness_free(&h);
}
END_TEST

/* ---- a failed write -------------------------------------------------------- */

START_TEST(test_failed_commit)
{
        struct harness h;
        harness_config(&h);
        harness_open(&h);
        do_start(&h, "kept", "m", TASK_CODE, 100);
        commit_hold(h.commit);
        RUN_UNTIL(&h, h.nevents >= 1);
        ck_assert_int_eq(h.events[0], 1);

        /* Another connection holds the write lock past busy_timeout. */
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(db_file(), &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

        do_start(&h, "lost", "m", TASK_CODE, 101);
        ck_assert_uint_eq(commit_hold(h.commit), 2);
        uv_run(&h.loop, UV_RUN_NOWAIT); /* sealed: batch 2 commits (and waits) */
        do_start(&h, "lost-too", "m", TASK_CODE, 102); /* batch 3, open */
        ck_assert_uint_eq(commit_hold(h.commit), 3);
        RUN_UNTIL(&h, h.nevents >= 2);
        ck_assert_int_eq(h.events[1], -2); /* batches from 2 on are lost */
        ck_assert(!commit_writable(h.commit));
        ck_assert_uint_eq(h.env.counters.commit_errors_total, 1);
        ck_assert_uint_eq(h.env.counters.unavailable_total, 2);
        /* the state was rebuilt from the disk: only what was committed */
        ck_assert_ptr_nonnull(tracker_trace_get(h.env.tracker, "kept"));
        ck_assert_ptr_null(tracker_trace_get(h.env.tracker, "lost"));
        ck_assert_ptr_null(tracker_trace_get(h.env.tracker, "lost-too"));

        /* the lock goes: a probe (every second) commits, writes resume */
        ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        RUN_UNTIL(&h, commit_writable(h.commit));
        do_start(&h, "after", "m", TASK_CODE, 103);
        uint64_t seq = commit_hold(h.commit);
        ck_assert_uint_gt(seq, 3);
        RUN_UNTIL(&h, h.nevents >= 1 && h.events[h.nevents - 1] == (long)seq);
        for (int i = 2; i < h.nevents; i++) /* the probe's batch, then ours */
                ck_assert_int_gt(h.events[i], h.events[i - 1]);
        char rows[256];
        journal_rows(rows, sizeof(rows), NULL);
        ck_assert_str_eq(rows, "start:kept start:after");
        harness_close(&h);
        harness_free(&h);
}
END_TEST

static Suite *commit_suite(void)
{
        Suite *su = suite_create("commit");
        TCase *tc = tcase_create("commit");
        tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_group_commit);
        tcase_add_test(tc, test_reload_replays_the_journal);
        tcase_add_test(tc, test_relaxed_flush_timer);
        tcase_add_test(tc, test_snapshot_interval);
        tcase_add_test(tc, test_expiry);
        tcase_add_test(tc, test_reconfigure_limits);
        tcase_add_test(tc, test_failed_commit);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(commit_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* fleet.h - [fleet]: hosts share what they learn through PostgreSQL.
 *
 * Every sync_interval_ms the loop hands the fleet thread a snapshot of
 * this host's additive evidence (fleetsum_snapshot, copied); the thread
 * publishes the rows that changed as an idempotent upsert under this
 * host's next version, reads every host's rows above the version it last
 * saw of that host, keeps them (in memory and in SQLite), sums them into a
 * fleet view (fleetsum_build) and hands the view back through a uv_async.
 * LISTEN/NOTIFY only wakes the thread early.  The loop never waits for
 * PostgreSQL.  See fleet.c for the faults and what each does.
 */
#ifndef OUTCOMED_FLEET_H
#define OUTCOMED_FLEET_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "rpc.h"

struct fleet;

/* Start the thread and the timer when cfg has [fleet] conninfo (else *out
 * is NULL and nothing starts), and fill env->fleet.  PostgreSQL being
 * unreachable or refusing is no error here: the thread logs it and the
 * daemon serves host evidence.  0, or -1 with err filled. */
int fleet_open(struct fleet **out, uv_loop_t *loop, struct rpc_env *env, const struct config *cfg,
               char *err, size_t errlen);
/* Apply a reloaded configuration: sync_interval_ms, host_ttl_days, the
 * debug delay, the half-life, degrade threshold and domain limit of the
 * view.  Accepts NULL. */
void fleet_reconfigure(struct fleet *f);
/* Stop the thread (a batch under way is rolled back by PostgreSQL), close
 * the handles; memory is freed in their close callbacks, so run the loop
 * afterwards.  Accepts NULL. */
void fleet_close(struct fleet *f);

/* The default host_id: 32 hex digits of a keyed hash, with a key of
 * outcomed's own, of /etc/machine-id and the uid, so that a machine's
 * system and user daemons differ and the machine id is not shown.
 * 0, or -1 when /etc/machine-id cannot be read. */
int fleet_default_host_id(char out[33], unsigned uid);

#endif

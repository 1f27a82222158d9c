/* expiry.h - pending traces past their task's time to live, resolved as
 * inconclusive on a timer.
 *
 * Every expiry_interval_s the tracker's overdue traces (ttl_<task>) are
 * resolved, at most 10,000 a tick, oldest first, each journaled through
 * the group commit like a client's change.  Nothing expires while the
 * store cannot be written (the change could not be kept).
 */
#ifndef OUTCOMED_EXPIRY_H
#define OUTCOMED_EXPIRY_H

#include <uv.h>

#include "commit.h"
#include "config.h"
#include "rpc.h"

struct expiry;

/* A stopped timer on loop; NULL when out of memory. */
struct expiry *expiry_new(uv_loop_t *loop, struct commit *commit, struct rpc_env *env,
                          const struct config *cfg);
/* (Re)start the timer with cfg's interval: a first run at once. */
void expiry_start(struct expiry *e);
void expiry_stop(struct expiry *e);
/* Close the timer; the memory goes in its close callback. */
void expiry_close(struct expiry *e);

#endif

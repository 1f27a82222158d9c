/* reload.h - the state on disk into a fresh tracker: at start-up, and to
 * rebuild after a failed commit.
 *
 * The store's last snapshot is loaded, then the journal rows written after
 * it are replayed through journal_apply, with the configured half-life and
 * degrade threshold, so that the tracker ends as the live daemon left it.
 * A change that does not apply is logged and skipped; only running out of
 * memory (or a store error) fails.
 */
#ifndef OUTCOMED_RELOAD_H
#define OUTCOMED_RELOAD_H

#include <stddef.h>

#include "config.h"
#include "rpc.h"
#include "store.h"

/* Build a new tracker from the store and put it in env->tracker (the old
 * one is freed), with cfg's limits, and watched by env->metrics from then
 * on.  0, or a negative errno with err filled and env->tracker unchanged. */
int reload_state(struct store *store, struct rpc_env *env, const struct config *cfg, char *err,
                 size_t errlen);

#endif

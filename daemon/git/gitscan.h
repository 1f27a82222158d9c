/* gitscan.h - ground truth from git: a scanner thread that judges pending
 * code traces by what happened in their repositories.
 *
 * Every [git] scan_interval_s, and whenever the `scan` method asks, the
 * loop hands the scanner thread a snapshot of the pending completed code
 * traces of watched repositories; the thread diffs each trace's base
 * commit against the working tree and index (libgit2), compares the
 * suggestion's lines and the symbols of the changed files (tree-sitter,
 * symbols.c), and hands back judgements, which the loop applies through
 * the tracker and journals like any outcome (source: git).  See gitscan.c
 * for the hand-off and the rules.
 *
 * The loop also gets, through the same module, a cheap lookup of a
 * repository's HEAD for `start` (its own libgit2 handles, never the
 * thread's).
 */
#ifndef OUTCOMED_GITSCAN_H
#define OUTCOMED_GITSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "rpc.h"

struct gitscan;

/* Initialise libgit2, start the thread and the timer.  env->tracker,
 * env->journal and cfg are read on the loop thread only.  Returns 0 or a
 * negative errno with err filled. */
int gitscan_open(struct gitscan **out, uv_loop_t *loop, struct rpc_env *env,
                 const struct config *cfg, char *err, size_t errlen);
/* The hooks rpc uses (rpc_env.git): head and scan. */
void gitscan_hooks(struct gitscan *g, struct rpc_git *hooks);
/* Apply a reloaded configuration (the interval; repositories no longer
 * watched are let go). */
void gitscan_reconfigure(struct gitscan *g);
/* Stop: a scan that runs is abandoned (its traces are judged at the next
 * start), waiting `scan` requests are told the daemon stops, the thread is
 * joined, and the handles are closed; memory is freed in their close
 * callbacks, so run the loop afterwards.  Accepts NULL. */
void gitscan_close(struct gitscan *g);

#endif

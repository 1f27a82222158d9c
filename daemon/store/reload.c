/* reload.c - the snapshot, then the journal rows after it, into a fresh
 * tracker (reload.h).  Runs on the loop thread; the store reads on its
 * writer thread and hands the rows back. */
#include "reload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "journal.h"
#include "log.h"
#include "metrics.h"

/* One journal row: the changes it holds, applied in order. */
static int reload__replay_row(void *data, uint64_t id, uint64_t at, const char *op,
                              const void *blob, size_t len, char *err, size_t errlen)
{
        struct rpc_env *env = data;
        size_t off = 0;
        for (unsigned k = 0; off < len || k == 0; k++) {
                char why[256] = "";
                int r = journal_apply(env->tracker, blob, len, &off, why, sizeof(why));
                if (r == -ENOMEM) {
                        snprintf(err, errlen, "out of memory replaying journal row %" PRIu64, id);
                        return r;
                }
                if (r < 0) /* a change that does not apply is logged, not fatal */
                        log_warn("journal row %" PRIu64 " (%s at %" PRIu64 "), change %u, not "
                                 "replayed: %s",
                                 id, op, at, k, why[0] ? why : strerror(-r));
                env->counters.replayed++;
                if (r == -EBADMSG)
                        break; /* not msgpack: the rest of the row cannot be found */
        }
        return 0;
}

/* An empty tracker whose generated ids cannot meet those of earlier lives. */
static int reload__tracker(struct tracker **out, char *err, size_t errlen)
{
        uint64_t rnd;
        char prefix[40];
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
                int e = errno;
                snprintf(err, errlen, "getrandom: %s", strerror(e));
                return -e;
        }
        /* 64 random bits per daemon life: ids stay unique across restarts
         * and rebuilds without a persisted counter. */
        snprintf(prefix, sizeof(prefix), "t-%016" PRIx64, rnd);
        struct tracker_options opts = { .id_prefix = prefix };
        *out = tracker_new(&opts); /* no limits while loading */
        if (!*out) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return 0;
}

int reload_state(struct store *store, struct rpc_env *env, const struct config *cfg, char *err,
                 size_t errlen)
{
        struct tracker *t = NULL;
        int r = reload__tracker(&t, err, errlen);
        if (r < 0)
                return r;
        /* Replay fades evidence as the live daemon did, and keeps
         * degraded_since under the configured threshold (a snapshot
         * written under another one is corrected as it loads). */
        tracker_set_half_life(t, cfg->half_life_s);
        tracker_set_degrade_threshold(t, cfg->degrade_threshold);
        struct tracker *old = env->tracker;
        env->tracker = t;
        env->counters.replayed = 0;
        r = store_load(store, t, err, errlen);
        long n = r < 0 ? r : store_replay(store, reload__replay_row, env, err, errlen);
        if (n < 0) {
                env->tracker = old;
                tracker_free(t);
                return (int)n;
        }
        tracker_set_limits(t, cfg->limits.models, cfg->limits.pending);
        tracker_set_max_cells(t, cfg->limits.domains);
        metrics_watch(env->metrics, t); /* after the replay: it is not counted again */
        tracker_free(old);
        return 0;
}

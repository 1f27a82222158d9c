/* expiry.c - the timer that resolves overdue pending traces (expiry.h). */
#include "expiry.h"

#include <stdlib.h>
#include <time.h>

#include "log.h"

struct expiry {
        uv_timer_t timer;
        struct commit *commit;
        struct rpc_env *env;
        const struct config *cfg;
};

static void expiry__on_expired(void *data, const struct tracker_result *res)
{
        struct expiry *x = data;
        struct journal_entry e = {
                .op = JOURNAL_EXPIRE,
                .at = (uint64_t)time(NULL),
                .trace_id = res->trace_id,
        };
        if (commit_record(x->commit, &e) < 0)
                log_error("out of memory journaling the expiry of %s", res->trace_id);
        x->env->counters.expired_total++;
}

static void expiry__on_timer(uv_timer_t *h)
{
        struct expiry *x = h->data;
        if (!commit_writable(x->commit))
                return;
        size_t n = tracker_expire(x->env->tracker, (uint64_t)time(NULL), x->cfg->ttl_s, 10000,
                                  expiry__on_expired, x);
        if (n)
                log_info("%zu pending trace%s expired (resolved as inconclusive)", n,
                         n == 1 ? "" : "s");
}

struct expiry *expiry_new(uv_loop_t *loop, struct commit *commit, struct rpc_env *env,
                          const struct config *cfg)
{
        struct expiry *x = calloc(1, sizeof(*x));
        if (!x)
                return NULL;
        x->commit = commit;
        x->env = env;
        x->cfg = cfg;
        (void)uv_timer_init(loop, &x->timer);
        x->timer.data = x;
        return x;
}

void expiry_start(struct expiry *x)
{
        (void)uv_timer_start(&x->timer, expiry__on_timer, 0,
                             (uint64_t)x->cfg->expiry_interval_s * 1000);
}

void expiry_stop(struct expiry *x)
{
        (void)uv_timer_stop(&x->timer);
}

static void expiry__on_close(uv_handle_t *h)
{
        free(h->data);
}

void expiry_close(struct expiry *x)
{
        uv_close((uv_handle_t *)&x->timer, expiry__on_close);
}

/* rpc.h - the method table: one request in (a decoded msgpack-RPC message
 * and the caller's uid), its reply packed out.  Argument checking goes
 * through protocol/'s declarative decoder, state changes through the
 * tracker.  No I/O: the server owns sockets, main owns the store. */
#ifndef OUTCOMED_RPC_H
#define OUTCOMED_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"
#include "tracker.h"

/* Counters the server and main keep, reported by `stats`. */
struct rpc_counters {
        uint64_t connections;         /* open now */
        uint64_t connections_total;
        uint64_t requests_total;
        uint64_t errors_total;        /* error replies and failed notifications */
        uint64_t notify_errors_total;
        uint64_t refused_total;       /* connections refused (limits, allow_uids) */
        uint64_t reloads_total;       /* configuration reloads applied (SIGHUP) */
        uint64_t reload_errors_total; /* reloads refused: the running one stayed */
        uint64_t config_loaded_at;    /* unix seconds of the last (re)load */
        uint64_t commits_total;       /* batches committed */
        uint64_t commit_errors_total;
        uint64_t journal_total;       /* journal entries committed */
        uint64_t snapshots_total;
        uint64_t last_commit_at;      /* unix seconds, 0: never */
        uint64_t expired_total;       /* pending traces expired */
        uint64_t unavailable_total;   /* changes refused or lost: store unwritable */
        uint64_t replayed;            /* journal entries replayed at the last load */
};

struct journal_entry;

/* How handlers reach the journal (daemon/commit.c); all may be NULL in a
 * test, which then journals nothing. */
struct rpc_journal {
        int (*record)(void *data, const struct journal_entry *e);
        bool (*writable)(void *data);
        void *data;
};

struct rpc_env {
        struct tracker *tracker;
        const struct config *cfg;
        struct rpc_counters counters;
        struct rpc_journal journal;
        uint64_t started_at;          /* unix seconds */
};

/* Handle one well-formed message.  The reply, `[1, msgid, error, result]`,
 * is packed into pk (for a notification the caller discards it).  Returns
 * PROTO_OK or the error code that was answered; *changed tells whether it
 * was a state-changing request that succeeded (its reply must wait for the
 * commit under durability = ack). */
enum proto_error rpc_handle(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                            msgpack_packer *pk, bool *changed);

#endif

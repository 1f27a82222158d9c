/* rpc.h - the method table: one request in (a decoded msgpack-RPC message
 * and the caller's uid), its reply packed out.  Argument checking goes
 * through protocol/'s declarative decoder, state changes through the
 * tracker.  No I/O: the server owns sockets, main owns the store. */
#ifndef OUTCOMED_RPC_H
#define OUTCOMED_RPC_H

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
        uint64_t refused_total;       /* connections refused (limits) */
        uint64_t flushes_total;
        uint64_t flush_errors_total;
        uint64_t last_flush_at;       /* unix seconds, 0: never */
};

struct rpc_env {
        struct tracker *tracker;
        const struct config *cfg;
        struct rpc_counters counters;
        uint64_t started_at;          /* unix seconds */
};

/* Handle one well-formed message.  The reply, `[1, msgid, error, result]`,
 * is packed into pk (for a notification the caller discards it).  Returns
 * PROTO_OK or the error code that was answered. */
enum proto_error rpc_handle(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                            msgpack_packer *pk);

#endif

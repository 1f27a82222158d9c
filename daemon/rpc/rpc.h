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
        uint64_t dropped_total;       /* connections dropped: replies left unread */
        uint64_t partial_bytes;       /* now: bytes of messages begun, not finished */
        uint64_t partial_drops_total; /* connections dropped: over partial_bytes */
        uint64_t message_timeouts_total; /* connections closed: message_timeout_ms */
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
        uint64_t scans_total;         /* git scans done */
        uint64_t git_judged_total;    /* code traces judged by git */
        /* Refusals by the limit that caused them (`metrics`); refused_total
         * counts the connections' together. */
        uint64_t refused_allow_total;       /* allow_uids / allow_group */
        uint64_t refused_connections_total; /* limits.connections */
        uint64_t refused_fds_total;         /* out of file descriptors */
        uint64_t refused_per_uid_total;     /* limits.connections_per_uid */
        uint64_t too_large_total;           /* messages over limits.message_bytes */
        uint64_t overloaded_models_total;   /* requests refused: limits.models */
        uint64_t overloaded_pending_total;  /* requests refused: limits.pending */
};

struct metrics;

struct journal_entry;

/* How handlers reach the journal (daemon/store/commit.c); all may be NULL in a
 * test, which then journals nothing. */
struct rpc_journal {
        int (*record)(void *data, const struct journal_entry *e);
        bool (*writable)(void *data);
        void *data;
};

/* What the git scanner (daemon/git/gitscan.c) did in one scan. */
struct rpc_scan_judged {
        const char *trace_id;
        enum tracker_kind kind;
        const char *evidence;
};

struct rpc_scan_report {
        uint32_t repos;               /* watched repositories looked at */
        const struct rpc_scan_judged *judged;
        size_t njudged;
        uint64_t duration_ms;
};

typedef void (*rpc_scan_cb)(void *arg, const struct rpc_scan_report *rep);

/* How handlers reach the git scanner; NULL hooks (tests) mean no git:
 * `start` records no base, `scan` answers an empty report at once. */
struct rpc_git {
        /* HEAD's oid, 40 hex digits and a NUL, of a watched repository: a
         * cheap reference lookup.  -ENOENT when it has no commit yet, or a
         * negative errno when it cannot be read (the scanner logs why). */
        int (*head)(void *data, const char *repo, char *oid, size_t len);
        /* Ask for a scan that starts after this call.  done (may be NULL)
         * runs on the loop thread once that scan is over, with rep NULL
         * when the daemon stops first; never from within this call.
         * 0 or -ENOMEM. */
        int (*scan)(void *data, rpc_scan_cb done, void *arg);
        void *data;
};

/* A reply given after its handler returned (`scan` answers once its scan
 * is done).  The server keeps the request's place in the connection's
 * reply order and handles none of the connection's later requests until it
 * is answered, so that they see what it did. */
struct rpc_later {
        /* Give the reply, `[1, msgid, error, result]` packed in reply[0..len);
         * `changed`: it reports state changes just journaled, so under
         * durability = ack it waits for their commit.  Frees l.  When the
         * connection is gone meanwhile, the reply is dropped. */
        void (*answer)(struct rpc_later *l, const char *reply, size_t len, bool changed);
        uint32_t msgid;
};

/* The server's offer to a handler: hold(ctx, msgid) makes a place for the
 * reply of the request being handled (NULL: out of memory).  A handler
 * that takes one packs nothing. */
struct rpc_defer {
        struct rpc_later *(*hold)(void *ctx, uint32_t msgid);
        void *ctx;
};

struct rpc_env {
        struct tracker *tracker;
        const struct config *cfg;
        struct rpc_counters counters;
        struct rpc_journal journal;
        struct rpc_git git;
        struct metrics *metrics;      /* NULL (tests): no per-model series */
        uint64_t started_at;          /* unix seconds */
};

/* Handle one well-formed message.  The reply, `[1, msgid, error, result]`,
 * is packed into pk (for a notification the caller discards it).  Returns
 * PROTO_OK or the error code that was answered; *changed tells whether it
 * was a state-changing request that succeeded (its reply must wait for the
 * commit under durability = ack). */
enum proto_error rpc_handle(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                            msgpack_packer *pk, bool *changed);
/* What handling a request did, for the order of the replies. */
struct rpc_done {
        bool changed;   /* as rpc_handle's *changed */
        bool deferred;  /* a handler held the request's place: nothing was packed */
        bool stateless; /* the method's answer holds whatever becomes of the
                         * changes before it (ping): a failed commit does
                         * not turn it into `unavailable` */
};
/* The same, where a reply may come later: defer (NULL: never, as for a
 * notification) lets a handler hold the request's place. */
enum proto_error rpc_handle_later(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                                  msgpack_packer *pk, const struct rpc_defer *defer,
                                  struct rpc_done *done);

#endif

/* server.c - the listener and the connections.
 *
 * Listening: on a socket bound here (a stale file removed first, never a
 * live daemon's), or on one the service manager passed (server_start_fd),
 * which is used as is and never removed.  Admission, right after accept and
 * before anything is read: the peer's uid, gid and pid (SO_PEERCRED,
 * SO_PEERGROUPS) against allow_uids / allow_group, then the connection
 * limits overall and per uid; a refused client gets one reply with msgid 0
 * (forbidden or overloaded) and is closed.
 *
 * Reading: libuv reads straight into the connection's read buffer, which
 * is reused (compacted, not reallocated, while its bytes fit), and
 * proto_skim frames the new bytes.  After each read every complete message
 * is decoded in place (msgpack_unpack: strings point into the buffer) into
 * the connection's zone, cleared after each message, and dispatched in
 * order; a message over the size limit, or bytes that are not msgpack, end
 * the connection after the replies already due.
 *
 * Writing: the replies of one read batch are packed back to back into the
 * connection's out buffer and handed over in one go: first uv_try_write,
 * then a uv_write of whatever is left.  While more than `soft` bytes of
 * replies wait unread, the connection neither reads nor dispatches
 * (backpressure); past the hard limit (reply_buffer_bytes) it is dropped.
 *
 * Durability = ack: the reply to a state change must not leave before the
 * change is committed.  It moves from `out` to the connection's `held`
 * buffer, as a segment tagged with the batch that carries the change
 * (commit_hold); any reply that follows it on the same connection (reads
 * and errors too) is held behind it, so the order holds.  When batch N is
 * committed, every connection on the waiting list releases its segments up
 * to N; when it fails, the held changes become `unavailable` errors.  The
 * queue and its rules are replyq.c's; this file decides when to push and
 * release.
 *
 * Replies given later (`scan`, which answers when its scan is done): the
 * handler takes a `struct rpc_later` from conn__later, which puts an empty
 * placeholder segment in `held`, behind the replies due before it.  The
 * connection then neither reads nor dispatches until it is answered, so
 * that the requests after it see what it did (and anything held behind
 * it keeps its place, whatever the durability).  The answer fills the
 * placeholder in place; when it reports changes, under durability = ack it
 * waits for the batch that holds them, like the reply to any change.  A
 * connection that closes first only detaches its placeholders (they are
 * freed when answered).
 *
 * Unfinished messages: the bytes of a message begun and not yet ended
 * (skim.bytes after a read) are what a client can make the daemon hold
 * without sending anything it could answer.  Two limits bound them:
 *   - partial_bytes, over all connections: past it the connection holding
 *     the most is dropped (`overloaded`, msgid 0; the first begun among
 *     equals).  Dropping rather than making new messages wait: waiting
 *     would let connections that never finish hold the budget and stall
 *     every honest large message behind them until they time out, while
 *     the connection holding the most is the stalled one (a client that
 *     sends at full speed ends its message within milliseconds, so it is
 *     rarely the largest holder), and dropping frees the memory at once.
 *     Redis's client eviction picks the same victim.
 *   - message_timeout_ms, per message: a message must end that long after
 *     its first byte was read, else `too_large` (msgid 0) and the
 *     connection closes.  The connections with a message begun are on a
 *     list in the order their messages began (s->partial_head), so one
 *     timer, armed for the oldest, serves them all.  A connection the
 *     daemon itself stopped reading (backpressure, a reply given later)
 *     cannot finish its message: its clock starts again instead.
 *
 * A connection is freed only in its close callback; outstanding writes
 * are cancelled by uv_close and their callbacks run first.
 */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commit.h"
#include "log.h"
#include "proto.h"
#include "replyq.h"

#define SERVER_READ_RESERVE (64 * 1024)
#define SERVER_ZONE_CHUNK 2048 /* a router's request decodes into well under this */

struct conn {
        uv_pipe_t pipe; /* first: the handle's memory is the conn's */
        struct server *srv;
        struct conn *prev, *next;
        char *rbuf;             /* bytes read: rbuf[rpos..rlen) not yet dispatched */
        size_t rpos, rlen, rcap;
        msgpack_zone zone;      /* the message being handled */
        struct proto_skim skim; /* frames the bytes as they arrive */
        uint64_t ready;         /* complete messages in rbuf, not yet dispatched */
        enum proto_skim_status bad; /* after them: too large, or not msgpack */
        msgpack_sbuffer out;    /* replies not yet handed to libuv */
        msgpack_packer pk;      /* packs into out */
        size_t queued;          /* bytes in uv_write requests not yet done */
        struct replyq held;     /* replies waiting for a commit, in order (replyq.h) */
        struct conn *wprev, *wnext; /* the server's waiting list (held.n > 0) */
        struct server_later *laters; /* replies given later, not yet answered */
        uint64_t id;
        uint32_t uid;
        int32_t pid;
        bool reading;
        bool eof;               /* the peer sent all it will send */
        bool closing;
        bool close_after_flush; /* answer what is due, then close */
        size_t partial;         /* bytes of the message begun, not yet ended */
        uint64_t partial_since; /* uv_now when it began (or its clock restarted) */
        struct conn *pprev, *pnext; /* the server's partial list (partial > 0) */
};

/* A reply given later; pub first, so that a struct rpc_later * is one. */
struct server_later {
        struct rpc_later pub;
        struct conn *c;            /* NULL once the connection is closed */
        struct server_later *next; /* the connection's list */
};

struct conn_write {
        uv_write_t req;
        struct conn *c;
        char *base; /* what to free */
        size_t len;
};

struct server {
        uv_pipe_t listener; /* first: freeing the listener frees the server */
        uv_loop_t *loop;
        struct rpc_env *env;
        const struct config *cfg;
        struct conn *conns;
        struct conn *waiting;    /* connections with held replies */
        uint64_t committed;      /* the last batch committed */
        struct commit *commit;
        msgpack_sbuffer scratch; /* replies to notifications, discarded */
        msgpack_packer scratch_pk;
        char *path;              /* the socket file we created; NULL when passed */
        uint64_t next_id;
        bool listening;
        uint64_t fd_budget;      /* connections the descriptor limit allows */
        struct conn *partial_head, *partial_tail; /* by partial_since, oldest first */
        uv_timer_t *partial_timer; /* message_timeout_ms of the oldest */
};

/* Past this many unread reply bytes a connection is paused: half the hard
 * limit, at most 4 MiB, so that a client is paused well before it could be
 * dropped. */
static size_t server__soft_limit(const struct server *s)
{
        uint64_t half = s->cfg->limits.reply_buffer_bytes / 2;
        return half < (4u << 20) ? (size_t)half : (4u << 20);
}

/* Connections this process can hold with the descriptors it may open,
 * keeping a reserve for the database, the scanner and the listener. */
static uint64_t server__fd_budget(void)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return UINT64_MAX;
        return rl.rlim_cur > 128 ? rl.rlim_cur - 64 : rl.rlim_cur / 2;
}

/* ---- closing ----------------------------------------------------------- */

static void conn__on_close(uv_handle_t *h)
{
        struct conn *c = (struct conn *)h;
        free(c->rbuf);
        msgpack_zone_destroy(&c->zone);
        msgpack_sbuffer_destroy(&c->out);
        replyq_destroy(&c->held);
        free(c);
}

static void conn__unwait(struct conn *c)
{
        struct server *s = c->srv;
        if (c->wprev)
                c->wprev->wnext = c->wnext;
        else
                s->waiting = c->wnext;
        if (c->wnext)
                c->wnext->wprev = c->wprev;
        c->wprev = c->wnext = NULL;
}

/* ---- unfinished messages ----------------------------------------------- */

static void server__partial_arm(struct server *s);

static void conn__partial_unlink(struct conn *c)
{
        struct server *s = c->srv;
        if (c->pprev)
                c->pprev->pnext = c->pnext;
        else
                s->partial_head = c->pnext;
        if (c->pnext)
                c->pnext->pprev = c->pprev;
        else
                s->partial_tail = c->pprev;
        c->pprev = c->pnext = NULL;
}

static void conn__partial_append(struct conn *c)
{
        struct server *s = c->srv;
        c->partial_since = uv_now(s->loop);
        c->pprev = s->partial_tail;
        c->pnext = NULL;
        if (s->partial_tail)
                s->partial_tail->pnext = c;
        else
                s->partial_head = c;
        s->partial_tail = c;
        if (s->partial_head == c)
                server__partial_arm(s);
}

/* The connection now holds `bytes` of an unfinished message; `fresh`: a
 * new message (one ended since the last call), its clock starts now. */
static void conn__partial_set(struct conn *c, size_t bytes, bool fresh)
{
        struct rpc_counters *k = &c->srv->env->counters;
        bool was = c->partial > 0;
        k->partial_bytes = k->partial_bytes - c->partial + bytes;
        c->partial = bytes;
        if (was && (!bytes || fresh))
                conn__partial_unlink(c);
        if (bytes && (!was || fresh))
                conn__partial_append(c);
}

/* Give up a connection's unfinished message: its bytes are freed now, one
 * error with msgid 0 is answered (after the replies due before it), and
 * the connection closes. */
static void conn__reply_error(struct conn *c, uint32_t msgid, enum proto_error e, const char *msg);
static void conn__read_stop(struct conn *c);
static void conn__flush(struct conn *c);

static void conn__abandon(struct conn *c, enum proto_error e, const char *msg)
{
        conn__partial_set(c, 0, false);
        free(c->rbuf); /* the complete messages not yet dispatched go too */
        c->rbuf = NULL;
        c->rpos = c->rlen = c->rcap = 0;
        c->ready = 0;
        conn__reply_error(c, 0, e, msg);
        c->close_after_flush = true;
        conn__read_stop(c);
        conn__flush(c);
}

/* Over partial_bytes (never less than one message): drop the connections
 * holding the most until the rest fit (see the top of this file). */
static void server__partial_enforce(struct server *s)
{
        const struct config_limits *lim = &s->cfg->limits;
        uint64_t budget = lim->partial_bytes > lim->message_bytes ? lim->partial_bytes
                                                                  : lim->message_bytes;
        while (s->env->counters.partial_bytes > budget) {
                struct conn *victim = s->partial_head;
                for (struct conn *c = s->partial_head; c; c = c->pnext)
                        if (c->partial > victim->partial)
                                victim = c; /* strictly more: the oldest among equals */
                log_warn("connection %llu (uid %u, pid %d) dropped: it held %zu bytes of an "
                         "unfinished message when all of them passed partial_bytes (%llu)",
                         (unsigned long long)victim->id, victim->uid, victim->pid,
                         victim->partial, (unsigned long long)budget);
                s->env->counters.partial_drops_total++;
                char msg[160];
                snprintf(msg, sizeof(msg), "the daemon holds too many unfinished messages "
                         "(partial_bytes %llu), this one the largest; closing the connection",
                         (unsigned long long)budget);
                conn__abandon(victim, PROTO_OVERLOADED, msg);
        }
}

/* The oldest unfinished messages past message_timeout_ms: their
 * connections close (or, when the daemon is not reading them, their clock
 * starts again).  Then the timer is armed for the next. */
static void server__partial_expire(uv_timer_t *t)
{
        struct server *s = t->data;
        uint64_t now = uv_now(s->loop), timeout = s->cfg->limits.message_timeout_ms;
        struct conn *c;
        while ((c = s->partial_head) && c->partial_since + timeout <= now) {
                if (!c->reading) {
                        conn__partial_unlink(c);
                        conn__partial_append(c); /* with the clock at now */
                        continue;
                }
                log_info("connection %llu (uid %u, pid %d) closed: a message begun %llu ms ago "
                         "is still unfinished (%zu bytes)", (unsigned long long)c->id, c->uid,
                         c->pid, (unsigned long long)(now - c->partial_since), c->partial);
                s->env->counters.message_timeouts_total++;
                char msg[160];
                snprintf(msg, sizeof(msg), "message not finished within message_timeout_ms "
                         "(%llu ms) of its first byte; closing the connection",
                         (unsigned long long)timeout);
                conn__abandon(c, PROTO_TOO_LARGE, msg);
        }
        server__partial_arm(s);
}

static void server__partial_arm(struct server *s)
{
        if (!s->partial_timer || uv_is_closing((uv_handle_t *)s->partial_timer))
                return;
        if (!s->partial_head) {
                uv_timer_stop(s->partial_timer);
                return;
        }
        uint64_t due = s->partial_head->partial_since + s->cfg->limits.message_timeout_ms,
                 now = uv_now(s->loop);
        uv_timer_start(s->partial_timer, server__partial_expire, due > now ? due - now : 0, 0);
}

static void conn__close(struct conn *c)
{
        if (c->closing)
                return;
        c->closing = true;
        struct server *s = c->srv;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->held.n) { /* leave the waiting list */
                conn__unwait(c);
                replyq_clear(&c->held);
        }
        conn__partial_set(c, 0, false);
        for (struct server_later *l = c->laters; l; l = l->next)
                l->c = NULL; /* answered into the void */
        c->laters = NULL;
        s->env->counters.connections--;
        log_debug("connection %llu closed (uid %u, pid %d)", (unsigned long long)c->id, c->uid,
                  c->pid);
        uv_close((uv_handle_t *)&c->pipe, conn__on_close);
}

/* ---- writing ----------------------------------------------------------- */

static void conn__process(struct conn *c);

static void conn__on_write(uv_write_t *req, int status)
{
        struct conn_write *w = (struct conn_write *)req;
        struct conn *c = w->c;
        c->queued -= w->len;
        free(w->base);
        free(w);
        if (status < 0) {
                if (status != UV_ECANCELED)
                        log_debug("connection %llu: write failed: %s", (unsigned long long)c->id,
                                  uv_strerror(status));
                conn__close(c);
                return;
        }
        if (c->closing)
                return;
        if (c->close_after_flush && c->queued == 0 && c->out.size == 0 && c->held.n == 0) {
                conn__close(c);
                return;
        }
        if (!c->reading && !c->close_after_flush && c->queued <= server__soft_limit(c->srv) / 2)
                conn__process(c); /* dispatch what waited, then read again */
}

/* Hand the out buffer to the kernel, or to libuv when the kernel is full. */
static void conn__flush(struct conn *c)
{
        if (c->closing || c->out.size == 0)
                goto check_close;
        size_t off = 0;
        if (c->queued == 0) {
                uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.size);
                int n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
                if (n < 0 && n != UV_EAGAIN) {
                        log_debug("connection %llu: write failed: %s", (unsigned long long)c->id,
                                  uv_strerror(n));
                        conn__close(c);
                        return;
                }
                off = n > 0 ? (size_t)n : 0;
        }
        if (off == c->out.size) {
                msgpack_sbuffer_clear(&c->out);
                goto check_close;
        }
        size_t len = c->out.size - off;
        struct conn_write *w = malloc(sizeof(*w));
        if (!w) {
                conn__close(c);
                return;
        }
        w->c = c;
        w->len = len;
        w->base = msgpack_sbuffer_release(&c->out);
        uv_buf_t b = uv_buf_init(w->base + off, (unsigned)len);
        int r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, conn__on_write);
        if (r < 0) {
                free(w->base);
                free(w);
                conn__close(c);
                return;
        }
        /* Unread replies past the hard limit: the client is not keeping
         * up.  (So is one reply larger than the limit the kernel cannot
         * take at once: raise reply_buffer_bytes for huge query answers.) */
        c->queued += len;
        if (c->queued > c->srv->cfg->limits.reply_buffer_bytes) {
                log_warn("connection %llu (uid %u, pid %d) dropped: %zu bytes of replies unread",
                         (unsigned long long)c->id, c->uid, c->pid, c->queued);
                c->srv->env->counters.dropped_total++;
                conn__close(c);
        }
        return;
check_close:
        if (c->close_after_flush && !c->closing && c->queued == 0 && c->held.n == 0)
                conn__close(c);
}

/* ---- replies held for a commit ----------------------------------------- */

/* Join the server's waiting list when the first reply is held. */
static void conn__wait(struct conn *c)
{
        struct server *s = c->srv;
        if (c->held.n != 1)
                return;
        c->wprev = NULL;
        c->wnext = s->waiting;
        if (s->waiting)
                s->waiting->wprev = c;
        s->waiting = c;
}

/* Move the reply packed at out[mark..] behind the held ones. */
static void conn__hold(struct conn *c, size_t mark, const struct replyq_seg *seg)
{
        if (replyq_push(&c->held, c->out.data + mark, c->out.size - mark, seg) < 0) {
                conn__close(c); /* cannot keep the order: drop the client */
                return;
        }
        c->out.size = mark;
        conn__wait(c);
}

/* Release the held replies of the batches committed up to `upto`, or
 * fail those from `failed_from` on (replyq_release). */
static void conn__release(struct conn *c, uint64_t upto, uint64_t failed_from)
{
        if (!replyq_release(&c->held, upto, failed_from, &c->pk,
                            &c->srv->env->counters.errors_total))
                return;
        if (c->held.n == 0)
                conn__unwait(c);
        conn__process(c); /* flushes, and resumes a connection paused on them */
}

static void server__committed(void *data, uint64_t seq)
{
        struct server *s = data;
        s->committed = seq;
        for (struct conn *c = s->waiting, *next; c; c = next) {
                next = c->wnext;
                conn__release(c, seq, 0);
        }
}

static void server__failed(void *data, uint64_t seq)
{
        struct server *s = data;
        for (struct conn *c = s->waiting, *next; c; c = next) {
                next = c->wnext;
                conn__release(c, 0, seq);
        }
}

void server_attach_commit(struct server *s, struct commit *commit)
{
        s->commit = commit;
        struct commit_hooks hooks = {
                .committed = server__committed,
                .failed = server__failed,
                .data = s,
        };
        commit_set_hooks(commit, &hooks);
}

/* After a reply was packed at out[mark..]: hold it when it must wait, for
 * its commit or behind held ones. */
static void conn__replied(struct conn *c, size_t mark, uint32_t msgid, bool changed,
                          bool stateless)
{
        struct server *s = c->srv;
        bool wait = changed && s->commit && commit_acks(s->commit);
        if (!wait && c->held.n == 0)
                return;
        conn__hold(c, mark, &(struct replyq_seg){ .seq = wait ? commit_hold(s->commit) : 0,
                                                  .msgid = msgid, .changed = wait,
                                                  .stateless = stateless });
}

/* ---- replies given later ------------------------------------------------ */

static void server__later_answer(struct rpc_later *pub, const char *reply, size_t len,
                                 bool changed)
{
        struct server_later *l = (struct server_later *)pub;
        struct conn *c = l->c;
        if (!c) {
                free(l); /* the connection is gone */
                return;
        }
        for (struct server_later **p = &c->laters; *p; p = &(*p)->next) {
                if (*p == l) {
                        *p = l->next;
                        break;
                }
        }
        struct server *s = c->srv;
        uint64_t seq = changed && s->commit && commit_acks(s->commit)
                               ? commit_hold(s->commit) /* the batch with its changes */
                               : 0;
        int r = replyq_fill(&c->held, l, reply, len, seq);
        free(l);
        if (r == -ENOMEM)
                conn__close(c); /* cannot keep the order: drop the client */
        if (r < 0)
                return; /* -ENOENT cannot happen: every placeholder has a segment */
        conn__release(c, s->committed, 0);
}

/* rpc_defer's hold: a placeholder for the reply to the request being
 * handled, behind everything due before it. */
static struct rpc_later *conn__later(void *ctx, uint32_t msgid)
{
        struct conn *c = ctx;
        struct server_later *l = calloc(1, sizeof(*l));
        if (!l || replyq_push_later(&c->held, msgid, l) < 0) {
                free(l);
                return NULL;
        }
        l->pub.answer = server__later_answer;
        l->pub.msgid = msgid;
        l->c = c;
        l->next = c->laters;
        c->laters = l;
        conn__wait(c);
        return &l->pub;
}

/* ---- reading and dispatch ---------------------------------------------- */

static void conn__reply_error(struct conn *c, uint32_t msgid, enum proto_error e, const char *msg)
{
        size_t mark = c->out.size;
        proto_pack_error(&c->pk, msgid, e, msg);
        c->srv->env->counters.errors_total++;
        conn__replied(c, mark, msgid, false, false);
}

static void conn__message(struct conn *c, const msgpack_object *o)
{
        struct server *s = c->srv;
        struct rpc_counters *k = &s->env->counters;
        struct proto_msg m;
        char err[256];

        k->requests_total++;
        if (o->type != MSGPACK_OBJECT_ARRAY) {
                conn__reply_error(c, 0, PROTO_BAD_REQUEST,
                                  "a message must be a msgpack-RPC array; closing the connection");
                c->close_after_flush = true;
                return;
        }
        if (proto_parse_msg(o, &m, err, sizeof(err)) < 0) {
                conn__reply_error(c, m.msgid, PROTO_BAD_REQUEST, err);
                return;
        }
        bool changed;
        if (m.type == PROTO_NOTIFY) {
                enum proto_error e = rpc_handle(s->env, &m, c->uid, &s->scratch_pk, &changed);
                msgpack_sbuffer_clear(&s->scratch);
                if (e != PROTO_OK) {
                        k->notify_errors_total++;
                        k->errors_total++;
                }
                /* No reply, but what follows on this connection must not
                 * overtake its commit: an empty held segment marks it. */
                if (changed)
                        conn__replied(c, c->out.size, 0, true, false);
                return;
        }
        size_t mark = c->out.size;
        struct rpc_defer defer = { conn__later, c };
        struct rpc_done done;
        if (rpc_handle_later(s->env, &m, c->uid, &c->pk, &defer, &done) != PROTO_OK)
                k->errors_total++;
        if (!done.deferred)
                conn__replied(c, mark, m.msgid, done.changed, done.stateless);
}

/* Room for SERVER_READ_RESERVE more bytes at rbuf[rlen..]: move the bytes
 * not yet dispatched to the front, grow only when they still do not fit. */
static void conn__on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
        struct conn *c = (struct conn *)h;
        if (c->rcap - c->rlen < SERVER_READ_RESERVE && c->rpos > 0) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
        }
        if (c->rcap - c->rlen < SERVER_READ_RESERVE) {
                size_t cap = c->rlen + SERVER_READ_RESERVE;
                char *p = realloc(c->rbuf, cap);
                if (!p) {
                        *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
                        return;
                }
                c->rbuf = p;
                c->rcap = cap;
        }
        size_t room = c->rcap - c->rlen;
        *buf = uv_buf_init(c->rbuf + c->rlen, room > UINT32_MAX ? UINT32_MAX : (unsigned)room);
}

static void conn__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void conn__read_start(struct conn *c)
{
        if (!c->reading && !c->closing && !c->close_after_flush && !c->eof) {
                if (uv_read_start((uv_stream_t *)&c->pipe, conn__on_alloc, conn__on_read) == 0)
                        c->reading = true;
        }
}

static void conn__read_stop(struct conn *c)
{
        if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->pipe);
                c->reading = false;
        }
}

/* Dispatch the complete messages in the unpacker, in order, unless the
 * client is not reading its replies; then answer a framing error if one
 * came after them, and flush the replies. */
static void conn__process(struct conn *c)
{
        struct server *s = c->srv;
        size_t soft = server__soft_limit(s);
        bool paused = false;

        while (c->ready > 0 && !c->close_after_flush && !c->closing) {
                if (c->laters) {
                        paused = true; /* its answer resumes it */
                        break;
                }
                if (c->held.n >= s->cfg->limits.requests_in_flight) {
                        paused = true; /* a commit releases some and resumes it */
                        break;
                }
                if (c->queued + c->out.size + c->held.bytes.size > soft) {
                        conn__flush(c);
                        if (c->closing)
                                break;
                        if (c->queued + c->out.size + c->held.bytes.size > soft) {
                                paused = true; /* a write or a commit resumes it */
                                break;
                        }
                }
                c->ready--;
                msgpack_object o;
                size_t off = c->rpos;
                msgpack_unpack_return ur =
                        msgpack_unpack(c->rbuf, c->rlen, &off, &c->zone, &o);
                if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
                        /* Framed, yet msgpack-c refuses it (nesting deeper
                         * than it allows, out of memory). */
                        msgpack_zone_clear(&c->zone);
                        conn__reply_error(c, 0, PROTO_BAD_REQUEST,
                                          "a message msgpack-c cannot decode (nested too deeply?); "
                                          "closing the connection");
                        c->close_after_flush = true;
                        break;
                }
                c->rpos = off;
                conn__message(c, &o);
                msgpack_zone_clear(&c->zone);
        }
        if (c->rpos == c->rlen)
                c->rpos = c->rlen = 0; /* all dispatched: the buffer starts over */

        if (c->ready == 0 && c->bad != PROTO_SKIM_MORE && !c->close_after_flush) {
                char msg[128];
                if (c->bad == PROTO_SKIM_TOO_LARGE) {
                        snprintf(msg, sizeof(msg),
                                 "message over the size limit of %u bytes; closing the connection",
                                 s->cfg->limits.message_bytes);
                        s->env->counters.too_large_total++;
                        conn__reply_error(c, 0, PROTO_TOO_LARGE, msg);
                } else {
                        conn__reply_error(c, 0, PROTO_BAD_REQUEST,
                                          "bytes that are not msgpack; closing the connection");
                }
                c->close_after_flush = true;
        }

        /* Give back the memory of one large message once it is handled. */
        if (c->rlen == 0 && c->rcap > 4 * SERVER_READ_RESERVE) {
                free(c->rbuf); /* on_alloc takes a small one again */
                c->rbuf = NULL;
                c->rcap = 0;
        }
        if (c->laters)
                paused = true; /* nothing more is read before it is answered */
        if (c->eof && !paused)
                c->close_after_flush = true;
        if (paused || c->close_after_flush || c->eof)
                conn__read_stop(c);
        else
                conn__read_start(c);
        conn__flush(c);
}

static void conn__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
        struct conn *c = (struct conn *)st;
        if (nread < 0) {
                if (nread != UV_EOF)
                        log_debug("connection %llu: read failed: %s", (unsigned long long)c->id,
                                  uv_strerror((int)nread));
                /* The peer is gone or half-closed: what it sent is still
                 * answered, then the connection closes. */
                conn__read_stop(c);
                c->eof = true;
                conn__process(c);
                return;
        }
        if (nread == 0)
                return;
        /* Frame the new bytes; after a framing error the rest is ignored. */
        const uint8_t *p = (const uint8_t *)c->rbuf + c->rlen;
        size_t n = (size_t)nread, off = 0;
        bool ended = false;
        while (off < n && c->bad == PROTO_SKIM_MORE) {
                size_t used;
                enum proto_skim_status fs = proto_skim_feed(&c->skim, p + off, n - off,
                                                            c->srv->cfg->limits.message_bytes,
                                                            &used);
                off += used;
                if (fs == PROTO_SKIM_DONE) {
                        c->ready++;
                        ended = true;
                } else if (fs != PROTO_SKIM_MORE) {
                        c->bad = fs;
                }
        }
        c->rlen += off;
        /* What is left of the last message begun counts against the limits
         * on unfinished messages. */
        conn__partial_set(c, c->bad == PROTO_SKIM_MORE ? (size_t)c->skim.bytes : 0, ended);
        server__partial_enforce(c->srv);
        if (!c->closing)
                conn__process(c);
}

/* ---- accepting --------------------------------------------------------- */

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13 */
#endif

/* Was gid among the peer's supplementary groups when it connected? */
static bool server__peer_in_group(int fd, uint32_t gid)
{
        gid_t small[64], *groups = small;
        socklen_t len = sizeof(small);
        bool found = false;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
                if (errno != ERANGE)
                        return false;
                groups = malloc(len); /* len now tells what is needed */
                if (!groups || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                        goto out;
        }
        for (size_t i = 0; i < len / sizeof(gid_t); i++) {
                if (groups[i] == (gid_t)gid) {
                        found = true;
                        break;
                }
        }
out:
        if (groups != small)
                free(groups);
        return found;
}

/* May this peer connect?  Everyone may when neither allow_uids nor
 * allow_group is set; else root, the daemon's own uid, a listed uid, or a
 * member of allow_group.  A peer whose credentials are unknown may not. */
static bool server__peer_allowed(const struct server *s, int fd, bool known, uint32_t uid,
                                 uint32_t gid)
{
        const struct config *cfg = s->cfg;
        if (cfg->nallow_uids == 0 && !cfg->allow_group)
                return true;
        if (!known)
                return false;
        if (uid == 0 || uid == (uint32_t)geteuid())
                return true;
        for (size_t i = 0; i < cfg->nallow_uids; i++)
                if (cfg->allow_uids[i] == uid)
                        return true;
        if (!cfg->allow_group)
                return false;
        return gid == cfg->allow_gid || server__peer_in_group(fd, cfg->allow_gid);
}

/* Open connections of uid, the new one included. */
static uint64_t server__uid_connections(const struct server *s, uint32_t uid)
{
        uint64_t n = 0;
        for (const struct conn *c = s->conns; c; c = c->next)
                if (c->uid == uid)
                        n++;
        return n;
}

/* The contract's refusal before any request: one reply with msgid 0, then
 * close.  Nothing the client sent is read. */
static void server__refuse(struct conn *c, enum proto_error e, const char *msg)
{
        c->srv->env->counters.refused_total++;
        conn__reply_error(c, 0, e, msg);
        c->close_after_flush = true;
        conn__flush(c);
}

/* Check a new connection against allow_uids / allow_group and the
 * connection limits; false when it was refused. */
static bool server__admit(struct server *s, struct conn *c, int fd, bool known, uint32_t gid)
{
        const struct config_limits *lim = &s->cfg->limits;
        char msg[160];

        if (!server__peer_allowed(s, fd, known, c->uid, gid)) {
                log_info("connection %llu from uid %u (pid %d) refused: not allowed by "
                         "allow_uids / allow_group", (unsigned long long)c->id, c->uid, c->pid);
                snprintf(msg, sizeof(msg), "uid %u may not connect to this daemon", c->uid);
                s->env->counters.refused_allow_total++;
                server__refuse(c, PROTO_FORBIDDEN, msg);
                return false;
        }
        if (s->env->counters.connections > lim->connections) {
                s->env->counters.refused_connections_total++;
                snprintf(msg, sizeof(msg), "too many connections (limit %u); try again later",
                         lim->connections);
                server__refuse(c, PROTO_OVERLOADED, msg);
                return false;
        }
        /* Near the descriptor limit: refuse rather than let the database or
         * the scanner fail to open a file. */
        if (s->env->counters.connections > s->fd_budget) {
                s->env->counters.refused_fds_total++;
                snprintf(msg, sizeof(msg), "out of file descriptors (%llu connections); try "
                         "again later", (unsigned long long)s->fd_budget);
                server__refuse(c, PROTO_OVERLOADED, msg);
                return false;
        }
        if (lim->connections_per_uid && server__uid_connections(s, c->uid) > lim->connections_per_uid) {
                log_info("connection %llu from uid %u (pid %d) refused: connections_per_uid (%u) "
                         "reached", (unsigned long long)c->id, c->uid, c->pid,
                         lim->connections_per_uid);
                snprintf(msg, sizeof(msg),
                         "too many connections from uid %u (limit %u); try again later", c->uid,
                         lim->connections_per_uid);
                s->env->counters.refused_per_uid_total++;
                server__refuse(c, PROTO_OVERLOADED, msg);
                return false;
        }
        return true;
}

static void server__on_connection(uv_stream_t *ls, int status)
{
        struct server *s = ls->data;
        if (status < 0) {
                log_warn("accept failed: %s", uv_strerror(status));
                return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c || !msgpack_zone_init(&c->zone, SERVER_ZONE_CHUNK)) {
                log_error("out of memory accepting a connection");
                free(c);
                return;
        }
        msgpack_sbuffer_init(&c->out);
        replyq_init(&c->held);
        msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
        c->srv = s;
        c->id = ++s->next_id;
        uv_pipe_init(s->loop, &c->pipe, 0);
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->env->counters.connections++;
        s->env->counters.connections_total++;
        if (uv_accept(ls, (uv_stream_t *)&c->pipe) < 0) {
                conn__close(c);
                return;
        }

        uv_os_fd_t fd = -1;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        bool known = uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
                     getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
        if (known) {
                c->uid = cred.uid;
                c->pid = cred.pid;
        } else {
                c->uid = UINT32_MAX - 1; /* unknown: owns only its own traces */
                c->pid = -1;
        }
        log_debug("connection %llu from uid %u, pid %d", (unsigned long long)c->id, c->uid,
                  c->pid);

        if (server__admit(s, c, fd, known, known ? cred.gid : UINT32_MAX))
                conn__read_start(c);
}

static void server__on_close(uv_handle_t *h)
{
        free(h); /* the listener is the server's first member */
}

static void server__on_timer_close(uv_handle_t *h)
{
        free(h);
}

/* Close the server's handles; each is freed in its close callback. */
static void server__close(struct server *s)
{
        if (s->partial_timer) {
                uv_close((uv_handle_t *)s->partial_timer, server__on_timer_close);
                s->partial_timer = NULL;
        }
        msgpack_sbuffer_destroy(&s->scratch);
        uv_close((uv_handle_t *)&s->listener, server__on_close);
}

/* Refuse when another daemon answers on path; remove a stale socket file. */
static int server__claim_path(const char *path, char *err, size_t errlen)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -errno);
        if (!S_ISSOCK(st.st_mode)) {
                snprintf(err, errlen, "%s exists and is not a socket; not touching it", path);
                return -EEXIST;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                snprintf(err, errlen, "socket: %s", strerror(errno));
                return -errno;
        }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, path, strlen(path));
        int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        int e = errno;
        close(fd);
        if (r == 0) {
                snprintf(err, errlen, "another outcomed is answering on %s; not starting", path);
                return -EADDRINUSE;
        }
        if (e != ECONNREFUSED) {
                snprintf(err, errlen, "%s: cannot tell whether a daemon answers: %s", path,
                         strerror(e));
                return -e;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
                return -errno;
        }
        log_info("removed stale socket %s", path);
        return 0;
}

static struct server *server__new(uv_loop_t *loop, struct rpc_env *env, const struct config *cfg)
{
        struct server *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->loop = loop;
        s->env = env;
        s->cfg = cfg;
        s->fd_budget = server__fd_budget();
        if (cfg->limits.connections > s->fd_budget)
                log_warn("[limits] connections = %u, but the descriptor limit (RLIMIT_NOFILE) "
                         "allows about %llu: connections past that are refused",
                         cfg->limits.connections, (unsigned long long)s->fd_budget);
        s->partial_timer = malloc(sizeof(*s->partial_timer));
        if (!s->partial_timer) {
                free(s);
                return NULL;
        }
        uv_timer_init(loop, s->partial_timer);
        s->partial_timer->data = s;
        msgpack_sbuffer_init(&s->scratch);
        msgpack_packer_init(&s->scratch_pk, &s->scratch, msgpack_sbuffer_write);
        uv_pipe_init(loop, &s->listener, 0);
        s->listener.data = s;
        return s;
}

int server_socket_path(int fd, char *buf, size_t len)
{
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
                return -errno;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (sa.sun_family != AF_UNIX || salen <= off || sa.sun_path[0] == '\0')
                return -EAFNOSUPPORT; /* unnamed or abstract */
        size_t n = strnlen(sa.sun_path, salen - off);
        if (n >= len)
                return -ENAMETOOLONG;
        memcpy(buf, sa.sun_path, n);
        buf[n] = '\0';
        return 0;
}

int server_start_fd(struct server **out, uv_loop_t *loop, struct rpc_env *env,
                    const struct config *cfg, int fd, char *err, size_t errlen)
{
        struct server *s = server__new(loop, env, cfg);
        if (!s) {
                close(fd);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        int r = uv_pipe_open(&s->listener, fd);
        if (r < 0) {
                close(fd);
                snprintf(err, errlen, "cannot use the socket passed by the service manager: %s",
                         uv_strerror(r));
                goto fail;
        }
        r = uv_listen((uv_stream_t *)&s->listener, 511, server__on_connection);
        if (r < 0) {
                snprintf(err, errlen, "cannot listen on the socket passed by the service manager: %s",
                         uv_strerror(r));
                goto fail;
        }
        s->listening = true;
        *out = s;
        return 0;
fail:
        server__close(s);
        return r;
}

int server_start(struct server **out, uv_loop_t *loop, struct rpc_env *env,
                 const struct config *cfg, char *err, size_t errlen)
{
        const char *path = cfg->socket_path;
        int r;

        if (strlen(path) > PROTO_SOCKET_PATH_MAX) {
                snprintf(err, errlen, "socket path longer than %u bytes: %s",
                         PROTO_SOCKET_PATH_MAX, path);
                return -ENAMETOOLONG;
        }
        gid_t gid = (gid_t)-1;
        if (cfg->socket_group) {
                struct group *g = getgrnam(cfg->socket_group);
                if (!g) {
                        snprintf(err, errlen, "socket_group: no group named '%s'",
                                 cfg->socket_group);
                        return -EINVAL;
                }
                gid = g->gr_gid;
        }
        r = server__claim_path(path, err, errlen);
        if (r < 0)
                return r;

        char *own = strdup(path);
        struct server *s = own ? server__new(loop, env, cfg) : NULL;
        if (!s) {
                free(own);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        s->path = own;

        /* The process umask is 077, so the socket is born 0600. */
        r = uv_pipe_bind(&s->listener, path);
        if (r < 0) {
                snprintf(err, errlen, "cannot bind %s: %s", path, uv_strerror(r));
                goto fail;
        }
        bool root = geteuid() == 0;
        if ((root || cfg->socket_group) && chmod(path, 0660) < 0) {
                r = -errno;
                snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
                goto fail_unlink;
        }
        if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
                r = -errno;
                snprintf(err, errlen, "chown %s to group %s: %s", path, cfg->socket_group,
                         strerror(errno));
                goto fail_unlink;
        }
        r = uv_listen((uv_stream_t *)&s->listener, 511, server__on_connection);
        if (r < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(r));
                goto fail_unlink;
        }
        s->listening = true;
        *out = s;
        return 0;

fail_unlink:
        unlink(path);
fail:
        /* The handle is closed by the caller's loop run; free it there. */
        free(s->path);
        s->path = NULL;
        server__close(s);
        return r;
}

void server_stop(struct server *s)
{
        if (!s)
                return;
        if (s->path) { /* bound here, not passed: ours to remove */
                unlink(s->path);
                free(s->path);
                s->path = NULL;
        }
        while (s->conns)
                conn__close(s->conns);
        server__close(s);
}

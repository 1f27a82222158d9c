/* fuzz_request.c - libFuzzer target: the daemon's request path fed
 * arbitrary bytes as the stream of one connection.
 *
 * The first byte of an input says how the rest is cut into reads (all at
 * once, or pieces of pseudo-random sizes), as the kernel may deliver a
 * stream; the rest is the stream.  Each read goes through what server.c's
 * conn__on_read and conn__process do, with the same public functions:
 * proto_skim_feed frames the bytes (the guard that keeps msgpack-c from
 * reserving memory for declared sizes), msgpack_unpack decodes each framed
 * message in place into the connection's zone (cleared after each), proto_parse_msg checks their shape, and rpc_handle runs them
 * against a real tracker.  The limits are small, so that `too_large`,
 * `overloaded` and every "too long" refusal are reachable from short
 * inputs.  The end of the input is the peer's EOF: the messages already
 * framed are answered, a partial one is dropped.
 *
 * This copy of the framing and dispatch logic is kept in step with
 * server.c by hand; only libuv (reads, writes, backpressure) is left out.
 *
 * Checked for every message: a request gets exactly one well-formed
 * response (msgpack-RPC shape, the request's msgid, or the contract's
 * fallback msgid for a malformed one, a known error code, a nil result with
 * an error, a map result without one) whose error matches what rpc_handle
 * returned; a notification gets none.  At the end, the tracker's pending
 * list walks to its count.  A crash, a sanitizer report or a leak is a
 * finding too.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "config.h"
#include "fuzz.h"
#include "proto.h"
#include "rpc.h"
#include "tracker.h"

static struct config cfg;
static char *repos[1] = { "/tmp" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        config_init(&cfg);
        cfg.limits.message_bytes = 2048; /* the configuration allows 1024 and up */
        cfg.limits.model_bytes = 32;
        cfg.limits.text_bytes = 64;
        cfg.limits.output_bytes = 256;
        cfg.limits.files = 4;
        cfg.limits.path_bytes = 300; /* over the 200 bytes of a path an error message quotes */
        cfg.limits.list_entries = 8;
        cfg.limits.models = 4;
        cfg.limits.pending = 8;
        /* A watched repository that exists everywhere, for code traces. */
        cfg.git_repos = repos;
        cfg.ngit_repos = 1;
        return 0;
}

/* One connection, as server.c's struct conn has it (minus libuv). */
struct fconn {
        struct rpc_env *env;
        char *rbuf;                  /* rbuf[rpos..rlen): read, not dispatched */
        size_t rpos, rlen, rcap;
        msgpack_zone zone;
        struct proto_skim skim;
        uint64_t ready;              /* framed messages in rbuf, not dispatched */
        enum proto_skim_status bad;  /* after them: too large, or not msgpack */
        msgpack_sbuffer out;         /* replies */
        msgpack_packer pk;
        msgpack_sbuffer scratch;     /* replies to notifications, discarded */
        msgpack_packer scratch_pk;
        bool close_after_flush;
        uint64_t replies;
};

/* The one reply packed in buf[0, len): a well-formed response to msgid,
 * agreeing with the code rpc_handle returned (PROTO_OK: no error). */
static void check_reply(const char *buf, size_t len, uint32_t msgid, enum proto_error code)
{
        msgpack_unpacked u;
        size_t off = 0;
        uint32_t id;
        const msgpack_object *err, *res;

        msgpack_unpacked_init(&u);
        FUZZ_CHECK(len > 0);
        int r = msgpack_unpack_next(&u, buf, len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS) {
                fprintf(stderr, "reply to msgid %u: msgpack_unpack_next %d after %zu of %zu bytes:",
                        msgid, r, off, len);
                for (size_t i = 0; i < len && i < 256; i++)
                        fprintf(stderr, " %02x", (unsigned char)buf[i]);
                fprintf(stderr, "\n");
        }
        FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS);
        FUZZ_CHECK(off == len); /* exactly one reply */
        FUZZ_CHECK(proto_parse_response(&u.data, &id, &err, &res) == 0);
        FUZZ_CHECK(id == msgid);
        if (err) {
                const msgpack_object *c = proto_map_get(err, "code");
                const msgpack_object *m = proto_map_get(err, "message");
                FUZZ_CHECK(err->via.map.size == 2);
                FUZZ_CHECK(c && c->type == MSGPACK_OBJECT_STR);
                FUZZ_CHECK(m && m->type == MSGPACK_OBJECT_STR);
                int e = proto_error_parse(c->via.str.ptr, c->via.str.size);
                FUZZ_CHECK(e > PROTO_OK && e < PROTO_ERROR__COUNT);
                FUZZ_CHECK(code == PROTO_OK || e == (int)code);
                FUZZ_CHECK(code != PROTO_OK);
                FUZZ_CHECK(proto_utf8_valid(m->via.str.ptr, m->via.str.size));
                FUZZ_CHECK(res->type == MSGPACK_OBJECT_NIL);
                /* The daemon's own state is never the client's fault. */
                FUZZ_CHECK(e != PROTO_INTERNAL);
        } else {
                FUZZ_CHECK(code == PROTO_OK);
                FUZZ_CHECK(res->type == MSGPACK_OBJECT_MAP);
        }
        msgpack_unpacked_destroy(&u);
}

/* The msgid a malformed message is answered with (the contract): element
 * 1 when it is an unsigned 32-bit integer, else 0. */
static uint32_t fallback_msgid(const msgpack_object *o)
{
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
                return 0;
        const msgpack_object *v = &o->via.array.ptr[1];
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= UINT32_MAX)
                return (uint32_t)v->via.u64;
        return 0;
}

static void fconn_error(struct fconn *c, uint32_t msgid, enum proto_error e, const char *msg)
{
        size_t before = c->out.size;
        proto_pack_error(&c->pk, msgid, e, msg);
        check_reply(c->out.data + before, c->out.size - before, msgid, e);
        c->replies++;
}

/* server.c's conn__message. */
static void fconn_message(struct fconn *c, const msgpack_object *o)
{
        struct proto_msg m;
        char err[256];

        if (o->type != MSGPACK_OBJECT_ARRAY) {
                fconn_error(c, 0, PROTO_BAD_REQUEST, "not an array");
                c->close_after_flush = true;
                return;
        }
        if (proto_parse_msg(o, &m, err, sizeof(err)) < 0) {
                FUZZ_CHECK(m.msgid == fallback_msgid(o));
                FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
                fconn_error(c, m.msgid, PROTO_BAD_REQUEST, err);
                return;
        }
        FUZZ_CHECK(m.type == PROTO_REQUEST || m.type == PROTO_NOTIFY);
        FUZZ_CHECK(!m.args || m.args->type == MSGPACK_OBJECT_MAP);
        if (m.type == PROTO_NOTIFY) {
                FUZZ_CHECK(m.msgid == 0);
                bool changed;
                enum proto_error e = rpc_handle(c->env, &m, 1000, &c->scratch_pk, &changed);
                check_reply(c->scratch.data, c->scratch.size, 0, e);
                msgpack_sbuffer_clear(&c->scratch);
                return;
        }
        FUZZ_CHECK(m.msgid == fallback_msgid(o));
        size_t before = c->out.size;
        /* Root now and then, to reach the other-uid rules both ways. */
        uint32_t uid = (m.msgid & 3) == 3 ? 0 : 1000 + (m.msgid & 1);
        bool changed;
        enum proto_error e = rpc_handle(c->env, &m, uid, &c->pk, &changed);
        check_reply(c->out.data + before, c->out.size - before, m.msgid, e);
        c->replies++;
}

/* server.c's conn__process, without backpressure (nothing is written). */
static void fconn_process(struct fconn *c)
{
        while (c->ready > 0 && !c->close_after_flush) {
                c->ready--;
                msgpack_object o;
                size_t off = c->rpos;
                msgpack_unpack_return ur = msgpack_unpack(c->rbuf, c->rlen, &off, &c->zone, &o);
                if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
                        msgpack_zone_clear(&c->zone);
                        fconn_error(c, 0, PROTO_BAD_REQUEST, "msgpack-c cannot decode it");
                        c->close_after_flush = true;
                        break;
                }
                FUZZ_CHECK(off > c->rpos && off <= c->rlen);
                c->rpos = off;
                fconn_message(c, &o);
                msgpack_zone_clear(&c->zone);
        }
        if (c->rpos == c->rlen)
                c->rpos = c->rlen = 0;
        if (c->ready == 0 && c->bad != PROTO_SKIM_MORE && !c->close_after_flush) {
                fconn_error(c, 0, c->bad == PROTO_SKIM_TOO_LARGE ? PROTO_TOO_LARGE
                                                                 : PROTO_BAD_REQUEST,
                            "framing error");
                c->close_after_flush = true;
        }
}

/* server.c's conn__on_read for n bytes. */
static void fconn_read(struct fconn *c, const uint8_t *data, size_t n)
{
        /* conn__on_alloc: compact, then grow only when still short (here
         * to the exact size, so that a read past the bytes is caught). */
        if (c->rcap - c->rlen < n && c->rpos > 0) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
        }
        if (c->rcap - c->rlen < n) {
                c->rbuf = realloc(c->rbuf, c->rlen + n);
                FUZZ_CHECK(c->rbuf);
                c->rcap = c->rlen + n;
        }
        memcpy(c->rbuf + c->rlen, data, n);
        const uint8_t *p = (const uint8_t *)c->rbuf + c->rlen;
        size_t off = 0;
        while (off < n && c->bad == PROTO_SKIM_MORE) {
                size_t used = SIZE_MAX;
                enum proto_skim_status fs = proto_skim_feed(&c->skim, p + off, n - off,
                                                            cfg.limits.message_bytes, &used);
                FUZZ_CHECK(used <= n - off);
                FUZZ_CHECK(used > 0 || fs != PROTO_SKIM_DONE);
                off += used;
                if (fs == PROTO_SKIM_DONE)
                        c->ready++;
                else if (fs != PROTO_SKIM_MORE)
                        c->bad = fs;
                else
                        FUZZ_CHECK(off == n);
        }
        c->rlen += off;
        fconn_process(c);
}

static void check_tracker(const struct tracker *t)
{
        size_t n = 0;
        for (const struct tracker_trace *tr = tracker_pending_first(t); tr;
             tr = tracker_pending_next(tr)) {
                FUZZ_CHECK(tracker_trace_get(t, tr->id) == tr);
                FUZZ_CHECK(++n <= tracker_pending_count(t));
        }
        FUZZ_CHECK(n == tracker_pending_count(t));
        FUZZ_CHECK(n <= cfg.limits.pending);
        FUZZ_CHECK(tracker_profile_count(t) <= cfg.limits.models);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        struct tracker_options topts = {
                .id_prefix = "t-fuzz",
                .max_models = cfg.limits.models,
                .max_pending = cfg.limits.pending,
        };
        struct rpc_env env = { .cfg = &cfg, .started_at = 1 };
        struct fconn c = { .env = &env, .bad = PROTO_SKIM_MORE };

        env.tracker = tracker_new(&topts);
        FUZZ_CHECK(env.tracker);
        FUZZ_CHECK(msgpack_zone_init(&c.zone, 2048));
        msgpack_sbuffer_init(&c.out);
        msgpack_packer_init(&c.pk, &c.out, msgpack_sbuffer_write);
        msgpack_sbuffer_init(&c.scratch);
        msgpack_packer_init(&c.scratch_pk, &c.scratch, msgpack_sbuffer_write);

        /* How the stream is cut: one read, or pieces of 1..max bytes. */
        uint8_t cut = data[0];
        uint32_t rng = cut * 2654435761u + (uint32_t)size;
        const uint8_t *p = data + 1;
        size_t left = size - 1;
        while (left > 0 && !c.close_after_flush) {
                size_t n = left;
                if (cut >= 0x40) {
                        size_t max = 1 + (cut & 0x3f) * 4;
                        n = 1 + fuzz_xorshift(&rng) % max;
                        if (n > left)
                                n = left;
                }
                fconn_read(&c, p, n);
                p += n;
                left -= n;
        }
        fconn_process(&c); /* EOF */
        check_tracker(env.tracker);

        msgpack_sbuffer_destroy(&c.scratch);
        msgpack_sbuffer_destroy(&c.out);
        msgpack_zone_destroy(&c.zone);
        free(c.rbuf);
        tracker_free(env.tracker);
        return 0;
}

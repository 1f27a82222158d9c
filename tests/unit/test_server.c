/* test_server.c - daemon/server/server.c's reply order, driven through a real
 * server on a temporary Unix socket, with a real store and group commit on
 * the same uv loop (the ordering state lives in server.c's connections and
 * is reachable only through sockets).  The test's client is a non-blocking
 * socket read between loop iterations.
 *
 * Under durability = ack: the reply to a change leaves only after its
 * batch is committed; the reads, pings and errors pipelined behind it on
 * the same connection keep their place behind it; another connection is
 * not held up.  Under relaxed: replies at once, the commit later.  When the
 * commit fails: the change and the reads behind it are answered
 * `unavailable`, a ping keeps its answer, in order.  Every test ends with
 * uv_loop_close() == 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "commit.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "rpc.h"
#include "server.h"
#include "store.h"

static char tmpdir[64];

static void setup_dir(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_server.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        log_set_level(LOG_LVL_ERROR);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void teardown_dir(void)
{
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the daemon's loop, as main.c wires it ------------------------------- */

struct daemon {
        uv_loop_t loop;
        struct config cfg;
        struct rpc_env env;
        struct store *store;
        struct commit *commit;
        struct server *server;
};

static int d_record(void *data, const struct journal_entry *e)
{
        return commit_record(data, e);
}

static bool d_writable(void *data)
{
        return commit_writable(data);
}

static void daemon_start(struct daemon *d, int durability, unsigned commit_delay_ms)
{
        char path[128], err[512] = "";
        memset(d, 0, sizeof(*d));
        config_init(&d->cfg);
        snprintf(path, sizeof(path), "%s/outcomed.sock", tmpdir);
        ck_assert_int_eq(config_set_str(&d->cfg.socket_path, path), 0);
        snprintf(path, sizeof(path), "%s/outcomed.db", tmpdir);
        ck_assert_int_eq(config_set_str(&d->cfg.db_path, path), 0);
        d->cfg.durability = durability;
        d->cfg.debug_commit_delay_ms = commit_delay_ms;
        d->cfg.flush_interval_ms = 1000;
        d->cfg.snapshot_interval_ms = 3600000;
        for (int i = 0; i < TASK__COUNT; i++)
                d->cfg.ttl_s[i] = 0;
        ck_assert_int_eq(uv_loop_init(&d->loop), 0);
        d->env.cfg = &d->cfg;
        int r = store_open(&d->store, d->cfg.db_path, &d->loop, err, sizeof(err));
        ck_assert_msg(r == 0, "store_open: %s", err);
        r = commit_open(&d->commit, &d->loop, d->store, &d->env, &d->cfg, err, sizeof(err));
        ck_assert_msg(r == 0, "commit_open: %s", err);
        d->env.journal = (struct rpc_journal){ d_record, d_writable, d->commit };
        r = server_start(&d->server, &d->loop, &d->env, &d->cfg, err, sizeof(err));
        ck_assert_msg(r == 0, "server_start: %s", err);
        server_attach_commit(d->server, d->commit);
}

static void daemon_stop(struct daemon *d)
{
        server_stop(d->server);
        ck_assert_int_eq(commit_final(d->commit), 0);
        store_close(d->store, NULL, NULL);
        commit_close(d->commit);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&d->loop), 0);
        tracker_free(d->env.tracker);
        config_free(&d->cfg);
}

/* ---- the client ---------------------------------------------------------- */

#define MAX_REPLIES 32

struct reply {
        uint32_t msgid;
        char error[32];      /* the error code, "" when ok */
        uint64_t commits;    /* commits_total when it was read */
        uint32_t npending;   /* a query's pending traces */
};

struct client {
        int fd;
        msgpack_unpacker up;
        struct reply r[MAX_REPLIES];
        int n;
};

static void client_connect(struct client *c, const struct daemon *d)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memset(c, 0, sizeof(*c));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->cfg.socket_path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c->fd, 0);
        ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert(msgpack_unpacker_init(&c->up, 4096));
}

static void client_close(struct client *c)
{
        close(c->fd);
        msgpack_unpacker_destroy(&c->up);
}

/* Send [0, msgid, method, [params]] (params: a msgpack map packed by fn, or
 * none). */
static void client_send(struct client *c, uint32_t msgid, const char *method,
                        void (*params)(msgpack_packer *pk))
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        proto_pack_request_head(&pk, msgid, method);
        if (params) {
                msgpack_pack_array(&pk, 1);
                params(&pk);
        } else {
                msgpack_pack_array(&pk, 0);
        }
        ck_assert_int_eq(send(c->fd, sb.data, sb.size, MSG_NOSIGNAL), (ssize_t)sb.size);
        msgpack_sbuffer_destroy(&sb);
}

/* Read what the server sent so far into c->r. */
static void client_read(struct client *c, const struct daemon *d)
{
        for (;;) {
                ck_assert(msgpack_unpacker_reserve_buffer(&c->up, 4096));
                ssize_t n = recv(c->fd, msgpack_unpacker_buffer(&c->up), 4096, MSG_DONTWAIT);
                if (n <= 0)
                        break;
                msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        while (msgpack_unpacker_next(&c->up, &u) == MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *o = &u.data;
                ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
                ck_assert_uint_eq(o->via.array.size, 4);
                ck_assert_int_lt(c->n, MAX_REPLIES);
                struct reply *r = &c->r[c->n++];
                memset(r, 0, sizeof(*r));
                r->msgid = (uint32_t)o->via.array.ptr[1].via.u64;
                r->commits = d->env.counters.commits_total;
                const msgpack_object *err = &o->via.array.ptr[2];
                if (err->type == MSGPACK_OBJECT_MAP) {
                        const msgpack_object *code = proto_map_get(err, "code");
                        ck_assert_ptr_nonnull(code);
                        snprintf(r->error, sizeof(r->error), "%.*s", (int)code->via.str.size,
                                 code->via.str.ptr);
                }
                const msgpack_object *res = &o->via.array.ptr[3];
                const msgpack_object *p = res->type == MSGPACK_OBJECT_MAP
                                                  ? proto_map_get(res, "pending")
                                                  : NULL;
                if (p && p->type == MSGPACK_OBJECT_ARRAY)
                        r->npending = p->via.array.size;
        }
        msgpack_unpacked_destroy(&u);
}

/* Run the loop (one iteration, then the check phase) and read. */
static void step(struct daemon *d, struct client *c, struct client *c2)
{
        uv_run(&d->loop, UV_RUN_ONCE);
        uv_run(&d->loop, UV_RUN_NOWAIT);
        client_read(c, d);
        if (c2)
                client_read(c2, d);
}

static void p_start_a(msgpack_packer *pk)
{
        msgpack_pack_map(pk, 3);
        proto_pack_kv_str(pk, "model", "m");
        proto_pack_kv_str(pk, "task", "generate");
        proto_pack_kv_str(pk, "trace_id", "a");
}

static void p_start_b(msgpack_packer *pk)
{
        msgpack_pack_map(pk, 3);
        proto_pack_kv_str(pk, "model", "m");
        proto_pack_kv_str(pk, "task", "generate");
        proto_pack_kv_str(pk, "trace_id", "b");
}

static void p_pending(msgpack_packer *pk)
{
        msgpack_pack_map(pk, 1);
        proto_pack_kv_bool(pk, "pending", true);
}

/* Replies' msgids, "1 2 3". */
static const char *order(const struct client *c)
{
        static char buf[256];
        buf[0] = '\0';
        for (int i = 0; i < c->n; i++) {
                size_t n = strlen(buf);
                snprintf(buf + n, sizeof(buf) - n, "%s%u", i ? " " : "", c->r[i].msgid);
        }
        return buf;
}

/* ---- durability = ack ----------------------------------------------------- */

START_TEST(test_ack_replies_in_request_order)
{
        struct daemon d;
        struct client c, other;
        daemon_start(&d, DURABILITY_ACK, 500);
        client_connect(&c, &d);
        client_connect(&other, &d);
        /* One read of five requests: a change, a ping, a read that must
         * see the change, an error, another change. */
        client_send(&c, 1, "start", p_start_a);
        client_send(&c, 2, "ping", NULL);
        client_send(&c, 3, "query", p_pending);
        client_send(&c, 4, "no_such_method", NULL);
        client_send(&c, 5, "start", p_start_b);
        /* let the server read them all and begin the commit */
        while (d.env.counters.requests_total < 5)
                step(&d, &c, NULL);
        /* the other connection's read is not held behind c's change */
        client_send(&other, 1, "query", p_pending);
        while (other.n < 1)
                step(&d, &c, &other);
        ck_assert_int_eq(c.n, 0); /* still committing (500 ms) */
        ck_assert_uint_eq(other.r[0].commits, 0);
        ck_assert_str_eq(other.r[0].error, "");
        ck_assert_uint_eq(other.r[0].npending, 2); /* it reads memory: both starts */

        while (c.n < 5)
                step(&d, &c, &other);
        ck_assert_str_eq(order(&c), "1 2 3 4 5");
        /* none left before the commit of the batch with the first start */
        for (int i = 0; i < 5; i++)
                ck_assert_uint_ge(c.r[i].commits, 1);
        ck_assert_str_eq(c.r[0].error, "");
        ck_assert_str_eq(c.r[1].error, "");
        ck_assert_str_eq(c.r[2].error, "");
        ck_assert_uint_eq(c.r[2].npending, 1); /* handled in order: a, not yet b */
        ck_assert_str_eq(c.r[3].error, "unknown_method");
        ck_assert_str_eq(c.r[4].error, "");
        ck_assert_uint_eq(d.env.counters.journal_total, 2);

        /* Nothing held: a read is answered in the same iteration. */
        client_send(&c, 6, "query", p_pending);
        uint64_t commits = d.env.counters.commits_total;
        while (c.n < 6)
                step(&d, &c, NULL);
        ck_assert_uint_eq(c.r[5].msgid, 6);
        ck_assert_uint_eq(c.r[5].commits, commits);

        client_close(&c);
        client_close(&other);
        daemon_stop(&d);
}
END_TEST

/* A change that fails (a duplicate trace id) is an error, not a change:
 * it does not wait for a commit, but keeps its place behind one that
 * does. */
START_TEST(test_ack_error_keeps_its_place)
{
        struct daemon d;
        struct client c;
        daemon_start(&d, DURABILITY_ACK, 200);
        client_connect(&c, &d);
        client_send(&c, 1, "start", p_start_a);
        while (d.env.counters.commits_total < 1)
                step(&d, &c, NULL);
        ck_assert_str_eq(order(&c), "1");

        /* a refused change alone: answered without a commit */
        client_send(&c, 2, "complete", NULL); /* trace_id missing: bad_request */
        uint64_t commits = d.env.counters.commits_total;
        while (c.n < 2)
                step(&d, &c, NULL);
        ck_assert_str_eq(c.r[1].error, "bad_request");
        ck_assert_uint_eq(c.r[1].commits, commits);

        /* behind a change: after it */
        client_send(&c, 3, "start", p_start_b);
        client_send(&c, 4, "complete", NULL);
        client_send(&c, 5, "ping", NULL);
        while (c.n < 5)
                step(&d, &c, NULL);
        ck_assert_str_eq(order(&c), "1 2 3 4 5");
        ck_assert_str_eq(c.r[3].error, "bad_request");
        ck_assert_uint_gt(c.r[2].commits, commits);
        ck_assert_uint_gt(c.r[3].commits, commits);
        ck_assert_uint_gt(c.r[4].commits, commits);
        client_close(&c);
        daemon_stop(&d);
}
END_TEST

/* ---- durability = relaxed ------------------------------------------------- */

START_TEST(test_relaxed_replies_at_once)
{
        struct daemon d;
        struct client c;
        daemon_start(&d, DURABILITY_RELAXED, 0);
        client_connect(&c, &d);
        client_send(&c, 1, "start", p_start_a);
        client_send(&c, 2, "query", p_pending);
        client_send(&c, 3, "start", p_start_b);
        while (c.n < 3)
                step(&d, &c, NULL);
        ck_assert_str_eq(order(&c), "1 2 3");
        for (int i = 0; i < 3; i++)
                ck_assert_uint_eq(c.r[i].commits, 0); /* before the flush timer's commit */
        ck_assert_uint_eq(c.r[1].npending, 1);
        while (d.env.counters.commits_total < 1)
                step(&d, &c, NULL);
        ck_assert_uint_eq(d.env.counters.journal_total, 2);
        client_close(&c);
        daemon_stop(&d);
}
END_TEST

/* ---- a failed commit -------------------------------------------------------- */

START_TEST(test_failed_commit_answers_unavailable)
{
        struct daemon d;
        struct client c;
        daemon_start(&d, DURABILITY_ACK, 0);
        client_connect(&c, &d);
        /* another connection holds the write lock past busy_timeout */
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(d.cfg.db_path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        client_send(&c, 1, "ping", NULL);
        client_send(&c, 2, "start", p_start_a);
        client_send(&c, 3, "ping", NULL);
        client_send(&c, 4, "query", p_pending);
        while (c.n < 4)
                step(&d, &c, NULL);
        ck_assert_str_eq(order(&c), "1 2 3 4");
        ck_assert_uint_eq(c.r[0].commits, 0); /* nothing ahead of it: at once */
        ck_assert_str_eq(c.r[0].error, "");
        ck_assert_str_eq(c.r[1].error, "unavailable"); /* the lost change */
        ck_assert_str_eq(c.r[2].error, "");            /* a ping holds whatever */
        ck_assert_str_eq(c.r[3].error, "unavailable"); /* it saw the lost change */
        ck_assert_uint_eq(d.env.counters.commit_errors_total, 1);
        ck_assert_ptr_null(tracker_trace_get(d.env.tracker, "a"));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
        client_close(&c);
        daemon_stop(&d);
}
END_TEST

static Suite *server_suite(void)
{
        Suite *su = suite_create("server");
        TCase *tc = tcase_create("server");
        tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_ack_replies_in_request_order);
        tcase_add_test(tc, test_ack_error_keeps_its_place);
        tcase_add_test(tc, test_relaxed_replies_at_once);
        tcase_add_test(tc, test_failed_commit_answers_unavailable);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(server_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

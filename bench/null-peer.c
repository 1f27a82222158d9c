/* null-peer.c - a stand-in for outcomed that does nothing: it answers
 * every msgpack-RPC request at once with [1, msgid, nil, {"trace_id":
 * "t-0"}], so that outcome-bench can be run against it to measure the
 * client's own ceiling (the bench must be much faster than the daemon it
 * measures).  One epoll loop, one read and one write per batch, the least
 * a server can do.  Not installed; used by hand:
 *
 *         build-release/bench/null-peer /tmp/null.sock &
 *         build-release/bench/outcome-bench -s /tmp/null.sock -c 50 -P 16
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.h>

#include "proto.h"

struct peer_conn {
        int fd;
        msgpack_unpacker unp;
        msgpack_unpacked res;
        msgpack_sbuffer out;
        msgpack_packer pk;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static void peer_close(int ep, struct peer_conn *c)
{
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        msgpack_unpacked_destroy(&c->res);
        msgpack_unpacker_destroy(&c->unp);
        msgpack_sbuffer_destroy(&c->out);
        free(c);
}

/* Answer every complete request; returns 0 or -errno (close it). */
static int peer_serve(struct peer_conn *c)
{
        if (!msgpack_unpacker_reserve_buffer(&c->unp, 64 * 1024))
                return -ENOMEM;
        ssize_t n = recv(c->fd, msgpack_unpacker_buffer(&c->unp),
                         msgpack_unpacker_buffer_capacity(&c->unp), 0);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
        msgpack_unpack_return r;
        while ((r = msgpack_unpacker_next(&c->unp, &c->res)) == MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *o = &c->res.data;
                if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4 ||
                    o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return -EPROTO;
                proto_pack_ok_head(&c->pk, (uint32_t)o->via.array.ptr[1].via.u64);
                msgpack_pack_map(&c->pk, 1);
                proto_pack_cstr(&c->pk, "trace_id");
                proto_pack_cstr(&c->pk, "t-0");
        }
        if (r != MSGPACK_UNPACK_CONTINUE)
                return -EPROTO;
        /* Blocking write: a benchmark client reads its replies. */
        size_t off = 0;
        while (off < c->out.size) {
                ssize_t w = send(c->fd, c->out.data + off, c->out.size - off, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)w;
        }
        msgpack_sbuffer_clear(&c->out);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                fprintf(stderr, "Usage: null-peer SOCKET\n"
                                "Answer every msgpack-RPC request at once (see null-peer.c).\n");
                return 2;
        }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, argv[1], strlen(argv[1]));
        int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(argv[1]);
        if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 511) < 0) {
                fprintf(stderr, "null-peer: %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        struct sigaction act = { .sa_handler = on_signal };
        sigemptyset(&act.sa_mask);
        sigaction(SIGINT, &act, NULL);
        sigaction(SIGTERM, &act, NULL);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
        struct epoll_event evs[256];
        while (!stop) {
                int n = epoll_wait(ep, evs, 256, 200);
                for (int i = 0; i < n; i++) {
                        struct peer_conn *c = evs[i].data.ptr;
                        if (!c) {
                                int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
                                if (fd < 0)
                                        continue;
                                c = calloc(1, sizeof(*c));
                                if (!c || !msgpack_unpacker_init(&c->unp, 64 * 1024)) {
                                        free(c);
                                        close(fd);
                                        continue;
                                }
                                c->fd = fd;
                                msgpack_unpacked_init(&c->res);
                                msgpack_sbuffer_init(&c->out);
                                msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
                                struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
                                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                                continue;
                        }
                        if (peer_serve(c) < 0)
                                peer_close(ep, c);
                }
        }
        close(ep);
        close(ls);
        unlink(argv[1]);
        return 0;
}

/* outcome_client.c - blocking msgpack-RPC client for outcomed (see
 * outcome_client.h for the API and the call sequence).
 *
 * Plain POSIX socket I/O: requests are packed into an output buffer by the
 * caller through a msgpack_packer, written with send() on oc_flush(), and
 * replies are read with recv() into a msgpack_unpacker until one complete
 * message is there.  SO_RCVTIMEO/SO_SNDTIMEO bound each wait.
 *
 * After an error that leaves the stream in an unknown state (a partial
 * write, bytes that are not msgpack, the peer closing) the client is "dead":
 * every later call fails at once with the same error.  A read timeout is not
 * such an error: the unpacker keeps what it has, and the late reply is
 * dropped by msgid when the next call reads past it.
 */
#include "outcome_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

#define OC_READ_CHUNK (64u * 1024u)

struct oc_client {
        int fd;
        int dead;                /* 0, or the -errno that broke the stream */
        uint32_t next_msgid;     /* never 0: msgid 0 is the daemon's */
        uint32_t last_msgid;     /* last request begun */
        uint32_t awaiting;       /* request oc_call() will wait for, or 0 */
        unsigned timeout_ms;
        size_t max_reply;

        char *out;               /* queued, unsent bytes */
        size_t out_len, out_cap;
        bool out_failed;         /* an allocation failed while packing */
        msgpack_packer pk;

        msgpack_unpacker unp;
        char path[OC_SOCKET_PATH_MAX + 1];
};

static void oc__err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void oc__err(char *err, size_t errlen, const char *fmt, ...)
{
        if (err == NULL || errlen == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* ---- socket path resolution ------------------------------------------ */

/* Copy a chosen path to out after the contract's length check. */
static int oc__take_path(const char *p, const char *from, char *out, size_t outlen,
                         char *err, size_t errlen)
{
        size_t len = strlen(p);

        if (len == 0) {
                oc__err(err, errlen, "the socket path%s%s is empty", from ? " from " : "", from ? from : "");
                return -EINVAL;
        }
        if (len > OC_SOCKET_PATH_MAX) {
                oc__err(err, errlen, "the socket path%s%s is %zu bytes long, over the limit of %u bytes: %s",
                        from ? " from " : "", from ? from : "", len, OC_SOCKET_PATH_MAX, p);
                return -ENAMETOOLONG;
        }
        if (len >= outlen) {
                oc__err(err, errlen, "no room for the socket path %s", p);
                return -ENAMETOOLONG;
        }
        memcpy(out, p, len + 1);
        return 0;
}

static bool oc__exists(const char *p)
{
        struct stat st;

        return stat(p, &st) == 0;
}

int oc_socket_path(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
        if (path != NULL)
                return oc__take_path(path, NULL, out, outlen, err, errlen);

        const char *env = getenv(OC_SOCKET_ENV);
        if (env != NULL && env[0] != '\0')
                return oc__take_path(env, "$" OC_SOCKET_ENV, out, outlen, err, errlen);

        const char *xdg = getenv("XDG_RUNTIME_DIR");
        char *user = NULL;
        if (xdg != NULL && xdg[0] != '\0') {
                if (asprintf(&user, "%s/%s", xdg, OC_USER_SOCKET_NAME) < 0) {
                        oc__err(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                if (oc__exists(user)) {
                        int r = oc__take_path(user, "$XDG_RUNTIME_DIR", out, outlen, err, errlen);
                        free(user);
                        return r;
                }
        }
        if (oc__exists(OC_SYSTEM_SOCKET)) {
                free(user);
                return oc__take_path(OC_SYSTEM_SOCKET, "the system default", out, outlen, err, errlen);
        }
        if (user != NULL)
                oc__err(err, errlen, "no outcomed socket found: tried %s and %s (is outcomed running? "
                        "set $%s to its socket)", user, OC_SYSTEM_SOCKET, OC_SOCKET_ENV);
        else
                oc__err(err, errlen, "no outcomed socket found: tried %s ($XDG_RUNTIME_DIR is not set; "
                        "is outcomed running? set $%s to its socket)", OC_SYSTEM_SOCKET, OC_SOCKET_ENV);
        free(user);
        return -ENOENT;
}

/* ---- connection ------------------------------------------------------ */

/* msgpack_packer write callback: append to the output buffer. */
static int oc__write(void *data, const char *buf, size_t len)
{
        struct oc_client *c = data;

        if (c->out_failed)
                return -1;
        if (len > c->out_cap - c->out_len) {
                size_t cap = c->out_cap ? c->out_cap : 4096;
                while (cap - c->out_len < len) {
                        if (cap > SIZE_MAX / 2) {
                                c->out_failed = true;
                                return -1;
                        }
                        cap *= 2;
                }
                char *p = realloc(c->out, cap);
                if (p == NULL) {
                        c->out_failed = true;
                        return -1;
                }
                c->out = p;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, buf, len);
        c->out_len += len;
        return 0;
}

int oc_connect(struct oc_client **out, const char *path, char *err, size_t errlen)
{
        char p[OC_SOCKET_PATH_MAX + 1];
        int r = oc_socket_path(path, p, sizeof(p), err, errlen);
        if (r < 0)
                return r;

        struct oc_client *c = calloc(1, sizeof(*c));
        if (c == NULL) {
                oc__err(err, errlen, "out of memory");
                return -ENOMEM;
        }
        c->fd = -1;
        c->next_msgid = 1;
        c->max_reply = OC_DEFAULT_MAX_REPLY;
        memcpy(c->path, p, strlen(p) + 1);
        msgpack_packer_init(&c->pk, c, oc__write);
        if (!msgpack_unpacker_init(&c->unp, OC_READ_CHUNK)) {
                free(c);
                oc__err(err, errlen, "out of memory");
                return -ENOMEM;
        }

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                r = -errno;
                oc__err(err, errlen, "cannot create a socket: %s", strerror(errno));
                goto out;
        }
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, p, strlen(p) + 1);
        while (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno == EINTR)
                        continue;
                r = -errno;
                oc__err(err, errlen, "cannot connect to %s: %s%s", p, strerror(errno),
                        (errno == ENOENT || errno == ECONNREFUSED) ? " (is outcomed running?)" : "");
                goto out;
        }
        r = oc_set_timeout(c, OC_DEFAULT_TIMEOUT_MS);
        if (r < 0) {
                oc__err(err, errlen, "cannot set a timeout on %s: %s", p, strerror(-r));
                goto out;
        }
        *out = c;
        c = NULL;
out:
        oc_close(c);
        return r;
}

void oc_close(struct oc_client *c)
{
        if (c == NULL)
                return;
        if (c->fd >= 0)
                (void)close(c->fd);
        msgpack_unpacker_destroy(&c->unp);
        free(c->out);
        free(c);
}

const char *oc_path(const struct oc_client *c)
{
        return c->path;
}

int oc_set_timeout(struct oc_client *c, unsigned ms)
{
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        c->timeout_ms = ms;
        return 0;
}

void oc_set_max_reply(struct oc_client *c, size_t bytes)
{
        c->max_reply = bytes;
}

/* ---- sending --------------------------------------------------------- */

msgpack_packer *oc_begin(struct oc_client *c, const char *method)
{
        if (c == NULL)
                return NULL;
        uint32_t id = c->next_msgid++;
        if (c->next_msgid == 0)
                c->next_msgid = 1;
        c->last_msgid = id;
        c->awaiting = id;
        proto_pack_request_head(&c->pk, id, method);
        return &c->pk;
}

msgpack_packer *oc_begin_notify(struct oc_client *c, const char *method)
{
        if (c == NULL)
                return NULL;
        proto_pack_notify_head(&c->pk, method);
        return &c->pk;
}

uint32_t oc_last_msgid(const struct oc_client *c)
{
        return c->last_msgid;
}

static int oc__dead(struct oc_client *c, int r)
{
        c->dead = r;
        return r;
}

int oc_flush(struct oc_client *c, char *err, size_t errlen)
{
        if (c->out_failed) {
                c->out_failed = false;
                c->out_len = 0;
                oc__err(err, errlen, "out of memory while packing the request");
                return -ENOMEM;
        }
        if (c->dead) {
                c->out_len = 0;
                oc__err(err, errlen, "the connection to %s is unusable after an earlier error: %s",
                        c->path, strerror(-c->dead));
                return c->dead;
        }
        size_t off = 0;
        while (off < c->out_len) {
                ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
                if (n >= 0) {
                        off += (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                int r = (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
                if (r == -ETIMEDOUT)
                        oc__err(err, errlen, "the daemon at %s took no more data for %u ms",
                                c->path, c->timeout_ms);
                else
                        oc__err(err, errlen, "cannot send to %s: %s", c->path, strerror(-r));
                c->out_len = 0;
                return oc__dead(c, r);
        }
        c->out_len = 0;
        return 0;
}

int oc_notify(struct oc_client *c, char *err, size_t errlen)
{
        return oc_flush(c, err, errlen);
}

/* ---- receiving ------------------------------------------------------- */

/* Read one complete msgpack object into *up (which must be freshly
 * initialized: the unpacker frees what it held). */
static int oc__read_object(struct oc_client *c, msgpack_unpacked *up, char *err, size_t errlen)
{
        if (c->dead) {
                oc__err(err, errlen, "the connection to %s is unusable after an earlier error: %s",
                        c->path, strerror(-c->dead));
                return c->dead;
        }
        for (;;) {
                msgpack_unpack_return ret = msgpack_unpacker_next(&c->unp, up);
                if (ret == MSGPACK_UNPACK_SUCCESS)
                        return 0;
                if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
                        oc__err(err, errlen, "out of memory while reading a reply");
                        return oc__dead(c, -ENOMEM);
                }
                if (ret != MSGPACK_UNPACK_CONTINUE) {
                        oc__err(err, errlen, "the daemon at %s sent bytes that are not msgpack", c->path);
                        return oc__dead(c, -EPROTO);
                }
                if (msgpack_unpacker_message_size(&c->unp) > c->max_reply) {
                        oc__err(err, errlen, "a reply from %s is larger than %zu bytes", c->path,
                                c->max_reply);
                        return oc__dead(c, -EMSGSIZE);
                }
                if (!msgpack_unpacker_reserve_buffer(&c->unp, OC_READ_CHUNK)) {
                        oc__err(err, errlen, "out of memory while reading a reply");
                        return oc__dead(c, -ENOMEM);
                }
                ssize_t n = recv(c->fd, msgpack_unpacker_buffer(&c->unp),
                                 msgpack_unpacker_buffer_capacity(&c->unp), 0);
                if (n > 0) {
                        msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
                        continue;
                }
                if (n == 0) {
                        oc__err(err, errlen, "the daemon at %s closed the connection", c->path);
                        return oc__dead(c, -ECONNRESET);
                }
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        oc__err(err, errlen, "no answer from the daemon at %s within %u ms", c->path,
                                c->timeout_ms);
                        return -ETIMEDOUT;
                }
                int r = -errno;
                oc__err(err, errlen, "cannot read from %s: %s", c->path, strerror(errno));
                return oc__dead(c, r);
        }
}

static char *oc__strdup_obj(const msgpack_object *o)
{
        const char *s = "";
        size_t len = 0;

        if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
                s = o->via.str.ptr;
                len = o->via.str.size;
        }
        char *p = malloc(len + 1);
        if (p != NULL) {
                memcpy(p, s, len);
                p[len] = '\0';
        }
        return p;
}

/* Split the response in up into r (taking up's memory).  Returns 1 for a
 * message that is no response but may be ignored (a notification). */
static int oc__take_reply(struct oc_client *c, msgpack_unpacked *up, struct oc_reply *r,
                          char *err, size_t errlen)
{
        const msgpack_object *o = &up->data;
        if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3 &&
            o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.array.ptr[0].via.u64 == PROTO_NOTIFY)
                return 1;

        uint32_t msgid;
        const msgpack_object *error = NULL, *result = NULL;
        if (proto_parse_response(o, &msgid, &error, &result) < 0) {
                oc__err(err, errlen, "the daemon at %s sent a message that is not a response", c->path);
                return oc__dead(c, -EPROTO);
        }

        struct oc_reply rep = { .msgid = msgid, .error = PROTO_OK };
        if (error != NULL) {
                const msgpack_object *code = NULL, *msg = NULL;
                if (error->type == MSGPACK_OBJECT_MAP) {
                        code = proto_map_get(error, "code");
                        msg = proto_map_get(error, "message");
                } else {
                        msg = error;   /* not the contract's shape: keep the text */
                }
                rep.code = oc__strdup_obj(code);
                rep.message = oc__strdup_obj(msg);
                if (rep.code == NULL || rep.message == NULL) {
                        free(rep.code);
                        free(rep.message);
                        oc__err(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                if (rep.code[0] == '\0') {
                        free(rep.code);
                        rep.code = strdup("error");
                        if (rep.code == NULL) {
                                free(rep.message);
                                oc__err(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                }
                rep.error = proto_error_parse(rep.code, strlen(rep.code));
        } else {
                rep.result = result;
        }
        rep.unpacked = *up;   /* the zone (and the objects in it) move to the reply */
        msgpack_unpacked_init(up);
        *r = rep;
        return 0;
}

int oc_recv(struct oc_client *c, struct oc_reply *reply, char *err, size_t errlen)
{
        int r = 0;

        if (c->out_len > 0 || c->out_failed) {
                r = oc_flush(c, err, errlen);
                if (r < 0)
                        return r;
        }
        for (;;) {
                msgpack_unpacked up;
                msgpack_unpacked_init(&up);
                r = oc__read_object(c, &up, err, errlen);
                if (r == 0)
                        r = oc__take_reply(c, &up, reply, err, errlen);
                msgpack_unpacked_destroy(&up);
                if (r != 1)
                        return r;
        }
}

int oc_call(struct oc_client *c, struct oc_reply *reply, char *err, size_t errlen)
{
        uint32_t want = c->awaiting;

        if (want == 0) {
                oc__err(err, errlen, "no request to wait for: oc_begin() first");
                return -EINVAL;
        }
        c->awaiting = 0;

        int r = oc_flush(c, err, errlen);
        if (r == -EPIPE || r == -ECONNRESET) {
                /* The daemon may have closed the connection after saying
                 * why (a refused connection, a message too large): that
                 * reply is worth more than EPIPE. */
                char sub[8];
                c->dead = 0;
                struct oc_reply rep;
                if (oc_recv(c, &rep, sub, sizeof(sub)) == 0) {
                        if (rep.msgid == 0 && rep.code != NULL) {
                                c->dead = r;
                                *reply = rep;
                                return 0;
                        }
                        oc_reply_destroy(&rep);
                }
                c->dead = r;
        }
        if (r < 0)
                return r;

        for (;;) {
                struct oc_reply rep;
                r = oc_recv(c, &rep, err, errlen);
                if (r < 0)
                        return r;
                if (rep.msgid == want || rep.msgid == 0) {
                        *reply = rep;
                        return 0;
                }
                oc_reply_destroy(&rep);   /* a reply to an earlier request */
        }
}

void oc_reply_destroy(struct oc_reply *reply)
{
        if (reply == NULL)
                return;
        free(reply->code);
        free(reply->message);
        msgpack_unpacked_destroy(&reply->unpacked);
        memset(reply, 0, sizeof(*reply));
}

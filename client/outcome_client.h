/* outcome_client.h - a small blocking client for outcomed's msgpack-RPC
 * socket, used by outcomectl and linkable by a C router.
 *
 * One struct oc_client is one connection; it is not thread-safe (use one
 * per thread).  A call goes in three steps:
 *
 *         msgpack_packer *pk = oc_begin(c, "start");
 *         msgpack_pack_array(pk, 1);        // the params: [{...}] or []
 *         msgpack_pack_map(pk, 2);
 *         ...
 *         struct oc_reply r;
 *         int rc = oc_call(c, &r, err, sizeof(err));
 *         if (rc < 0)              -> transport failure (-errno, text in err)
 *         else if (r.code)         -> the daemon answered an error
 *         else                     -> r.result is the result object
 *         oc_reply_destroy(&r);
 *
 * oc_begin() only appends to an output buffer, so several requests (and
 * notifications, oc_begin_notify()) may be queued before one oc_flush() or
 * oc_call(): that is pipelining.  oc_call() returns the reply to the last
 * request begun and drops the replies to earlier ones; use oc_flush() and
 * oc_recv() to collect every reply (they come back in request order).
 *
 * A reply with msgid 0 is the daemon's word on the whole connection (a
 * refused connection, bytes that were not msgpack, a message over the size
 * limit; the daemon closes it afterwards).  The client never uses msgid 0,
 * so oc_call() hands such a reply back as the answer it was waiting for.
 *
 * Functions return 0 or a negative errno and write a sentence into the
 * caller's err buffer (which may be NULL).  Output parameters are written
 * only on success.
 */
#ifndef OUTCOME_CLIENT_H
#define OUTCOME_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Where the daemon listens when nothing else is said. */
#define OC_SYSTEM_SOCKET "/run/outcomed/outcomed.sock"
#define OC_USER_SOCKET_NAME "outcomed.sock"   /* under $XDG_RUNTIME_DIR */
#define OC_SOCKET_ENV "OUTCOMED_SOCKET"
#define OC_SOCKET_PATH_MAX 107u               /* sizeof(sun_path) - 1 */

#define OC_DEFAULT_TIMEOUT_MS 30000u
#define OC_DEFAULT_MAX_REPLY ((size_t)256 << 20)  /* 256 MiB */

struct oc_client;

/* A response.  On a daemon error `code` and `message` are set (NUL-terminated
 * copies; `error` is the matching enum proto_error, or -EINVAL for a code
 * this client does not know) and `result` is NULL.  On success `code` is NULL and
 * `result` points at the result object (possibly nil), valid until
 * oc_reply_destroy(). */
struct oc_reply {
        uint32_t msgid;
        int error;
        char *code;
        char *message;
        const msgpack_object *result;
        msgpack_unpacked unpacked;   /* private: owns the objects */
};

/* Pick the socket path as the contract says for a client: `path` when not
 * NULL, else $OUTCOMED_SOCKET, else the first that exists of
 * $XDG_RUNTIME_DIR/outcomed.sock and /run/outcomed/outcomed.sock.  An empty
 * environment variable counts as unset.  Fails with -ENAMETOOLONG for a path
 * over 107 bytes, -EINVAL for an empty one, -ENOENT when no candidate
 * exists (err then names the paths tried). */
int oc_socket_path(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Resolve the path as above and connect.  err names the path on failure. */
int oc_connect(struct oc_client **out, const char *path, char *err, size_t errlen);
void oc_close(struct oc_client *c);   /* NULL is fine */

/* The socket path in use. */
const char *oc_path(const struct oc_client *c);

/* Bound the wait for the daemon on each read and write, in milliseconds
 * (0: wait forever).  The default is OC_DEFAULT_TIMEOUT_MS.  A call that
 * times out returns -ETIMEDOUT; its reply, if it comes later, is dropped. */
int oc_set_timeout(struct oc_client *c, unsigned ms);

/* Refuse replies larger than `bytes` (-EMSGSIZE); default OC_DEFAULT_MAX_REPLY. */
void oc_set_max_reply(struct oc_client *c, size_t bytes);

/* Append the head of a request [0, msgid, method, ...] or of a notification
 * [2, method, ...] to the output buffer and return the packer for the
 * params array, which the caller packs next.  Never NULL for a valid c; an
 * allocation failure while packing is reported by the next oc_flush(). */
msgpack_packer *oc_begin(struct oc_client *c, const char *method);
msgpack_packer *oc_begin_notify(struct oc_client *c, const char *method);

/* The msgid of the last request begun (0 before any). */
uint32_t oc_last_msgid(const struct oc_client *c);

/* Send everything queued. */
int oc_flush(struct oc_client *c, char *err, size_t errlen);

/* Send what is queued (the notification begun last, usually).  Never waits
 * for an answer: a notification has none. */
int oc_notify(struct oc_client *c, char *err, size_t errlen);

/* Send what is queued and wait for the reply to the last request begun
 * (or for a connection-level reply with msgid 0).  Returns 0 with *reply
 * filled whether the daemon answered a result or an error. */
int oc_call(struct oc_client *c, struct oc_reply *reply, char *err, size_t errlen);

/* Read the next response, whatever its msgid (after oc_flush()). */
int oc_recv(struct oc_client *c, struct oc_reply *reply, char *err, size_t errlen);

/* Free a reply filled by oc_call()/oc_recv(); a zeroed one and NULL are fine. */
void oc_reply_destroy(struct oc_reply *reply);

#endif

/* server.h - the Unix socket listener and its connections, on the libuv
 * loop: read buffers, message framing (proto_skim, then msgpack-c decodes
 * each complete message in place), size limits, replies written in
 * request order (replyq.h), peer credentials. */
#ifndef OUTCOMED_SERVER_H
#define OUTCOMED_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "rpc.h"

struct server;

/* Bind cfg->socket_path (refusing when another daemon answers on it,
 * removing a stale socket file) and listen.  Returns 0 or a negative errno
 * with err filled. */
int server_start(struct server **out, uv_loop_t *loop, struct rpc_env *env,
                 const struct config *cfg, char *err, size_t errlen);
/* Serve on a listening socket passed by the service manager (socket
 * activation, notify_listen_fd).  The socket file belongs to the socket
 * unit: it is never removed, and its mode and group are the unit's.  The
 * server owns fd from here on, even when this fails. */
int server_start_fd(struct server **out, uv_loop_t *loop, struct rpc_env *env,
                    const struct config *cfg, int fd, char *err, size_t errlen);
struct commit;
/* Hold replies to changes until their batch is committed (durability ack),
 * and release or fail them from the commit's hooks. */
void server_attach_commit(struct server *s, struct commit *commit);
/* Stop listening, remove the socket file (unless it was passed), close
 * every connection.  Memory is freed in close callbacks: run the loop
 * afterwards.  Accepts NULL. */
void server_stop(struct server *s);
/* The path the Unix socket fd is bound to, into buf.  Returns 0, or
 * -EAFNOSUPPORT (not a socket with a path), -ENAMETOOLONG, or an errno. */
int server_socket_path(int fd, char *buf, size_t len);

#endif

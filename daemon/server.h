/* server.h - the Unix socket listener and its connections, on the libuv
 * loop: read buffers, message framing with msgpack-c's streaming unpacker,
 * size limits, replies written in request order, peer credentials. */
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
/* Stop listening, remove the socket file, close every connection.  Memory
 * is freed in close callbacks: run the loop afterwards.  Accepts NULL. */
void server_stop(struct server *s);

#endif

/* notify.h - talking to the service manager (systemd): the listening
 * socket it passed (socket activation, LISTEN_FDS), readiness, a status
 * line, watchdog keep-alives and stopping (sd_notify, NOTIFY_SOCKET).
 *
 * Built on libsystemd's sd-daemon when meson found it (option `systemd`);
 * without it, on a small implementation of the same documented, stable
 * protocols, so a Type=notify unit works with either build.  When the
 * daemon was not started by a service manager every call does nothing and
 * returns 0.  Only the loop thread calls these. */
#ifndef OUTCOMED_NOTIFY_H
#define OUTCOMED_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* The listening socket passed for this process (LISTEN_PID, LISTEN_FDS),
 * checked to be one listening AF_UNIX stream socket and made close-on-exec;
 * the LISTEN_* variables are removed from the environment.  *fd is -1 when
 * nothing was passed.  -EINVAL: more than one socket, -ENOTSOCK: not a
 * listening Unix stream socket. */
int notify_listen_fd(int *fd);

/* True when NOTIFY_SOCKET is set: the service manager listens. */
bool notify_enabled(void);

/* The watchdog interval asked for this process (WATCHDOG_USEC, and
 * WATCHDOG_PID when set), or 0 when there is none. */
uint64_t notify_watchdog_usec(void);

/* READY=1 with a STATUS= line (status may be NULL). */
int notify_ready(const char *status);
/* STATUS= only. */
int notify_status(const char *status);
/* RELOADING=1 (a READY=1 follows when the reload is done). */
int notify_reloading(void);
/* STOPPING=1 with a STATUS= line (may be NULL). */
int notify_stopping(const char *status);
/* WATCHDOG=1: the loop is alive. */
int notify_watchdog(void);

#endif

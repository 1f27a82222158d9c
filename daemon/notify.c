/* notify.c - the service manager's side channels: socket activation and
 * sd_notify (see notify.h).
 *
 * With OUTCOMED_HAVE_LIBSYSTEMD the work is done by sd-daemon.  Without it
 * the same protocols are spoken directly, as sd_listen_fds(3) and
 * sd_notify(3) describe them: passed sockets start at fd 3 and are counted
 * by LISTEN_FDS when LISTEN_PID is our pid; a notification is one datagram
 * of NEWLINE-separated VAR=VALUE lines sent to the AF_UNIX address in
 * NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef OUTCOMED_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define NOTIFY__FDS_START 3

#ifndef OUTCOMED_HAVE_LIBSYSTEMD
/* "123" as a number; -1 when it is not one. */
static long long notify__parse_num(const char *s)
{
        char *end;
        if (!s || !*s || *s == '-' || *s == '+')
                return -1;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > (unsigned long long)INT64_MAX)
                return -1;
        return (long long)v;
}
#endif

/* ---- sockets ----------------------------------------------------------- */

/* One listening AF_UNIX SOCK_STREAM socket? */
static int notify__check_socket(int fd)
{
#ifdef OUTCOMED_HAVE_LIBSYSTEMD
        int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
        if (r < 0)
                return r;
        return r > 0 ? 0 : -ENOTSOCK;
#else
        int v;
        socklen_t len = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0)
                return -errno;
        if (v != AF_UNIX)
                return -ENOTSOCK;
        len = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
                return -errno;
        if (v != SOCK_STREAM)
                return -ENOTSOCK;
        len = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
                return -errno;
        return v ? 0 : -ENOTSOCK;
#endif
}

/* How many sockets were passed to this process (0: none). */
static int notify__listen_fds(void)
{
#ifdef OUTCOMED_HAVE_LIBSYSTEMD
        return sd_listen_fds(1);
#else
        long long pid = notify__parse_num(getenv("LISTEN_PID"));
        long long n = notify__parse_num(getenv("LISTEN_FDS"));
        int r = 0;
        if (pid < 0 || n < 0 || pid != (long long)getpid())
                goto out; /* not for us (or not at all) */
        if (n > 1024) {
                r = -EINVAL;
                goto out;
        }
        for (int fd = NOTIFY__FDS_START; fd < NOTIFY__FDS_START + (int)n; fd++) {
                int flags = fcntl(fd, F_GETFD);
                if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
                        r = -errno;
                        goto out;
                }
        }
        r = (int)n;
out:
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return r;
#endif
}

int notify_listen_fd(int *fd)
{
        int n = notify__listen_fds();
        if (n < 0)
                return n;
        if (n == 0) {
                *fd = -1;
                return 0;
        }
        if (n > 1)
                return -EINVAL; /* one ListenStream= only */
        int r = notify__check_socket(NOTIFY__FDS_START);
        if (r < 0)
                return r;
        *fd = NOTIFY__FDS_START;
        return 0;
}

/* ---- notifications ----------------------------------------------------- */

bool notify_enabled(void)
{
        const char *e = getenv("NOTIFY_SOCKET");
        return e && *e;
}

uint64_t notify_watchdog_usec(void)
{
#ifdef OUTCOMED_HAVE_LIBSYSTEMD
        uint64_t usec = 0;
        return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
#else
        long long usec = notify__parse_num(getenv("WATCHDOG_USEC"));
        const char *p = getenv("WATCHDOG_PID");
        if (usec <= 0)
                return 0;
        if (p && *p && notify__parse_num(p) != (long long)getpid())
                return 0; /* meant for another process */
        return (uint64_t)usec;
#endif
}

static int notify__send(const char *msg)
{
#ifdef OUTCOMED_HAVE_LIBSYSTEMD
        int r = sd_notify(0, msg);
        return r < 0 ? r : 0;
#else
        const char *e = getenv("NOTIFY_SOCKET");
        if (!e || !*e)
                return 0;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(e);
        if ((e[0] != '/' && e[0] != '@') || len > sizeof(sa.sun_path))
                return -EAFNOSUPPORT;
        memcpy(sa.sun_path, e, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = '\0'; /* an abstract address */
        socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
                r = -errno;
        (void)close(fd);
        return r;
#endif
}

/* "HEAD" plus "\nSTATUS=status" when status is given. */
static int notify__send_status(const char *head, const char *status)
{
        char msg[1024];
        if (!notify_enabled())
                return 0;
        if (status)
                snprintf(msg, sizeof(msg), "%s%sSTATUS=%s", head, *head ? "\n" : "", status);
        else
                snprintf(msg, sizeof(msg), "%s", head);
        return notify__send(msg);
}

int notify_ready(const char *status)
{
        return notify__send_status("READY=1", status);
}

int notify_status(const char *status)
{
        return notify__send_status("", status ? status : "");
}

int notify_reloading(void)
{
        /* MONOTONIC_USEC is what Type=notify-reload (systemd 253) wants. */
        char head[96];
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
                 (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
        return notify__send_status(head, "reloading the configuration");
}

int notify_stopping(const char *status)
{
        return notify__send_status("STOPPING=1", status);
}

int notify_watchdog(void)
{
        return notify__send_status("WATCHDOG=1", NULL);
}

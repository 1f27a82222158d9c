/* ctl_hosts.c - `outcomectl hosts`: the hosts of the fleet ([fleet]) whose
 * evidence this daemon sums, from the daemon's `hosts` method. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int print_hosts(struct ctl *ctl, const msgpack_object *res, void *arg)
{
        (void)ctl;
        (void)arg;
        size_t len, slen, tlen;
        const char *self = ctl_get_str(res, "host_id", &slen);
        const char *state = ctl_get_str(res, "state", &tlen);
        fputs("this host: ", stdout);
        ctl_put_text(self ? self : "?", self ? slen : 1, 0);
        fputs(" (", stdout);
        ctl_put_text(state ? state : "?", state ? tlen : 1, 0);
        fputs(")\n", stdout);
        const msgpack_object *hosts = ctl_get(res, "hosts");
        int width = 7;
        for (uint32_t i = 0; hosts && hosts->type == MSGPACK_OBJECT_ARRAY && i < hosts->via.array.size; i++)
                if (ctl_get_str(&hosts->via.array.ptr[i], "host_id", &len) && (int)len > width)
                        width = (int)len;
        printf("%-*s %10s %8s  %s\n", width, "HOST_ID", "VERSION", "ROWS", "SEEN");
        for (uint32_t i = 0; hosts && hosts->type == MSGPACK_OBJECT_ARRAY && i < hosts->via.array.size; i++) {
                const msgpack_object *h = &hosts->via.array.ptr[i];
                char version[32], rows[32], seen[32];
                const char *id = ctl_get_str(h, "host_id", &len);
                ctl_put_text(id ? id : "?", id ? len : 1, width);
                ctl_fmt_num(version, sizeof(version), ctl_get(h, "version"), 0, false);
                ctl_fmt_num(rows, sizeof(rows), ctl_get(h, "rows"), 0, false);
                ctl_fmt_time(seen, sizeof(seen), ctl_get(h, "seen_at"));
                const msgpack_object *me = ctl_get(h, "self");
                printf(" %10s %8s  %s%s\n", version, rows, seen,
                       me && me->type == MSGPACK_OBJECT_BOOLEAN && me->via.boolean ? "  (this host)"
                                                                                : "");
        }
        return CTL_EXIT_OK;
}

CTL_NOARGS_COMMAND(hosts, print_hosts,
        "list the fleet's hosts whose evidence is summed ([fleet])",
        "Usage: outcomectl hosts\n"
        "\n"
        "List the hosts that share their evidence through PostgreSQL with this daemon\n"
        "(its [fleet] section), as this daemon last read them: each host_id, the version\n"
        "of its last batch, how many evidence rows it has and when it was last seen.\n"
        "Hosts not seen for [fleet] host_ttl_days leave the list and the sums.  The\n"
        "first line gives this daemon's host_id and sync state (ok, connecting, down,\n"
        "host_only, duplicate_host_id; see `outcomectl stats`).\n"
        "It takes the common options only (-s, -j, --timeout, -h: 'outcomectl --help').\n"
        "For a script: outcomectl --json hosts | jq -r '.hosts[].host_id'\n");

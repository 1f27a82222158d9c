/* ctl_scan.c - outcomectl scan: run a git scan now and show what it judged.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int print_scan(struct ctl *ctl, const msgpack_object *m, void *arg)
{
        (void)ctl;
        (void)arg;
        const msgpack_object *judged = ctl_get(m, "judged");
        if (judged == NULL || judged->type != MSGPACK_OBJECT_ARRAY)
                return CTL_PRINT_JSON;
        uint32_t n = judged->via.array.size;
        if (n)
                printf("%-24s %-18s %s\n", "TRACE_ID", "KIND", "EVIDENCE");
        for (uint32_t i = 0; i < n; i++) {
                const msgpack_object *j = &judged->via.array.ptr[i];
                size_t len = 0;
                const char *s = ctl_get_str(j, "trace_id", &len);
                ctl_put_text(s ? s : "-", s ? len : 1, 24);
                putchar(' ');
                s = ctl_get_str(j, "kind", &len);
                ctl_put_text(s ? s : "-", s ? len : 1, 18);
                putchar(' ');
                s = ctl_get_str(j, "evidence", &len);
                ctl_put_text(s ? s : "", s ? len : 0, 0);
                putchar('\n');
        }
        char repos[32], ms[32];
        ctl_fmt_num(repos, sizeof(repos), ctl_get(m, "repos"), 0, false);
        ctl_fmt_num(ms, sizeof(ms), ctl_get(m, "duration_ms"), 0, false);
        printf("scanned %s repositor%s in %s ms; judged %u\n", repos,
               strcmp(repos, "1") == 0 ? "y" : "ies", ms, n);
        return CTL_EXIT_OK;
}

CTL_NOARGS_COMMAND(scan, print_scan,
        "judge pending code traces by their git repositories now",
        "Usage: outcomectl scan\n"
        "\n"
        "Ask the daemon to scan its watched git repositories now (it also does every\n"
        "[git] scan_interval_s) and wait until that scan is done.  Each pending completed\n"
        "code trace is judged by what happened to its files since it started: applied,\n"
        "signature_changed, body_modified, symbol_added, modified or ignored (see\n"
        "\"Watching a repository\" in the README).  Prints the traces judged, with the\n"
        "evidence, then how many repositories were scanned and how long it took.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Example:\n"
        "  outcomectl scan\n"
        "  outcomectl --json scan\n");

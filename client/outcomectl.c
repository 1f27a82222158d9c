/* outcomectl.c - the command-line client of outcomed: global options, the
 * command table and the top-level help.  The commands live in
 * ctl_trace.c (start, complete, fail, outcome), ctl_query.c (query, ping,
 * stats), ctl_profiles.c (forget, export, import), ctl_rank.c, ctl_scan.c,
 * ctl_metrics.c, ctl_top.c, ctl_history.c, ctl_hosts.c and ctl_report.c; the shared helpers in ctl.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#ifndef OUTCOMED_VERSION
#define OUTCOMED_VERSION "unknown"
#endif

static const struct ctl_command *const commands[] = {
        &ctl_cmd_start, &ctl_cmd_complete, &ctl_cmd_fail, &ctl_cmd_outcome,
        &ctl_cmd_query, &ctl_cmd_rank, &ctl_cmd_forget, &ctl_cmd_export, &ctl_cmd_import,
        &ctl_cmd_ping, &ctl_cmd_stats, &ctl_cmd_top,
        &ctl_cmd_scan, &ctl_cmd_metrics, &ctl_cmd_history, &ctl_cmd_hosts, &ctl_cmd_report,
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
        fputs("Usage: outcomectl [OPTIONS] COMMAND [ARGS]\n"
              "\n"
              "Talk to outcomed, the daemon that learns how well each LLM model does per task.\n"
              "\n"
              "Commands:\n", f);
        for (size_t i = 0; i < N_COMMANDS; i++)
                fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
        fputs("  help       show the help of a command: outcomectl help COMMAND\n"
              "\n"
              "Options (also accepted after COMMAND):\n"
              "  -s, --socket PATH   the daemon's socket (see Socket below)\n"
              "  -j, --json          print the daemon's result as one line of JSON\n"
              "      --timeout SECS  give up when the daemon has not answered within SECS\n"
              "                      seconds (default 30; 0 waits forever)\n"
              "  -h, --help          show this help (after COMMAND: that command's help)\n"
              "  -V, --version       print the version and exit\n"
              "\n"
              "Socket: the first of\n"
              "  1. --socket PATH\n"
              "  2. $OUTCOMED_SOCKET (when set and not empty)\n"
              "  3. $XDG_RUNTIME_DIR/outcomed.sock, if it exists (your own daemon)\n"
              "  4. /run/outcomed/outcomed.sock, if it exists (the machine's daemon)\n"
              "A path longer than 107 bytes is refused.\n"
              "\n"
              "Exit status:\n"
              "  0  success\n"
              "  1  the daemon answered an error, printed as 'outcomectl: CODE: MESSAGE'\n"
              "     (CODE is one of bad_request, unknown_method, unknown_trace,\n"
              "     duplicate_trace, already_completed, too_large, overloaded, forbidden,\n"
              "     unavailable, internal); also export, import and metrics --output\n"
              "     when their FILE cannot be written, read or parsed\n"
              "  2  usage error: a bad command, option or value\n"
              "  3  the daemon cannot be reached: no socket, connection refused, timeout,\n"
              "     or the connection was lost\n"
              "\n"
              "Examples:\n"
              "  id=$(outcomectl start --model gpt-4o --task code --reason 'cheapest fit')\n"
              "  outcomectl complete \"$id\" --latency-ms 812 --input-tokens 900 --output-tokens 240\n"
              "  outcomectl outcome \"$id\" accepted --confidence 0.9\n"
              "  outcomectl query --task code\n"
              "  outcomectl --json query --pending --limit 10\n"
              "  outcomectl top\n"
              "  outcomectl export | ssh newhost outcomectl import -\n"
              "  OUTCOMED_SOCKET=/tmp/o.sock outcomectl ping\n"
              "  outcomectl metrics | promtool check metrics\n"
              "\n"
              "Run 'outcomectl COMMAND --help' for the arguments of COMMAND.  Put -- before a\n"
              "TRACE_ID that starts with '-'.\n", f);
}

static const struct ctl_command *find_command(const char *name)
{
        for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i]->name, name) == 0)
                        return commands[i];
        return NULL;
}

/* `outcomectl help [COMMAND]` */
static int run_help(struct ctl *ctl, int argc, char **argv)
{
        if (argc < 2) {
                usage(stdout);
                return CTL_EXIT_OK;
        }
        const struct ctl_command *cmd = find_command(argv[1]);
        if (cmd == NULL)
                return ctl_usage(ctl, "no command '%s'", argv[1]);
        fputs(cmd->help, stdout);
        return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                CTL_COMMON_OPTIONS,
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        struct ctl ctl = { .timeout_ms = OC_DEFAULT_TIMEOUT_MS };
        int opt, status;

        /* '+': stop at the command; its own options are parsed by it. */
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "+:s:jhV", opts, NULL)) != -1) {
                switch (opt) {
                case 'h':
                        usage(stdout);
                        return CTL_EXIT_OK;
                case 'V':
                        printf("outcomectl %s\n", OUTCOMED_VERSION);
                        return CTL_EXIT_OK;
                case 's':
                case 'j':
                case CTL_OPT_TIMEOUT:
                        status = ctl_common_option(&ctl, opt, optarg);
                        if (status != 0)
                                return status;
                        break;
                default:
                        return ctl_getopt_error(&ctl, opt, argv, "sjhV");
                }
        }
        if (optind >= argc)
                return ctl_usage(&ctl, "no command given");

        argc -= optind;
        argv += optind;
        if (strcmp(argv[0], "help") == 0)
                return run_help(&ctl, argc, argv);
        ctl.cmd = find_command(argv[0]);
        if (ctl.cmd == NULL)
                return ctl_usage(&ctl, "unknown command '%s'", argv[0]);

        optind = 0;   /* re-initialize getopt for the command's argv */
        status = ctl.cmd->run(&ctl, argc, argv);
        oc_close(ctl.client);
        if (fflush(stdout) != 0 && status == CTL_EXIT_OK) {
                perror("outcomectl: cannot write the output");
                status = CTL_EXIT_DAEMON;
        }
        return status;
}

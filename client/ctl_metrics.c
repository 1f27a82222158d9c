/* ctl_metrics.c - outcomectl metrics: the daemon's metrics as Prometheus
 * text, for node-exporter's textfile collector (systemd/outcomed-metrics.*)
 * or any scraper that reads a file.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int run_metrics(struct ctl *ctl, int argc, char **argv)
{
        static const struct option opts[] = {
                CTL_COMMON_OPTIONS,
                { NULL, 0, NULL, 0 },
        };
        struct oc_reply reply = { 0 };
        int opt, status;

        while ((opt = ctl_getopt(ctl, argc, argv, opts, &status)) != -1)
                if (opt == CTL_GETOPT_STOP)
                        return status;
        if (optind < argc)
                return ctl_usage(ctl, "unexpected argument '%s'", argv[optind]);
        msgpack_packer *pk = ctl_begin(ctl, "metrics");
        if (pk == NULL)
                return CTL_EXIT_CONNECT;
        msgpack_pack_array(pk, 0);
        status = ctl_call(ctl, &reply);
        if (status != CTL_EXIT_OK)
                return status;

        size_t len = 0;
        const char *text = reply.result ? ctl_get_str(reply.result, "text", &len) : NULL;
        if (ctl->json || text == NULL)
                status = ctl_print_json(reply.result);
        else
                fwrite(text, 1, len, stdout); /* the text ends with its own newline */
        oc_reply_destroy(&reply);
        return status;
}

const struct ctl_command ctl_cmd_metrics = {
        .name = "metrics",
        .run = run_metrics,
        .summary = "print the daemon's metrics in Prometheus text format",
        .help =
        "Usage: outcomectl metrics\n"
        "\n"
        "Print the daemon's metrics in the Prometheus text exposition format: per model\n"
        "and task, gen_ai_client_operation_duration_seconds and gen_ai_client_token_usage\n"
        "histograms, outcomed_calls_total and outcomed_outcomes_total counters (counted\n"
        "since the daemon started), outcomed_quality and outcomed_posterior_* gauges;\n"
        "then pending traces, connections, commits, journal rows, scans and refusals by\n"
        "limit.  See \"Metrics\" in the README.\n"
        "\n"
        "The outcomed-metrics.timer unit writes this text every 15 seconds to\n"
        "/var/lib/prometheus/node-exporter/outcomed.prom, for node-exporter's textfile\n"
        "collector.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'; with --json the result is\n"
        "                    {\"text\": \"...\"}\n"
        "\n"
        "Examples:\n"
        "  outcomectl metrics | grep '^outcomed_calls_total'\n"
        "  outcomectl metrics > /tmp/m.prom && promtool check metrics < /tmp/m.prom\n",
};

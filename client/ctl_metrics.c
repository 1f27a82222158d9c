/* ctl_metrics.c - outcomectl metrics: the daemon's metrics as Prometheus
 * text, for node-exporter's textfile collector (systemd/outcomed-metrics.*)
 * or any scraper that reads a file.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

struct text {
        const char *p;
        size_t len;
};

static int write_text(FILE *f, void *arg)
{
        const struct text *t = arg;
        return fwrite(t->p, 1, t->len, f) == t->len ? 0 : -1;
}

/* The text to standard output, or to the --output file (arg). */
static int print_metrics(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        const char *output = arg;
        struct text t = { 0 };
        char err[1024];

        (void)ctl;
        t.p = ctl_get_str(result, "text", &t.len);
        if (t.p == NULL)
                return CTL_PRINT_JSON;
        if (output == NULL) {
                fwrite(t.p, 1, t.len, stdout); /* the text ends with its own newline */
        } else if (ctl_write_file(output, write_text, &t, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomectl: metrics: %s\n", err);
                return CTL_EXIT_DAEMON;
        }
        return CTL_EXIT_OK;
}

static int run_metrics(struct ctl *ctl, int argc, char **argv)
{
        const char *output = NULL;
        const struct ctl_opt opts[] = {
                CTL_STR("output", &output),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 0, "");
        if (status != CTL_GO)
                return status;
        if (output && output[0] == '\0')
                return ctl_usage(ctl, "--output: FILE must not be empty");
        if (output && ctl->json)
                return ctl_usage(ctl, "--output and --json do not go together");
        return ctl_reply_noargs(ctl, "metrics", print_metrics, (void *)output);
}

CTL_COMMAND(metrics, run_metrics,
        "print the daemon's metrics in Prometheus text format",
        "Usage: outcomectl metrics [--output FILE]\n"
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
        "  --output FILE     write the text to FILE instead: to a temporary file in the\n"
        "                    same directory, renamed over FILE once complete, so that a\n"
        "                    reader sees the old text or the new one, never a part; FILE\n"
        "                    is left as it was when the daemon cannot be reached (exit 3)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'; with --json the result is\n"
        "                    {\"text\": \"...\"}\n"
        "\n"
        "Examples:\n"
        "  outcomectl metrics | grep '^outcomed_calls_total'\n"
        "  outcomectl metrics | promtool check metrics\n"
        "  outcomectl metrics --output /var/lib/prometheus/node-exporter/outcomed.prom\n");

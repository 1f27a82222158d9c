/* ctl_trace.c - outcomectl's commands along a trace's life: start,
 * complete, fail and outcome (single and sequence forms).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "proto.h"

/* Print "WORD TRACE_ID" (arg: WORD, or NULL for the id alone) from a
 * {"trace_id"} result. */
static int print_trace_id(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        const char *word = arg;
        size_t len;
        const char *id = ctl_get_str(result, "trace_id", &len);

        (void)ctl;
        if (id == NULL)
                return CTL_PRINT_JSON;
        if (word != NULL)
                printf("%s ", word);
        ctl_put_text(id, len, 0);
        putchar('\n');
        return CTL_EXIT_OK;
}

/* ---- start ------------------------------------------------------------ */

static int run_start(struct ctl *ctl, int argc, char **argv)
{
        const char *model = NULL, *task = NULL, *reason = NULL, *trace_id = NULL, *repo = NULL;
        const char *domain = NULL;
        CTL_AUTOFREE char *repo_abs = NULL;
        CTL_AUTOLIST struct ctl_list files = { 0 };
        const struct ctl_opt opts[] = {
                CTL_VALUE("model", ctl_opt_text, &model, NULL),
                CTL_VALUE("task", ctl_opt_text, &task, NULL),
                CTL_VALUE("reason", ctl_opt_text, &reason, NULL),
                CTL_VALUE("trace-id", ctl_opt_text, &trace_id, NULL),
                CTL_VALUE("repo", ctl_opt_text, &repo, NULL),
                CTL_VALUE("file", ctl_opt_list, &files, NULL),
                CTL_VALUE("domain", ctl_opt_text, &domain, NULL),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 0, "");
        if (status != CTL_GO)
                return status;
        if (model == NULL)
                return ctl_usage(ctl, "--model is required");
        if (task == NULL)
                return ctl_usage(ctl, "--task is required (generate, embed, classify, code or "
                                 "reasoning)");
        if (repo != NULL && repo[0] != '/') {
                /* The daemon wants an absolute path; '--repo .' is handy. */
                repo_abs = realpath(repo, NULL);
                if (repo_abs == NULL)
                        return ctl_usage(ctl, "--repo '%s' cannot be made absolute: %s", repo,
                                         strerror(errno));
                repo = repo_abs;
                if (ctl_check_text(ctl, "--repo", repo, strlen(repo)) < 0)
                        return CTL_EXIT_USAGE;
        }
        for (size_t i = 0; i < files.n; i++)
                if (ctl_check_text(ctl, "--file", files.v[i], strlen(files.v[i])) < 0)
                        return CTL_EXIT_USAGE;

        const struct ctl_arg args[] = {
                CTL_ARG_S("model", model), CTL_ARG_S("task", task), CTL_ARG_S("reason", reason),
                CTL_ARG_S("trace_id", trace_id), CTL_ARG_S("repo", repo),
                CTL_ARG_S("domain", domain), CTL_ARG_L("files", &files),
        };
        return CTL_CALL(ctl, "start", args, print_trace_id, NULL);
}

CTL_COMMAND(start, run_start,
        "start a trace: a model was picked for a task; prints the trace id",
        "Usage: outcomectl start --model MODEL --task TASK [OPTIONS]\n"
        "\n"
        "Tell the daemon a router picked MODEL for a call of kind TASK, and print the\n"
        "trace id that names this call in 'complete', 'fail' and 'outcome'.\n"
        "\n"
        "Options:\n"
        "  --model MODEL     the model id (1-256 bytes; required)\n"
        "  --task TASK       generate, embed, classify, code or reasoning (required)\n"
        "  --reason TEXT     why the router picked it (up to 4096 bytes)\n"
        "  --trace-id ID     choose the trace id yourself: 1-128 characters of\n"
        "                    A-Z a-z 0-9 . _ : -.  Starting the same pending trace again\n"
        "                    with the same model and task returns it and changes\n"
        "                    nothing; with another model or task it is duplicate_trace.\n"
        "  --repo PATH       the git repository a code suggestion targets; relative\n"
        "                    paths are made absolute.  Such a trace is judged by the\n"
        "                    daemon's git scanner.\n"
        "  --file PATH       a repository-relative file the suggestion targets\n"
        "                    (repeat for several, up to 256)\n"
        "  --domain TEXT     what the request is about, as the router's classifier\n"
        "                    said (a subject, a language, a customer: 1-128 bytes, no\n"
        "                    control characters); the daemon learns per domain too\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Prints the trace id (with --json: {\"trace_id\":\"...\"}).\n"
        "\n"
        "Examples:\n"
        "  id=$(outcomectl start --model gpt-4o --task generate --reason 'best ema')\n"
        "  outcomectl start --model qwen-coder --task code --repo . --file src/main.c\n"
        "  outcomectl start --model mixtral --task reasoning --domain 'college physics'\n");

/* ---- complete --------------------------------------------------------- */

/* --latency-ms: an integer, or a decimal the daemon rounds. */
struct latency {
        uint32_t u;
        double d;
        bool is_float;
};

static int parse_latency(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        struct latency *l = dst;
        return ctl_parse_ms(ctl, opt, arg, &l->u, &l->d, &l->is_float);
}

static int run_complete(struct ctl *ctl, int argc, char **argv)
{
        bool have_latency = false, have_in = false, have_out = false;
        struct latency latency = { 0 };
        uint32_t in_tokens = 0, out_tokens = 0;
        const char *output_arg = NULL, *output_file = NULL;
        CTL_AUTOFREE char *output = NULL;
        size_t output_len = 0;
        const struct ctl_opt opts[] = {
                CTL_VALUE("latency-ms", parse_latency, &latency, &have_latency),
                CTL_VALUE("input-tokens", ctl_opt_u32, &in_tokens, &have_in),
                CTL_VALUE("output-tokens", ctl_opt_u32, &out_tokens, &have_out),
                CTL_STR("output", &output_arg),
                CTL_STR("output-file", &output_file),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 1, "TRACE_ID");
        if (status != CTL_GO)
                return status;
        const char *trace_id = argv[optind];
        if (!have_latency)
                return ctl_usage(ctl, "--latency-ms is required");
        if (output_arg != NULL && output_file != NULL)
                return ctl_usage(ctl, "give --output or --output-file, not both");
        if (output_file != NULL) {
                if (ctl_read_file(ctl, "--output-file", output_file, &output, &output_len) < 0)
                        return CTL_EXIT_USAGE;
        } else if (output_arg != NULL) {
                output = strdup(output_arg);
                output_len = strlen(output_arg);
                if (output == NULL)
                        return ctl_usage(ctl, "out of memory");
        }
        if (ctl_check_text(ctl, "TRACE_ID", trace_id, strlen(trace_id)) < 0 ||
            (output && ctl_check_text(ctl, output_file ? "--output-file" : "--output", output,
                                      output_len) < 0))
                return CTL_EXIT_USAGE;

        const struct ctl_arg args[] = {
                CTL_ARG_S("trace_id", trace_id),
                CTL_ARG_D("latency_ms", latency.is_float, latency.d),
                CTL_ARG_U("latency_ms", !latency.is_float, latency.u),
                CTL_ARG_U("input_tokens", have_in, in_tokens),
                CTL_ARG_U("output_tokens", have_out, out_tokens),
                CTL_ARG_S("output", output),   /* checked: no NUL before its end */
        };
        return CTL_CALL(ctl, "complete", args, print_trace_id, "completed");
}

CTL_COMMAND(complete, run_complete,
        "record a trace's finished call: latency, tokens, output",
        "Usage: outcomectl complete TRACE_ID --latency-ms N [OPTIONS]\n"
        "\n"
        "Record that the call of a started trace finished.  This adds to the model's\n"
        "call count and latency; the trace stays pending until its outcome.  A second\n"
        "'complete' of the same trace is already_completed.\n"
        "\n"
        "Options:\n"
        "  --latency-ms N       how long the call took, in milliseconds (required; an\n"
        "                       integer, or a decimal that the daemon rounds)\n"
        "  --input-tokens N     prompt tokens (integer, default 0)\n"
        "  --output-tokens N    generated tokens (integer, default 0)\n"
        "  --output TEXT        the generated text (kept for code traces, to find it\n"
        "                       in git later)\n"
        "  --output-file FILE   the generated text, read from FILE ('-': stdin)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                       as in 'outcomectl --help'\n"
        "\n"
        "Numbers are non-negative and at most 4294967295.  The text must be UTF-8.\n"
        "\n"
        "Example:\n"
        "  outcomectl complete \"$id\" --latency-ms 812 --output-tokens 240 --output-file out.txt\n");

/* ---- fail ------------------------------------------------------------- */

static int run_fail(struct ctl *ctl, int argc, char **argv)
{
        const char *error = NULL;
        const struct ctl_opt opts[] = {
                CTL_VALUE("error", ctl_opt_text, &error, NULL),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 1, "TRACE_ID");
        if (status != CTL_GO)
                return status;
        const char *trace_id = argv[optind];
        if (ctl_check_text(ctl, "TRACE_ID", trace_id, strlen(trace_id)) < 0)
                return CTL_EXIT_USAGE;

        const struct ctl_arg args[] = { CTL_ARG_S("trace_id", trace_id), CTL_ARG_S("error", error) };
        return CTL_CALL(ctl, "fail", args, print_trace_id, "failed");
}

CTL_COMMAND(fail, run_fail,
        "record that a trace's call failed (resolves the trace)",
        "Usage: outcomectl fail TRACE_ID [--error TEXT]\n"
        "\n"
        "Record that the call of a trace failed.  The model's and the task's failure\n"
        "counts grow by one, both quality averages decay (ema * 0.8), and the trace\n"
        "is resolved.\n"
        "\n"
        "Options:\n"
        "  --error TEXT      what went wrong (up to 4096 bytes)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Example:\n"
        "  outcomectl fail \"$id\" --error 'HTTP 529 overloaded'\n");

/* ---- outcome ---------------------------------------------------------- */

/* One action of the sequence form, read from the --actions file. */
struct action {
        char *trace_id;
        bool success;
        double confidence;
        char *output;      /* unescaped */
};

/* Undo the \t \n \r \\ escapes of an OUTPUT field, in place. */
static void unescape(char *s)
{
        char *w = s;
        for (char *r = s; *r; r++) {
                if (*r == '\\' && r[1] != '\0') {
                        char e = r[1] == 't' ? '\t' : r[1] == 'n' ? '\n' : r[1] == 'r' ? '\r' :
                                 r[1] == '\\' ? '\\' : 0;
                        if (e) {
                                *w++ = e;
                                r++;
                                continue;
                        }
                }
                *w++ = *r;
        }
        *w = '\0';
}

static void free_actions(struct action *a, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(a[i].trace_id);
                free(a[i].output);
        }
        free(a);
}

/* Parse the --actions file (format in the help below). */
static int read_actions(struct ctl *ctl, const char *path, struct action **out, size_t *nout)
{
        char *text;
        size_t len;
        if (ctl_read_file(ctl, "--actions", path, &text, &len) < 0)
                return -1;

        struct action *acts = NULL;
        size_t n = 0, cap = 0, lineno = 0;
        int r = -1;
        char *save = NULL;
        for (char *line = text; line != NULL; line = save) {
                char *nl = strchr(line, '\n');
                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                lineno++;
                size_t ll = strlen(line);
                if (ll > 0 && line[ll - 1] == '\r')
                        line[--ll] = '\0';
                if (ll == 0 || line[0] == '#')
                        continue;

                char *f[4] = { line, NULL, NULL, NULL };
                for (int i = 1; i < 4; i++) {
                        char *tab = strchr(f[i - 1], '\t');
                        if (tab == NULL)
                                break;
                        *tab = '\0';
                        f[i] = tab + 1;
                }
                if (f[2] == NULL) {
                        ctl_usage(ctl, "%s line %zu: expected TRACE_ID<TAB>SUCCESS<TAB>CONFIDENCE"
                                  "[<TAB>OUTPUT]", path, lineno);
                        goto out;
                }
                bool success;
                if (strcmp(f[1], "1") == 0 || strcmp(f[1], "true") == 0)
                        success = true;
                else if (strcmp(f[1], "0") == 0 || strcmp(f[1], "false") == 0)
                        success = false;
                else {
                        ctl_usage(ctl, "%s line %zu: SUCCESS is 1 or 0 (true or false), not '%s'",
                                  path, lineno, f[1]);
                        goto out;
                }
                char what[64];
                snprintf(what, sizeof(what), "%s line %zu: CONFIDENCE", path, lineno);
                double conf;
                if (ctl_parse_unit(ctl, what, f[2], &conf) < 0)
                        goto out;
                if (f[3] != NULL)
                        unescape(f[3]);
                snprintf(what, sizeof(what), "%s line %zu", path, lineno);
                if (ctl_check_text(ctl, what, f[0], strlen(f[0])) < 0 ||
                    (f[3] && ctl_check_text(ctl, what, f[3], strlen(f[3])) < 0))
                        goto out;

                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        struct action *p = realloc(acts, cap * sizeof(*p));
                        if (p == NULL) {
                                ctl_usage(ctl, "out of memory");
                                goto out;
                        }
                        acts = p;
                }
                acts[n] = (struct action){
                        .trace_id = strdup(f[0]), .success = success, .confidence = conf,
                        .output = strdup(f[3] ? f[3] : ""),
                };
                n++;
                if (acts[n - 1].trace_id == NULL || acts[n - 1].output == NULL) {
                        ctl_usage(ctl, "out of memory");
                        goto out;
                }
        }
        *out = acts;
        *nout = n;
        acts = NULL;
        n = 0;
        r = 0;
out:
        free_actions(acts, n);
        free(text);
        return r;
}

/* Human output of one {"trace_id", "kind", "quality", "success"}. */
static void print_outcome_row(const msgpack_object *res, int width)
{
        size_t len = 0;
        const char *id = ctl_get_str(res, "trace_id", &len);
        const char *kind;
        size_t klen = 0;
        char q[32], s[8];

        ctl_put_text(id ? id : "?", id ? len : 1, width);
        putchar(' ');
        kind = ctl_get_str(res, "kind", &klen);
        ctl_put_text(kind ? kind : "?", kind ? klen : 1, 20);
        ctl_fmt_num(q, sizeof(q), ctl_get(res, "quality"), 3, true);
        ctl_fmt_num(s, sizeof(s), ctl_get(res, "success"), 0, false);
        printf(" %7s  %s\n", q, s);
}

/* The single form's row (arg NULL) or the sequence form's table. */
static int print_outcome(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        (void)ctl;
        if (arg == NULL) {
                const msgpack_object *deferred = ctl_get(result, "deferred");
                size_t len;
                const char *id = ctl_get_str(result, "trace_id", &len);
                if (id == NULL)
                        return CTL_PRINT_JSON;
                if (deferred && deferred->type == MSGPACK_OBJECT_BOOLEAN && deferred->via.boolean) {
                        ctl_put_text(id, len, 0);
                        puts(": recorded; the git scanner judges this code trace");
                        return CTL_EXIT_OK;
                }
                int width = len < 8 ? 8 : len > 128 ? 128 : (int)len;
                printf("%-*s %-20s %7s  %s\n", width, "TRACE_ID", "KIND", "QUALITY", "SUCCESS");
                print_outcome_row(result, width);
                return CTL_EXIT_OK;
        }
        const msgpack_object *rs = ctl_get(result, "results");
        if (rs == NULL || rs->type != MSGPACK_OBJECT_ARRAY)
                return CTL_PRINT_JSON;
        if (rs->via.array.size == 0) {
                puts("no trace resolved");
                return CTL_EXIT_OK;
        }
        int width = 8;
        for (uint32_t i = 0; i < rs->via.array.size; i++) {
                size_t len;
                if (ctl_get_str(&rs->via.array.ptr[i], "trace_id", &len) && len > (size_t)width)
                        width = len > 128 ? 128 : (int)len;
        }
        printf("%-*s %-20s %7s  %s\n", width, "TRACE_ID", "KIND", "QUALITY", "SUCCESS");
        for (uint32_t i = 0; i < rs->via.array.size; i++)
                print_outcome_row(&rs->via.array.ptr[i], width);
        return CTL_EXIT_OK;
}

/* The sequence form: the actions of the --actions file. */
static int run_actions(struct ctl *ctl, int argc, char **argv, const char *path)
{
        struct action *acts = NULL;
        size_t nacts = 0;

        if (ctl_positionals(ctl, argc, argv, 0, "") < 0 ||
            read_actions(ctl, path, &acts, &nacts) < 0)
                return CTL_EXIT_USAGE;
        msgpack_packer *pk = ctl_request(ctl, "outcome", 1);
        if (pk == NULL) {
                free_actions(acts, nacts);
                return CTL_EXIT_CONNECT;
        }
        ctl_pack_key(pk, "actions");
        msgpack_pack_array(pk, nacts);
        for (size_t i = 0; i < nacts; i++) {
                msgpack_pack_map(pk, 4);
                ctl_pack_str(pk, "trace_id", acts[i].trace_id);
                ctl_pack_bool(pk, "success", acts[i].success);
                ctl_pack_double(pk, "confidence", acts[i].confidence);
                ctl_pack_str(pk, "output", acts[i].output);
        }
        free_actions(acts, nacts);
        return ctl_reply(ctl, print_outcome, "sequence");
}

static int run_outcome(struct ctl *ctl, int argc, char **argv)
{
        bool have_conf = false;
        double conf = 0;
        const char *actions_file = NULL;
        const struct ctl_opt opts[] = {
                CTL_VALUE("confidence", ctl_opt_unit, &conf, &have_conf),
                CTL_STR("actions", &actions_file),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, -1, "");
        if (status != CTL_GO)
                return status;

        if (actions_file != NULL) {
                if (have_conf)
                        return ctl_usage(ctl, "--confidence belongs to the single form; with --actions "
                                         "each line has its own");
                return run_actions(ctl, argc, argv, actions_file);
        }
        if (ctl_positionals(ctl, argc, argv, 2, "TRACE_ID and KIND (or --actions FILE)") < 0)
                return CTL_EXIT_USAGE;
        const char *trace_id = argv[optind], *kind = argv[optind + 1];
        int k = proto_name_find(proto_kind_names, PROTO_KIND__COUNT, kind, strlen(kind));
        if (k < 0)
                return ctl_usage(ctl, "unknown KIND '%s' (see the list in --help)", kind);
        if (proto_kind_needs_confidence(k) && !have_conf)
                return ctl_usage(ctl, "KIND %s needs --confidence C (0 to 1)", kind);
        if (ctl_check_text(ctl, "TRACE_ID", trace_id, strlen(trace_id)) < 0)
                return CTL_EXIT_USAGE;
        const struct ctl_arg args[] = {
                CTL_ARG_S("trace_id", trace_id), CTL_ARG_S("kind", kind),
                CTL_ARG_D("confidence", have_conf, conf),
        };
        return CTL_CALL(ctl, "outcome", args, print_outcome, NULL);
}

CTL_COMMAND(outcome, run_outcome,
        "judge a trace (accepted, rejected, ...) or a sequence of actions",
        "Usage: outcomectl outcome TRACE_ID KIND [--confidence C]\n"
        "       outcomectl outcome --actions FILE\n"
        "\n"
        "Judge how a trace's answer was received; this updates the model's and the\n"
        "task's quality average (ema = ema*0.8 + quality*0.2) and success counts, and\n"
        "resolves the trace.  Prints TRACE_ID, KIND, QUALITY and SUCCESS.\n"
        "\n"
        "KIND                  quality      success  --confidence C\n"
        "accepted              C            yes      required\n"
        "accepted_with_edits   0.7*C        yes      required\n"
        "rejected              0.3*(1-C)    no       required\n"
        "inconclusive          none         none     (changes no score)\n"
        "applied               1.0          yes\n"
        "signature_changed     0.8          yes\n"
        "body_modified         0.7          yes\n"
        "symbol_added          0.7          yes\n"
        "modified              0.6          yes\n"
        "ignored               0.1          no\n"
        "\n"
        "A code trace started with --repo is judged by the daemon's git scanner: an\n"
        "explicit outcome is recorded but leaves it pending (prints 'recorded').\n"
        "\n"
        "Options:\n"
        "  --confidence C    a number from 0 to 1\n"
        "  --actions FILE    the sequence form: judge the actions of a conversation, in\n"
        "                    the order they ran ('-': read stdin).  One action per line:\n"
        "                      TRACE_ID<TAB>SUCCESS<TAB>CONFIDENCE[<TAB>OUTPUT]\n"
        "                    SUCCESS is 1 or 0 (or true/false), CONFIDENCE a number from\n"
        "                    0 to 1, OUTPUT the action's text with \\t \\n \\r \\\\ escaped\n"
        "                    (default empty).  An empty TRACE_ID is skipped but still\n"
        "                    counts as the next action of the one before.  Blank lines\n"
        "                    and lines starting with # are ignored.  Each action becomes:\n"
        "                    failed -> rejected (C); text and the next one succeeded (or\n"
        "                    it is the last) -> accepted (C); text and the next failed\n"
        "                    -> accepted_with_edits (0.7*C); no text -> inconclusive.\n"
        "                    Traces that are not pending are skipped.\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Examples:\n"
        "  outcomectl outcome \"$id\" accepted --confidence 0.9\n"
        "  outcomectl outcome \"$id\" ignored\n"
        "  printf '%s\\t1\\t0.8\\tfixed it\\n' \"$id\" | outcomectl outcome --actions -\n");

/* ctl_rank.c - `outcomectl rank`: which model now, for a task. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define RANK_MAX_CANDIDATES 1024

/* A weight: a decimal number >= 0 (a struct ctl_opt parser). */
static int parse_weight(struct ctl *ctl, const char *opt, const char *s, void *out)
{
        char *end;
        double d = strtod(s, &end);
        if (end == s || *end || !(d >= 0.0) || d > 1e9) {
                ctl_usage(ctl, "%s: '%s' is not a number >= 0", opt, s);
                return -1;
        }
        *(double *)out = d;
        return 0;
}

static void print_num(const msgpack_object *o, int decimals)
{
        char buf[64];
        if (!o || o->type == MSGPACK_OBJECT_NIL) {
                printf("%10s", "-");
                return;
        }
        ctl_fmt_num(buf, sizeof(buf), o, decimals, true);
        printf("%10s", buf);
}

/* Why a model is degraded, from {"failures", "successes", "threshold",
 * "since"}: "(5 fail > 1 ok + 3, since 2026-12-03 08:24:18)". */
static void print_why(const msgpack_object *why)
{
        char f[32], s[32], th[32], since[32];
        if (!why || why->type != MSGPACK_OBJECT_MAP)
                return;
        ctl_fmt_num(f, sizeof(f), ctl_get(why, "failures"), 0, false);
        ctl_fmt_num(s, sizeof(s), ctl_get(why, "successes"), 0, false);
        ctl_fmt_num(th, sizeof(th), ctl_get(why, "threshold"), 0, false);
        printf(" (%s fail > %s ok + %s", f, s, th);
        if (ctl_fmt_time(since, sizeof(since), ctl_get(why, "since")))
                printf(", since %s", since);
        putchar(')');
}

static int print_table(struct ctl *ctl, const msgpack_object *res, void *arg)
{
        (void)ctl;
        (void)arg;
        const msgpack_object *ranked = ctl_get(res, "ranked");
        const msgpack_object *excluded = ctl_get(res, "excluded");
        const msgpack_object *why = ctl_get(res, "excluded_why");
        int width = 5;
        for (uint32_t i = 0; ranked && i < ranked->via.array.size; i++) {
                size_t len;
                if (ctl_get_str(&ranked->via.array.ptr[i], "model", &len) && (int)len > width)
                        width = (int)len;
        }
        printf("%-4s %-*s %10s %10s %10s %10s %10s  %s\n", "RANK", width, "MODEL", "SCORE",
               "QUALITY", "MEAN", "JUDGED", "P50_MS", "NOTE");
        for (uint32_t i = 0; ranked && i < ranked->via.array.size; i++) {
                const msgpack_object *it = &ranked->via.array.ptr[i];
                size_t len;
                const char *model = ctl_get_str(it, "model", &len);
                printf("%-4u ", i + 1);
                ctl_put_text(model ? model : "?", model ? len : 1, width);
                putchar(' ');
                print_num(ctl_get(it, "score"), 3);
                putchar(' ');
                print_num(ctl_get(it, "quality"), 3);
                putchar(' ');
                print_num(ctl_get(it, "mean"), 3);
                putchar(' ');
                print_num(ctl_get(it, "judged"), 1);
                putchar(' ');
                print_num(ctl_get(it, "latency_ms"), 0);
                const msgpack_object *prior = ctl_get(it, "prior");
                const msgpack_object *degraded = ctl_get(it, "degraded");
                const msgpack_object *explore = ctl_get(it, "explore");
                const msgpack_object *flags[] = { explore, prior, degraded };
                const char *const words[] = { "explore", "untried (prior)", "degraded" };
                const char *sep = "  ";
                for (int k = 0; k < 3; k++) {
                        if (flags[k] && flags[k]->type == MSGPACK_OBJECT_BOOLEAN &&
                            flags[k]->via.boolean) {
                                printf("%s%s", sep, words[k]);
                                sep = ", ";
                        }
                }
                if (degraded && degraded->type == MSGPACK_OBJECT_BOOLEAN && degraded->via.boolean)
                        print_why(ctl_get(it, "degraded_why"));
                putchar('\n');
        }
        for (uint32_t i = 0; excluded && i < excluded->via.array.size; i++) {
                const msgpack_object *m = &excluded->via.array.ptr[i];
                printf("-    ");
                if (m->type == MSGPACK_OBJECT_STR)
                        ctl_put_text(m->via.str.ptr, m->via.str.size, width);
                printf("  excluded: degraded");
                if (why && why->type == MSGPACK_OBJECT_ARRAY && i < why->via.array.size)
                        print_why(&why->via.array.ptr[i]);
                putchar('\n');
        }
        return CTL_EXIT_OK;
}

static int run_rank(struct ctl *ctl, int argc, char **argv)
{
        const char *task = NULL, *strategy = NULL, *domain = NULL, *scope = NULL;
        CTL_AUTOLIST struct ctl_list cand = { 0 };
        double lw = 0, cw = 0;
        bool have_lw = false, have_cw = false, include_degraded = false, have_seed = false;
        uint32_t seed = 0;
        const struct ctl_opt opts[] = {
                CTL_STR("task", &task),
                CTL_STR("strategy", &strategy),
                CTL_VALUE("candidate", ctl_opt_list, &cand, NULL),
                CTL_VALUE("latency-weight", parse_weight, &lw, &have_lw),
                CTL_VALUE("cost-weight", parse_weight, &cw, &have_cw),
                CTL_FLAG("include-degraded", &include_degraded),
                CTL_VALUE("seed", ctl_opt_u32, &seed, &have_seed),
                CTL_STR("domain", &domain),
                CTL_STR("scope", &scope),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, -1, "");
        if (status != CTL_GO)
                return status;
        if (cand.n > RANK_MAX_CANDIDATES)
                return ctl_usage(ctl, "--candidate: at most %d", RANK_MAX_CANDIDATES);
        if (!task)
                return ctl_usage(ctl, "--task is required");
        if (ctl_positionals(ctl, argc, argv, 0, "") < 0)
                return CTL_EXIT_USAGE;

        const struct ctl_arg args[] = {
                CTL_ARG_S("task", task), CTL_ARG_S("strategy", strategy),
                CTL_ARG_S("domain", domain), CTL_ARG_D("latency_weight", have_lw, lw),
                CTL_ARG_D("cost_weight", have_cw, cw),
                CTL_ARG_B("exclude_degraded", include_degraded, false),
                CTL_ARG_U("seed", have_seed, seed), CTL_ARG_L("candidates", &cand),
                CTL_ARG_S("scope", scope),
        };
        return CTL_CALL(ctl, "rank", args, print_table, NULL);
}

CTL_COMMAND(rank, run_rank,
        "rank the models for a task: which one now",
        "Usage: outcomectl rank --task TASK [OPTIONS]\n"
        "\n"
        "Rank models for TASK (generate, embed, classify, code, reasoning), best first.\n"
        "score = quality - latency_weight * latency / slowest - cost_weight * cost / dearest,\n"
        "where quality depends on the strategy:\n"
        "  kg        (default) the posterior mean; a candidate worth trying first (the\n"
        "            knowledge gradient over the traffic still to come) is put first and\n"
        "            marked 'explore'.  Routers that call the first model learn and earn.\n"
        "  mean      the posterior mean, no exploring\n"
        "  lcb       the lower end of its 95% interval (prefers well-known models)\n"
        "  thompson  one draw from the posterior (explores at random)\n"
        "  ema       the task's EMA quality (the score of the Rust tracker outcomed\n"
        "            grew out of)\n"
        "With --domain, the posterior is the domain's, backed off to what the task\n"
        "knows of the model where the domain has little (protocol/README.md, 'rank').\n"
        "latency is the task's p50, cost the cost per accepted outcome (needs a\n"
        "[price:MODEL] section in the daemon's configuration).  A candidate with no\n"
        "stats for the task ranks with the prior and is marked 'untried'; degraded\n"
        "models are left out, but by kg.  A degraded model (FAIL > OK + the degrade\n"
        "threshold) is marked, or listed as excluded, with its numbers and since when\n"
        "it is degraded under the daemon's configured threshold:\n"
        "'(5 fail > 1 ok + 3, since DATE TIME)'.\n"
        "\n"
        "Options:\n"
        "  --task TASK            required\n"
        "  --strategy NAME        kg, mean, lcb, thompson or ema\n"
        "  --candidate MODEL      rank only these (repeat); default: every model with\n"
        "                         stats for the task\n"
        "  --latency-weight W     weight of the latency penalty (default 0)\n"
        "  --cost-weight W        weight of the cost penalty (default 0)\n"
        "  --include-degraded     rank degraded models too (default: excluded, but by kg)\n"
        "  --seed N               thompson's draws, for a repeatable answer\n"
        "  --domain DOMAIN        rank from this domain's evidence, backed off to the\n"
        "                         task's where the domain has little\n"
        "  --scope fleet|host     every host's evidence summed (the default with a\n"
        "                         [fleet] section) or this host's alone\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                         as in 'outcomectl --help'\n"
        "\n"
        "Examples:\n"
        "  outcomectl rank --task code\n"
        "  outcomectl rank --task reasoning --domain 'college physics' --cost-weight 0.1\n"
        "  outcomectl rank --task code --strategy thompson --latency-weight 0.2\n"
        "  outcomectl --json rank --task generate --candidate gpt-4o --candidate qwen3-4b\n");

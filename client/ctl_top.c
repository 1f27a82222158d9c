/* ctl_top.c - outcomectl top: a live view of what the daemon learns, per
 * model and task, refreshed every --interval seconds, as systemd-cgtop or
 * htop do.  Each poll is three small requests: `stats`, `query` (no
 * domains) and `query {pending: true, limit: TOP_PENDING_LIMIT}`; rates
 * are the differences between two polls over the time between them.
 *
 * On a terminal it draws with plain ANSI escapes on the alternate screen,
 * reads keys in non-canonical mode ('q' quits) and restores the terminal
 * on exit, SIGINT and SIGTERM.  Otherwise (or with --json) it polls twice,
 * --interval apart, prints one snapshot and exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "proto.h"

#define TOP_PENDING_LIMIT 1000u
#define TOP_WIDTH 80

struct row {
        const char *model, *task;     /* into the poll's reply */
        size_t model_len, task_len;
        bool have_stats;              /* the profile has the task */
        uint64_t calls;
        double rate;                  /* calls/s; NAN when unknown */
        double success, ema, lo, hi, p50, p95;   /* NAN when absent */
        uint32_t pending;
};

struct poll_result {
        struct oc_reply stats, profiles, pending;
        double at;                    /* CLOCK_MONOTONIC seconds */
        struct row *rows;
        size_t n;
        size_t pending_counted;
};

/* The previous poll's calls per (model, task), to compute rates. */
struct prev {
        struct prev_row { char *key; size_t len; uint64_t calls; } *rows;
        size_t n;
        uint64_t commits;
        bool have_commits;
        double at;
};

static volatile sig_atomic_t top_stop, top_resized;
static struct termios top_saved;
static bool top_raw, top_screen;

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double num(const msgpack_object *o)
{
        if (o == NULL)
                return NAN;
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: return o->via.f64;
        default: return NAN;
        }
}

static uint64_t u64(const msgpack_object *o)
{
        return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

/* ---- the terminal ----------------------------------------------------- */

static void term_restore(void)
{
        if (top_screen) {
                /* show the cursor, leave the alternate screen */
                fputs("\033[?25h\033[?1049l", stdout);
                fflush(stdout);
                top_screen = false;
        }
        if (top_raw) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_saved);
                top_raw = false;
        }
}

static void on_signal(int sig)
{
        if (sig == SIGWINCH)
                top_resized = 1;
        else
                top_stop = 1;
}

static void term_setup(void)
{
        struct sigaction sa = { 0 };
        sa.sa_handler = on_signal;   /* no SA_RESTART: poll() returns EINTR */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGWINCH, &sa, NULL);

        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved) == 0) {
                struct termios t = top_saved;
                t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
                t.c_cc[VMIN] = 0;
                t.c_cc[VTIME] = 0;
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
                        top_raw = true;
        }
        /* the alternate screen, the cursor hidden */
        fputs("\033[?1049h\033[?25l", stdout);
        top_screen = true;
        atexit(term_restore);
}

static void term_size(int *cols, int *lines)
{
        struct winsize ws;
        *cols = TOP_WIDTH;
        *lines = 24;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
                *cols = ws.ws_col;
                *lines = ws.ws_row;
        }
}

/* Wait up to `secs` for a key: true when it asks to quit. */
static bool wait_keys(double secs)
{
        double end = now_s() + secs;
        for (;;) {
                if (top_stop)
                        return true;
                double left = end - now_s();
                if (left <= 0 || top_resized)
                        return false;
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                int r = poll(&p, top_raw ? 1 : 0, (int)ceil(left * 1000.0));
                if (r < 0 && errno != EINTR)
                        return false;
                if (r > 0 && top_raw) {
                        char buf[64];
                        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
                        if (n == 0)     /* the terminal went away */
                                return true;
                        for (ssize_t i = 0; i < n; i++)
                                if (buf[i] == 'q' || buf[i] == 'Q')
                                        return true;
                }
        }
}

/* ---- polling ---------------------------------------------------------- */

/* One request; errors go into err (the terminal may have to be restored
 * before they are printed).  Returns an exit status. */
static int call(struct ctl *ctl, struct oc_reply *reply, char *err, size_t errlen)
{
        struct oc_reply r;
        int rc = oc_call(ctl->client, &r, err, errlen);
        if (rc < 0)
                return CTL_EXIT_CONNECT;
        if (r.code != NULL) {
                snprintf(err, errlen, "%s: %s", r.code, r.message);
                oc_reply_destroy(&r);
                return CTL_EXIT_DAEMON;
        }
        *reply = r;
        return CTL_EXIT_OK;
}

static void poll_free(struct poll_result *p)
{
        oc_reply_destroy(&p->stats);
        oc_reply_destroy(&p->profiles);
        oc_reply_destroy(&p->pending);
        free(p->rows);
        memset(p, 0, sizeof(*p));
}

static bool same(const char *a, size_t al, const char *b, size_t bl)
{
        return al == bl && memcmp(a, b, al) == 0;
}

static struct row *find_row(struct poll_result *p, const char *m, size_t ml, const char *t, size_t tl)
{
        for (size_t i = 0; i < p->n; i++)
                if (same(p->rows[i].model, p->rows[i].model_len, m, ml) &&
                    same(p->rows[i].task, p->rows[i].task_len, t, tl))
                        return &p->rows[i];
        return NULL;
}

static struct row *add_row(struct poll_result *p, size_t *cap, const char *m, size_t ml,
                           const char *t, size_t tl)
{
        if (p->n == *cap) {
                size_t c = *cap ? *cap * 2 : 16;
                struct row *r = realloc(p->rows, c * sizeof(*r));
                if (r == NULL)
                        return NULL;
                p->rows = r;
                *cap = c;
        }
        struct row *r = &p->rows[p->n++];
        *r = (struct row){ .model = m, .model_len = ml, .task = t, .task_len = tl, .rate = NAN,
                           .success = NAN, .ema = NAN, .lo = NAN, .hi = NAN, .p50 = NAN,
                           .p95 = NAN };
        return r;
}

static int do_poll(struct ctl *ctl, struct poll_result *p, char *err, size_t errlen)
{
        int status;
        size_t cap = 0;

        const struct ctl_arg pending[] = {
                CTL_ARG_B("pending", true, true), CTL_ARG_U("limit", true, TOP_PENDING_LIMIT),
        };

        memset(p, 0, sizeof(*p));
        /* Connected since the first ping: a request begins without fail. */
        (void)ctl_request(ctl, "stats", 0);
        if ((status = call(ctl, &p->stats, err, errlen)) != CTL_EXIT_OK)
                return status;
        (void)ctl_request(ctl, "query", 0);
        if ((status = call(ctl, &p->profiles, err, errlen)) != CTL_EXIT_OK)
                return status;
        (void)CTL_REQUEST(ctl, "query", pending, 0);
        if ((status = call(ctl, &p->pending, err, errlen)) != CTL_EXIT_OK)
                return status;
        p->at = now_s();

        const msgpack_object *list = ctl_get(p->profiles.result, "profiles");
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
                const msgpack_object *prof = &list->via.array.ptr[i];
                size_t ml;
                const char *m = ctl_get_str(prof, "model", &ml);
                const msgpack_object *tasks = ctl_get(prof, "tasks");
                if (m == NULL || tasks == NULL || tasks->type != MSGPACK_OBJECT_MAP)
                        continue;
                for (uint32_t t = 0; t < tasks->via.map.size; t++) {
                        const msgpack_object_kv *kv = &tasks->via.map.ptr[t];
                        if (kv->key.type != MSGPACK_OBJECT_STR)
                                continue;
                        struct row *r = add_row(p, &cap, m, ml, kv->key.via.str.ptr,
                                                kv->key.via.str.size);
                        if (r == NULL)
                                goto oom;
                        const msgpack_object *ts = &kv->val, *post = ctl_get(ts, "posterior");
                        r->have_stats = true;
                        r->calls = u64(ctl_get(ts, "calls"));
                        r->success = num(ctl_get(ts, "success_rate"));
                        r->ema = num(ctl_get(ts, "ema_quality"));
                        r->lo = num(ctl_get(post, "lo"));
                        r->hi = num(ctl_get(post, "hi"));
                        r->p50 = num(ctl_get(ts, "latency_p50_ms"));
                        r->p95 = num(ctl_get(ts, "latency_p95_ms"));
                }
        }
        list = ctl_get(p->pending.result, "pending");
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
                size_t ml, tl;
                const char *m = ctl_get_str(&list->via.array.ptr[i], "model", &ml);
                const char *t = ctl_get_str(&list->via.array.ptr[i], "task", &tl);
                if (m == NULL || t == NULL)
                        continue;
                struct row *r = find_row(p, m, ml, t, tl);
                if (r == NULL && (r = add_row(p, &cap, m, ml, t, tl)) == NULL)
                        goto oom;
                r->pending++;
                p->pending_counted++;
        }
        return CTL_EXIT_OK;
oom:
        snprintf(err, errlen, "out of memory");
        return CTL_EXIT_DAEMON;
}

static void prev_free(struct prev *pv)
{
        for (size_t i = 0; i < pv->n; i++)
                free(pv->rows[i].key);
        free(pv->rows);
        memset(pv, 0, sizeof(*pv));
}

/* model NUL task: a key that cannot collide (names have no NUL) */
static char *row_key(const struct row *r, size_t *len)
{
        *len = r->model_len + 1 + r->task_len;
        char *k = malloc(*len);
        if (k) {
                memcpy(k, r->model, r->model_len);
                k[r->model_len] = '\0';
                memcpy(k + r->model_len + 1, r->task, r->task_len);
        }
        return k;
}

/* Fill the rates of p from pv, then make pv p's. */
static void rates(struct poll_result *p, struct prev *pv, double *commit_rate)
{
        double dt = pv->at > 0 ? p->at - pv->at : 0;
        for (size_t i = 0; i < p->n; i++) {
                struct row *r = &p->rows[i];
                r->rate = NAN;
                if (dt <= 0)
                        continue;
                size_t len;
                char *k = row_key(r, &len);
                if (k == NULL)
                        continue;
                uint64_t before = 0;   /* a row new since the last poll had none */
                for (size_t j = 0; j < pv->n; j++)
                        if (same(pv->rows[j].key, pv->rows[j].len, k, len))
                                before = pv->rows[j].calls;
                free(k);
                if (r->calls >= before)
                        r->rate = (double)(r->calls - before) / dt;
        }
        const msgpack_object *c = ctl_get(p->stats.result, "commits_total");
        *commit_rate = NAN;
        if (dt > 0 && pv->have_commits && c && c->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            c->via.u64 >= pv->commits)
                *commit_rate = (double)(c->via.u64 - pv->commits) / dt;

        prev_free(pv);
        pv->rows = calloc(p->n ? p->n : 1, sizeof(*pv->rows));
        if (pv->rows != NULL)
                for (size_t i = 0; i < p->n; i++) {
                        pv->rows[pv->n].key = row_key(&p->rows[i], &pv->rows[pv->n].len);
                        if (pv->rows[pv->n].key == NULL)
                                continue;
                        pv->rows[pv->n++].calls = p->rows[i].calls;
                }
        pv->have_commits = c && c->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        pv->commits = pv->have_commits ? c->via.u64 : 0;
        pv->at = p->at;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

/* calls/s descending (unknown last), then model, then task */
static int cmp_rows(const void *x, const void *y)
{
        const struct row *a = x, *b = y;
        double ra = isnan(a->rate) ? -1 : a->rate, rb = isnan(b->rate) ? -1 : b->rate;
        if (ra != rb)
                return ra < rb ? 1 : -1;
        int c = cmp_bytes(a->model, a->model_len, b->model, b->model_len);
        return c ? c : cmp_bytes(a->task, a->task_len, b->task, b->task_len);
}

/* ---- printing --------------------------------------------------------- */

/* A number in at most about 6 characters: "-" when unknown. */
static void fmt_compact(char *buf, size_t len, double v, int decimals)
{
        if (isnan(v))
                snprintf(buf, len, "-");
        else if (v < 10000)
                snprintf(buf, len, "%.*f", v < 1000 ? decimals : 0, v);
        else if (v < 1e6)
                snprintf(buf, len, "%.0fk", v / 1e3);
        else if (v < 1e9)
                snprintf(buf, len, "%.1fM", v / 1e6);
        else
                snprintf(buf, len, "%.1fG", v / 1e9);
}

/* Text in exactly `width` columns: cut with '~' when longer (at a UTF-8
 * character boundary), padded when shorter. */
static void put_cell(const char *s, size_t len, int width)
{
        if (len <= (size_t)width) {
                ctl_put_text(s, len, width);
                return;
        }
        size_t cut = (size_t)width - 1;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
                cut--;
        ctl_put_text(s, cut, 0);
        putchar('~');
        for (int i = (int)cut + 1; i < width; i++)
                putchar(' ');
}

static void fmt_uptime(char *buf, size_t len, const msgpack_object *o)
{
        if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(buf, len, "-");
                return;
        }
        uint64_t s = o->via.u64;
        if (s >= 86400)
                snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
        else
                snprintf(buf, len, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s % 3600 / 60,
                         s % 60);
}

/* The screen (or the snapshot): two header lines, the column titles and
 * at most max_rows rows (0: all). */
static void print_table(struct poll_result *p, double commit_rate, int cols, int max_rows)
{
        const msgpack_object *st = p->stats.result;
        char up[32], conn[24], jr[24], crate[24], pend[24];
        size_t vl = 0;
        const char *ver = ctl_get_str(st, "version", &vl);
        const msgpack_object *w = ctl_get(st, "writable");

        fmt_uptime(up, sizeof(up), ctl_get(st, "uptime_s"));
        ctl_fmt_num(conn, sizeof(conn), ctl_get(st, "connections"), 0, false);
        ctl_fmt_num(jr, sizeof(jr), ctl_get(st, "journal_total"), 0, false);
        ctl_fmt_num(pend, sizeof(pend), ctl_get(st, "pending"), 0, false);
        fmt_compact(crate, sizeof(crate), commit_rate, 1);
        fputs("outcomed ", stdout);
        put_cell(ver ? ver : "?", ver ? vl : 1, vl > 16 ? 16 : (int)vl);
        printf("  up %s  connections %s  %s\n", up, conn,
               w && w->type == MSGPACK_OBJECT_BOOLEAN && !w->via.boolean ? "READ-ONLY" : "writable");
        printf("commits/s %s  journal rows %s  pending traces %s%s\n", crate, jr, pend,
               p->pending_counted >= TOP_PENDING_LIMIT ? " (PEND: first 1000)" : "");

        /* The numbers take 53 columns; model and task share the rest, less
         * the last column (a full line would wrap on some terminals). */
        int rest = (cols < TOP_WIDTH ? TOP_WIDTH : cols) - 53 - 1;
        size_t tw = 4;
        for (size_t i = 0; i < p->n; i++)
                if (p->rows[i].task_len > tw)
                        tw = p->rows[i].task_len;
        int task_w = tw > 10 ? 10 : (int)tw;
        int model_w = rest - task_w - 1;

        printf("\n%-*s %-*s %7s %6s %5s %4s %9s %5s %5s %4s\n", model_w, "MODEL", task_w, "TASK",
               "CALLS/S", "CALLS", "SUCC%", "EMA", "POSTERIOR", "P50ms", "P95ms", "PEND");
        size_t shown = p->n;
        if (max_rows > 0 && shown > (size_t)max_rows)
                shown = max_rows > 1 ? (size_t)max_rows - 1 : 0;
        for (size_t i = 0; i < shown; i++) {
                const struct row *r = &p->rows[i];
                char rate[16], calls[16], succ[16], ema[16], post[24], p50[16], p95[16];
                fmt_compact(rate, sizeof(rate), r->rate, 1);
                fmt_compact(calls, sizeof(calls), r->have_stats ? (double)r->calls : NAN, 0);
                fmt_compact(succ, sizeof(succ), r->have_stats ? r->success * 100.0 : NAN, 1);
                snprintf(ema, sizeof(ema), isnan(r->ema) ? "-" : "%.2f", r->ema);
                if (isnan(r->lo) || isnan(r->hi))
                        snprintf(post, sizeof(post), "-");
                else
                        snprintf(post, sizeof(post), "%.2f-%.2f", r->lo, r->hi);
                fmt_compact(p50, sizeof(p50), r->p50, 0);
                fmt_compact(p95, sizeof(p95), r->p95, 0);
                put_cell(r->model, r->model_len, model_w);
                putchar(' ');
                put_cell(r->task, r->task_len, task_w);
                printf(" %7s %6s %5s %4s %9s %5s %5s %4" PRIu32 "\n", rate, calls, succ, ema, post,
                       p50, p95, r->pending);
        }
        if (shown < p->n)
                printf("... %zu more\n", p->n - shown);
        if (p->n == 0)
                puts("no calls and no pending traces yet");
}

static void pack_num(msgpack_packer *pk, const char *key, double v)
{
        ctl_pack_key(pk, key);
        if (isnan(v))
                msgpack_pack_nil(pk);
        else
                msgpack_pack_double(pk, v);
}

static void pack_field(msgpack_packer *pk, const msgpack_object *map, const char *key)
{
        const msgpack_object *o = ctl_get(map, key);
        ctl_pack_key(pk, key);
        if (o)
                msgpack_pack_object(pk, *o);
        else
                msgpack_pack_nil(pk);
}

static int print_json(struct poll_result *p, double commit_rate, double interval)
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        const msgpack_object *st = p->stats.result;

        msgpack_pack_map(&pk, 5);
        pack_num(&pk, "interval_s", interval);
        ctl_pack_key(&pk, "daemon");
        msgpack_pack_map(&pk, 8);
        pack_field(&pk, st, "version");
        pack_field(&pk, st, "uptime_s");
        pack_field(&pk, st, "connections");
        pack_field(&pk, st, "commits_total");
        pack_num(&pk, "commits_per_s", commit_rate);
        pack_field(&pk, st, "journal_total");
        pack_field(&pk, st, "writable");
        pack_field(&pk, st, "pending");
        ctl_pack_u32(&pk, "pending_limit", TOP_PENDING_LIMIT);
        ctl_pack_bool(&pk, "pending_truncated", p->pending_counted >= TOP_PENDING_LIMIT);
        ctl_pack_key(&pk, "rows");
        msgpack_pack_array(&pk, p->n);
        for (size_t i = 0; i < p->n; i++) {
                const struct row *r = &p->rows[i];
                msgpack_pack_map(&pk, 11);
                ctl_pack_strn(&pk, "model", r->model, r->model_len);
                ctl_pack_strn(&pk, "task", r->task, r->task_len);
                ctl_pack_key(&pk, "calls");
                msgpack_pack_uint64(&pk, r->calls);
                pack_num(&pk, "calls_per_s", r->rate);
                pack_num(&pk, "success_rate", r->success);
                pack_num(&pk, "ema_quality", r->ema);
                pack_num(&pk, "posterior_lo", r->lo);
                pack_num(&pk, "posterior_hi", r->hi);
                pack_num(&pk, "latency_p50_ms", r->p50);
                pack_num(&pk, "latency_p95_ms", r->p95);
                ctl_pack_u32(&pk, "pending", r->pending);
        }

        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        int status = CTL_EXIT_DAEMON;
        if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS)
                status = ctl_print_json(&u.data);
        else
                fputs("outcomectl: top: cannot build the JSON\n", stderr);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
        return status;
}

/* ---- the command ------------------------------------------------------ */

/* --interval: seconds from 0.1 to 3600 (a struct ctl_opt parser). */
static int parse_interval(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        char *end;
        errno = 0;
        double v = strtod(arg, &end);
        if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || !(v >= 0.1 && v <= 3600.0)) {
                ctl_usage(ctl, "%s takes seconds from 0.1 to 3600, not '%s'", opt, arg);
                return -1;
        }
        *(double *)dst = v;
        return 0;
}

static int run_top(struct ctl *ctl, int argc, char **argv)
{
        double interval = 1.0;
        const struct ctl_opt opts[] = {
                CTL_VALUE("interval", parse_interval, &interval, NULL),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, 0, "");
        if (status != CTL_GO)
                return status;

        /* Connect (and say why not) before the screen is taken. */
        struct oc_reply pong;
        if ((status = ctl_call_noargs(ctl, "ping", &pong)) != CTL_EXIT_OK)
                return status;
        oc_reply_destroy(&pong);

        struct prev pv = { 0 };
        struct poll_result p;
        char err[512] = "";
        double commit_rate;

        if (ctl->json || !isatty(STDOUT_FILENO)) {
                /* One snapshot, its rates measured over one interval. */
                status = do_poll(ctl, &p, err, sizeof(err));
                if (status == CTL_EXIT_OK) {
                        rates(&p, &pv, &commit_rate);
                        poll_free(&p);
                        struct timespec ts = { (time_t)interval,
                                               (long)((interval - floor(interval)) * 1e9) };
                        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                                ;
                        status = do_poll(ctl, &p, err, sizeof(err));
                }
                if (status == CTL_EXIT_OK) {
                        rates(&p, &pv, &commit_rate);
                        qsort(p.rows, p.n, sizeof(*p.rows), cmp_rows);
                        if (ctl->json)
                                status = print_json(&p, commit_rate, interval);
                        else
                                print_table(&p, commit_rate, TOP_WIDTH, 0);
                } else {
                        fprintf(stderr, "outcomectl: %s\n", err);
                }
                poll_free(&p);
                prev_free(&pv);
                return status;
        }

        /* Whole screens at once: no flicker line by line. */
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        term_setup();
        for (;;) {
                status = do_poll(ctl, &p, err, sizeof(err));
                if (status != CTL_EXIT_OK) {
                        poll_free(&p);
                        break;
                }
                rates(&p, &pv, &commit_rate);
                qsort(p.rows, p.n, sizeof(*p.rows), cmp_rows);
                int cols, lines;
                term_size(&cols, &lines);
                top_resized = 0;
                fputs("\033[H\033[2J", stdout);
                print_table(&p, commit_rate, cols, lines > 6 ? lines - 5 : 1);
                fputs("q: quit", stdout);
                fflush(stdout);
                poll_free(&p);
                if (wait_keys(interval))
                        break;
        }
        term_restore();
        if (status != CTL_EXIT_OK)
                fprintf(stderr, "outcomectl: %s\n", err);
        prev_free(&pv);
        return status;
}

CTL_COMMAND(top, run_top,
        "a live view of the models: calls/s, success, latency, pending",
        "Usage: outcomectl top [--interval SECS]\n"
        "\n"
        "A live view of what the daemon learns, refreshed every SECS seconds (default\n"
        "1), as top does.  Press q (or Ctrl-C) to quit.  A header with the daemon's\n"
        "version, uptime, open connections, whether its store is writable, commits per\n"
        "second, journal rows and pending traces (from 'stats'); then a row per model\n"
        "and task, busiest first (by CALLS/S, then model, then task):\n"
        "  CALLS/S    calls completed per second between the last two polls\n"
        "             ('-' on the first screen)\n"
        "  CALLS      completed calls of the task\n"
        "  SUCC%      successes / (successes + failures); 50.0 before any\n"
        "  EMA        the task's quality average (starts at 0.50)\n"
        "  POSTERIOR  the 95% interval of the task's posterior (lo-hi)\n"
        "  P50ms      median latency of the task's calls, in milliseconds\n"
        "  P95ms      95th percentile latency\n"
        "  PEND       pending traces of the model and task; only the oldest 1000\n"
        "             pending traces are counted (the header says when there are more)\n"
        "A model or task name too long for 80 columns ends with '~'; a row with\n"
        "pending traces and no calls yet shows '-' for the numbers.\n"
        "\n"
        "Each poll asks 'stats', 'query' (no domains) and 'query --pending --limit\n"
        "1000': small answers.  When standard output is not a terminal, or with\n"
        "--json, top polls twice, SECS apart, prints one snapshot with the rates\n"
        "measured between the two, and exits 0.  --json prints it as\n"
        "{\"interval_s\", \"daemon\": {\"version\", \"uptime_s\", \"connections\",\n"
        "\"commits_total\", \"commits_per_s\", \"journal_total\", \"writable\", \"pending\"},\n"
        "\"pending_limit\", \"pending_truncated\", \"rows\": [{\"model\", \"task\", \"calls\",\n"
        "\"calls_per_s\", \"success_rate\", \"ema_quality\", \"posterior_lo\", \"posterior_hi\",\n"
        "\"latency_p50_ms\", \"latency_p95_ms\", \"pending\"}...]} (null when unknown).\n"
        "\n"
        "Options:\n"
        "  --interval SECS   seconds between polls, 0.1 to 3600 (default 1)\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Exit status: 0 after q, Ctrl-C or SIGTERM, or after the snapshot; 3 when the\n"
        "daemon cannot be reached or is lost (the screen is restored first).\n"
        "\n"
        "Examples:\n"
        "  outcomectl top\n"
        "  outcomectl top --interval 5\n"
        "  outcomectl top | head -20\n"
        "  outcomectl --json top --interval 0.5\n");

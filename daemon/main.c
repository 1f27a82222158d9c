/* main.c - outcomed: command line, configuration, signals and the wiring of
 * tracker, store and server on one libuv loop.
 *
 * Start-up: read the configuration, open and migrate the database, load the
 * state, bind the socket, serve.  A timer hands the tracker's changes to the
 * store's writer thread every flush_interval_ms.  SIGTERM or SIGINT: stop
 * serving, remove the socket, write the last changes, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "rpc.h"
#include "server.h"
#include "store.h"
#include "tracker.h"

struct daemon {
        uv_loop_t loop;
        struct config cfg;
        struct tracker *tracker;
        struct store *store;
        struct server *server;
        struct rpc_env env;
        uv_timer_t flush_timer;
        uv_signal_t sigterm, sigint;
        bool full_write; /* a write failed: write everything next time */
        bool flush_failed_logged;
        int exit_code;
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: outcomed [OPTION]...\n"
                "Learn from what happened to every LLM inference call and tell routers how\n"
                "each model is doing, per task.  Serves msgpack-RPC on a Unix socket and\n"
                "keeps its state in SQLite.  Runs in the foreground and logs to stderr.\n"
                "\n"
                "Options:\n"
                "  -c, --config FILE     read this INI file (it must exist). Default:\n"
                "                        /etc/outcomed/outcomed.conf for root, else\n"
                "                        $XDG_CONFIG_HOME/outcomed/outcomed.conf; a missing\n"
                "                        default file means built-in defaults\n"
                "  -s, --socket PATH     listen on PATH (at most 107 bytes). Default:\n"
                "                        $OUTCOMED_SOCKET, else /run/outcomed/outcomed.sock\n"
                "                        for root, else $XDG_RUNTIME_DIR/outcomed.sock\n"
                "  -d, --db PATH         SQLite database. Default: /var/lib/outcomed/outcomed.db\n"
                "                        for root, else $XDG_STATE_HOME/outcomed/outcomed.db\n"
                "                        (~/.local/state/outcomed/outcomed.db)\n"
                "  -l, --log-level LVL   error, warn, info (default) or debug\n"
                "  -V, --version         print the version and exit\n"
                "  -h, --help            print this help and exit\n"
                "\n"
                "Flags override the configuration file.  Every configuration key is listed\n"
                "in README.md (sections [daemon], [store], [query], [git], [limits]).\n"
                "Signals: SIGTERM or SIGINT writes the last changes, removes the socket\n"
                "and exits 0.\n"
                "Exit status: 0 after a clean stop, 1 on a start-up or final-write error,\n"
                "2 on a usage error.\n");
}

/* ---- flushing ---------------------------------------------------------- */

static void daemon_on_flushed(void *data, int status, const char *errmsg)
{
        struct daemon *d = data;
        if (status < 0) {
                d->env.counters.flush_errors_total++;
                d->full_write = true;
                if (!d->flush_failed_logged)
                        log_error("writing to %s failed: %s; will retry", d->cfg.db_path,
                                  errmsg ? errmsg : strerror(-status));
                d->flush_failed_logged = true;
                return;
        }
        if (d->flush_failed_logged)
                log_info("writing to %s works again", d->cfg.db_path);
        d->flush_failed_logged = false;
        d->env.counters.flushes_total++;
        d->env.counters.last_flush_at = (uint64_t)time(NULL);
}

static int daemon_flush(struct daemon *d)
{
        bool full = d->full_write;
        if (full)
                tracker_mark_all_changed(d->tracker);
        if (!tracker_has_changes(d->tracker) && !full)
                return 0;
        struct store_batch *b = store_batch_new();
        if (!b)
                return -ENOMEM; /* the changes wait for the next tick */
        if (full)
                store_batch_set_full(b);
        d->full_write = false;
        struct tracker_sink sink;
        store_batch_sink(b, &sink);
        if (tracker_collect(d->tracker, &sink) < 0 || store_batch_status(b) < 0) {
                store_batch_free(b);
                d->full_write = true;
                return -ENOMEM;
        }
        return store_submit(d->store, b, daemon_on_flushed, d);
}

static void daemon_on_timer(uv_timer_t *t)
{
        struct daemon *d = t->data;
        int r = daemon_flush(d);
        if (r < 0)
                log_error("cannot queue a write: %s", strerror(-r));
}

/* ---- stopping ---------------------------------------------------------- */

static void daemon_stop(struct daemon *d, const char *why)
{
        if (!d->server)
                return;
        log_info("%s: stopping", why);
        server_stop(d->server);
        d->server = NULL;
        uv_timer_stop(&d->flush_timer);
        uv_signal_stop(&d->sigterm);
        uv_signal_stop(&d->sigint);
        int r = daemon_flush(d);
        uint64_t before = d->env.counters.flush_errors_total;
        store_close(d->store, NULL, NULL); /* waits for the last commit */
        d->store = NULL;
        if (r < 0 || d->env.counters.flush_errors_total != before || d->full_write) {
                log_error("the last changes could not be written to %s", d->cfg.db_path);
                d->exit_code = 1;
        }
        uv_close((uv_handle_t *)&d->flush_timer, NULL);
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void daemon_on_signal(uv_signal_t *h, int signum)
{
        daemon_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start-up ---------------------------------------------------------- */

static int make_id_prefix(char *buf, size_t len)
{
        uint64_t r;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
                return -errno;
        snprintf(buf, len, "t-%016" PRIx64, r);
        return 0;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "socket", required_argument, NULL, 's' },
                { "db", required_argument, NULL, 'd' },
                { "log-level", required_argument, NULL, 'l' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *config_file = NULL, *sock = NULL, *db = NULL, *level = NULL;
        char err[600];
        int c;

        while ((c = getopt_long(argc, argv, "c:s:d:l:Vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c': config_file = optarg; break;
                case 's': sock = optarg; break;
                case 'd': db = optarg; break;
                case 'l': level = optarg; break;
                case 'V': printf("outcomed %s\n", OUTCOMED_VERSION); exit(0);
                case 'h': usage(stdout); exit(0);
                default:
                        fprintf(stderr, "Try 'outcomed --help'.\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "outcomed: unexpected argument '%s'\nTry 'outcomed --help'.\n",
                        argv[optind]);
                return 2;
        }
        if (level && log_parse_level(level) < 0) {
                fprintf(stderr,
                        "outcomed: --log-level: '%s' is not one of error, warn, info, debug\n",
                        level);
                return 2;
        }
        char *def = config_file ? NULL : config_default_file();
        const char *file = config_file ? config_file : def;
        if (file && config_load(cfg, file, config_file != NULL, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomed: %s\n", err);
                free(def);
                return 1;
        }
        free(def);
        if ((sock && config_set_str(&cfg->socket_path, sock) < 0) ||
            (db && config_set_str(&cfg->db_path, db) < 0))
                return 1;
        if (level)
                cfg->log_level = log_parse_level(level);
        if (config_resolve_paths(cfg, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomed: %s\n", err);
                return 1;
        }
        return 0;
}

/* Create the socket's directory when it is missing (one level). */
static void ensure_parent_dir(const char *path, mode_t mode)
{
        char *dir = strdup(path);
        if (!dir)
                return;
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                /* chmod: the process umask (077) would narrow mkdir's mode. */
                if (mkdir(dir, mode) == 0 && chmod(dir, mode) == 0)
                        log_info("created %s", dir);
        }
        free(dir);
}

int main(int argc, char **argv)
{
        static struct daemon d;
        char err[600], prefix[40];
        int r;

        config_init(&d.cfg);
        r = parse_args(argc, argv, &d.cfg);
        if (r != 0) {
                config_free(&d.cfg);
                return r;
        }
        log_set_level((enum log_level)d.cfg.log_level);
        umask(077);
        signal(SIGPIPE, SIG_IGN);

        if (make_id_prefix(prefix, sizeof(prefix)) < 0) {
                log_error("getrandom: %s", strerror(errno));
                return 1;
        }
        struct tracker_options topts = {
                .id_prefix = prefix,
                .max_models = d.cfg.limits.models,
                .max_pending = d.cfg.limits.pending,
        };
        d.tracker = tracker_new(&topts);
        if (!d.tracker || uv_loop_init(&d.loop) < 0) {
                log_error("out of memory");
                return 1;
        }
        d.env.tracker = d.tracker;
        d.env.cfg = &d.cfg;
        d.env.started_at = (uint64_t)time(NULL);

        r = store_open(&d.store, d.cfg.db_path, &d.loop, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        r = store_load(d.store, d.tracker, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        ensure_parent_dir(d.cfg.socket_path, geteuid() == 0 ? 0755 : 0700);
        r = server_start(&d.server, &d.loop, &d.env, &d.cfg, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }

        uv_timer_init(&d.loop, &d.flush_timer);
        d.flush_timer.data = &d;
        uv_timer_start(&d.flush_timer, daemon_on_timer, d.cfg.flush_interval_ms,
                       d.cfg.flush_interval_ms);
        uv_signal_init(&d.loop, &d.sigterm);
        uv_signal_init(&d.loop, &d.sigint);
        d.sigterm.data = d.sigint.data = &d;
        uv_signal_start(&d.sigterm, daemon_on_signal, SIGTERM);
        uv_signal_start(&d.sigint, daemon_on_signal, SIGINT);

        log_info("outcomed %s listening on %s; database %s (%zu profiles, %zu pending traces)",
                 OUTCOMED_VERSION, d.cfg.socket_path, d.cfg.db_path,
                 tracker_profile_count(d.tracker), tracker_pending_count(d.tracker));
        uv_run(&d.loop, UV_RUN_DEFAULT);
        if (d.exit_code == 0)
                log_info("stopped");

out:
        if (d.store) /* start-up failed after opening the store */
                store_close(d.store, NULL, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT); /* run close callbacks */
        if (uv_loop_close(&d.loop) != 0)
                log_warn("handles left open at exit");
        tracker_free(d.tracker);
        config_free(&d.cfg);
        return d.exit_code;
}

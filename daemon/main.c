/* main.c - outcomed: command line, configuration, signals and the wiring of
 * tracker, store and server on one libuv loop.
 *
 * Start-up: read the configuration, open and migrate the database, load the
 * state (snapshot and journal), bind the socket, serve.  Changes reach the
 * disk through commit.c's group commit.  SIGTERM or SIGINT: stop serving,
 * remove the socket, write the last changes, exit 0.
 *
 * Under systemd (notify.c): the listening socket may be passed by the
 * socket unit (then it is used as is and never removed); READY=1 goes out
 * once the state is loaded and the socket listens, a timer keeps STATUS=
 * current and sends WATCHDOG=1 when the unit asks for it, STOPPING=1 on the
 * way out.  SIGHUP re-reads the configuration: a file that does not load
 * changes nothing; keys that only apply at start (socket, socket_group, db)
 * keep their running values until a restart.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "commit.h"
#include "config.h"
#include "fleet.h"
#include "gitscan.h"
#include "history.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "rpc.h"
#include "server.h"
#include "siphash.h"
#include "store.h"
#include "tracker.h"

/* The command line, kept: every reload applies it again over the file. */
struct daemon_args {
        const char *config_file; /* --config, or NULL: the default file */
        const char *socket;
        const char *db;
        int log_level;           /* -1: not given */
};

struct daemon {
        uv_loop_t loop;
        struct config cfg;
        struct store *store;
        struct commit *commit;
        struct gitscan *gitscan;
        struct history_reader *history;
        struct fleet *fleet;
        struct server *server;
        struct rpc_env env;
        uv_signal_t sigterm, sigint;
        int exit_code;
        /* configuration and the service manager (daemon_service_*) */
        struct daemon_args args;
        bool activated;         /* the socket was passed (socket activation) */
        char listen_path[108];  /* its path (or what stands for it in logs) */
        bool service_on;        /* sighup and notify_timer are initialised */
        uv_signal_t sighup;
        uv_timer_t notify_timer;
        uint64_t watchdog_usec; /* 0: no watchdog */
        char status[256];       /* the last STATUS= sent */
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
                "and exits 0.  SIGHUP re-reads the configuration file (the socket and the\n"
                "database take a restart); a file that does not load changes nothing.\n"
                "Under systemd: socket activation (LISTEN_FDS) and sd_notify (READY=1,\n"
                "STATUS=, WATCHDOG=1, STOPPING=1); see outcomed(8).\n"
                "Exit status: 0 after a clean stop, 1 on a start-up or final-write error,\n"
                "2 on a usage error.\n");
}

/* ---- the journal, for rpc ---------------------------------------------- */

static int daemon_record(void *data, const struct journal_entry *e)
{
        return commit_record(data, e);
}

static bool daemon_writable(void *data)
{
        return commit_writable(data);
}

/* ---- stopping ---------------------------------------------------------- */

static void daemon_stop(struct daemon *d, const char *why)
{
        if (!d->server)
                return;
        log_info("%s: stopping", why);
        server_stop(d->server);
        d->server = NULL;
        gitscan_close(d->gitscan); /* before the last write: it judges no more */
        d->gitscan = NULL;
        fleet_close(d->fleet);
        d->fleet = NULL;
        uv_signal_stop(&d->sigterm);
        uv_signal_stop(&d->sigint);
        int r = commit_final(d->commit);
        uint64_t before = d->env.counters.commit_errors_total;
        store_close(d->store, NULL, NULL); /* waits for the last commit */
        d->store = NULL;
        if (r < 0 || d->env.counters.commit_errors_total != before) {
                log_error("the last changes could not be written to %s", d->cfg.db_path);
                d->exit_code = 1;
        }
        commit_close(d->commit);
        d->commit = NULL;
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void daemon_service_stop(struct daemon *d);

static void daemon_on_signal(uv_signal_t *h, int signum)
{
        daemon_service_stop(h->data);
        daemon_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start-up ---------------------------------------------------------- */

/* The command line into a; 0, or 2 on a usage error. */
static int parse_args(int argc, char **argv, struct daemon_args *a)
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
        const char *level = NULL;
        int c;

        *a = (struct daemon_args){ .log_level = -1 };
        while ((c = getopt_long(argc, argv, "c:s:d:l:Vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c': a->config_file = optarg; break;
                case 's': a->socket = optarg; break;
                case 'd': a->db = optarg; break;
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
        if (level && (a->log_level = log_parse_level(level)) < 0) {
                fprintf(stderr,
                        "outcomed: --log-level: '%s' is not one of error, warn, info, debug\n",
                        level);
                return 2;
        }
        return 0;
}

/* ---- configuration and reload ------------------------------------------ */

/* Fill c (fresh from config_init) as the command line says: the file
 * (--config, else the default one, which may be missing), the flags over
 * it, the socket systemd passed over both, then the default paths.  Used at
 * start and by every reload.  0, or a negative errno with err filled. */
static int daemon_load_config(const struct daemon *d, struct config *c, bool starting, char *err,
                              size_t errlen)
{
        const struct daemon_args *a = &d->args;
        char *def = a->config_file ? NULL : config_default_file();
        const char *file = a->config_file ? a->config_file : def;
        int r = 0;

        if (file && config_load(c, file, a->config_file != NULL, err, errlen) < 0) {
                r = -EINVAL;
                goto out;
        }
        if ((a->socket && config_set_str(&c->socket_path, a->socket) < 0) ||
            (a->db && config_set_str(&c->db_path, a->db) < 0)) {
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
                goto out;
        }
        if (a->log_level >= 0)
                c->log_level = a->log_level;
        if (d->activated) {
                if (starting && c->socket_path && strcmp(c->socket_path, d->listen_path) != 0)
                        log_warn("the configured socket %s is not the one the service manager "
                                 "passed; serving on %s", c->socket_path, d->listen_path);
                if (config_set_str(&c->socket_path, d->listen_path) < 0) {
                        snprintf(err, errlen, "out of memory");
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (config_resolve_paths(c, err, errlen) < 0)
                r = -EINVAL;
out:
        free(def);
        return r;
}

struct daemon_changes {
        char keys[512];    /* "[store] flush_interval_ms, [limits] pending" */
        char restart[256]; /* the changed keys that take a restart */
};

static void daemon_on_changed_key(void *u, const char *section, const char *key, bool restart)
{
        struct daemon_changes *ch = u;
        char *buf = restart ? ch->restart : ch->keys;
        size_t len = restart ? sizeof(ch->restart) : sizeof(ch->keys);
        size_t n = strlen(buf);
        if (n + 1 < len)
                snprintf(buf + n, len - n, "%s[%s] %s", n ? ", " : "", section, key);
}

static void daemon_status_line(const struct daemon *d, char *buf, size_t len);

/* SIGHUP: load the configuration again; apply it only when it loads.  What
 * exists stays when a limit is lowered (open connections, pending traces,
 * models); only new ones are refused. */
static void daemon_reload(struct daemon *d)
{
        struct daemon_changes ch = { "", "" };
        struct config next, old;
        char err[600];

        notify_reloading();
        config_init(&next);
        if (daemon_load_config(d, &next, false, err, sizeof(err)) < 0) {
                d->env.counters.reload_errors_total++;
                log_error("SIGHUP: configuration not reloaded, the running one stays: %s", err);
                config_free(&next);
                goto out;
        }
        config_diff(&d->cfg, &next, daemon_on_changed_key, &ch);
        if (ch.restart[0])
                log_warn("SIGHUP: %s changed, which takes a restart; the running value stays",
                         ch.restart);
        config_keep_startup_keys(&d->cfg, &next);
        old = d->cfg;
        d->cfg = next; /* in place: env, server and commit point at d->cfg */
        config_free(&old);
        log_set_level((enum log_level)d->cfg.log_level);
        commit_reconfigure(d->commit);
        gitscan_reconfigure(d->gitscan);
        fleet_reconfigure(d->fleet);
        d->env.counters.reloads_total++;
        d->env.counters.config_loaded_at = (uint64_t)time(NULL);
        log_info("SIGHUP: reloaded %s: %s", d->cfg.file ? d->cfg.file : "the built-in defaults",
                 ch.keys[0] ? ch.keys : "nothing changed");
out:
        daemon_status_line(d, d->status, sizeof(d->status));
        notify_ready(d->status);
}

static void daemon_on_sighup(uv_signal_t *h, int signum)
{
        daemon_reload(h->data);
}

/* ---- the service manager ----------------------------------------------- */

/* One line for `systemctl status`. */
static void daemon_status_line(const struct daemon *d, char *buf, size_t len)
{
        const struct rpc_counters *k = &d->env.counters;
        char when[32] = "none yet";
        if (k->last_commit_at) {
                time_t t = (time_t)k->last_commit_at;
                struct tm tm;
                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        }
        snprintf(buf, len, "%llu connections, %zu pending traces, %zu models; last write %s%s",
                 (unsigned long long)k->connections, tracker_pending_count(d->env.tracker),
                 tracker_profile_count(d->env.tracker), when,
                 d->commit && !commit_writable(d->commit) ? "; writes failing" : "");
}

/* Keep STATUS= current (sent only when it changed) and pet the watchdog:
 * a loop that is stuck sends nothing, and systemd restarts it. */
static void daemon_on_notify_timer(uv_timer_t *t)
{
        struct daemon *d = t->data;
        char line[sizeof(d->status)];
        if (d->watchdog_usec)
                notify_watchdog();
        daemon_status_line(d, line, sizeof(line));
        if (strcmp(line, d->status) != 0) {
                memcpy(d->status, line, sizeof(line));
                notify_status(line);
        }
}

/* Serving: handle SIGHUP, tell the service manager we are ready. */
static void daemon_service_start(struct daemon *d)
{
        uv_signal_init(&d->loop, &d->sighup);
        d->sighup.data = d;
        uv_signal_start(&d->sighup, daemon_on_sighup, SIGHUP);
        (void)uv_timer_init(&d->loop, &d->notify_timer);
        d->notify_timer.data = d;
        /* Neither keeps the loop alive: stopping does not hinge on them. */
        uv_unref((uv_handle_t *)&d->sighup);
        uv_unref((uv_handle_t *)&d->notify_timer);
        d->service_on = true;
        if (!notify_enabled())
                return;
        d->watchdog_usec = notify_watchdog_usec();
        uint64_t ms = 1000; /* STATUS= is at most this old */
        if (d->watchdog_usec && d->watchdog_usec / 2000 < ms)
                ms = d->watchdog_usec / 2000 ? d->watchdog_usec / 2000 : 1;
        (void)uv_timer_start(&d->notify_timer, daemon_on_notify_timer, ms, ms);
        daemon_status_line(d, d->status, sizeof(d->status));
        int r = notify_ready(d->status);
        if (r < 0)
                log_warn("cannot notify the service manager: %s", strerror(-r));
        if (d->watchdog_usec) {
                notify_watchdog();
                log_debug("watchdog: every %llu ms (WatchdogSec=%llu ms)", (unsigned long long)ms,
                          (unsigned long long)(d->watchdog_usec / 1000));
        }
}

/* Stopping: STOPPING=1, no more reloads or status. */
static void daemon_service_stop(struct daemon *d)
{
        if (!d->service_on)
                return;
        d->service_on = false;
        notify_stopping("stopping: writing the last changes");
        uv_close((uv_handle_t *)&d->sighup, NULL);
        uv_close((uv_handle_t *)&d->notify_timer, NULL);
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
        char err[600];
        int r;

        config_init(&d.cfg);
        r = parse_args(argc, argv, &d.args);
        if (r != 0)
                return r;
        log_detect_journal();
        int listen_fd = -1;
        r = notify_listen_fd(&listen_fd);
        if (r < 0) {
                fprintf(stderr, "outcomed: the sockets passed by the service manager (LISTEN_FDS): "
                        "%s; want one listening Unix stream socket\n", strerror(-r));
                return 1;
        }
        /* The hash tables' key, before anything fills them. */
        r = siphash_init_random();
        if (r < 0) {
                fprintf(stderr, "outcomed: getrandom: cannot draw the hash tables' key: %s\n",
                        strerror(-r));
                return 1;
        }
        d.activated = listen_fd >= 0;
        if (d.activated && server_socket_path(listen_fd, d.listen_path, sizeof(d.listen_path)) < 0)
                snprintf(d.listen_path, sizeof(d.listen_path), "(the socket passed as fd %d)",
                         listen_fd); /* abstract or unnamed: for the log lines */
        if (daemon_load_config(&d, &d.cfg, true, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomed: %s\n", err);
                config_free(&d.cfg);
                return 1;
        }
        d.env.counters.config_loaded_at = (uint64_t)time(NULL);
        log_set_level((enum log_level)d.cfg.log_level);
        umask(077);
        /* Every connection is a descriptor: take all the kernel allows. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                setrlimit(RLIMIT_NOFILE, &nofile);
        }
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN); /* until the loop handles it: no reload while starting */

        if (uv_loop_init(&d.loop) < 0) {
                log_error("cannot initialise the event loop");
                return 1;
        }
        d.env.cfg = &d.cfg;
        d.env.started_at = (uint64_t)time(NULL);
        d.env.metrics = metrics_new();
        if (!d.env.metrics) {
                log_error("out of memory");
                d.exit_code = 1;
                goto out;
        }

        r = store_open(&d.store, d.cfg.db_path, &d.loop, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        r = commit_open(&d.commit, &d.loop, d.store, &d.env, &d.cfg, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        d.env.journal = (struct rpc_journal){
                .record = daemon_record,
                .writable = daemon_writable,
                .data = d.commit,
        };
        r = gitscan_open(&d.gitscan, &d.loop, &d.env, &d.cfg, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        gitscan_hooks(d.gitscan, &d.env.git);
        if (!(d.history = history_reader_new(&d.loop, &d.cfg))) {
                log_error("out of memory");
                d.exit_code = 1;
                goto out;
        }
        history_reader_hooks(d.history, &d.env.history);
        r = fleet_open(&d.fleet, &d.loop, &d.env, &d.cfg, err, sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }
        if (d.activated) {
                r = server_start_fd(&d.server, &d.loop, &d.env, &d.cfg, listen_fd, err,
                                    sizeof(err));
                listen_fd = -1; /* the server's now */
        } else {
                ensure_parent_dir(d.cfg.socket_path, geteuid() == 0 ? 0755 : 0700);
                r = server_start(&d.server, &d.loop, &d.env, &d.cfg, err, sizeof(err));
        }
        if (r < 0) {
                log_error("%s", err);
                d.exit_code = 1;
                goto out;
        }

        server_attach_commit(d.server, d.commit);
        uv_signal_init(&d.loop, &d.sigterm);
        uv_signal_init(&d.loop, &d.sigint);
        d.sigterm.data = d.sigint.data = &d;
        uv_signal_start(&d.sigterm, daemon_on_signal, SIGTERM);
        uv_signal_start(&d.sigint, daemon_on_signal, SIGINT);

        log_info("outcomed %s listening on %s; database %s (%zu profiles, %zu pending traces, "
                 "%llu journal entries replayed; durability %s)",
                 OUTCOMED_VERSION, d.cfg.socket_path, d.cfg.db_path,
                 tracker_profile_count(d.env.tracker), tracker_pending_count(d.env.tracker),
                 (unsigned long long)d.env.counters.replayed,
                 proto_name(proto_durability_names, PROTO_DURABILITY__COUNT, d.cfg.durability));
        if (d.activated)
                log_info("the socket was passed by the service manager: it stays when outcomed "
                         "stops");
        daemon_service_start(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        if (d.exit_code == 0)
                log_info("stopped");

out:
        gitscan_close(d.gitscan); /* start-up failed after it started */
        fleet_close(d.fleet);
        if (d.commit) { /* start-up failed after loading */
                commit_final(d.commit);
                commit_close(d.commit);
        }
        if (d.store) /* start-up failed after opening the store */
                store_close(d.store, NULL, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT); /* run close callbacks */
        if (uv_loop_close(&d.loop) != 0)
                log_warn("handles left open at exit");
        tracker_free(d.env.tracker);
        history_reader_free(d.history); /* after the loop ran its reads out */
        metrics_free(d.env.metrics);
        config_free(&d.cfg);
        return d.exit_code;
}

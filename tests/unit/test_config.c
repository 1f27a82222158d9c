/* test_config.c - daemon/config.c: the built-in defaults, every key read
 * from a temporary INI file, bad values, unknown keys and sections refused
 * with FILE:LINE, what a reload sees as changed (config_diff) and which
 * keys wait for a restart, the default paths from the environment, and
 * watched repositories resolved through realpath.  Check forks each test,
 * so setenv stays inside it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char tmpdir[64];

static void setup_dir(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void teardown_dir(void)
{
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name (a static buffer per call site is enough: copy when kept). */
static char *in_tmp(const char *name)
{
        static char buf[4][256];
        static int k;
        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
        return buf[k];
}

static const char *write_conf(const char *name, const char *text)
{
        const char *path = in_tmp(name);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        return path;
}

/* Load text into a fresh config; the return code, err filled. */
static int load_text(struct config *c, const char *text, char *err, size_t errlen)
{
        const char *path = write_conf("outcomed.conf", text);
        config_init(c);
        err[0] = '\0';
        return config_load(c, path, true, err, errlen);
}

/* text must be refused; the error is "FILE:LINE: ..." containing want. */
static void refused(const char *text, int line, const char *want)
{
        struct config c;
        char err[600], prefix[300];
        int r = load_text(&c, text, err, sizeof(err));
        ck_assert_msg(r == -EINVAL, "accepted (%d):\n%s", r, text);
        snprintf(prefix, sizeof(prefix), "%s:%d: ", in_tmp("outcomed.conf"), line);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' does not start with '%s'",
                      err, prefix);
        ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
        config_free(&c);
}

static void accepted(const char *text, struct config *c)
{
        char err[600];
        int r = load_text(c, text, err, sizeof(err));
        ck_assert_msg(r == 0, "refused: %s\n%s", err, text);
}

/* ---- defaults ---------------------------------------------------------- */

START_TEST(test_defaults)
{
        struct config c;
        config_init(&c);
        ck_assert_ptr_null(c.file);
        ck_assert_ptr_null(c.socket_path);
        ck_assert_ptr_null(c.socket_group);
        ck_assert_ptr_null(c.db_path);
        ck_assert_int_eq(c.log_level, LOG_LVL_INFO);
        ck_assert_int_eq(c.durability, DURABILITY_ACK);
        ck_assert_uint_eq(c.flush_interval_ms, 1000);
        ck_assert_uint_eq(c.snapshot_interval_ms, 1000);
        ck_assert_uint_eq(c.history_days, 30);
        ck_assert_uint_eq(c.debug_commit_delay_ms, 0);
        static const uint64_t ttl[5] = { 86400, 86400, 86400, 604800, 86400 };
        for (int i = 0; i < 5; i++)
                ck_assert_uint_eq(c.ttl_s[i], ttl[i]);
        ck_assert_uint_eq(c.expiry_interval_s, 10);
        ck_assert_uint_eq(c.degrade_threshold, 3);
        ck_assert_uint_eq(c.half_life_s, 0);
        ck_assert_uint_eq(c.nprices, 0);
        ck_assert_uint_eq(c.ngit_repos, 0);
        ck_assert_uint_eq(c.git_scan_interval_s, 30);
        ck_assert_uint_eq(c.git_settle_s, 900);
        ck_assert_uint_eq(c.git_deadline_s, 86400);
        ck_assert(c.git_text_threshold == 0.8);
        ck_assert_uint_eq(c.nallow_uids, 0);
        ck_assert_ptr_null(c.allow_group);
        /* the limits README.md documents */
        ck_assert_uint_eq(c.limits.message_bytes, 4194304);
        ck_assert_uint_eq(c.limits.model_bytes, 256);
        ck_assert_uint_eq(c.limits.text_bytes, 4096);
        ck_assert_uint_eq(c.limits.output_bytes, 1048576);
        ck_assert_uint_eq(c.limits.files, 256);
        ck_assert_uint_eq(c.limits.path_bytes, 4096);
        ck_assert_uint_eq(c.limits.list_entries, 1024);
        ck_assert_uint_eq(c.limits.models, 100000);
        ck_assert_uint_eq(c.limits.pending, 1000000);
        ck_assert_uint_eq(c.limits.domains, 1000000);
        ck_assert_uint_eq(c.limits.connections, 1024);
        ck_assert_uint_eq(c.limits.connections_per_uid, 256);
        ck_assert_uint_eq(c.limits.requests_in_flight, 4096);
        ck_assert_uint_eq(c.limits.reply_buffer_bytes, 67108864);
        ck_assert_uint_eq(c.limits.partial_bytes, 67108864);
        ck_assert_uint_eq(c.limits.message_timeout_ms, 10000);
        config_free(&c);
        config_free(&c); /* a freed config is all zero: freeing it again is harmless */
}
END_TEST

/* A missing file: nothing when it may be missing, an error when not. */
START_TEST(test_missing_file)
{
        struct config c;
        char err[600] = "";
        config_init(&c);
        ck_assert_int_eq(config_load(&c, in_tmp("nope.conf"), false, err, sizeof(err)), 0);
        ck_assert_ptr_null(c.file);
        ck_assert_uint_eq(c.flush_interval_ms, 1000);
        ck_assert_int_eq(config_load(&c, in_tmp("nope.conf"), true, err, sizeof(err)), -ENOENT);
        ck_assert_msg(strstr(err, "nope.conf: cannot open"), "err: %s", err);
        config_free(&c);
}
END_TEST

/* ---- every key --------------------------------------------------------- */

START_TEST(test_every_key)
{
        /* a watched repository named through a symlink and a "..": stored
         * resolved */
        char repo[256], link[256], conf[4096];
        snprintf(repo, sizeof(repo), "%s", in_tmp("repo"));
        snprintf(link, sizeof(link), "%s", in_tmp("link"));
        ck_assert_int_eq(mkdir(repo, 0700), 0);
        ck_assert_int_eq(mkdir(in_tmp("repo/sub"), 0700), 0);
        ck_assert_int_eq(symlink(repo, link), 0);
        snprintf(conf, sizeof(conf),
                 "; a comment\n"
                 "[daemon]\n"
                 "socket = /tmp/o.sock\n"
                 "socket_group = routers\n"
                 "log_level = debug\n"
                 "allow_uids = 1000, 1001 root\n"
                 "allow_uids = 4242\n"
                 "allow_group = 0\n"
                 "[store]\n"
                 "db = /tmp/o.db\n"
                 "flush_interval_ms = 250\n"
                 "durability = relaxed\n"
                 "snapshot_interval_ms = 750\n"
                 "history_days = 0\n"
                 "debug_commit_delay_ms = 20\n"
                 "[expiry]\n"
                 "generate_ttl_s = 1\n"
                 "embed_ttl_s = 2\n"
                 "classify_ttl_s = 3\n"
                 "code_ttl_s = 0\n"
                 "reasoning_ttl_s = 4294967295\n"
                 "interval_s = 86400\n"
                 "[query]\n"
                 "degrade_threshold = 0\n"
                 "half_life_s = 3600\n"
                 "[git]\n"
                 "repo = %s\n"
                 "repo = %s/sub/..\n"
                 "scan_interval_s = 1\n"
                 "settle_s = 0\n"
                 "deadline_s = 1\n"
                 "text_threshold = 1\n"
                 "[limits]\n"
                 "message_bytes = 1024\n"
                 "model_bytes = 65536\n"
                 "text_bytes = 0\n"
                 "output_bytes = 7\n"
                 "files = 0\n"
                 "path_bytes = 1\n"
                 "list_entries = 16777216\n"
                 "models = 18446744073709551615\n"
                 "pending = 1\n"
                 "domains = 5\n"
                 "connections = 2\n"
                 "connections_per_uid = 0\n"
                 "requests_in_flight = 3\n"
                 "reply_buffer_bytes = 4096\n"
                 "partial_bytes = 65536\n"
                 "message_timeout_ms = 10\n"
                 "[price:gpt-4o]\n"
                 "input_per_mtok = 2.5\n"
                 "output_per_mtok = 10\n"
                 "[price:qwen3-4b]\n"
                 "output_per_mtok = 0.125\n"
                 "[price:gpt-4o]\n"
                 "input_per_mtok = 3e0\n",
                 link, repo);
        struct config c;
        accepted(conf, &c);
        ck_assert_str_eq(c.file, in_tmp("outcomed.conf"));
        ck_assert_str_eq(c.socket_path, "/tmp/o.sock");
        ck_assert_str_eq(c.socket_group, "routers");
        ck_assert_int_eq(c.log_level, LOG_LVL_DEBUG);
        ck_assert_uint_eq(c.nallow_uids, 4);
        ck_assert_uint_eq(c.allow_uids[0], 1000);
        ck_assert_uint_eq(c.allow_uids[1], 1001);
        ck_assert_uint_eq(c.allow_uids[2], 0); /* root, by name */
        ck_assert_uint_eq(c.allow_uids[3], 4242);
        ck_assert_str_eq(c.allow_group, "0");
        ck_assert_uint_eq(c.allow_gid, 0);
        ck_assert_str_eq(c.db_path, "/tmp/o.db");
        ck_assert_uint_eq(c.flush_interval_ms, 250);
        ck_assert_int_eq(c.durability, DURABILITY_RELAXED);
        ck_assert_uint_eq(c.snapshot_interval_ms, 750);
        ck_assert_uint_eq(c.history_days, 0);
        ck_assert_uint_eq(c.debug_commit_delay_ms, 20);
        ck_assert_uint_eq(c.ttl_s[0], 1);
        ck_assert_uint_eq(c.ttl_s[1], 2);
        ck_assert_uint_eq(c.ttl_s[2], 3);
        ck_assert_uint_eq(c.ttl_s[3], 0);
        ck_assert_uint_eq(c.ttl_s[4], 4294967295u);
        ck_assert_uint_eq(c.expiry_interval_s, 86400);
        ck_assert_uint_eq(c.degrade_threshold, 0);
        ck_assert_uint_eq(c.half_life_s, 3600);
        ck_assert_uint_eq(c.ngit_repos, 2);
        ck_assert_str_eq(c.git_repos[0], repo); /* the link, resolved */
        ck_assert_str_eq(c.git_repos[1], repo);
        ck_assert_uint_eq(c.git_scan_interval_s, 1);
        ck_assert_uint_eq(c.git_settle_s, 0);
        ck_assert_uint_eq(c.git_deadline_s, 1);
        ck_assert(c.git_text_threshold == 1.0);
        ck_assert_uint_eq(c.limits.message_bytes, 1024);
        ck_assert_uint_eq(c.limits.model_bytes, 65536);
        ck_assert_uint_eq(c.limits.text_bytes, 0);
        ck_assert_uint_eq(c.limits.output_bytes, 7);
        ck_assert_uint_eq(c.limits.files, 0);
        ck_assert_uint_eq(c.limits.path_bytes, 1);
        ck_assert_uint_eq(c.limits.list_entries, 16777216);
        ck_assert_uint_eq(c.limits.models, UINT64_MAX);
        ck_assert_uint_eq(c.limits.pending, 1);
        ck_assert_uint_eq(c.limits.domains, 5);
        ck_assert_uint_eq(c.limits.connections, 2);
        ck_assert_uint_eq(c.limits.connections_per_uid, 0);
        ck_assert_uint_eq(c.limits.requests_in_flight, 3);
        ck_assert_uint_eq(c.limits.reply_buffer_bytes, 4096);
        ck_assert_uint_eq(c.limits.partial_bytes, 65536);
        ck_assert_uint_eq(c.limits.message_timeout_ms, 10);
        /* [price:MODEL]: a section given twice adds to the same model */
        ck_assert_uint_eq(c.nprices, 2);
        const struct config_price *p = config_price(&c, "gpt-4o");
        ck_assert_ptr_nonnull(p);
        ck_assert(p->input_per_mtok == 3.0);
        ck_assert(p->output_per_mtok == 10.0);
        p = config_price(&c, "qwen3-4b");
        ck_assert_ptr_nonnull(p);
        ck_assert(p->input_per_mtok == 0.0);
        ck_assert(p->output_per_mtok == 0.125);
        ck_assert_ptr_null(config_price(&c, "gpt-4"));

        /* watched: the repository under any of its names */
        char *canon = NULL;
        ck_assert(config_repo_watched(&c, link, &canon));
        ck_assert_str_eq(canon, repo);
        free(canon);
        canon = NULL;
        ck_assert(!config_repo_watched(&c, in_tmp("repo/sub"), &canon));
        ck_assert_ptr_null(canon);
        ck_assert(!config_repo_watched(&c, in_tmp("missing"), &canon));
        ck_assert_ptr_null(canon);
        config_free(&c);
}
END_TEST

/* The durability names and log levels. */
START_TEST(test_enumerations)
{
        static const struct { const char *v; int want; } dur[] = {
                { "ack", DURABILITY_ACK }, { "relaxed", DURABILITY_RELAXED },
                { "fsync", DURABILITY_FSYNC },
        };
        static const struct { const char *v; int want; } lvl[] = {
                { "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN }, { "info", LOG_LVL_INFO },
                { "debug", LOG_LVL_DEBUG },
        };
        char text[128];
        struct config c;
        for (size_t i = 0; i < sizeof(dur) / sizeof(dur[0]); i++) {
                snprintf(text, sizeof(text), "[store]\ndurability = %s\n", dur[i].v);
                accepted(text, &c);
                ck_assert_int_eq(c.durability, dur[i].want);
                config_free(&c);
        }
        for (size_t i = 0; i < sizeof(lvl) / sizeof(lvl[0]); i++) {
                snprintf(text, sizeof(text), "[daemon]\nlog_level = %s\n", lvl[i].v);
                accepted(text, &c);
                ck_assert_int_eq(c.log_level, lvl[i].want);
                config_free(&c);
        }
}
END_TEST

/* ---- refusals, with the file and the line ------------------------------ */

START_TEST(test_unknown_keys_and_sections)
{
        refused("[daemon]\nsocket = /x\n[stroe]\ndb = /y\n", 4, "unknown section [stroe]");
        refused("\n\n[store]\ndurabilty = ack\n", 4, "unknown key 'durabilty' in [store]");
        /* a key of another section is unknown here */
        refused("[limits]\ndb = /y\n", 2, "unknown key 'db' in [limits]");
        refused("top = 1\n", 1, "unknown section []");
        refused("[price:gpt-4o]\ninput = 1\n", 2, "unknown key 'input' in [price:gpt-4o]");
        refused("[price:]\ninput_per_mtok = 1\n", 2, "needs a model id");
        /* not INI at all */
        refused("[daemon]\nthis line has no equals sign\n", 2, "cannot parse this line");
}
END_TEST

START_TEST(test_bad_values)
{
        /* whole numbers: range, sign, junk, empty */
        refused("[store]\nflush_interval_ms = 9\n", 2, "flush_interval_ms: must be a whole number "
                "from 10 to 3600000");
        refused("[store]\nflush_interval_ms = 3600001\n", 2, "from 10 to 3600000");
        refused("[store]\nhistory_days = -1\n", 2, "history_days: must be a whole number");
        refused("[store]\nhistory_days = +1\n", 2, "history_days: must be a whole number");
        refused("[store]\nhistory_days = 1d\n", 2, "history_days: must be a whole number");
        refused("[store]\nhistory_days =\n", 2, "history_days: must be a whole number");
        refused("[expiry]\ncode_ttl_s = 4294967296\n", 2, "code_ttl_s");
        refused("[expiry]\ninterval_s = 0\n", 2, "interval_s: must be a whole number from 1");
        refused("[limits]\nmessage_bytes = 1023\n", 2, "message_bytes");
        refused("[limits]\nmodels = 0\n", 2, "models: must be a whole number from 1");
        refused("[limits]\nmodels = 18446744073709551616\n", 2, "models");
        refused("[limits]\ndomains = 0\n", 2, "domains: must be a whole number from 1");
        refused("[limits]\npartial_bytes = 65535\n", 2, "partial_bytes: must be a whole number "
                "from 65536");
        refused("[limits]\nmessage_timeout_ms = 9\n", 2, "message_timeout_ms: must be a whole "
                "number from 10 to 86400000");
        refused("[limits]\nmessage_timeout_ms = 86400001\n", 2, "message_timeout_ms");
        refused("[limits]\nreply_buffer_bytes = 4095\n", 2, "reply_buffer_bytes");
        /* strings, names */
        refused("[daemon]\nsocket =\n", 2, "socket: must not be empty");
        refused("[store]\ndurability = sometimes\n", 2, "'sometimes' is not one of ack, relaxed, "
                "fsync");
        refused("[daemon]\nlog_level = loud\n", 2, "'loud' is not one of error, warn, info, debug");
        refused("[daemon]\nallow_uids = no-such-user-here\n", 2, "'no-such-user-here' is neither");
        refused("[daemon]\nallow_uids = ,\n", 2, "must list at least one");
        refused("[daemon]\nallow_uids = 4294967295\n", 2, "is neither"); /* (uid_t)-1 */
        refused("[daemon]\nallow_group = no-such-group-here\n", 2, "no group named");
        refused("[daemon]\nallow_group =\n", 2, "allow_group: must not be empty");
        /* the text threshold: above 0, at most 1 */
        refused("[git]\ntext_threshold = 0\n", 2, "is not a number above 0 and at most 1");
        refused("[git]\ntext_threshold = 1.01\n", 2, "text_threshold");
        refused("[git]\ntext_threshold = nan\n", 2, "text_threshold");
        refused("[git]\ndeadline_s = 0\n", 2, "deadline_s");
        /* repositories: absolute, existing */
        refused("[git]\nrepo = relative/path\n", 2, "is not an absolute path");
        refused("[git]\nrepo = /no/such/dir/for/outcomed\n", 2, "cannot resolve");
        /* prices */
        refused("[price:m]\ninput_per_mtok = -1\n", 2, "is not a price");
        refused("[price:m]\ninput_per_mtok = cheap\n", 2, "is not a price");
        refused("[price:m]\noutput_per_mtok = 1e13\n", 2, "is not a price");
        refused("[price:m]\noutput_per_mtok = nan\n", 2, "is not a price");
        /* the first error is the one reported, at its line */
        refused("[store]\nhistory_days = 1\nhistory_days = x\nflush_interval_ms = 1\n", 3,
                "history_days");
}
END_TEST

/* ---- reloading --------------------------------------------------------- */

struct seen {
        char keys[1024];
        unsigned restart;
};

static void on_key(void *u, const char *section, const char *key, bool restart)
{
        struct seen *s = u;
        size_t n = strlen(s->keys);
        snprintf(s->keys + n, sizeof(s->keys) - n, "%s%s.%s%s", n ? " " : "", section, key,
                 restart ? "!" : "");
        s->restart += restart;
}

START_TEST(test_diff)
{
        char repo[256];
        snprintf(repo, sizeof(repo), "%s", in_tmp("r"));
        ck_assert_int_eq(mkdir(repo, 0700), 0);
        struct config a, b;
        char base[1024], next[1024];
        snprintf(base, sizeof(base),
                 "[daemon]\nsocket = /tmp/a.sock\nallow_uids = 1000\n"
                 "[store]\ndb = /tmp/a.db\ndurability = ack\n"
                 "[git]\nrepo = %s\n"
                 "[limits]\npending = 10\n", repo);
        accepted(base, &a);
        accepted(base, &b);
        struct seen s = { "", 0 };
        ck_assert_uint_eq(config_diff(&a, &b, on_key, &s), 0);
        ck_assert_str_eq(s.keys, "");
        config_free(&b);

        /* changed: the socket and the db (restart), durability, a limit, the
         * uids, the repositories (dropped), the log level (set to its
         * default value explicitly: unchanged), a new threshold */
        snprintf(next, sizeof(next),
                 "[daemon]\nsocket = /tmp/b.sock\nlog_level = info\nallow_uids = 1000 1001\n"
                 "[store]\ndb = /tmp/b.db\ndurability = fsync\n"
                 "[query]\ndegrade_threshold = 9\n"
                 "[limits]\npending = 11\ndomains = 3\n");
        accepted(next, &b);
        ck_assert_uint_eq(config_diff(&a, &b, on_key, &s), 8);
        /* in the table's order */
        ck_assert_str_eq(s.keys, "daemon.socket! daemon.allow_uids store.db! store.durability "
                                 "query.degrade_threshold git.repo limits.pending limits.domains");
        ck_assert_uint_eq(s.restart, 2);
        ck_assert_uint_eq(config_diff(&a, &b, NULL, NULL), 8);
        ck_assert_uint_eq(config_diff(&b, &a, NULL, NULL), 8);

        /* the running values of the keys that take a restart stay */
        config_keep_startup_keys(&a, &b);
        ck_assert_str_eq(b.socket_path, "/tmp/a.sock");
        ck_assert_str_eq(b.db_path, "/tmp/a.db");
        ck_assert_str_eq(a.socket_path, "/tmp/b.sock"); /* swapped: freed with a */
        ck_assert_str_eq(a.db_path, "/tmp/b.db");
        ck_assert_ptr_null(b.socket_group); /* unset on both sides: still unset */
        ck_assert_uint_eq(b.limits.pending, 11); /* the rest is the new file's */
        ck_assert_int_eq(b.durability, DURABILITY_FSYNC);
        config_free(&a);
        config_free(&b);

        /* a group differs by name and by gid alike */
        accepted("[daemon]\nallow_group = 0\n", &a);
        accepted("[daemon]\nallow_group = root\n", &b);
        s = (struct seen){ "", 0 };
        ck_assert_uint_eq(config_diff(&a, &b, on_key, &s), 1);
        ck_assert_str_eq(s.keys, "daemon.allow_group");
        config_free(&a);
        config_free(&b);
}
END_TEST

/* ---- paths from the environment ---------------------------------------- */

START_TEST(test_resolve_paths)
{
        struct config c;
        char err[600] = "";
        /* systemd's directories (the first of a list) and OUTCOMED_SOCKET */
        setenv("OUTCOMED_SOCKET", "/tmp/env.sock", 1);
        setenv("STATE_DIRECTORY", "/var/lib/o1:/var/lib/o2", 1);
        config_init(&c);
        ck_assert_int_eq(config_resolve_paths(&c, err, sizeof(err)), 0);
        ck_assert_str_eq(c.socket_path, "/tmp/env.sock");
        ck_assert_str_eq(c.db_path, "/var/lib/o1/outcomed.db");
        config_free(&c);

        /* a path set by the file (or a flag) wins */
        config_init(&c);
        ck_assert_int_eq(config_set_str(&c.socket_path, "/tmp/mine.sock"), 0);
        ck_assert_int_eq(config_set_str(&c.db_path, "/tmp/mine.db"), 0);
        ck_assert_int_eq(config_resolve_paths(&c, err, sizeof(err)), 0);
        ck_assert_str_eq(c.socket_path, "/tmp/mine.sock");
        ck_assert_str_eq(c.db_path, "/tmp/mine.db");
        config_free(&c);

        /* without them: root's or the user's directories */
        unsetenv("OUTCOMED_SOCKET");
        unsetenv("STATE_DIRECTORY");
        setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
        setenv("XDG_STATE_HOME", "/home/u/.state", 1);
        config_init(&c);
        ck_assert_int_eq(config_resolve_paths(&c, err, sizeof(err)), 0);
        if (geteuid() == 0) {
                ck_assert_str_eq(c.socket_path, "/run/outcomed/outcomed.sock");
                ck_assert_str_eq(c.db_path, "/var/lib/outcomed/outcomed.db");
        } else {
                ck_assert_str_eq(c.socket_path, "/run/user/4242/outcomed.sock");
                ck_assert_str_eq(c.db_path, "/home/u/.state/outcomed/outcomed.db");
        }
        config_free(&c);

        /* a socket path longer than sun_path allows */
        char longp[200];
        memset(longp, 'a', sizeof(longp));
        longp[0] = '/';
        longp[108] = '\0';
        config_init(&c);
        ck_assert_int_eq(config_set_str(&c.socket_path, longp), 0);
        ck_assert_int_eq(config_resolve_paths(&c, err, sizeof(err)), -ENAMETOOLONG);
        ck_assert_msg(strstr(err, "108 bytes long, more than the 107"), "err: %s", err);
        config_free(&c);
        longp[107] = '\0';
        config_init(&c);
        ck_assert_int_eq(config_set_str(&c.socket_path, longp), 0);
        ck_assert_int_eq(config_resolve_paths(&c, err, sizeof(err)), 0);
        config_free(&c);
}
END_TEST

START_TEST(test_default_file)
{
        setenv("CONFIGURATION_DIRECTORY", "/etc/o1:/etc/o2", 1);
        char *f = config_default_file();
        ck_assert_str_eq(f, "/etc/o1/outcomed.conf");
        free(f);
        unsetenv("CONFIGURATION_DIRECTORY");
        setenv("XDG_CONFIG_HOME", "/home/u/.cfg", 1);
        f = config_default_file();
        ck_assert_str_eq(f, geteuid() == 0 ? "/etc/outcomed/outcomed.conf"
                                           : "/home/u/.cfg/outcomed/outcomed.conf");
        free(f);
        /* a relative $CONFIGURATION_DIRECTORY is not systemd's */
        setenv("CONFIGURATION_DIRECTORY", "etc", 1);
        f = config_default_file();
        ck_assert_ptr_nonnull(f);
        ck_assert_str_ne(f, "etc/outcomed.conf");
        free(f);
}
END_TEST

static Suite *config_suite(void)
{
        Suite *su = suite_create("config");
        TCase *tc = tcase_create("config");
        tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_every_key);
        tcase_add_test(tc, test_enumerations);
        tcase_add_test(tc, test_unknown_keys_and_sections);
        tcase_add_test(tc, test_bad_values);
        tcase_add_test(tc, test_diff);
        tcase_add_test(tc, test_resolve_paths);
        tcase_add_test(tc, test_default_file);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(config_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

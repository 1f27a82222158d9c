/* config.c - the INI configuration, read with libinih.  A table lists every
 * key: its section, its type and where it goes, so that parsing, the
 * unknown-key error and the documentation stay one list. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

enum config__type { CFG_STR, CFG_U32, CFG_U64, CFG_LEVEL, CFG_REPO, CFG_DURABILITY, CFG_UIDS,
                   CFG_GROUP, CFG_UNIT, CFG_HOST };

struct config__key {
        const char *section;
        const char *name;
        enum config__type type;
        size_t off;
        uint64_t min, max;
};

#define F(field) offsetof(struct config, field)
#define L(field) (offsetof(struct config, limits) + offsetof(struct config_limits, field))

static const struct config__key config__keys[] = {
        { "daemon", "socket", CFG_STR, F(socket_path), 0, 0 },
        { "daemon", "socket_group", CFG_STR, F(socket_group), 0, 0 },
        { "daemon", "log_level", CFG_LEVEL, F(log_level), 0, 0 },
        { "daemon", "allow_uids", CFG_UIDS, F(allow_uids), 0, 0 },
        { "daemon", "allow_group", CFG_GROUP, F(allow_group), 0, 0 },
        { "store", "db", CFG_STR, F(db_path), 0, 0 },
        { "store", "flush_interval_ms", CFG_U32, F(flush_interval_ms), 10, 3600000 },
        { "store", "durability", CFG_DURABILITY, F(durability), 0, 0 },
        { "store", "snapshot_interval_ms", CFG_U32, F(snapshot_interval_ms), 10, 3600000 },
        { "store", "history_days", CFG_U32, F(history_days), 0, 36500 },
        { "store", "debug_commit_delay_ms", CFG_U32, F(debug_commit_delay_ms), 0, 10000 },
        { "expiry", "generate_ttl_s", CFG_U64, F(ttl_s[0]), 0, UINT32_MAX },
        { "expiry", "embed_ttl_s", CFG_U64, F(ttl_s[1]), 0, UINT32_MAX },
        { "expiry", "classify_ttl_s", CFG_U64, F(ttl_s[2]), 0, UINT32_MAX },
        { "expiry", "code_ttl_s", CFG_U64, F(ttl_s[3]), 0, UINT32_MAX },
        { "expiry", "reasoning_ttl_s", CFG_U64, F(ttl_s[4]), 0, UINT32_MAX },
        { "expiry", "interval_s", CFG_U32, F(expiry_interval_s), 1, 86400 },
        { "query", "degrade_threshold", CFG_U32, F(degrade_threshold), 0, UINT32_MAX },
        { "query", "half_life_s", CFG_U64, F(half_life_s), 0, UINT32_MAX },
        { "git", "repo", CFG_REPO, 0, 0, 0 },
        { "git", "scan_interval_s", CFG_U32, F(git_scan_interval_s), 1, 86400 },
        { "git", "settle_s", CFG_U64, F(git_settle_s), 0, UINT32_MAX },
        { "git", "deadline_s", CFG_U64, F(git_deadline_s), 1, UINT32_MAX },
        { "git", "text_threshold", CFG_UNIT, F(git_text_threshold), 0, 0 },
        { "limits", "message_bytes", CFG_U32, L(message_bytes), 1024, 1u << 30 },
        { "limits", "model_bytes", CFG_U32, L(model_bytes), 1, 65536 },
        { "limits", "text_bytes", CFG_U32, L(text_bytes), 0, 1u << 24 },
        { "limits", "output_bytes", CFG_U32, L(output_bytes), 0, 1u << 30 },
        { "limits", "files", CFG_U32, L(files), 0, 1u << 20 },
        { "limits", "path_bytes", CFG_U32, L(path_bytes), 1, 65536 },
        { "limits", "list_entries", CFG_U32, L(list_entries), 1, 1u << 24 },
        { "limits", "models", CFG_U64, L(models), 1, UINT64_MAX },
        { "limits", "pending", CFG_U64, L(pending), 1, UINT64_MAX },
        { "limits", "domains", CFG_U64, L(domains), 1, UINT64_MAX },
        { "limits", "connections", CFG_U32, L(connections), 1, 1u << 24 },
        { "limits", "connections_per_uid", CFG_U32, L(connections_per_uid), 0, 1u << 24 },
        { "limits", "requests_in_flight", CFG_U32, L(requests_in_flight), 1, 1u << 24 },
        { "limits", "reply_buffer_bytes", CFG_U64, L(reply_buffer_bytes), 4096, UINT64_MAX },
        { "limits", "partial_bytes", CFG_U64, L(partial_bytes), 65536, UINT64_MAX },
        { "limits", "message_timeout_ms", CFG_U32, L(message_timeout_ms), 10, 86400000 },
        { "fleet", "conninfo", CFG_STR, F(fleet_conninfo), 0, 0 },
        { "fleet", "host_id", CFG_HOST, F(fleet_host_id), 0, 0 },
        { "fleet", "sync_interval_ms", CFG_U32, F(fleet_sync_interval_ms), 50, 3600000 },
        { "fleet", "host_ttl_days", CFG_U32, F(fleet_host_ttl_days), 1, 36500 },
        { "fleet", "debug_sync_delay_ms", CFG_U32, F(fleet_debug_sync_delay_ms), 0, 60000 },
};

void config_init(struct config *c)
{
        memset(c, 0, sizeof(*c));
        c->log_level = LOG_LVL_INFO;
        c->flush_interval_ms = 1000;
        c->durability = DURABILITY_ACK;
        c->snapshot_interval_ms = 1000;
        c->history_days = 30;
        for (int i = 0; i < 5; i++)
                c->ttl_s[i] = 86400;    /* a day */
        c->ttl_s[3] = 7 * 86400;        /* code: a week, git may take that long */
        c->expiry_interval_s = 10;
        c->degrade_threshold = 3;
        c->git_scan_interval_s = 30;
        c->git_settle_s = 900;
        c->git_deadline_s = 86400;
        c->git_text_threshold = 0.8;
        c->fleet_sync_interval_ms = 1000;
        c->fleet_host_ttl_days = 30;
        c->limits = (struct config_limits){
                .message_bytes = PROTO_MESSAGE_MAX,
                .model_bytes = PROTO_MODEL_MAX,
                .text_bytes = PROTO_TEXT_MAX,
                .output_bytes = PROTO_OUTPUT_MAX,
                .files = PROTO_FILES_MAX,
                .path_bytes = PROTO_PATH_MAX,
                .list_entries = PROTO_LIST_MAX,
                .models = PROTO_MAX_MODELS,
                .pending = PROTO_MAX_PENDING,
                .domains = 1000000,
                .connections = 1024,
                .connections_per_uid = 256,
                .requests_in_flight = 4096,
                .reply_buffer_bytes = 64u << 20,
                .partial_bytes = 64u << 20,
                .message_timeout_ms = 10000,
        };
}

void config_free(struct config *c)
{
        free(c->file);
        free(c->socket_path);
        free(c->socket_group);
        free(c->db_path);
        for (size_t i = 0; i < c->ngit_repos; i++)
                free(c->git_repos[i]);
        free(c->git_repos);
        free(c->allow_uids);
        free(c->allow_group);
        for (size_t i = 0; i < c->nprices; i++)
                free(c->prices[i].model);
        free(c->prices);
        free(c->fleet_conninfo);
        free(c->fleet_host_id);
        memset(c, 0, sizeof(*c));
}

int config_set_str(char **field, const char *value)
{
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

struct config__parse {
        struct config *c;
        char err[512];
        const char *path;
};

/* Remember the first error; inih reports its line number. */
static int config__bad(struct config__parse *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int config__bad(struct config__parse *p, const char *fmt, ...)
{
        va_list ap;
        if (!p->err[0]) {
                va_start(ap, fmt);
                vsnprintf(p->err, sizeof(p->err), fmt, ap);
                va_end(ap);
        }
        return 0;
}

static int config__parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
        char *end;
        if (!*v || *v == '-' || *v == '+')
                return -EINVAL;
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (errno || *end || u < min || u > max)
                return -ERANGE;
        *out = u;
        return 0;
}

/* A uid or a gid written as a number: 0 .. 2^32-2 ((uid_t)-1 is no id). */
static int config__parse_id(const char *v, uint32_t *out)
{
        uint64_t u;
        if (!isdigit((unsigned char)v[0]) || config__parse_uint(v, 0, UINT32_MAX - 1, &u) < 0)
                return -EINVAL;
        *out = (uint32_t)u;
        return 0;
}

/* allow_uids: uids or user names, separated by spaces or commas; the key
 * may be given more than once. */
static int config__add_uids(struct config__parse *p, const char *value)
{
        struct config *c = p->c;
        char *copy = strdup(value), *save = NULL;
        if (!copy)
                return config__bad(p, "allow_uids: out of memory");
        size_t before = c->nallow_uids;
        int ok = 0;
        for (char *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
                uint32_t uid;
                if (config__parse_id(tok, &uid) < 0) {
                        struct passwd *pw = isdigit((unsigned char)tok[0]) ? NULL : getpwnam(tok);
                        if (!pw) {
                                config__bad(p, "allow_uids: '%s' is neither a uid nor a user name",
                                            tok);
                                goto out;
                        }
                        uid = (uint32_t)pw->pw_uid;
                }
                uint32_t *v = realloc(c->allow_uids, (c->nallow_uids + 1) * sizeof(*v));
                if (!v) {
                        config__bad(p, "allow_uids: out of memory");
                        goto out;
                }
                c->allow_uids = v;
                c->allow_uids[c->nallow_uids++] = uid;
        }
        if (c->nallow_uids == before) {
                config__bad(p, "allow_uids: must list at least one uid or user name");
                goto out;
        }
        ok = 1;
out:
        free(copy);
        return ok; /* inih: 0 is an error on this line */
}

/* allow_group: a group name or a gid, resolved now. */
static int config__set_group(struct config__parse *p, const char *value)
{
        struct config *c = p->c;
        uint32_t gid;
        if (!*value)
                return config__bad(p, "allow_group: must not be empty");
        if (config__parse_id(value, &gid) < 0) {
                struct group *g = isdigit((unsigned char)value[0]) ? NULL : getgrnam(value);
                if (!g)
                        return config__bad(p, "allow_group: no group named '%s'", value);
                gid = (uint32_t)g->gr_gid;
        }
        if (config_set_str(&c->allow_group, value) < 0)
                return config__bad(p, "allow_group: out of memory");
        c->allow_gid = gid;
        return 1;
}

const struct config_price *config_price(const struct config *c, const char *model)
{
        for (size_t i = 0; i < c->nprices; i++)
                if (strcmp(c->prices[i].model, model) == 0)
                        return &c->prices[i];
        return NULL;
}

/* A key of a [price:MODEL] section. */
static int config__price(struct config__parse *p, const char *model, const char *name,
                         const char *value)
{
        struct config *c = p->c;
        char *end;
        if (!*model)
                return config__bad(p, "[price:MODEL] needs a model id after the colon");
        bool in = strcmp(name, "input_per_mtok") == 0;
        if (!in && strcmp(name, "output_per_mtok") != 0)
                return config__bad(p, "unknown key '%s' in [price:%s] (input_per_mtok, "
                                   "output_per_mtok)", name, model);
        errno = 0;
        double d = strtod(value, &end);
        if (errno || end == value || *end || !(d >= 0.0) || d > 1e12)
                return config__bad(p, "%s: '%s' is not a price (a number >= 0)", name, value);
        struct config_price *pr = (struct config_price *)config_price(c, model);
        if (!pr) {
                struct config_price *v = realloc(c->prices, (c->nprices + 1) * sizeof(*v));
                if (!v)
                        return config__bad(p, "out of memory");
                c->prices = v;
                pr = &v[c->nprices];
                *pr = (struct config_price){ .model = strdup(model) };
                if (!pr->model)
                        return config__bad(p, "out of memory");
                c->nprices++;
        }
        if (in)
                pr->input_per_mtok = d;
        else
                pr->output_per_mtok = d;
        return 1;
}

static int config__handler(void *user, const char *section, const char *name, const char *value)
{
        struct config__parse *p = user;
        struct config *c = p->c;
        const struct config__key *k = NULL;
        bool section_known = false;

        if (!name)
                return 1; /* a section header alone */
        if (strncmp(section, "price:", 6) == 0)
                return config__price(p, section + 6, name, value);
        for (size_t i = 0; i < sizeof(config__keys) / sizeof(config__keys[0]); i++) {
                if (strcmp(config__keys[i].section, section) != 0)
                        continue;
                section_known = true;
                if (strcmp(config__keys[i].name, name) == 0)
                        k = &config__keys[i];
        }
        if (!section_known)
                return config__bad(p, "unknown section [%s]", section);
        if (!k)
                return config__bad(p, "unknown key '%s' in [%s]", name, section);

        char *base = (char *)c;
        uint64_t u;
        switch (k->type) {
        case CFG_STR:
                if (!*value)
                        return config__bad(p, "%s: must not be empty", name);
                if (config_set_str((char **)(base + k->off), value) < 0)
                        return config__bad(p, "%s: out of memory", name);
                return 1;
        case CFG_LEVEL: {
                int lvl = log_parse_level(value);
                if (lvl < 0)
                        return config__bad(p, "%s: '%s' is not one of error, warn, info, debug",
                                           name, value);
                *(int *)(base + k->off) = lvl;
                return 1;
        }
        case CFG_U32:
        case CFG_U64: {
                char range[64];
                if (config__parse_uint(value, k->min, k->max, &u) < 0) {
                        snprintf(range, sizeof(range), "%llu to %llu",
                                 (unsigned long long)k->min, (unsigned long long)k->max);
                        return config__bad(p, "%s: must be a whole number from %s", name,
                                           range);
                }
                if (k->type == CFG_U32)
                        *(uint32_t *)(base + k->off) = (uint32_t)u;
                else
                        *(uint64_t *)(base + k->off) = u;
                return 1;
        }
        case CFG_DURABILITY: {
                int d = proto_name_find(proto_durability_names, PROTO_DURABILITY__COUNT, value,
                                        strlen(value));
                if (d < 0)
                        return config__bad(p, "%s: '%s' is not one of ack, relaxed, fsync", name,
                                           value);
                c->durability = (enum config_durability)d;
                return 1;
        }
        case CFG_REPO: {
                if (value[0] != '/')
                        return config__bad(p, "repo: '%s' is not an absolute path", value);
                char *real = realpath(value, NULL);
                if (!real)
                        return config__bad(p, "repo: cannot resolve '%s': %s", value,
                                           strerror(errno));
                char **v = realloc(c->git_repos, (c->ngit_repos + 1) * sizeof(*v));
                if (!v) {
                        free(real);
                        return config__bad(p, "repo: out of memory");
                }
                c->git_repos = v;
                c->git_repos[c->ngit_repos++] = real;
                return 1;
        }
        case CFG_UNIT: {
                char *end;
                errno = 0;
                double d = strtod(value, &end);
                if (errno || end == value || *end || !(d > 0.0 && d <= 1.0))
                        return config__bad(p, "%s: '%s' is not a number above 0 and at most 1",
                                           name, value);
                *(double *)(base + k->off) = d;
                return 1;
        }
        case CFG_UIDS:
                return config__add_uids(p, value);
        case CFG_GROUP:
                return config__set_group(p, value);
        case CFG_HOST:
                if (!*value || strlen(value) > 64 ||
                    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789._-") != strlen(value))
                        return config__bad(p, "%s: '%s' is not 1 to 64 letters, digits, '.', "
                                           "'_' or '-'", name, value);
                if (config_set_str((char **)(base + k->off), value) < 0)
                        return config__bad(p, "%s: out of memory", name);
                return 1;
        }
        return 1;
}

int config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen)
{
        struct config__parse p = { .c = c, .path = path };
        FILE *f = fopen(path, "r");
        if (!f) {
                int e = errno;
                if (e == ENOENT && !must_exist)
                        return 0;
                snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
                return -e;
        }
        int r = ini_parse_file(f, config__handler, &p);
        (void)fclose(f);
        if (r != 0 || p.err[0]) {
                if (p.err[0] && r > 0)
                        snprintf(err, errlen, "%s:%d: %s", path, r, p.err);
                else if (p.err[0])
                        snprintf(err, errlen, "%s: %s", path, p.err);
                else if (r > 0)
                        snprintf(err, errlen, "%s:%d: cannot parse this line", path, r);
                else
                        snprintf(err, errlen, "%s: cannot read the file", path);
                return r < 0 ? -EIO : -EINVAL;
        }
        if (config_set_str(&c->file, path) < 0) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return 0;
}

static char *config__join(const char *a, const char *b)
{
        char *s;
        if (asprintf(&s, "%s%s", a, b) < 0)
                return NULL;
        return s;
}

/* "$VAR/name" for a directory systemd names in VAR (its first one when
 * the unit lists several, separated by ':'); NULL when VAR is not set. */
static char *config__systemd_dir(const char *var, const char *name)
{
        const char *v = getenv(var);
        char *s;
        if (!v || v[0] != '/')
                return NULL;
        int len = (int)strcspn(v, ":");
        if (asprintf(&s, "%.*s/%s", len, v, name) < 0)
                return NULL;
        return s;
}

char *config_default_file(void)
{
        const char *x = getenv("XDG_CONFIG_HOME");
        const char *home = getenv("HOME");
        char *sd = config__systemd_dir("CONFIGURATION_DIRECTORY", "outcomed.conf");
        if (sd)
                return sd;
        if (geteuid() == 0)
                return strdup("/etc/outcomed/outcomed.conf");
        if (x && x[0] == '/')
                return config__join(x, "/outcomed/outcomed.conf");
        if (home && home[0] == '/')
                return config__join(home, "/.config/outcomed/outcomed.conf");
        return NULL;
}

int config_resolve_paths(struct config *c, char *err, size_t errlen)
{
        bool root = geteuid() == 0;
        if (!c->socket_path) {
                const char *env = getenv("OUTCOMED_SOCKET");
                const char *rt = getenv("XDG_RUNTIME_DIR");
                if (env && *env)
                        c->socket_path = strdup(env);
                else if (root)
                        c->socket_path = strdup("/run/outcomed/outcomed.sock");
                else if (rt && rt[0] == '/')
                        c->socket_path = config__join(rt, "/outcomed.sock");
                else {
                        snprintf(err, errlen,
                                 "no socket path: XDG_RUNTIME_DIR is not set; give --socket PATH");
                        return -ENOENT;
                }
        }
        if (!c->db_path) {
                const char *st = getenv("XDG_STATE_HOME");
                const char *home = getenv("HOME");
                char *sd = config__systemd_dir("STATE_DIRECTORY", "outcomed.db");
                if (sd)
                        c->db_path = sd; /* the unit's StateDirectory= */
                else if (root)
                        c->db_path = strdup("/var/lib/outcomed/outcomed.db");
                else if (st && st[0] == '/')
                        c->db_path = config__join(st, "/outcomed/outcomed.db");
                else if (home && home[0] == '/')
                        c->db_path = config__join(home, "/.local/state/outcomed/outcomed.db");
                else {
                        snprintf(err, errlen, "no database path: HOME is not set; give --db PATH");
                        return -ENOENT;
                }
        }
        if (!c->socket_path || !c->db_path) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (strlen(c->socket_path) > PROTO_SOCKET_PATH_MAX) {
                snprintf(err, errlen, "socket path is %zu bytes long, more than the %u a Unix socket allows: %s",
                         strlen(c->socket_path), PROTO_SOCKET_PATH_MAX, c->socket_path);
                return -ENAMETOOLONG;
        }
        return 0;
}

bool config_repo_watched(const struct config *c, const char *path, char **canon)
{
        char *real = realpath(path, NULL);
        if (!real)
                return false;
        for (size_t i = 0; i < c->ngit_repos; i++) {
                if (strcmp(c->git_repos[i], real) == 0) {
                        *canon = real;
                        return true;
                }
        }
        free(real);
        return false;
}

/* ---- reloading --------------------------------------------------------- */

/* Keys that only apply when the daemon starts: the socket is bound and the
 * database opened once. */
static bool config__startup_only(const struct config__key *k)
{
        return k->off == F(socket_path) || k->off == F(socket_group) || k->off == F(db_path) ||
               k->off == F(fleet_conninfo) || k->off == F(fleet_host_id);
}

static bool config__str_eq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool config__key_equal(const struct config__key *k, const struct config *a,
                              const struct config *b)
{
        const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
        switch (k->type) {
        case CFG_STR:
        case CFG_HOST:
                return config__str_eq(*(char *const *)pa, *(char *const *)pb);
        case CFG_GROUP:
                return config__str_eq(a->allow_group, b->allow_group) &&
                       a->allow_gid == b->allow_gid;
        case CFG_U32:
                return *(const uint32_t *)pa == *(const uint32_t *)pb;
        case CFG_U64:
                return *(const uint64_t *)pa == *(const uint64_t *)pb;
        case CFG_LEVEL:
        case CFG_DURABILITY:
                return *(const int *)pa == *(const int *)pb;
        case CFG_UNIT:
                return *(const double *)pa == *(const double *)pb;
        case CFG_REPO:
                if (a->ngit_repos != b->ngit_repos)
                        return false;
                for (size_t i = 0; i < a->ngit_repos; i++)
                        if (strcmp(a->git_repos[i], b->git_repos[i]) != 0)
                                return false;
                return true;
        case CFG_UIDS:
                return a->nallow_uids == b->nallow_uids &&
                       (a->nallow_uids == 0 ||
                        memcmp(a->allow_uids, b->allow_uids,
                               a->nallow_uids * sizeof(*a->allow_uids)) == 0);
        }
        return true;
}

size_t config_diff(const struct config *a, const struct config *b,
                   void (*fn)(void *u, const char *section, const char *key, bool restart),
                   void *u)
{
        size_t n = 0;
        for (size_t i = 0; i < sizeof(config__keys) / sizeof(config__keys[0]); i++) {
                const struct config__key *k = &config__keys[i];
                if (config__key_equal(k, a, b))
                        continue;
                n++;
                if (fn)
                        fn(u, k->section, k->name, config__startup_only(k));
        }
        return n;
}

void config_keep_startup_keys(struct config *cur, struct config *next)
{
        for (size_t i = 0; i < sizeof(config__keys) / sizeof(config__keys[0]); i++) {
                const struct config__key *k = &config__keys[i];
                if (!config__startup_only(k) || (k->type != CFG_STR && k->type != CFG_HOST))
                        continue;
                char **pc = (char **)((char *)cur + k->off);
                char **pn = (char **)((char *)next + k->off);
                char *t = *pc;
                *pc = *pn;
                *pn = t;
        }
}

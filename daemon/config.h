/* config.h - outcomed's configuration: built-in defaults, then the INI file
 * (libinih), then command-line flags.  Every key is listed in
 * config.c's table and documented in README.md. */
#ifndef OUTCOMED_CONFIG_H
#define OUTCOMED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct config_limits {
        uint32_t message_bytes;      /* one msgpack message */
        uint32_t model_bytes;        /* model id */
        uint32_t text_bytes;         /* reason, error */
        uint32_t output_bytes;       /* complete's output */
        uint32_t files;              /* entries of start's files */
        uint32_t path_bytes;         /* repo and each file */
        uint32_t list_entries;       /* outcome's actions */
        uint64_t models;             /* distinct models */
        uint64_t pending;            /* pending traces */
        uint64_t domains;            /* domain cells (model, task, domain) */
        uint32_t connections;        /* open connections */
        uint32_t connections_per_uid; /* open connections of one uid; 0: no limit */
        uint32_t requests_in_flight;  /* per connection: read, not yet answered */
        uint64_t reply_buffer_bytes; /* unread replies before a client is dropped */
        uint64_t partial_bytes;      /* all connections: bytes of unfinished messages */
        uint32_t message_timeout_ms; /* from a message's first byte to its last */
};

/* The protocol's durability names (proto_durability_names), in this order. */
enum config_durability {
        DURABILITY_ACK = PROTO_DURABILITY_ACK,         /* a reply means the change is committed
                                                        * (WAL, synchronous=NORMAL) */
        DURABILITY_RELAXED = PROTO_DURABILITY_RELAXED, /* reply at once, commit every
                                                        * flush_interval_ms */
        DURABILITY_FSYNC = PROTO_DURABILITY_FSYNC,     /* as ack, with synchronous=FULL:
                                                        * survives power loss */
};

/* [price:MODEL]: what a model's tokens cost, per million. */
struct config_price {
        char *model;
        double input_per_mtok;
        double output_per_mtok;
};

struct config {
        char *file;          /* the file read, or NULL */
        char *socket_path;
        char *socket_group;  /* NULL: the daemon's own group */
        char *db_path;
        int log_level;       /* enum log_level */
        uint32_t flush_interval_ms;    /* relaxed: how often to commit */
        int durability;                /* enum config_durability */
        uint32_t snapshot_interval_ms; /* how often changed rows are written */
        uint32_t history_days;         /* journal rows kept after a snapshot, and `history` */
        uint32_t debug_commit_delay_ms;
        uint64_t ttl_s[5];             /* per task (tracker order); 0: never */
        uint32_t expiry_interval_s;
        uint32_t degrade_threshold;
        uint64_t half_life_s;          /* evidence fades by half in this; 0: never */
        struct config_price *prices;
        size_t nprices;
        char **git_repos;    /* watched repositories, resolved (realpath) */
        size_t ngit_repos;
        uint32_t git_scan_interval_s;  /* how often the scanner runs */
        uint64_t git_settle_s;         /* structural judging waits this after complete */
        uint64_t git_deadline_s;       /* no change by then after complete: ignored */
        double git_text_threshold;     /* share of suggested lines found: applied */
        /* Who may connect.  Nobody is turned away when neither is set; else
         * root, the daemon's own uid, the uids listed and the members of
         * allow_group (primary or supplementary). */
        uint32_t *allow_uids;
        size_t nallow_uids;
        char *allow_group;   /* as written; NULL: not set */
        uint32_t allow_gid;  /* its gid */
        struct config_limits limits;
        /* [fleet]: hosts share evidence through PostgreSQL (daemon/fleet/). */
        char *fleet_conninfo;          /* libpq connection string; NULL: no fleet */
        char *fleet_host_id;           /* NULL: derived from /etc/machine-id and the uid */
        uint32_t fleet_sync_interval_ms;
        uint32_t fleet_host_ttl_days;
        uint32_t fleet_debug_sync_delay_ms; /* tests: hold each batch open this long */
};

/* Defaults; paths are left NULL until config_resolve_paths. */
void config_init(struct config *c);
void config_free(struct config *c);
/* The default file: $CONFIGURATION_DIRECTORY/outcomed.conf under systemd
 * (ConfigurationDirectory=), else /etc/outcomed/outcomed.conf for root, else
 * $XDG_CONFIG_HOME/outcomed/outcomed.conf (~/.config/...).  malloc'ed. */
char *config_default_file(void);
/* Read an INI file into c.  A missing file is an error only when
 * `must_exist`; an unknown section or key, or a bad value, is an error
 * naming the file and line.  Returns 0, or a negative errno with err
 * filled: the open's (-ENOENT, -EACCES...), -EINVAL for a bad line, -EIO
 * when the file cannot be read, -ENOMEM. */
int config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen);
/* Fill socket_path and db_path when neither the file nor a flag set them:
 * root uses /run/outcomed and /var/lib/outcomed, others $XDG_RUNTIME_DIR
 * and $XDG_STATE_HOME (~/.local/state).  OUTCOMED_SOCKET overrides the
 * socket default; under systemd $STATE_DIRECTORY (StateDirectory=) comes
 * first for the database.  Returns 0, or with err filled -ENOENT (no
 * default: the variables it needs are not set), -ENAMETOOLONG (a socket
 * path too long for a Unix socket) or -ENOMEM. */
int config_resolve_paths(struct config *c, char *err, size_t errlen);
/* True when path (resolved) is a watched repository; *canon gets the
 * resolved path (malloc'ed) when it is. */
bool config_repo_watched(const struct config *c, const char *path, char **canon);
/* The price of a model's tokens; NULL when it has none. */
const struct config_price *config_price(const struct config *c, const char *model);
/* Replace a string field (a flag overriding the file). */
int config_set_str(char **field, const char *value);

/* Reloading: load the file into a fresh config, resolve it, then compare.
 * config_diff calls fn for every key whose value differs between a and b,
 * in the table's order, with restart true for the keys that apply only
 * when the daemon starts (socket, socket_group, db); it returns how many
 * differ.  config_keep_startup_keys gives next the running values of
 * those keys (swapping them with cur's). */
size_t config_diff(const struct config *a, const struct config *b,
                   void (*fn)(void *u, const char *section, const char *key, bool restart),
                   void *u);
void config_keep_startup_keys(struct config *cur, struct config *next);

#endif

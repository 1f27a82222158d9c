/* ctl.h - outcomectl's internals, shared by its command files:
 * the command table, option parsing, argument checks, calling the daemon
 * and printing its answers.
 *
 * Every command is a `run` function that parses its own options (with
 * ctl_getopt(), which also takes the global ones), checks them, packs one
 * request with ctl_begin() and sends it with ctl_call(), and prints the
 * result (as JSON with --json).  It returns the process exit status.
 */
#ifndef OUTCOMECTL_CTL_H
#define OUTCOMECTL_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#include "outcome_client.h"

/* Exit statuses. */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_DAEMON = 1,    /* the daemon answered an error; or a file
                                 * could not be read, parsed or written */
        CTL_EXIT_USAGE = 2,     /* bad command line */
        CTL_EXIT_CONNECT = 3,   /* cannot reach the daemon, or lost it */
};

struct ctl_command;

struct ctl {
        const char *socket;        /* --socket, or NULL to resolve */
        bool json;                 /* --json */
        unsigned timeout_ms;       /* --timeout */
        const struct ctl_command *cmd;
        struct oc_client *client;  /* connected by ctl_begin() */
};

struct ctl_command {
        const char *name;
        int (*run)(struct ctl *ctl, int argc, char **argv);
        const char *summary;       /* one line for the command list */
        const char *help;          /* the whole of `COMMAND --help` */
};

extern const struct ctl_command ctl_cmd_start, ctl_cmd_complete, ctl_cmd_fail, ctl_cmd_outcome,
        ctl_cmd_query, ctl_cmd_forget, ctl_cmd_export, ctl_cmd_import, ctl_cmd_ping, ctl_cmd_stats,
        ctl_cmd_rank;
extern const struct ctl_command ctl_cmd_top; /* ctl_top.c */
extern const struct ctl_command ctl_cmd_scan; /* ctl_scan.c */
extern const struct ctl_command ctl_cmd_metrics; /* ctl_metrics.c */
extern const struct ctl_command ctl_cmd_report; /* ctl_report.c */

/* Options every command takes besides its own (whose values must be
 * >= CTL_OPT_OWN or a letter other than s, j, h). */
enum {
        CTL_OPT_TIMEOUT = 0x100,
        CTL_OPT_OWN = 0x200,
};
#define CTL_COMMON_OPTIONS                                               \
        { "socket", required_argument, NULL, 's' },                      \
        { "json", no_argument, NULL, 'j' },                              \
        { "timeout", required_argument, NULL, CTL_OPT_TIMEOUT },         \
        { "help", no_argument, NULL, 'h' }

/* ctl_getopt() returns this when the command must end now with ctl_status. */
#define CTL_GETOPT_STOP (-2)

/* getopt_long() over a command's argv (argv[0] is the command name), with
 * the common options handled here.  Returns the command's own option, -1
 * at the end of the options (positional arguments start at optind; they
 * may have been given anywhere), or CTL_GETOPT_STOP after --help (status
 * 0) or a usage error (status 2) in *status. */
int ctl_getopt(struct ctl *ctl, int argc, char **argv, const struct option *opts, int *status);

/* Handle one of the common options (shared with main's global parsing).
 * Returns 0, or CTL_EXIT_USAGE after printing why. */
int ctl_common_option(struct ctl *ctl, int opt, const char *arg);

/* Print "outcomectl: [COMMAND: ]MESSAGE" and the --help hint on stderr;
 * returns CTL_EXIT_USAGE. */
int ctl_usage(struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After the options: exactly `want` positional arguments must be left
 * (argv[optind..]); else a usage error ("missing NAMES", or the first
 * unexpected one) is printed and -1 returned. */
int ctl_positionals(struct ctl *ctl, int argc, char **argv, int want, const char *names);

/* Command line values.  Each returns 0, or prints a usage error naming
 * `opt` and returns -1. */
int ctl_parse_u32(struct ctl *ctl, const char *opt, const char *s, uint32_t *out);
/* A latency: an integer (is_float false, *u set) or a finite decimal >= 0
 * (is_float true, *d set). */
int ctl_parse_ms(struct ctl *ctl, const char *opt, const char *s, uint32_t *u, double *d,
                 bool *is_float);
/* A number in [0, 1]. */
int ctl_parse_unit(struct ctl *ctl, const char *opt, const char *s, double *out);
/* Text must be valid UTF-8 without NUL. */
int ctl_check_text(struct ctl *ctl, const char *opt, const char *s, size_t len);
/* Read a whole file ("-" is stdin) into a NUL-terminated buffer; a failure
 * is a usage error naming `opt`. */
int ctl_read_file(struct ctl *ctl, const char *opt, const char *path, char **out, size_t *len);
/* The same without printing: 0, or a negative errno with the reason (and
 * the file's name) in err. */
int ctl_slurp(const char *path, char **out, size_t *len, char *err, size_t errlen);

/* Connect if needed and start a request.  NULL after printing why the
 * daemon cannot be reached (exit with CTL_EXIT_CONNECT). */
msgpack_packer *ctl_begin(struct ctl *ctl, const char *method);

/* Write `path` through a temporary file in the same directory, filled by
 * write(f, arg) (negative: failed, errno set), synced and renamed over it,
 * so that readers (and a crash) see the old file or the new one, never a
 * part.  A symlink at `path` is replaced, not followed.  The new file's
 * mode is 0666 less the umask.  0, or a negative errno with why in err. */
int ctl_write_file(const char *path, int (*write)(FILE *f, void *arg), void *arg, char *err,
                   size_t errlen);

/* Send the request and wait.  Returns CTL_EXIT_OK with the result in
 * *reply (destroy it), or an exit status after printing the daemon's error
 * ("outcomectl: CODE: MESSAGE") or the transport failure. */
int ctl_call(struct ctl *ctl, struct oc_reply *reply);
/* ctl_begin, an empty argument list and ctl_call, for the methods that take
 * no argument (ping, stats, scan, metrics). */
int ctl_call_noargs(struct ctl *ctl, const char *method, struct oc_reply *reply);

/* Packing shortcuts for the named-arguments map. */
void ctl_pack_str(msgpack_packer *pk, const char *key, const char *val);
void ctl_pack_strn(msgpack_packer *pk, const char *key, const char *val, size_t len);
void ctl_pack_u32(msgpack_packer *pk, const char *key, uint32_t val);
void ctl_pack_double(msgpack_packer *pk, const char *key, double val);
void ctl_pack_bool(msgpack_packer *pk, const char *key, bool val);
void ctl_pack_key(msgpack_packer *pk, const char *key);

/* Reading the result. */
const msgpack_object *ctl_get(const msgpack_object *map, const char *key);
/* The value of key when it is of type str, else NULL (len in *len). */
const char *ctl_get_str(const msgpack_object *map, const char *key, size_t *len);

/* Print the result as one line of JSON on stdout.  Returns the exit status. */
int ctl_print_json(const msgpack_object *o);

/* Print text for a table cell: control characters as '?', padded with
 * spaces to `width` bytes (0: no padding). */
void ctl_put_text(const char *s, size_t len, int width);
/* Format a number (integer or float, `decimals` after the point for a
 * float, or for an integer when force_decimals), "-" for nil or missing. */
void ctl_fmt_num(char *buf, size_t len, const msgpack_object *o, int decimals, bool force_decimals);
/* Unix seconds as local "YYYY-MM-DD HH:MM:SS"; false (buf "-") when o is
 * not an unsigned integer (nil: no time). */
bool ctl_fmt_time(char *buf, size_t len, const msgpack_object *o);
/* Print a scalar plainly (strings raw, numbers as numbers); anything else
 * as JSON. */
void ctl_put_value(const msgpack_object *o);

#endif

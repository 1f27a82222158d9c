/* ctl.h - outcomectl's internals, shared by its command files:
 * the command table, option parsing, argument checks, calling the daemon
 * and printing its answers.
 *
 * Every command is a `run` function that declares its own options as a
 * table of struct ctl_opt and parses them with ctl_options() (which also
 * takes the global ones, --help and the positional count), checks them,
 * packs one request begun with ctl_request(), and hands the printing of
 * the result to ctl_reply() (as JSON with --json, else its own text).  It
 * returns the process exit status.
 */
#ifndef OUTCOMECTL_CTL_H
#define OUTCOMECTL_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
        /* A command with no options of its own and no argument (run is
         * ctl_run_noargs) calls `method` and prints with `print`. */
        const char *method;
        int (*print)(struct ctl *ctl, const msgpack_object *result, void *arg);
};

/* Declares command ctl_cmd_NAME, `outcomectl NAME`: its run function, its
 * one-line summary and its --help text.  The name is written once. */
#define CTL_COMMAND(cname, runfn, summary_, help_)                              \
        const struct ctl_command ctl_cmd_##cname = {                            \
                .name = #cname, .run = (runfn), .summary = (summary_), .help = (help_) \
        }
/* A command with no options of its own and no argument that calls the
 * method of its own name and prints the result with printfn. */
#define CTL_NOARGS_COMMAND(cname, printfn, summary_, help_)                     \
        const struct ctl_command ctl_cmd_##cname = {                            \
                .name = #cname, .run = ctl_run_noargs, .method = #cname,        \
                .print = (printfn), .summary = (summary_), .help = (help_)      \
        }

extern const struct ctl_command ctl_cmd_start, ctl_cmd_complete, ctl_cmd_fail,
        ctl_cmd_outcome;                                         /* ctl_trace.c */
extern const struct ctl_command ctl_cmd_query, ctl_cmd_ping, ctl_cmd_stats; /* ctl_query.c */
extern const struct ctl_command ctl_cmd_forget, ctl_cmd_export, ctl_cmd_import; /* ctl_profiles.c */
extern const struct ctl_command ctl_cmd_rank;    /* ctl_rank.c */
extern const struct ctl_command ctl_cmd_top;     /* ctl_top.c */
extern const struct ctl_command ctl_cmd_scan;    /* ctl_scan.c */
extern const struct ctl_command ctl_cmd_metrics; /* ctl_metrics.c */
extern const struct ctl_command ctl_cmd_history; /* ctl_history.c */
extern const struct ctl_command ctl_cmd_hosts;   /* ctl_hosts.c */
extern const struct ctl_command ctl_cmd_report;  /* ctl_report.c */

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
 * the common options handled here: the loop ctl_options() runs (a command
 * calls that, with its table).  Returns the command's own option, -1
 * at the end of the options (positional arguments start at optind; they
 * may have been given anywhere), or CTL_GETOPT_STOP after --help (status
 * 0) or a usage error (status 2) in *status. */
int ctl_getopt(struct ctl *ctl, int argc, char **argv, const struct option *opts, int *status);

/* A command's own options, declared as a table that ctl_options() reads,
 * so that no command writes its own getopt loop.  Without `parse`, an
 * option with no value sets *(bool *)dst and one with a value stores it in
 * *(const char **)dst; with `parse`, the value goes through
 * parse(ctl, "--NAME", value, dst), which prints a usage error naming the
 * option and returns -1 when the value is bad.  *seen, when not NULL,
 * becomes true when the option is given. */
struct ctl_opt {
        const char *name;          /* the long option, without "--" */
        bool has_value;
        void *dst;
        bool *seen;
        int (*parse)(struct ctl *ctl, const char *opt, const char *arg, void *dst);
};
#define CTL_FLAG(name, dst) { (name), false, (dst), NULL, NULL }
#define CTL_STR(name, dst) { (name), true, (dst), NULL, NULL }
#define CTL_VALUE(name, parse, dst, seen) { (name), true, (dst), (seen), (parse) }
#define CTL_OPTS_MAX 16            /* own options of one command, at most */

/* Parsers for CTL_VALUE: text (valid UTF-8 without NUL, into a const char
 * *), a uint32_t, a double in [0, 1], and a repeatable option whose values
 * are all kept in a struct ctl_list (free its v). */
int ctl_opt_text(struct ctl *ctl, const char *opt, const char *arg, void *dst);
int ctl_opt_u32(struct ctl *ctl, const char *opt, const char *arg, void *dst);
int ctl_opt_unit(struct ctl *ctl, const char *opt, const char *arg, void *dst);
/* A duration: a whole number with a unit s, m, h, d or w (none: seconds),
 * into *(uint64_t *)dst in seconds.  0, or -1 after a usage error naming
 * opt. */
int ctl_opt_duration(struct ctl *ctl, const char *opt, const char *arg, void *dst);
struct ctl_list {
        const char **v;
        size_t n;
};
int ctl_opt_list(struct ctl *ctl, const char *opt, const char *arg, void *dst);

/* Freed on every way out of the variable's scope (the compiler's cleanup
 * attribute), so that a command returns at once instead of going to a
 * label that frees: CTL_AUTOFREE for a malloc'ed pointer, CTL_AUTOLIST for
 * a struct ctl_list. */
static inline void ctl__freep(void *p)
{
        free(*(void **)p);
}
static inline void ctl__list_free(struct ctl_list *l)
{
        free(l->v);
}
#define CTL_AUTOFREE __attribute__((cleanup(ctl__freep)))
#define CTL_AUTOLIST __attribute__((cleanup(ctl__list_free)))

/* The prologue of every command: parse argv (argv[0] is the command name)
 * by the common options and `opts` (n entries; NULL and 0 for none), then,
 * when npos >= 0, check that exactly npos positional arguments are left at
 * argv[optind..] (`names` says which, for the error).  Returns CTL_GO to
 * go on, or the exit status the command must end with now: 0 after --help,
 * CTL_EXIT_USAGE after printing a usage error. */
#define CTL_GO (-1)
int ctl_options(struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts, size_t n,
                int npos, const char *names);
#define CTL_OPTIONS(ctl, argc, argv, opts, npos, names) \
        ctl_options((ctl), (argc), (argv), (opts), sizeof(opts) / sizeof((opts)[0]), (npos), (names))

/* The usage error for getopt_long()'s ':' (a value missing) or '?' (an
 * option unknown; `shorts` are the short options known); returns
 * CTL_EXIT_USAGE. */
int ctl_getopt_error(struct ctl *ctl, int opt, char **argv, const char *shorts);

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

/* Connect if needed and start a request (the params are the caller's to
 * pack: ctl_request() does it from a count).  NULL after printing why the
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
 * ("outcomectl: CODE: MESSAGE") or the transport failure.  For a result
 * used other than printed (import's limits and chunks, export, top);
 * ctl_reply() is the call of a command that prints its result. */
int ctl_call(struct ctl *ctl, struct oc_reply *reply);
/* ctl_request(ctl, method, 0), then ctl_call. */
int ctl_call_noargs(struct ctl *ctl, const char *method, struct oc_reply *reply);

/* The request and the epilogue of every command.  ctl_request() connects
 * if needed and begins a request of `method` whose named-arguments map
 * holds nargs pairs, for the caller to pack (nargs 0: no arguments, an
 * empty params array); NULL after printing why the daemon cannot be
 * reached (exit with CTL_EXIT_CONNECT).  ctl_reply() sends it, waits and
 * prints the result: as JSON with --json, else with print(ctl, result,
 * arg), which returns the exit status, or CTL_PRINT_JSON when the result
 * is not of the shape it knows (it is printed as JSON then).  It returns
 * the exit status. */
#define CTL_PRINT_JSON (-1)
typedef int ctl_print_fn(struct ctl *ctl, const msgpack_object *result, void *arg);
msgpack_packer *ctl_request(struct ctl *ctl, const char *method, uint32_t nargs);
int ctl_reply(struct ctl *ctl, ctl_print_fn *print, void *arg);
/* ctl_request(ctl, method, 0), then ctl_reply(). */
int ctl_reply_noargs(struct ctl *ctl, const char *method, ctl_print_fn *print, void *arg);
/* The whole `run` of a command declared by its method and print alone. */
int ctl_run_noargs(struct ctl *ctl, int argc, char **argv);

/* A request's named arguments, declared as a table: each is packed when
 * given (a string: when not NULL; a list of strings: when not empty). */
enum ctl_arg_type { CTL_ARG_STR, CTL_ARG_U32, CTL_ARG_F64, CTL_ARG_BOOL, CTL_ARG_LIST };
struct ctl_arg {
        const char *key;
        bool given;
        uint8_t type;              /* enum ctl_arg_type */
        union {
                const char *s;
                uint32_t u;
                double d;
                bool b;
                const struct ctl_list *l;
        } v;
};
#define CTL_ARG_S(key, val) { (key), (val) != NULL, CTL_ARG_STR, { .s = (val) } }
#define CTL_ARG_U(key, given, val) { (key), (given), CTL_ARG_U32, { .u = (val) } }
#define CTL_ARG_D(key, given, val) { (key), (given), CTL_ARG_F64, { .d = (val) } }
#define CTL_ARG_B(key, given, val) { (key), (given), CTL_ARG_BOOL, { .b = (val) } }
#define CTL_ARG_L(key, list) { (key), (list)->n > 0, CTL_ARG_LIST, { .l = (list) } }

/* ctl_request() with the given ones of args[n] packed, and room in the map
 * for `more` pairs that the caller packs next. */
msgpack_packer *ctl_request_args(struct ctl *ctl, const char *method, const struct ctl_arg *args,
                                 size_t n, uint32_t more);
#define CTL_REQUEST(ctl, method, args, more) \
        ctl_request_args((ctl), (method), (args), sizeof(args) / sizeof((args)[0]), (more))
/* A whole call: the request with args[n], then ctl_reply(ctl, print, arg). */
int ctl_call_args(struct ctl *ctl, const char *method, const struct ctl_arg *args, size_t n,
                  ctl_print_fn *print, void *arg);
#define CTL_CALL(ctl, method, args, print, arg) \
        ctl_call_args((ctl), (method), (args), sizeof(args) / sizeof((args)[0]), (print), (arg))

/* Packing shortcuts for the named-arguments map.  They return nothing: a
 * write into the client's buffer fails only when memory runs out, which
 * the buffer remembers and ctl_reply()/ctl_call() report. */
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

/* ctl.c - outcomectl's shared helpers (see ctl.h): option parsing with the
 * common options, checking command-line values, calling the daemon and
 * the small formatting pieces the commands print with.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "json.h"
#include "proto.h"

/* A plain decimal number: digits, one optional point, an optional exponent;
 * no sign, no hex, no inf or nan. */
static int ctl__parse_decimal(const char *s, double *out)
{
        if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '.' && s[1] >= '0' && s[1] <= '9')))
                return -1;
        if (strpbrk(s, "xXpP") != NULL)
                return -1;
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno != 0 || *end != '\0' || !isfinite(d))
                return -1;
        *out = d;
        return 0;
}

int ctl_usage(struct ctl *ctl, const char *fmt, ...)
{
        va_list ap;

        fputs("outcomectl: ", stderr);
        if (ctl->cmd != NULL)
                fprintf(stderr, "%s: ", ctl->cmd->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (ctl->cmd != NULL)
                fprintf(stderr, "\nTry 'outcomectl %s --help'.\n", ctl->cmd->name);
        else
                fputs("\nTry 'outcomectl --help'.\n", stderr);
        return CTL_EXIT_USAGE;
}

int ctl_positionals(struct ctl *ctl, int argc, char **argv, int want, const char *names)
{
        int have = argc - optind;
        if (have < want) {
                ctl_usage(ctl, "missing %s", names);
                return -1;
        }
        if (have > want) {
                ctl_usage(ctl, "unexpected argument '%s'", argv[optind + want]);
                return -1;
        }
        return 0;
}

int ctl_common_option(struct ctl *ctl, int opt, const char *arg)
{
        switch (opt) {
        case 's':
                ctl->socket = arg;
                return 0;
        case 'j':
                ctl->json = true;
                return 0;
        case CTL_OPT_TIMEOUT: {
                double s;
                if (ctl__parse_decimal(arg, &s) < 0 || s > 4000000.0)
                        return ctl_usage(ctl, "--timeout takes a number of seconds (0 for none), not '%s'",
                                         arg);
                ctl->timeout_ms = (unsigned)llround(s * 1000.0);
                if (ctl->timeout_ms == 0 && s > 0)
                        ctl->timeout_ms = 1;
                return 0;
        }
        }
        return ctl_usage(ctl, "internal error: option %d", opt);
}

int ctl_getopt_error(struct ctl *ctl, int opt, char **argv, const char *shorts)
{
        if (opt == ':')
                return ctl_usage(ctl, "option '%s' needs a value", argv[optind - 1]);
        /* A bad short option is in optopt; for a long one (or a value given
         * to a flag) optind is already past it. */
        if (optopt > ' ' && optopt < 0x7f && strchr(shorts, optopt) == NULL)
                return ctl_usage(ctl, "unknown option '-%c'", optopt);
        return ctl_usage(ctl, "unknown or ambiguous option '%s'", argv[optind - 1]);
}

int ctl_getopt(struct ctl *ctl, int argc, char **argv, const struct option *opts, int *status)
{
        opterr = 0;
        for (;;) {
                int opt = getopt_long(argc, argv, ":s:jh", opts, NULL);
                switch (opt) {
                case -1:
                        return -1;
                case 'h':
                        fputs(ctl->cmd->help, stdout);
                        *status = CTL_EXIT_OK;
                        return CTL_GETOPT_STOP;
                case 's':
                case 'j':
                case CTL_OPT_TIMEOUT:
                        *status = ctl_common_option(ctl, opt, optarg);
                        if (*status != 0)
                                return CTL_GETOPT_STOP;
                        continue;
                case ':':
                case '?':
                        *status = ctl_getopt_error(ctl, opt, argv, "sjh");
                        return CTL_GETOPT_STOP;
                default:
                        return opt;
                }
        }
}

int ctl_options(struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts, size_t n,
                int npos, const char *names)
{
        struct option lo[4 + CTL_OPTS_MAX + 1] = { CTL_COMMON_OPTIONS };
        int opt, status;

        if (n > CTL_OPTS_MAX)
                return ctl_usage(ctl, "internal error: %zu options", n);
        for (size_t i = 0; i < n; i++)
                lo[4 + i] = (struct option){ opts[i].name,
                                             opts[i].has_value ? required_argument : no_argument,
                                             NULL, CTL_OPT_OWN + (int)i };
        while ((opt = ctl_getopt(ctl, argc, argv, lo, &status)) != -1) {
                if (opt == CTL_GETOPT_STOP)
                        return status;
                const struct ctl_opt *o = &opts[opt - CTL_OPT_OWN];
                char flag[64];
                if (o->seen != NULL)
                        *o->seen = true;
                if (o->parse != NULL) {
                        snprintf(flag, sizeof(flag), "--%s", o->name);
                        if (o->parse(ctl, flag, optarg, o->dst) < 0)
                                return CTL_EXIT_USAGE;
                } else if (o->has_value) {
                        *(const char **)o->dst = optarg;
                } else {
                        *(bool *)o->dst = true;
                }
        }
        if (npos >= 0 && ctl_positionals(ctl, argc, argv, npos, names) < 0)
                return CTL_EXIT_USAGE;
        return CTL_GO;
}

int ctl_opt_text(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        if (ctl_check_text(ctl, opt, arg, strlen(arg)) < 0)
                return -1;
        *(const char **)dst = arg;
        return 0;
}

int ctl_opt_u32(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        return ctl_parse_u32(ctl, opt, arg, dst);
}

int ctl_opt_unit(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        return ctl_parse_unit(ctl, opt, arg, dst);
}

int ctl_opt_duration(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        static const struct { char unit; uint64_t secs; } units[] = {
                { '\0', 1 }, { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
                { 'w', 7 * 86400 },
        };
        char *end;
        if (arg[0] >= '0' && arg[0] <= '9') {
                errno = 0;
                unsigned long long n = strtoull(arg, &end, 10);
                for (size_t i = 0; errno == 0 && i < sizeof(units) / sizeof(units[0]); i++) {
                        if (units[i].unit != end[0] || (end[0] != '\0' && end[1] != '\0'))
                                continue;
                        if (n > UINT64_MAX / units[i].secs)
                                break;
                        *(uint64_t *)dst = (uint64_t)n * units[i].secs;
                        return 0;
                }
        }
        ctl_usage(ctl, "%s takes a duration such as 90m, 36h or 7d (a whole number and a unit "
                  "s, m, h, d or w; none: seconds), not '%s'", opt, arg);
        return -1;
}

int ctl_opt_list(struct ctl *ctl, const char *opt, const char *arg, void *dst)
{
        struct ctl_list *l = dst;
        const char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (v == NULL) {
                ctl_usage(ctl, "%s: out of memory", opt);
                return -1;
        }
        v[l->n++] = arg;
        l->v = v;
        return 0;
}

/* ---- command-line values --------------------------------------------- */

static bool ctl__digits(const char *s)
{
        if (*s == '\0')
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

int ctl_parse_u32(struct ctl *ctl, const char *opt, const char *s, uint32_t *out)
{
        if (s[0] == '-') {
                ctl_usage(ctl, "%s must not be negative: '%s'", opt, s);
                return -1;
        }
        if (!ctl__digits(s)) {
                ctl_usage(ctl, "%s takes a non-negative integer, not '%s'", opt, s);
                return -1;
        }
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno != 0 || v > UINT32_MAX) {
                ctl_usage(ctl, "%s is too large: %s (at most 4294967295)", opt, s);
                return -1;
        }
        *out = (uint32_t)v;
        return 0;
}

int ctl_parse_ms(struct ctl *ctl, const char *opt, const char *s, uint32_t *u, double *d,
                 bool *is_float)
{
        if (ctl__digits(s)) {
                if (ctl_parse_u32(ctl, opt, s, u) < 0)
                        return -1;
                *is_float = false;
                return 0;
        }
        double v;
        if (s[0] == '-') {
                ctl_usage(ctl, "%s must not be negative: '%s'", opt, s);
                return -1;
        }
        if (ctl__parse_decimal(s, &v) < 0) {
                ctl_usage(ctl, "%s takes a non-negative number of milliseconds, not '%s'", opt, s);
                return -1;
        }
        if (v > (double)UINT32_MAX) {
                ctl_usage(ctl, "%s is too large: %s (at most 4294967295)", opt, s);
                return -1;
        }
        *d = v;
        *is_float = true;
        return 0;
}

int ctl_parse_unit(struct ctl *ctl, const char *opt, const char *s, double *out)
{
        double v;

        if (ctl__parse_decimal(s, &v) < 0 || v > 1.0) {
                ctl_usage(ctl, "%s takes a number from 0 to 1, not '%s'", opt, s);
                return -1;
        }
        *out = v;
        return 0;
}

int ctl_check_text(struct ctl *ctl, const char *opt, const char *s, size_t len)
{
        if (memchr(s, '\0', len) != NULL || !proto_utf8_valid(s, len)) {
                ctl_usage(ctl, "%s is not valid UTF-8 text", opt);
                return -1;
        }
        return 0;
}

int ctl_slurp(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
        bool is_stdin = strcmp(path, "-") == 0;
        const char *name = is_stdin ? "standard input" : path;
        FILE *f = is_stdin ? stdin : fopen(path, "rb");
        if (f == NULL) {
                int e = errno;
                snprintf(err, errlen, "cannot open '%s': %s", path, strerror(e));
                return -e;
        }
        char *buf = NULL;
        size_t len = 0, cap = 0;
        int r = 0;
        for (;;) {
                if (cap - len < 4096) {
                        cap = cap ? cap * 2 : 65536;
                        char *p = realloc(buf, cap);
                        if (p == NULL) {
                                snprintf(err, errlen, "out of memory reading %s", name);
                                r = -ENOMEM;
                                goto out;
                        }
                        buf = p;
                }
                size_t n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                r = errno ? -errno : -EIO;
                snprintf(err, errlen, "cannot read %s: %s", name, strerror(-r));
                goto out;
        }
        buf[len] = '\0';
        *out = buf;
        *outlen = len;
        buf = NULL;
out:
        free(buf);
        if (!is_stdin)
                (void)fclose(f);   /* read only: nothing to lose */
        return r;
}

int ctl_read_file(struct ctl *ctl, const char *opt, const char *path, char **out, size_t *outlen)
{
        char err[512];

        if (ctl_slurp(path, out, outlen, err, sizeof(err)) < 0) {
                ctl_usage(ctl, "%s: %s", opt, err);
                return -1;
        }
        return 0;
}

/* ---- calling the daemon ---------------------------------------------- */

msgpack_packer *ctl_begin(struct ctl *ctl, const char *method)
{
        char err[512];

        if (ctl->client == NULL) {
                int r = oc_connect(&ctl->client, ctl->socket, err, sizeof(err));
                if (r < 0) {
                        fprintf(stderr, "outcomectl: %s\n", err);
                        return NULL;
                }
                r = oc_set_timeout(ctl->client, ctl->timeout_ms);
                if (r < 0) {
                        fprintf(stderr, "outcomectl: cannot set the timeout: %s\n", strerror(-r));
                        return NULL;
                }
        }
        return oc_begin(ctl->client, method);
}

int ctl_call(struct ctl *ctl, struct oc_reply *reply)
{
        char err[512];
        struct oc_reply r;

        int rc = oc_call(ctl->client, &r, err, sizeof(err));
        if (rc < 0) {
                fprintf(stderr, "outcomectl: %s\n", err);
                return CTL_EXIT_CONNECT;
        }
        if (r.code != NULL) {
                fprintf(stderr, "outcomectl: %s: %s\n", r.code, r.message);
                oc_reply_destroy(&r);
                return CTL_EXIT_DAEMON;
        }
        *reply = r;
        return CTL_EXIT_OK;
}

msgpack_packer *ctl_request(struct ctl *ctl, const char *method, uint32_t nargs)
{
        msgpack_packer *pk = ctl_begin(ctl, method);
        if (pk == NULL)
                return NULL;
        if (nargs == 0) {
                msgpack_pack_array(pk, 0);
        } else {
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, nargs);
        }
        return pk;
}

int ctl_call_noargs(struct ctl *ctl, const char *method, struct oc_reply *reply)
{
        if (ctl_request(ctl, method, 0) == NULL)
                return CTL_EXIT_CONNECT;
        return ctl_call(ctl, reply);
}

int ctl_reply(struct ctl *ctl, ctl_print_fn *print, void *arg)
{
        struct oc_reply reply;
        int status = ctl_call(ctl, &reply);
        if (status != CTL_EXIT_OK)
                return status;
        status = ctl->json ? CTL_PRINT_JSON : print(ctl, reply.result, arg);
        if (status == CTL_PRINT_JSON)
                status = ctl_print_json(reply.result);
        oc_reply_destroy(&reply);
        return status;
}

int ctl_reply_noargs(struct ctl *ctl, const char *method, ctl_print_fn *print, void *arg)
{
        if (ctl_request(ctl, method, 0) == NULL)
                return CTL_EXIT_CONNECT;
        return ctl_reply(ctl, print, arg);
}

int ctl_run_noargs(struct ctl *ctl, int argc, char **argv)
{
        int status = ctl_options(ctl, argc, argv, NULL, 0, 0, "");
        if (status != CTL_GO)
                return status;
        return ctl_reply_noargs(ctl, ctl->cmd->method, ctl->cmd->print, NULL);
}

msgpack_packer *ctl_request_args(struct ctl *ctl, const char *method, const struct ctl_arg *args,
                                 size_t n, uint32_t more)
{
        uint32_t given = more;
        for (size_t i = 0; i < n; i++)
                given += args[i].given;
        msgpack_packer *pk = ctl_request(ctl, method, given);
        for (size_t i = 0; pk != NULL && i < n; i++) {
                const struct ctl_arg *a = &args[i];
                if (!a->given)
                        continue;
                switch ((enum ctl_arg_type)a->type) {
                case CTL_ARG_STR: ctl_pack_str(pk, a->key, a->v.s); break;
                case CTL_ARG_U32: ctl_pack_u32(pk, a->key, a->v.u); break;
                case CTL_ARG_F64: ctl_pack_double(pk, a->key, a->v.d); break;
                case CTL_ARG_BOOL: ctl_pack_bool(pk, a->key, a->v.b); break;
                case CTL_ARG_LIST:
                        ctl_pack_key(pk, a->key);
                        msgpack_pack_array(pk, (uint32_t)a->v.l->n);
                        for (size_t j = 0; j < a->v.l->n; j++)
                                proto_pack_cstr(pk, a->v.l->v[j]);
                        break;
                }
        }
        return pk;
}

int ctl_call_args(struct ctl *ctl, const char *method, const struct ctl_arg *args, size_t n,
                  ctl_print_fn *print, void *arg)
{
        if (ctl_request_args(ctl, method, args, n, 0) == NULL)
                return CTL_EXIT_CONNECT;
        return ctl_reply(ctl, print, arg);
}

void ctl_pack_key(msgpack_packer *pk, const char *key)
{
        proto_pack_cstr(pk, key);
}

void ctl_pack_str(msgpack_packer *pk, const char *key, const char *val)
{
        proto_pack_cstr(pk, key);
        proto_pack_cstr(pk, val);
}

void ctl_pack_strn(msgpack_packer *pk, const char *key, const char *val, size_t len)
{
        proto_pack_cstr(pk, key);
        proto_pack_str(pk, val, len);
}

void ctl_pack_u32(msgpack_packer *pk, const char *key, uint32_t val)
{
        proto_pack_cstr(pk, key);
        msgpack_pack_uint32(pk, val);
}

void ctl_pack_double(msgpack_packer *pk, const char *key, double val)
{
        proto_pack_cstr(pk, key);
        msgpack_pack_double(pk, val);
}

void ctl_pack_bool(msgpack_packer *pk, const char *key, bool val)
{
        proto_pack_cstr(pk, key);
        if (val)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

/* ---- reading and printing results ------------------------------------ */

const msgpack_object *ctl_get(const msgpack_object *map, const char *key)
{
        if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
                return NULL;
        return proto_map_get(map, key);
}

const char *ctl_get_str(const msgpack_object *map, const char *key, size_t *len)
{
        const msgpack_object *o = ctl_get(map, key);
        if (o == NULL || o->type != MSGPACK_OBJECT_STR)
                return NULL;
        *len = o->via.str.size;
        return o->via.str.ptr;
}

int ctl_print_json(const msgpack_object *o)
{
        if (json_print(stdout, o) < 0 || putchar('\n') == EOF) {
                fprintf(stderr, "outcomectl: cannot write the output: %s\n", strerror(errno));
                return CTL_EXIT_DAEMON;
        }
        return CTL_EXIT_OK;
}

void ctl_put_text(const char *s, size_t len, int width)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                putchar(ch < 0x20 || ch == 0x7f ? '?' : ch);
        }
        for (int i = (int)len; i < width; i++)
                putchar(' ');
}

bool ctl_fmt_time(char *buf, size_t len, const msgpack_object *o)
{
        snprintf(buf, len, "-");
        if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > (uint64_t)INT64_MAX)
                return false;
        time_t t = (time_t)o->via.u64;
        struct tm tm;
        if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm)) {
                snprintf(buf, len, "%" PRIu64, o->via.u64);
                return true;
        }
        return true;
}

void ctl_fmt_num(char *buf, size_t len, const msgpack_object *o, int decimals, bool force_decimals)
{
        if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
                snprintf(buf, len, "-");
                return;
        }
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
                bool neg = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
                if (force_decimals)
                        snprintf(buf, len, "%.*f", decimals,
                                 neg ? (double)o->via.i64 : (double)o->via.u64);
                else if (neg)
                        snprintf(buf, len, "%" PRId64, o->via.i64);
                else
                        snprintf(buf, len, "%" PRIu64, o->via.u64);
                break;
        }
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                snprintf(buf, len, "%.*f", decimals, o->via.f64);
                break;
        case MSGPACK_OBJECT_BOOLEAN:
                snprintf(buf, len, "%s", o->via.boolean ? "yes" : "no");
                break;
        default:
                snprintf(buf, len, "?");
                break;
        }
}

void ctl_put_value(const msgpack_object *o)
{
        char num[40];

        switch (o->type) {
        case MSGPACK_OBJECT_STR:
                ctl_put_text(o->via.str.ptr, o->via.str.size, 0);
                break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                json_format_double(num, sizeof(num), o->via.f64);
                fputs(num, stdout);
                break;
        default:
                json_print(stdout, o);
                break;
        }
}

int ctl_write_file(const char *path, int (*write)(FILE *f, void *arg), void *arg, char *err,
                   size_t errlen)
{
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        char *tmp = NULL, *dir = NULL;
        int r = 0, fd = -1;

        if (*base == '\0') {
                snprintf(err, errlen, "'%s' names a directory, not a file", path);
                return -EISDIR;
        }
        if (slash == NULL)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, (size_t)(slash - path));
        if (dir == NULL || asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
                tmp = NULL;
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
                goto out;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create a temporary file in %s: %s", dir, strerror(-r));
                free(tmp);
                tmp = NULL;   /* nothing to remove */
                goto out;
        }
        mode_t mask = umask(0);
        (void)umask(mask);   /* only read it: put it back */
        if (fchmod(fd, 0666 & ~mask) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot set the mode of %s: %s", tmp, strerror(-r));
                goto out;
        }
        FILE *f = fdopen(fd, "w");
        if (f == NULL) {
                r = -errno;
                snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
                goto out;
        }
        fd = -1;   /* f owns it now */
        errno = 0;
        if (write(f, arg) < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0) {
                r = errno ? -errno : -EIO;
                snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
                (void)fclose(f);   /* the write failed already */
                goto out;
        }
        if (fclose(f) != 0) {
                r = -errno;
                snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
                goto out;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(-r));
                goto out;
        }
        free(tmp);
        tmp = NULL;   /* renamed: nothing to remove */
        /* The rename itself lasts once the directory is synced. */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL)) {
                r = -errno;
                snprintf(err, errlen, "wrote %s but cannot sync its directory %s: %s", path, dir,
                         strerror(-r));
        }
        if (dfd >= 0)
                (void)close(dfd);
out:
        if (fd >= 0)
                (void)close(fd);
        if (tmp != NULL) {
                (void)unlink(tmp);   /* best effort: the error is the first one */
                free(tmp);
        }
        free(dir);
        return r;
}

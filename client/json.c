/* json.c - msgpack object -> JSON text, for outcomectl --json and export,
 * and a strict JSON parser into msgpack objects for import (see json.h).
 *
 * Printing recurses along the object's nesting, which msgpack-c's unpacker
 * bounds (its parse stack is MSGPACK_EMBED_STACK_SIZE deep).  Parsing is
 * recursive descent bounded by JSON_MAX_DEPTH.  The elements of the arrays
 * and objects being read collect on two stacks shared by every level; when
 * a container closes, its elements are copied into the zone and popped, so
 * a document costs its objects in the zone plus the widest open path.
 */
#include "json.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t json__utf8_len(const unsigned char *s, size_t n)
{
        uint32_t cp;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                len = 2;
                cp = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                cp = s[0] & 0x07;
        } else {
                return 0;
        }
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;   /* overlong, out of range, or a surrogate */
        return len;
}

int json_print_string(FILE *f, const char *str, size_t len)
{
        const unsigned char *s = (const unsigned char *)str;

        fputc('"', f);
        for (size_t i = 0; i < len;) {
                unsigned char ch = s[i];
                if (ch == '"' || ch == '\\') {
                        fputc('\\', f);
                        fputc(ch, f);
                        i++;
                } else if (ch < 0x20 || ch == 0x7f) {
                        switch (ch) {
                        case '\n': fputs("\\n", f); break;
                        case '\t': fputs("\\t", f); break;
                        case '\r': fputs("\\r", f); break;
                        case '\b': fputs("\\b", f); break;
                        case '\f': fputs("\\f", f); break;
                        default: fprintf(f, "\\u%04x", ch); break;
                        }
                        i++;
                } else {
                        size_t n = json__utf8_len(s + i, len - i);
                        if (n == 0) {
                                fputs("\\ufffd", f);   /* an invalid byte */
                                i++;
                        } else {
                                fwrite(s + i, 1, n, f);
                                i += n;
                        }
                }
        }
        fputc('"', f);
        return ferror(f) ? -EIO : 0;
}

/* Shortest of %.{min..max}g that reads back as d (as a float when single).
 * A normal number that reads back from fewer than 15 (float: 6) digits
 * prints in those digits at %.15g already (%g drops the trailing zeros):
 * its half ulp is smaller than half a unit of the 15th digit.  A subnormal
 * one has fewer bits, so every precision from 1 is tried. */
static void json__format(char *buf, size_t len, double d, bool single)
{
        if (!isfinite(d)) {
                snprintf(buf, len, "null");
                return;
        }
        bool subnormal = d != 0 && fabs(d) < (single ? FLT_MIN : DBL_MIN);
        for (int prec = subnormal ? 1 : single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
                snprintf(buf, len, "%.*g", prec, d);
                if (single ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
                        break;
        }
        if (strpbrk(buf, ".eE") == NULL)
                strncat(buf, ".0", len - strlen(buf) - 1);
}

void json_format_double(char *buf, size_t len, double d)
{
        json__format(buf, len, d, false);
}

static void json__base64(FILE *f, const unsigned char *s, size_t len)
{
        static const char tab[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        fputc('"', f);
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)s[i + 1] << 8;
                if (i + 2 < len)
                        v |= s[i + 2];
                fputc(tab[(v >> 18) & 63], f);
                fputc(tab[(v >> 12) & 63], f);
                fputc(i + 1 < len ? tab[(v >> 6) & 63] : '=', f);
                fputc(i + 2 < len ? tab[v & 63] : '=', f);
        }
        fputc('"', f);
}

/* A map key: strings as they are, anything else as its JSON in quotes. */
static int json__key(FILE *f, const msgpack_object *k)
{
        if (k->type == MSGPACK_OBJECT_STR)
                return json_print_string(f, k->via.str.ptr, k->via.str.size);

        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (m == NULL)
                return -errno;
        int r = json_print(m, k);
        if (fclose(m) != 0 && r == 0)
                r = -EIO;
        if (r == 0)
                r = json_print_string(f, buf, len);
        free(buf);
        return r;
}

int json_print(FILE *f, const msgpack_object *o)
{
        char num[40];
        int r;

        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                fputs("null", f);
                break;
        case MSGPACK_OBJECT_BOOLEAN:
                fputs(o->via.boolean ? "true" : "false", f);
                break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                fprintf(f, "%" PRIu64, o->via.u64);
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                fprintf(f, "%" PRId64, o->via.i64);
                break;
        case MSGPACK_OBJECT_FLOAT32:
                json__format(num, sizeof(num), o->via.f64, true);
                fputs(num, f);
                break;
        case MSGPACK_OBJECT_FLOAT64:
                json__format(num, sizeof(num), o->via.f64, false);
                fputs(num, f);
                break;
        case MSGPACK_OBJECT_STR:
                return json_print_string(f, o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_BIN:
                json__base64(f, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
                break;
        case MSGPACK_OBJECT_EXT:
                json__base64(f, (const unsigned char *)o->via.ext.ptr, o->via.ext.size);
                break;
        case MSGPACK_OBJECT_ARRAY:
                fputc('[', f);
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        if (i > 0)
                                fputc(',', f);
                        if ((r = json_print(f, &o->via.array.ptr[i])) < 0)
                                return r;
                }
                fputc(']', f);
                break;
        case MSGPACK_OBJECT_MAP:
                fputc('{', f);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        if (i > 0)
                                fputc(',', f);
                        if ((r = json__key(f, &o->via.map.ptr[i].key)) < 0)
                                return r;
                        fputc(':', f);
                        if ((r = json_print(f, &o->via.map.ptr[i].val)) < 0)
                                return r;
                }
                fputc('}', f);
                break;
        default:
                fputs("null", f);
                break;
        }
        return ferror(f) ? -EIO : 0;
}

/* ---- parsing ------------------------------------------------------------ */

struct json__parser {
        const char *s;
        size_t len, pos;
        msgpack_zone *zone;
        unsigned depth;
        char *err;
        size_t errlen;
        msgpack_object *items;          /* elements of the open arrays */
        size_t nitems, capitems;
        msgpack_object_kv *kvs;         /* members of the open objects */
        size_t *keypos;                 /* where each member's key starts */
        size_t nkvs, capkvs;
        int rc;                         /* the first error: -EINVAL, -ERANGE, -ENOMEM */
};

static int json__vfail(struct json__parser *p, int rc, size_t at, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

/* "LINE:COLUMN: message", the column in characters (UTF-8 lead bytes).
 * Records rc unless an error came first, and returns the first error's
 * (-EINVAL, -ERANGE or -ENOMEM): callers pass it up (or p->rc, once a
 * callee failed), and json_parse returns it. */
static int json__vfail(struct json__parser *p, int rc, size_t at, const char *fmt, va_list ap)
{
        if (p->rc == 0)
                p->rc = rc;
        if (p->err == NULL || p->errlen == 0)
                return p->rc;
        unsigned long line = 1, col = 1;
        for (size_t i = 0; i < at && i < p->len; i++) {
                unsigned char ch = (unsigned char)p->s[i];
                if (ch == '\n') {
                        line++;
                        col = 1;
                } else if ((ch & 0xc0) != 0x80) {
                        col++;
                }
        }
        int n = snprintf(p->err, p->errlen, "%lu:%lu: ", line, col);
        if (n >= 0 && (size_t)n < p->errlen)
                vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        return p->rc;
}

/* Bad input: -EINVAL. */
static int json__fail(struct json__parser *p, size_t at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int json__fail(struct json__parser *p, size_t at, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = json__vfail(p, -EINVAL, at, fmt, ap);
        va_end(ap);
        return r;
}

/* A number that does not fit: -ERANGE. */
static int json__range(struct json__parser *p, size_t at, const char *what)
{
        if (p->rc == 0)
                p->rc = -ERANGE;
        return json__fail(p, at, "%s", what);
}

static int json__oom(struct json__parser *p)
{
        if (p->rc == 0)
                p->rc = -ENOMEM;
        return json__fail(p, p->pos, "out of memory");
}

/* Name the byte at `at` for an error: 'x', "end of input" or a hex byte. */
static int json__unexpected(struct json__parser *p, size_t at, const char *wanted)
{
        if (at >= p->len)
                return json__fail(p, at, "unexpected end of input%s%s", wanted ? ", expected " : "",
                                  wanted ? wanted : "");
        unsigned char ch = (unsigned char)p->s[at];
        if (ch > 0x20 && ch < 0x7f)
                return json__fail(p, at, "unexpected '%c'%s%s", ch, wanted ? ", expected " : "",
                                  wanted ? wanted : "");
        return json__fail(p, at, "unexpected byte 0x%02x%s%s", ch, wanted ? ", expected " : "",
                          wanted ? wanted : "");
}

static void json__skip_ws(struct json__parser *p)
{
        while (p->pos < p->len) {
                char ch = p->s[p->pos];
                if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
                        break;
                p->pos++;
        }
}

static void *json__zalloc(struct json__parser *p, size_t size)
{
        void *m = msgpack_zone_malloc(p->zone, size ? size : 1);
        if (m == NULL)
                json__oom(p);
        return m;
}

/* Room for `need` elements of `elem` bytes in *arr (capacity *cap):
 * returns the array, or NULL (out of memory) leaving it as it was. */
static void *json__reserve(void *arr, size_t *cap, size_t need, size_t elem)
{
        if (need <= *cap)
                return arr;
        size_t n = *cap ? *cap * 2 : 64;
        while (n < need)
                n *= 2;
        void *m = realloc(arr, n * elem);
        if (m != NULL)
                *cap = n;
        return m;
}

static int json__push_item(struct json__parser *p, const msgpack_object *v)
{
        msgpack_object *m = json__reserve(p->items, &p->capitems, p->nitems + 1, sizeof(*m));
        if (m == NULL)
                return json__oom(p);
        p->items = m;
        p->items[p->nitems++] = *v;
        return 0;
}

static int json__push_kv(struct json__parser *p, const msgpack_object_kv *kv, size_t keypos)
{
        size_t cap = p->capkvs;
        msgpack_object_kv *m = json__reserve(p->kvs, &cap, p->nkvs + 1, sizeof(*m));
        if (m == NULL)
                return json__oom(p);
        p->kvs = m;
        if (cap != p->capkvs) {
                size_t *k = realloc(p->keypos, cap * sizeof(*k));
                if (k == NULL)
                        return json__oom(p);
                p->keypos = k;
                p->capkvs = cap;
        }
        p->kvs[p->nkvs] = *kv;
        p->keypos[p->nkvs++] = keypos;
        return 0;
}

static int json__hex4(struct json__parser *p, size_t at, uint32_t *out)
{
        uint32_t v = 0;
        if (p->len - at < 4)
                return json__fail(p, at, "\\u needs four hex digits");
        for (size_t i = 0; i < 4; i++) {
                char c = p->s[at + i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return json__fail(p, at + i, "\\u needs four hex digits");
        }
        *out = v;
        return 0;
}

static size_t json__put_utf8(char *d, uint32_t cp)
{
        if (cp < 0x80) {
                d[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                d[0] = (char)(0xc0 | (cp >> 6));
                d[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                d[0] = (char)(0xe0 | (cp >> 12));
                d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                d[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        d[0] = (char)(0xf0 | (cp >> 18));
        d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

/* A string at p->pos (the opening quote).  The decoded text is never longer
 * than the quoted source, so the source's length is allocated at once. */
static int json__string(struct json__parser *p, msgpack_object *o)
{
        size_t start = ++p->pos, end = start;
        while (end < p->len && p->s[end] != '"')
                end += p->s[end] == '\\' ? 2 : 1;
        if (end >= p->len)
                return json__fail(p, start - 1, "string not closed");
        char *d = json__zalloc(p, end - start);
        if (d == NULL)
                return p->rc;
        size_t n = 0, i = start;
        while (i < end) {
                unsigned char ch = (unsigned char)p->s[i];
                if (ch < 0x20)
                        return json__fail(p, i, "control character 0x%02x in a string (write it as "
                                          "\\u%04x)", ch, ch);
                if (ch >= 0x80) {
                        size_t k = json__utf8_len((const unsigned char *)p->s + i, end - i);
                        if (k == 0)
                                return json__fail(p, i, "invalid UTF-8 in a string");
                        memcpy(d + n, p->s + i, k);
                        n += k;
                        i += k;
                        continue;
                }
                if (ch != '\\') {
                        d[n++] = (char)ch;
                        i++;
                        continue;
                }
                char e = p->s[i + 1];
                uint32_t cp;
                switch (e) {
                case '"': d[n++] = '"'; break;
                case '\\': d[n++] = '\\'; break;
                case '/': d[n++] = '/'; break;
                case 'b': d[n++] = '\b'; break;
                case 'f': d[n++] = '\f'; break;
                case 'n': d[n++] = '\n'; break;
                case 'r': d[n++] = '\r'; break;
                case 't': d[n++] = '\t'; break;
                case 'u':
                        if (json__hex4(p, i + 2, &cp) < 0)
                                return p->rc;
                        if (cp >= 0xdc00 && cp <= 0xdfff)
                                return json__fail(p, i, "lone low surrogate \\u%04x", cp);
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                uint32_t lo;
                                if (i + 12 > end || p->s[i + 6] != '\\' || p->s[i + 7] != 'u' ||
                                    json__hex4(p, i + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                                        return json__fail(p, i, "high surrogate \\u%04x without "
                                                          "a low one after it", cp);
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                i += 6;
                        }
                        n += json__put_utf8(d + n, cp);
                        i += 4;
                        break;
                default:
                        if ((unsigned char)e > 0x20 && (unsigned char)e < 0x7f)
                                return json__fail(p, i, "unknown escape '\\%c'", e);
                        return json__fail(p, i, "unknown escape");
                }
                i += 2;
        }
        if (n > UINT32_MAX)
                return json__fail(p, start, "string too long");
        p->pos = end + 1;
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = d;
        o->via.str.size = (uint32_t)n;
        return 0;
}

static bool json__digit(const struct json__parser *p, size_t i)
{
        return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json__number(struct json__parser *p, msgpack_object *o)
{
        size_t start = p->pos, i = start;
        bool neg = false, is_float = false;

        if (p->s[i] == '-') {
                neg = true;
                i++;
        }
        if (!json__digit(p, i))
                return json__unexpected(p, i, "a digit");
        if (p->s[i] == '0' && json__digit(p, i + 1))
                return json__fail(p, start, "a number must not start with 0");
        while (json__digit(p, i))
                i++;
        size_t int_end = i;
        if (i < p->len && p->s[i] == '.') {
                is_float = true;
                if (!json__digit(p, ++i))
                        return json__unexpected(p, i, "a digit after '.'");
                while (json__digit(p, i))
                        i++;
        }
        if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
                is_float = true;
                i++;
                if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
                        i++;
                if (!json__digit(p, i))
                        return json__unexpected(p, i, "a digit in the exponent");
                while (json__digit(p, i))
                        i++;
        }
        p->pos = i;

        if (!is_float) {
                uint64_t v = 0;
                for (size_t k = start + neg; k < int_end; k++) {
                        unsigned dgt = (unsigned)(p->s[k] - '0');
                        if (v > (UINT64_MAX - dgt) / 10)
                                return json__range(p, start, "integer out of range");
                        v = v * 10 + dgt;
                }
                if (!neg || v == 0) {
                        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
                        o->via.u64 = v;
                } else {
                        if (v > (uint64_t)INT64_MAX + 1)
                                return json__range(p, start, "integer out of range");
                        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
                        o->via.i64 = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
                }
                return 0;
        }

        /* strtod wants a NUL-terminated copy; the C locale is in force. */
        char small[64], *buf = small;
        size_t n = i - start;
        if (n >= sizeof(small)) {
                buf = malloc(n + 1);
                if (buf == NULL)
                        return json__oom(p);
        }
        memcpy(buf, p->s + start, n);
        buf[n] = '\0';
        double d = strtod(buf, NULL);
        if (buf != small)
                free(buf);
        if (!isfinite(d))
                return json__range(p, start, "number out of range");
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = d;
        return 0;
}

static int json__literal(struct json__parser *p, const char *word, msgpack_object *o)
{
        size_t n = strlen(word);
        if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
                return json__unexpected(p, p->pos, "a JSON value");
        p->pos += n;
        if (word[0] == 'n') {
                o->type = MSGPACK_OBJECT_NIL;
        } else {
                o->type = MSGPACK_OBJECT_BOOLEAN;
                o->via.boolean = word[0] == 't';
        }
        return 0;
}

static int json__value(struct json__parser *p, msgpack_object *o);

/* Skip white space; then take the byte `ch` if it is next: true. */
static bool json__take(struct json__parser *p, char ch)
{
        json__skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ch) {
                p->pos++;
                return true;
        }
        return false;
}

/* The members of an array or an object, its opening byte next: member(p)
 * for each, separated by ',', up to `close` (`wanted` names both for an
 * error). */
static int json__members(struct json__parser *p, char close, int (*member)(struct json__parser *),
                         const char *wanted)
{
        p->pos++;
        if (json__take(p, close))
                return 0;
        for (;;) {
                int r = member(p);
                if (r < 0)
                        return r;
                if (json__take(p, ','))
                        continue;
                if (json__take(p, close))
                        return 0;
                return json__unexpected(p, p->pos, wanted);
        }
}

/* The n members gathered at `from` (elem bytes each), copied into the
 * zone; NULL after an error (`what`: too many of them). */
static void *json__gather(struct json__parser *p, const void *from, size_t n, size_t elem,
                          const char *what)
{
        if (n > UINT32_MAX) {
                (void)json__fail(p, p->pos, "%s", what);
                return NULL;
        }
        void *m = json__zalloc(p, n * elem);
        if (m != NULL && n > 0) /* (from is NULL for none) */
                memcpy(m, from, n * elem);
        return m;
}

/* One element of an array, pushed. */
static int json__element(struct json__parser *p)
{
        msgpack_object v;
        int r = json__value(p, &v);
        return r < 0 ? r : json__push_item(p, &v);
}

static int json__array(struct json__parser *p, msgpack_object *o)
{
        size_t base = p->nitems;
        int r = json__members(p, ']', json__element, "',' or ']'");
        if (r < 0)
                return r;
        size_t n = p->nitems - base;
        msgpack_object *arr = json__gather(p, n ? p->items + base : NULL, n, sizeof(*arr),
                                           "array too long");
        if (arr == NULL)
                return p->rc;
        p->nitems = base;
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)n;
        o->via.array.ptr = arr;
        return 0;
}

static int json__key_cmp(const msgpack_object_kv *x, const msgpack_object_kv *y)
{
        uint32_t n = x->key.via.str.size < y->key.via.str.size ? x->key.via.str.size
                                                                : y->key.via.str.size;
        int c = n ? memcmp(x->key.via.str.ptr, y->key.via.str.ptr, n) : 0;
        if (c != 0)
                return c;
        return (x->key.via.str.size > y->key.via.str.size) - (x->key.via.str.size < y->key.via.str.size);
}

/* qsort over pointers to members: by key, then in the order written. */
static int json__sort_cmp(const void *a, const void *b)
{
        const msgpack_object_kv *x = *(const msgpack_object_kv *const *)a;
        const msgpack_object_kv *y = *(const msgpack_object_kv *const *)b;
        int c = json__key_cmp(x, y);
        return c ? c : (x > y) - (x < y);
}

/* A key given twice is reported where it is given the second time.
 * Sorting keeps this O(n log n) for objects of any size. */
static int json__check_dup_keys(struct json__parser *p, const msgpack_object_kv *kv,
                                const size_t *keypos, size_t n)
{
        if (n < 2)
                return 0;
        const msgpack_object_kv **sorted = malloc(n * sizeof(*sorted));
        if (sorted == NULL)
                return json__oom(p);
        for (size_t i = 0; i < n; i++)
                sorted[i] = &kv[i];
        qsort(sorted, n, sizeof(*sorted), json__sort_cmp);
        int r = 0;
        for (size_t i = 1; i < n && r == 0; i++) {
                if (json__key_cmp(sorted[i - 1], sorted[i]) != 0)
                        continue;
                const msgpack_object *k = &sorted[i]->key;
                r = json__fail(p, keypos[sorted[i] - kv], "key \"%.*s\" given twice",
                               (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr);
        }
        free(sorted);
        return r;
}

/* One member of an object, "key": value, pushed. */
static int json__member(struct json__parser *p)
{
        msgpack_object_kv kv;
        json__skip_ws(p);
        size_t at = p->pos;
        if (at >= p->len || p->s[at] != '"')
                return json__unexpected(p, at, "a string key");
        int r = json__string(p, &kv.key);
        if (r < 0)
                return r;
        if (!json__take(p, ':'))
                return json__unexpected(p, p->pos, "':'");
        r = json__value(p, &kv.val);
        return r < 0 ? r : json__push_kv(p, &kv, at);
}

static int json__object(struct json__parser *p, msgpack_object *o)
{
        size_t base = p->nkvs;
        int r = json__members(p, '}', json__member, "',' or '}'");
        if (r < 0)
                return r;
        size_t n = p->nkvs - base;
        /* (kvs is NULL until an object has a member: no offset from it.) */
        if (n > 1 && json__check_dup_keys(p, p->kvs + base, p->keypos + base, n) < 0)
                return p->rc;
        msgpack_object_kv *m = json__gather(p, n ? p->kvs + base : NULL, n, sizeof(*m),
                                            "object too large");
        if (m == NULL)
                return p->rc;
        p->nkvs = base;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)n;
        o->via.map.ptr = m;
        return 0;
}

static int json__value(struct json__parser *p, msgpack_object *o)
{
        json__skip_ws(p);
        if (p->pos >= p->len)
                return json__unexpected(p, p->pos, "a JSON value");
        char ch = p->s[p->pos];
        if (ch == '{' || ch == '[') {
                if (p->depth >= JSON_MAX_DEPTH)
                        return json__fail(p, p->pos, "nested deeper than %d levels", JSON_MAX_DEPTH);
                p->depth++;
                int r = ch == '{' ? json__object(p, o) : json__array(p, o);
                p->depth--;
                return r;
        }
        if (ch == '"')
                return json__string(p, o);
        if (ch == '-' || (ch >= '0' && ch <= '9'))
                return json__number(p, o);
        if (ch == 't')
                return json__literal(p, "true", o);
        if (ch == 'f')
                return json__literal(p, "false", o);
        if (ch == 'n')
                return json__literal(p, "null", o);
        return json__unexpected(p, p->pos, "a JSON value");
}

int json_parse(const char *text, size_t len, msgpack_zone *zone, msgpack_object *out,
               char *err, size_t errlen)
{
        struct json__parser p = {
                .s = text, .len = len, .zone = zone, .err = err, .errlen = errlen,
        };
        msgpack_object o;
        int r;

        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                p.pos = 3;   /* a byte order mark */
        r = json__value(&p, &o);
        if (r == 0) {
                json__skip_ws(&p);
                if (p.pos < p.len)
                        r = json__fail(&p, p.pos, "more text after the JSON value");
        }
        free(p.items);
        free(p.kvs);
        free(p.keypos);
        if (r < 0)
                return r;
        *out = o;
        return 0;
}

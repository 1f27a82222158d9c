/* json.c - msgpack object -> JSON text, for outcomectl --json (see json.h).
 *
 * Recursion follows the object's nesting, which msgpack-c's unpacker bounds
 * (its parse stack is MSGPACK_EMBED_STACK_SIZE deep).
 */
#include "json.h"

#include <inttypes.h>
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
        return ferror(f) ? -1 : 0;
}

/* Shortest of %.{min..max}g that reads back as d (as a float when single). */
static void json__format(char *buf, size_t len, double d, bool single)
{
        if (!isfinite(d)) {
                snprintf(buf, len, "null");
                return;
        }
        for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
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
                return -1;
        int r = json_print(m, k);
        if (fclose(m) != 0)
                r = -1;
        if (r == 0)
                r = json_print_string(f, buf, len);
        free(buf);
        return r;
}

int json_print(FILE *f, const msgpack_object *o)
{
        char num[40];

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
                        if (json_print(f, &o->via.array.ptr[i]) < 0)
                                return -1;
                }
                fputc(']', f);
                break;
        case MSGPACK_OBJECT_MAP:
                fputc('{', f);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        if (i > 0)
                                fputc(',', f);
                        if (json__key(f, &o->via.map.ptr[i].key) < 0)
                                return -1;
                        fputc(':', f);
                        if (json_print(f, &o->via.map.ptr[i].val) < 0)
                                return -1;
                }
                fputc('}', f);
                break;
        default:
                fputs("null", f);
                break;
        }
        return ferror(f) ? -1 : 0;
}

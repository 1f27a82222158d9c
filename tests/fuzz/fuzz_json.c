/* fuzz_json.c - libFuzzer target: client/json.c, the parser behind
 * `outcomectl import` and the printer behind export and --json.
 *
 * The input is JSON text.  When json_parse refuses it, the return is
 * -EINVAL, -ERANGE or -ENOMEM and the error starts with "LINE:COLUMN: "
 * inside the text (LINE at most its lines, COLUMN at most one past that
 * line's characters).  When it accepts it, the value nests at most
 * JSON_MAX_DEPTH deep, holds only what JSON can say (str keys, no key twice
 * in a map, strings of valid UTF-8), and printing it gives text that parses
 * again to the same value (floats to the same bits) and prints again to the
 * very same text.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "json.h"

#define FUZZ_JSON_MAX_INPUT (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        return 0;
}

static bool same(const msgpack_object *a, const msgpack_object *b)
{
        if (a->type != b->type)
                return false;
        switch (a->type) {
        case MSGPACK_OBJECT_NIL:
                return true;
        case MSGPACK_OBJECT_BOOLEAN:
                return a->via.boolean == b->via.boolean;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                return a->via.u64 == b->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                return a->via.i64 == b->via.i64;
        case MSGPACK_OBJECT_FLOAT64:
                return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
        case MSGPACK_OBJECT_STR:
                return a->via.str.size == b->via.str.size &&
                       (a->via.str.size == 0 ||
                        memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
        case MSGPACK_OBJECT_ARRAY:
                if (a->via.array.size != b->via.array.size)
                        return false;
                for (uint32_t i = 0; i < a->via.array.size; i++)
                        if (!same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                                return false;
                return true;
        case MSGPACK_OBJECT_MAP:
                if (a->via.map.size != b->via.map.size)
                        return false;
                for (uint32_t i = 0; i < a->via.map.size; i++)
                        if (!same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                            !same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                                return false;
                return true;
        default:
                return false; /* the parser makes nothing else */
        }
}

/* Strict UTF-8, written apart from json.c's. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                unsigned c = s[i];
                size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                         : (c & 0xf8) == 0xf0 ? 4 : 0;
                if (k == 0 || i + k > n)
                        return false;
                uint32_t cp = k == 1 ? c : c & (0x7f >> k);
                for (size_t j = 1; j < k; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + j] & 0x3f);
                }
                static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
                if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += k;
        }
        return true;
}

/* The value's rules; its depth in containers is returned through *depth. */
static void check_value(const msgpack_object *o, unsigned level, unsigned *depth)
{
        if (o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP) {
                level++;
                if (level > *depth)
                        *depth = level;
        }
        switch (o->type) {
        case MSGPACK_OBJECT_STR:
                FUZZ_CHECK(utf8_ok((const unsigned char *)o->via.str.ptr, o->via.str.size));
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                FUZZ_CHECK(o->via.i64 < 0);
                break;
        case MSGPACK_OBJECT_ARRAY:
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        check_value(&o->via.array.ptr[i], level, depth);
                break;
        case MSGPACK_OBJECT_MAP:
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object *k = &o->via.map.ptr[i].key;
                        FUZZ_CHECK(k->type == MSGPACK_OBJECT_STR);
                        check_value(k, level, depth);
                        for (uint32_t j = 0; j < i; j++)
                                FUZZ_CHECK(!same(k, &o->via.map.ptr[j].key));
                        check_value(&o->via.map.ptr[i].val, level, depth);
                }
                break;
        default:
                break;
        }
}

/* "LINE:COLUMN: " pointing inside the text (or just past its end). */
static void check_error(const char *text, size_t len, const char *err)
{
        unsigned long line, col;
        int used = 0;
        FUZZ_CHECK(sscanf(err, "%lu:%lu: %n", &line, &col, &used) == 2 && used > 0);
        FUZZ_CHECK(err[used] != '\0');
        unsigned long lines = 1, cols = 1, maxcol = 1;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)text[i];
                if (ch == '\n') {
                        if (lines == line)
                                maxcol = cols;
                        lines++;
                        cols = 1;
                } else if ((ch & 0xc0) != 0x80) {
                        cols++;
                }
        }
        if (lines == line)
                maxcol = cols;
        FUZZ_CHECK(line >= 1 && line <= lines);
        FUZZ_CHECK(col >= 1 && col <= maxcol);
}

static char *print(const msgpack_object *o, size_t *len)
{
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        FUZZ_CHECK(f != NULL);
        FUZZ_CHECK(json_print(f, o) == 0);
        FUZZ_CHECK(fclose(f) == 0);
        return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > FUZZ_JSON_MAX_INPUT)
                return 0;
        const char *text = (const char *)data;
        msgpack_zone *zone = msgpack_zone_new(4096);
        FUZZ_CHECK(zone != NULL);
        char err[256];
        msgpack_object o;
        err[0] = '\0';
        int r = json_parse(text, size, zone, &o, err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -ERANGE || r == -ENOMEM);
                check_error(text, size, err);
                msgpack_zone_free(zone);
                return 0;
        }
        FUZZ_CHECK(r == 0);
        unsigned depth = 0;
        check_value(&o, 0, &depth);
        FUZZ_CHECK(depth <= JSON_MAX_DEPTH);

        size_t len1, len2;
        char *once = print(&o, &len1);
        msgpack_object again;
        r = json_parse(once, len1, zone, &again, err, sizeof(err));
        if (r != 0)
                fprintf(stderr, "printed text refused: %s\n%.*s\n", err, (int)len1, once);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(same(&o, &again));
        char *twice = print(&again, &len2);
        FUZZ_CHECK(len1 == len2 && memcmp(once, twice, len1) == 0);
        free(once);
        free(twice);
        msgpack_zone_free(zone);
        return 0;
}

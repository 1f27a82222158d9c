/* fuzz_proto.c - libFuzzer target: protocol/'s decoders alone, each
 * checked against an independent reference.
 *
 * The framing guard, proto_skim_feed, is run over the whole input three
 * ways (in one piece, a byte at a time, in pieces of pseudo-random sizes)
 * with a large and a small limit, and must find the same message
 * boundaries each time, the ones a plain recursive msgpack walker here
 * finds: DONE exactly where a message ends when it fits the limit,
 * TOO_LARGE when it does not (or declares more than fits), INVALID at a
 * 0xc1 byte, MORE at the end of a partial message.  Each message it frames
 * must then decode in msgpack-c to exactly those bytes, unless it nests
 * containers deeper than msgpack-c's 32 levels (which msgpack-c refuses:
 * the server answers bad_request and closes).
 *
 * Each decoded message then goes through proto_parse_msg (the msgid rule of
 * the contract checked), proto_args_decode with a spec holding every
 * argument type (the message's own map, its params map, or any map in it),
 * and proto_arg_check on every element of arrays; every value it accepts
 * must satisfy its type's rule, checked again here: lengths, strict UTF-8
 * (against a second validator), no NUL, the trace id alphabet, integer
 * ranges, [0, 1] for a confidence.
 */
#include <math.h>
#include <stdbool.h>
#include <errno.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "proto.h"

#define MAX_MSGS 4096

/* ---- the reference walker ---------------------------------------------- */

enum ref_status { REF_DONE, REF_MORE, REF_INVALID };

static uint64_t be(const uint8_t *p, int n)
{
        uint64_t v = 0;
        for (int i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/* Walk one value at p[*off]: the smallest number of bytes it can take is
 * accumulated in *declared (so that a partial value still tells how large
 * it says it is), the container depth in *depth. */
static enum ref_status ref_value(const uint8_t *p, size_t n, size_t *off, unsigned level,
                                 unsigned *depth, uint64_t *declared)
{
        if (*off >= n) {
                *declared += 1;
                return REF_MORE;
        }
        uint8_t b = p[*off];
        uint64_t children = 0, payload = 0;
        int hdr = 1, lenbytes = 0;
        bool container = false;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
                hdr = 1;
        } else if (b >= 0x80 && b <= 0x8f) {
                children = 2u * (b & 0x0f);
                container = true;
        } else if (b >= 0x90 && b <= 0x9f) {
                children = b & 0x0f;
                container = true;
        } else if (b >= 0xa0 && b <= 0xbf) {
                payload = b & 0x1f;
        } else if (b == 0xc1) {
                *declared += 1; /* its slot was owed */
                return REF_INVALID;
        } else {
                switch (b) {
                case 0xc4: case 0xd9: lenbytes = 1; break;
                case 0xc5: case 0xda: lenbytes = 2; break;
                case 0xc6: case 0xdb: lenbytes = 4; break;
                case 0xc7: lenbytes = 1; hdr = 3; break;  /* + type */
                case 0xc8: lenbytes = 2; hdr = 4; break;
                case 0xc9: lenbytes = 4; hdr = 6; break;
                case 0xca: hdr = 5; break;
                case 0xcb: hdr = 9; break;
                case 0xcc: case 0xd0: hdr = 2; break;
                case 0xcd: case 0xd1: hdr = 3; break;
                case 0xce: case 0xd2: hdr = 5; break;
                case 0xcf: case 0xd3: hdr = 9; break;
                case 0xd4: hdr = 3; break;
                case 0xd5: hdr = 4; break;
                case 0xd6: hdr = 6; break;
                case 0xd7: hdr = 10; break;
                case 0xd8: hdr = 18; break;
                case 0xdc: lenbytes = 2; container = true; break;
                case 0xdd: lenbytes = 4; container = true; break;
                case 0xde: lenbytes = 2; container = true; break;
                case 0xdf: lenbytes = 4; container = true; break;
                default: FUZZ_CHECK(!"unreachable byte class");
                }
                if (lenbytes && hdr == 1)
                        hdr = 1 + lenbytes;
        }
        if (n - *off < (size_t)hdr) {
                *declared += (uint64_t)hdr;
                return REF_MORE;
        }
        if (lenbytes) {
                uint64_t len = be(p + *off + 1, lenbytes);
                if (container)
                        children = (b == 0xde || b == 0xdf) ? 2 * len : len;
                else
                        payload = len;
        }
        *off += (size_t)hdr;
        *declared += (uint64_t)hdr;
        if (container && level + 1 > *depth)
                *depth = level + 1;
        if (payload) {
                if (n - *off < payload) {
                        *declared += payload;
                        *off = n;
                        return REF_MORE;
                }
                *off += (size_t)payload;
                *declared += payload;
        }
        for (uint64_t i = 0; i < children; i++) {
                enum ref_status r = ref_value(p, n, off, level + 1, depth, declared);
                if (r != REF_DONE) {
                        *declared += children - i - 1; /* one byte each at least */
                        return r;
                }
        }
        return REF_DONE;
}

/* ---- skim, three ways --------------------------------------------------- */

struct cut {
        enum proto_skim_status st[MAX_MSGS];
        size_t end[MAX_MSGS];
        size_t n;
};

/* Feed data in pieces (piece 0: all at once) until the end or an error;
 * record each status other than MORE with the offset it ended at, and a
 * final MORE when the input ends inside a message. */
static void skim_run(const uint8_t *data, size_t size, uint64_t limit, int mode, uint32_t seed,
                     struct cut *c)
{
        struct proto_skim s;
        memset(&s, 0, sizeof(s));
        memset(c, 0, sizeof(*c));
        size_t pos = 0;
        bool mid = false; /* inside a message */
        while (pos < size && c->n < MAX_MSGS) {
                size_t piece = size - pos;
                if (mode == 1)
                        piece = 1;
                else if (mode == 2)
                        piece = 1 + fuzz_xorshift(&seed) % 37;
                if (piece > size - pos)
                        piece = size - pos;
                size_t off = 0;
                while (off < piece && c->n < MAX_MSGS) {
                        size_t used = SIZE_MAX;
                        enum proto_skim_status r = proto_skim_feed(&s, data + pos + off,
                                                                   piece - off, limit, &used);
                        FUZZ_CHECK(used <= piece - off);
                        off += used;
                        if (r == PROTO_SKIM_MORE) {
                                FUZZ_CHECK(off == piece);
                                mid = true;
                                break;
                        }
                        mid = false;
                        c->st[c->n] = r;
                        c->end[c->n++] = pos + off;
                        if (r != PROTO_SKIM_DONE)
                                return;
                        FUZZ_CHECK(used > 0);
                }
                pos += piece;
        }
        if (mid && c->n < MAX_MSGS) {
                c->st[c->n] = PROTO_SKIM_MORE;
                c->end[c->n++] = size;
        }
}

static void cut_same(const struct cut *a, const struct cut *b)
{
        FUZZ_CHECK(a->n == b->n);
        for (size_t i = 0; i < a->n; i++) {
                FUZZ_CHECK(a->st[i] == b->st[i]);
                /* Where an error stops inside a piece may differ by how the
                 * pieces fell; a message end may not. */
                if (a->st[i] == PROTO_SKIM_DONE || a->st[i] == PROTO_SKIM_INVALID)
                        FUZZ_CHECK(a->end[i] == b->end[i]);
        }
}

/* ---- value rules, checked again ---------------------------------------- */

/* A second strict UTF-8 validator, written differently: by code point. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
        size_t i = 0;
        while (i < n) {
                uint32_t cp;
                size_t len;
                if (s[i] < 0x80) {
                        i++;
                        continue;
                }
                if ((s[i] & 0xe0) == 0xc0)
                        len = 2, cp = s[i] & 0x1f;
                else if ((s[i] & 0xf0) == 0xe0)
                        len = 3, cp = s[i] & 0x0f;
                else if ((s[i] & 0xf8) == 0xf0)
                        len = 4, cp = s[i] & 0x07;
                else
                        return false;
                if (i + len > n)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
                if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

/* msgpack-c gives a NULL pointer for an empty string. */
static bool has_nul(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] == '\0')
                        return true;
        return false;
}

static bool trace_id_char(uint8_t c)
{
        return strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-", c) &&
               c != 0;
}

static const struct proto_arg spec[] = {
        { "s", PROTO_ARG_STR, false, 0, 16 },
        { "model", PROTO_ARG_STR, false, 1, 256 },
        { "trace_id", PROTO_ARG_TRACE_ID, false, 1, 128 },
        { "u", PROTO_ARG_U32, false, 0, 0 },
        { "latency_ms", PROTO_ARG_MS, false, 0, 0 },
        { "confidence", PROTO_ARG_UNIT, false, 0, 0 },
        { "b", PROTO_ARG_BOOL, false, 0, 0 },
        { "a", PROTO_ARG_ARRAY, false, 1, 4 },
};
#define NSPEC (sizeof(spec) / sizeof(spec[0]))

/* A value proto_arg_check accepted obeys its type's rule. */
static void check_val(const msgpack_object *o, const struct proto_arg *a,
                      const struct proto_val *v)
{
        FUZZ_CHECK(v->set && v->o == o);
        switch (a->type) {
        case PROTO_ARG_STR:
        case PROTO_ARG_TRACE_ID:
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_STR);
                FUZZ_CHECK(v->s.ptr == o->via.str.ptr && v->s.len == o->via.str.size);
                FUZZ_CHECK(v->s.len >= a->min && v->s.len <= a->max);
                if (a->type == PROTO_ARG_TRACE_ID) {
                        for (uint32_t i = 0; i < v->s.len; i++)
                                FUZZ_CHECK(trace_id_char((uint8_t)v->s.ptr[i]));
                } else {
                        FUZZ_CHECK(!has_nul(v->s.ptr, v->s.len));
                        FUZZ_CHECK(ref_utf8((const uint8_t *)v->s.ptr, v->s.len));
                }
                break;
        case PROTO_ARG_U32:
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v->u);
                break;
        case PROTO_ARG_MS:
                if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                        FUZZ_CHECK(o->via.u64 == v->u);
                } else {
                        FUZZ_CHECK(o->type == MSGPACK_OBJECT_FLOAT32 ||
                                   o->type == MSGPACK_OBJECT_FLOAT64);
                        FUZZ_CHECK(isfinite(o->via.f64) && o->via.f64 >= 0);
                        FUZZ_CHECK(fabs((double)v->u - o->via.f64) <= 0.5);
                }
                break;
        case PROTO_ARG_UNIT:
                FUZZ_CHECK(isfinite(v->d) && v->d >= 0.0 && v->d <= 1.0);
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64 ||
                           o->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
                break;
        case PROTO_ARG_BOOL:
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == v->b);
                break;
        case PROTO_ARG_ARRAY:
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY);
                FUZZ_CHECK(o->via.array.size >= a->min && o->via.array.size <= a->max);
                break;
        }
}

/* The rule applied from the outside, to compare with proto_arg_check's
 * verdict: true when the value is acceptable. */
static bool val_ok(const msgpack_object *o, const struct proto_arg *a)
{
        switch (a->type) {
        case PROTO_ARG_STR:
                return o->type == MSGPACK_OBJECT_STR && o->via.str.size >= a->min &&
                       o->via.str.size <= a->max &&
                       !has_nul(o->via.str.ptr, o->via.str.size) &&
                       ref_utf8((const uint8_t *)o->via.str.ptr, o->via.str.size);
        case PROTO_ARG_TRACE_ID:
                if (o->type != MSGPACK_OBJECT_STR || o->via.str.size < a->min ||
                    o->via.str.size > a->max)
                        return false;
                for (uint32_t i = 0; i < o->via.str.size; i++)
                        if (!trace_id_char((uint8_t)o->via.str.ptr[i]))
                                return false;
                return true;
        case PROTO_ARG_U32:
                return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= UINT32_MAX;
        case PROTO_ARG_MS:
                if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return o->via.u64 <= UINT32_MAX;
                return (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) &&
                       isfinite(o->via.f64) && o->via.f64 >= 0 &&
                       round(o->via.f64) <= (double)UINT32_MAX;
        case PROTO_ARG_UNIT:
                if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return o->via.u64 <= 1;
                return (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) &&
                       o->via.f64 >= 0.0 && o->via.f64 <= 1.0; /* NaN fails both */
        case PROTO_ARG_BOOL:
                return o->type == MSGPACK_OBJECT_BOOLEAN;
        case PROTO_ARG_ARRAY:
                return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= a->min &&
                       o->via.array.size <= a->max;
        }
        return false;
}

static void check_decode(const msgpack_object *map)
{
        struct proto_val vals[NSPEC];
        char err[128];
        memset(err, 'x', sizeof(err));
        int r = proto_args_decode(map, spec, NSPEC, vals, "p.", err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL);
                FUZZ_CHECK(memchr(err, 0, sizeof(err)));
                FUZZ_CHECK(strncmp(err, "p.", 2) == 0);
                return;
        }
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(!map || map->type == MSGPACK_OBJECT_MAP);
        /* Every key was known and given once; every value checks out. */
        size_t given = 0;
        for (size_t j = 0; j < NSPEC; j++) {
                if (!vals[j].set)
                        continue;
                given++;
                const msgpack_object *o = proto_map_get(map, spec[j].name);
                FUZZ_CHECK(o);
                check_val(o, &spec[j], &vals[j]);
        }
        FUZZ_CHECK(given == (map ? map->via.map.size : 0));
}

/* Every argument type against o itself; recurse into containers. */
static void check_tree(const msgpack_object *o, unsigned level)
{
        for (size_t j = 0; j < NSPEC; j++) {
                struct proto_val v;
                char err[96];
                int r = proto_arg_check(o, &spec[j], &v, "", err, sizeof(err));
                FUZZ_CHECK((r == 0) == val_ok(o, &spec[j]));
                if (r == 0)
                        check_val(o, &spec[j], &v);
                else
                        FUZZ_CHECK(memchr(err, 0, sizeof(err)));
        }
        if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN)
                FUZZ_CHECK(proto_utf8_valid(o->via.str.ptr, o->via.str.size) ==
                           ref_utf8((const uint8_t *)o->via.str.ptr, o->via.str.size));
        if (level > 40)
                return;
        if (o->type == MSGPACK_OBJECT_ARRAY) {
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        check_tree(&o->via.array.ptr[i], level + 1);
        } else if (o->type == MSGPACK_OBJECT_MAP) {
                check_decode(o);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        check_tree(&o->via.map.ptr[i].key, level + 1);
                        check_tree(&o->via.map.ptr[i].val, level + 1);
                }
        }
}

static void check_message(const msgpack_object *o)
{
        struct proto_msg m;
        char err[128];
        int r = proto_parse_msg(o, &m, err, sizeof(err));
        uint32_t fallback = 0;
        if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 2 &&
            o->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.array.ptr[1].via.u64 <= UINT32_MAX)
                fallback = (uint32_t)o->via.array.ptr[1].via.u64;
        if (r < 0) {
                FUZZ_CHECK(m.msgid == fallback);
                FUZZ_CHECK(m.type == PROTO_REQUEST); /* a bad message is answered */
                FUZZ_CHECK(memchr(err, 0, sizeof(err)));
        } else {
                const msgpack_object *v = o->via.array.ptr;
                FUZZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY);
                FUZZ_CHECK(v[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
                FUZZ_CHECK(v[0].via.u64 == (uint64_t)m.type);
                if (m.type == PROTO_REQUEST) {
                        FUZZ_CHECK(o->via.array.size == 4 && m.msgid == fallback);
                } else {
                        FUZZ_CHECK(m.type == PROTO_NOTIFY);
                        FUZZ_CHECK(o->via.array.size == 3 && m.msgid == 0);
                }
                const msgpack_object *params = &v[o->via.array.size - 1];
                FUZZ_CHECK(params->type == MSGPACK_OBJECT_ARRAY && params->via.array.size <= 1);
                FUZZ_CHECK(m.args == (params->via.array.size ? &params->via.array.ptr[0] : NULL));
                FUZZ_CHECK(!m.args || m.args->type == MSGPACK_OBJECT_MAP);
                check_decode(m.args);
        }
        check_tree(o, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct cut whole, bytes, pieces, small;
        const uint64_t big = 1u << 30;
        const uint64_t lim = 8 + (size ? data[0] : 0); /* small: errors are reachable */

        skim_run(data, size, big, 0, 0, &whole);
        skim_run(data, size, big, 1, 0, &bytes);
        skim_run(data, size, big, 2, (uint32_t)size * 2654435761u, &pieces);
        cut_same(&whole, &bytes);
        cut_same(&whole, &pieces);
        skim_run(data, size, lim, 2, (uint32_t)size, &small);

        /* The reference walk agrees, message by message, and msgpack-c
         * decodes each framed message to exactly its bytes. */
        size_t start = 0, k = 0, ks = 0;
        bool small_on = true;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        while (start < size && k < whole.n) {
                size_t off = start;
                unsigned depth = 0;
                uint64_t declared = 0;
                enum ref_status rs = ref_value(data, size, &off, 0, &depth, &declared);
                if (rs == REF_INVALID) {
                        /* Unless what came before already declared more than
                         * the limit holds. */
                        FUZZ_CHECK(data[off] == 0xc1);
                        if (declared > big) {
                                FUZZ_CHECK(whole.st[k] == PROTO_SKIM_TOO_LARGE);
                        } else {
                                FUZZ_CHECK(whole.st[k] == PROTO_SKIM_INVALID);
                                FUZZ_CHECK(whole.end[k] == off);
                        }
                        break;
                }
                if (rs == REF_MORE) {
                        /* The skimmer waits for the rest, unless the message
                         * already declares more than the limit holds.  (Its
                         * bound of a header cut short is one byte, the walker's
                         * the whole header: they may differ by up to 17.) */
                        if (declared > big + 17)
                                FUZZ_CHECK(whole.st[k] == PROTO_SKIM_TOO_LARGE);
                        else if (declared <= big)
                                FUZZ_CHECK(whole.st[k] == PROTO_SKIM_MORE);
                        break;
                }
                FUZZ_CHECK(whole.st[k] == PROTO_SKIM_DONE && whole.end[k] == off);
                /* With the small limit: DONE at the same place when the
                 * message fits it, else TOO_LARGE. */
                if (small_on && ks < small.n) {
                        if (off - start <= lim) {
                                FUZZ_CHECK(small.st[ks] == PROTO_SKIM_DONE);
                                FUZZ_CHECK(small.end[ks] == off);
                                ks++;
                        } else {
                                FUZZ_CHECK(small.st[ks] == PROTO_SKIM_TOO_LARGE);
                                small_on = false;
                        }
                }
                size_t used = 0;
                int r = msgpack_unpack_next(&u, (const char *)data + start, off - start, &used);
                if (depth > 32) {
                        FUZZ_CHECK(r == MSGPACK_UNPACK_NOMEM_ERROR);
                } else {
                        FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS);
                        FUZZ_CHECK(used == off - start);
                        check_message(&u.data);
                }
                start = off;
                k++;
        }
        msgpack_unpacked_destroy(&u);
        return 0;
}

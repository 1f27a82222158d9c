/* test_proto.c - Check unit tests for the msgpack-RPC helpers (protocol/proto.c).
 *
 * Messages are built the way a peer would send them: packed with a
 * msgpack_packer into a msgpack_sbuffer, then unpacked with
 * msgpack_unpack_next.  `build()` does both from a small format string, so a
 * test reads like the message it sends:
 *
 *         build("[ u u s [ {s s} ] ]", 4, 0, 7, "start", 1, 1, "model", "m1")
 *
 * is [0, 7, "start", [{"model": "m1"}]] (an array's or map's size is the
 * next argument; see build() for the letters).
 *
 * Covered: proto_parse_msg on every shape the contract names, the named
 * argument decoder (unknown, missing, twice, and each value type at its
 * bounds), the reply and request encoders round-tripped through
 * proto_parse_response / proto_parse_msg, and the error-code names.
 */
#include "proto.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building msgpack objects ------------------------------------------ */

/* One buffer and one unpacked object per test (set up by the fixture);
 * build() replaces the previous object, so a test keeps one at a time
 * unless it uses its own struct mp. */
struct mp {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
};

static struct mp M;

static void mp_init(struct mp *m)
{
        msgpack_sbuffer_init(&m->sb);
        msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
        msgpack_unpacked_init(&m->up);
}

static void mp_destroy(struct mp *m)
{
        msgpack_unpacked_destroy(&m->up);
        msgpack_sbuffer_destroy(&m->sb);
}

static void setup(void)
{
        mp_init(&M);
}

static void teardown(void)
{
        mp_destroy(&M);
}

/* Unpack exactly one object from the whole buffer. */
static const msgpack_object *mp_unpack(struct mp *m)
{
        size_t off = 0;
        msgpack_unpacked_destroy(&m->up);
        msgpack_unpacked_init(&m->up);
        ck_assert_int_eq(msgpack_unpack_next(&m->up, m->sb.data, m->sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(off, m->sb.size);
        return &m->up.data;
}

/* Pack by format, then unpack.  Letters (spaces are ignored):
 *   [  array, its size is the next int argument   ]  nothing (readability)
 *   {  map, its size (pairs) is the next int      }  nothing
 *   u  unsigned int          U  unsigned long long (uint64)
 *   i  int (packed as a signed integer: negatives are NEGATIVE_INTEGER)
 *   d  double (float64)      f  double packed as float32
 *   s  const char * string   S  const char *, size_t: string with a length
 *   b  const char *, size_t: bin
 *   n  nil                   t / F  true / false
 */
static const msgpack_object *vbuild(struct mp *m, const char *fmt, va_list ap)
{
        msgpack_sbuffer_clear(&m->sb);
        for (const char *c = fmt; *c; c++) {
                switch (*c) {
                case '[':
                        msgpack_pack_array(&m->pk, (size_t)va_arg(ap, int));
                        break;
                case '{':
                        msgpack_pack_map(&m->pk, (size_t)va_arg(ap, int));
                        break;
                case 'u':
                        msgpack_pack_uint64(&m->pk, va_arg(ap, unsigned int));
                        break;
                case 'U':
                        msgpack_pack_uint64(&m->pk, va_arg(ap, unsigned long long));
                        break;
                case 'i':
                        msgpack_pack_int64(&m->pk, va_arg(ap, int));
                        break;
                case 'd':
                        msgpack_pack_double(&m->pk, va_arg(ap, double));
                        break;
                case 'f':
                        msgpack_pack_float(&m->pk, (float)va_arg(ap, double));
                        break;
                case 's':
                        proto_pack_cstr(&m->pk, va_arg(ap, const char *));
                        break;
                case 'S': {
                        const char *p = va_arg(ap, const char *);
                        proto_pack_str(&m->pk, p, va_arg(ap, size_t));
                        break;
                }
                case 'b': {
                        const char *p = va_arg(ap, const char *);
                        size_t len = va_arg(ap, size_t);
                        msgpack_pack_bin(&m->pk, len);
                        msgpack_pack_bin_body(&m->pk, p, len);
                        break;
                }
                case 'n':
                        msgpack_pack_nil(&m->pk);
                        break;
                case 't':
                        msgpack_pack_true(&m->pk);
                        break;
                case 'F':
                        msgpack_pack_false(&m->pk);
                        break;
                case ' ':
                case ']':
                case '}':
                        break;
                default:
                        ck_abort_msg("build: bad format letter '%c'", *c);
                }
        }
        return mp_unpack(m);
}

static const msgpack_object *build(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        const msgpack_object *o = vbuild(&M, fmt, ap);
        va_end(ap);
        return o;
}

/* ---- proto_parse_msg --------------------------------------------------- */

static char err[512];

/* Parse and expect a failure answered with `msgid`: a malformed message is
 * always answered (type stays PROTO_REQUEST), and the reason is given. */
static void parse_fails(const msgpack_object *o, uint32_t msgid)
{
        struct proto_msg m;
        memset(&m, 0x5a, sizeof(m));
        err[0] = '\0';
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), -EINVAL);
        ck_assert_uint_eq(m.msgid, msgid);
        ck_assert_int_eq(m.type, PROTO_REQUEST);
        ck_assert_uint_gt(strlen(err), 0);
}

START_TEST(parse_good_request)
{
        struct proto_msg m;
        const msgpack_object *o = build("[ u u s [ {s s} ] ]", 4, 0, 7, "start", 1, 1, "model",
                                        "m1");
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_int_eq(m.type, PROTO_REQUEST);
        ck_assert_uint_eq(m.msgid, 7);
        ck_assert_uint_eq(m.method.len, 5);
        ck_assert_mem_eq(m.method.ptr, "start", 5);
        ck_assert_ptr_nonnull(m.args);
        ck_assert_int_eq(m.args->type, MSGPACK_OBJECT_MAP);
        ck_assert_uint_eq(m.args->via.map.size, 1);
        /* args points into the object, not a copy. */
        ck_assert_ptr_eq(m.args, &o->via.array.ptr[3].via.array.ptr[0]);
        ck_assert(proto_str_eq(proto_map_get(m.args, "model"), "m1"));

        /* Empty params: no arguments. */
        o = build("[u u s []]", 4, 0, 1, "ping", 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_ptr_null(m.args);
        ck_assert_uint_eq(m.msgid, 1);

        /* An empty map is arguments (none given). */
        o = build("[u u s [{}]]", 4, 0, 2, "ping", 1, 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(m.args);
        ck_assert_uint_eq(m.args->via.map.size, 0);

        /* The msgid range ends: 0 and 2^32-1. */
        o = build("[u u s []]", 4, 0, 0, "ping", 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_uint_eq(m.msgid, 0);
        o = build("[u U s []]", 4, 0, 4294967295ull, "ping", 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_uint_eq(m.msgid, UINT32_MAX);

        /* A method is bytes with a length: NUL inside is kept, matching is
         * the dispatcher's business.  An empty method parses too. */
        o = build("[u u S []]", 4, 0, 3, "pi\0ng", (size_t)5, 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_uint_eq(m.method.len, 5);
        ck_assert_mem_eq(m.method.ptr, "pi\0ng", 5);
        o = build("[u u s []]", 4, 0, 3, "", 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_uint_eq(m.method.len, 0);
}
END_TEST

START_TEST(parse_good_notification)
{
        struct proto_msg m;
        const msgpack_object *o = build("[u s []]", 3, 2, "ping", 0);
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_int_eq(m.type, PROTO_NOTIFY);
        ck_assert_uint_eq(m.msgid, 0);
        ck_assert_uint_eq(m.method.len, 4);
        ck_assert_mem_eq(m.method.ptr, "ping", 4);
        ck_assert_ptr_null(m.args);

        o = build("[u s [{s s}]]", 3, 2, "fail", 1, 1, "trace_id", "x");
        ck_assert_int_eq(proto_parse_msg(o, &m, err, sizeof(err)), 0);
        ck_assert_int_eq(m.type, PROTO_NOTIFY);
        ck_assert_uint_eq(m.msgid, 0);
        ck_assert_ptr_nonnull(m.args);
        ck_assert(proto_str_eq(proto_map_get(m.args, "trace_id"), "x"));
}
END_TEST

START_TEST(parse_not_an_array)
{
        parse_fails(build("{}", 0), 0);
        parse_fails(build("{s u}", 1, "msgid", 7), 0);
        parse_fails(build("u", 7), 0);
        parse_fails(build("s", "[0, 7, \"ping\", []]"), 0);
        parse_fails(build("n"), 0);
        parse_fails(build("t"), 0);
        parse_fails(build("d", 0.0), 0);
        parse_fails(build("b", "\x94\x00\x07", (size_t)3), 0);
        ck_assert_ptr_nonnull(strstr(err, "array"));
}
END_TEST

START_TEST(parse_wrong_length)
{
        parse_fails(build("[]", 0), 0);
        parse_fails(build("[u]", 1, 0), 0);
        parse_fails(build("[u u]", 2, 0, 7), 7);
        parse_fails(build("[u u s]", 3, 0, 7, "ping"), 7);
        parse_fails(build("[u u s [] n]", 5, 0, 7, "ping", 0), 7);
        /* Notifications: [2, method, params] exactly. */
        parse_fails(build("[u]", 1, 2), 0);
        parse_fails(build("[u s]", 2, 2, "ping"), 0);
        parse_fails(build("[u s [] n]", 4, 2, "ping", 0), 0);
        /* A request shape with the notification tag: element 1 is a u32,
         * so the answer carries it. */
        parse_fails(build("[u u s []]", 4, 2, 9, "ping", 0), 9);
}
END_TEST

START_TEST(parse_wrong_type_tag)
{
        parse_fails(build("[u u s []]", 4, 1, 7, "ping", 0), 7); /* a response */
        parse_fails(build("[u u s []]", 4, 3, 7, "ping", 0), 7);
        parse_fails(build("[u u s []]", 4, 255, 7, "ping", 0), 7);
        parse_fails(build("[U u s []]", 4, 1ull << 32, 7, "ping", 0), 7);
        parse_fails(build("[i u s []]", 4, -1, 7, "ping", 0), 7);
        parse_fails(build("[s u s []]", 4, "0", 7, "ping", 0), 7);
        parse_fails(build("[d u s []]", 4, 0.0, 7, "ping", 0), 7);
        parse_fails(build("[n u s []]", 4, 7, "ping", 0), 7);
        parse_fails(build("[F u s []]", 4, 7, "ping", 0), 7);
        ck_assert_ptr_nonnull(strstr(err, "type"));
        /* Tag 1 with a notification's length. */
        parse_fails(build("[u s []]", 3, 1, "ping", 0), 0);
}
END_TEST

START_TEST(parse_bad_msgid)
{
        /* The failure is answered with msgid 0 whenever element 1 is not a
         * u32: too large, negative, a string, a float, nil. */
        parse_fails(build("[u U s []]", 4, 0, 4294967296ull, "ping", 0), 0);
        parse_fails(build("[u U s []]", 4, 0, 18446744073709551615ull, "ping", 0), 0);
        parse_fails(build("[u i s []]", 4, 0, -1, "ping", 0), 0);
        parse_fails(build("[u i s []]", 4, 0, -2147483647 - 1, "ping", 0), 0);
        parse_fails(build("[u s s []]", 4, 0, "7", "ping", 0), 0);
        parse_fails(build("[u d s []]", 4, 0, 7.0, "ping", 0), 0);
        parse_fails(build("[u n s []]", 4, 0, "ping", 0), 0);
        parse_fails(build("[u t s []]", 4, 0, "ping", 0), 0);
        parse_fails(build("[u [] s []]", 4, 0, 0, "ping", 0), 0);
        ck_assert_ptr_nonnull(strstr(err, "msgid"));
}
END_TEST

START_TEST(parse_bad_method)
{
        parse_fails(build("[u u u []]", 4, 0, 7, 5, 0), 7);
        parse_fails(build("[u u n []]", 4, 0, 7, 0), 7);
        parse_fails(build("[u u b []]", 4, 0, 7, "ping", (size_t)4, 0), 7); /* bin, not str */
        parse_fails(build("[u u [] []]", 4, 0, 7, 0, 0), 7);
        ck_assert_ptr_nonnull(strstr(err, "method"));
        /* In a notification, element 1 is the method; a u32 there is still
         * "element 1", so its value is the msgid of the answer. */
        parse_fails(build("[u u []]", 3, 2, 5, 0), 5);
        parse_fails(build("[u n []]", 3, 2, 0), 0);
}
END_TEST

START_TEST(parse_bad_params)
{
        /* params not an array */
        parse_fails(build("[u u s {}]", 4, 0, 7, "ping", 0), 7);
        parse_fails(build("[u u s n]", 4, 0, 7, "ping"), 7);
        parse_fails(build("[u u s s]", 4, 0, 7, "ping", "model"), 7);
        parse_fails(build("[u s u]", 3, 2, "ping", 5), 0);
        ck_assert_ptr_nonnull(strstr(err, "params"));
        /* two elements, even two maps */
        parse_fails(build("[u u s [{} {}]]", 4, 0, 7, "ping", 2, 0, 0), 7);
        parse_fails(build("[u u s [{s s} n]]", 4, 0, 7, "ping", 2, 1, "model", "m"), 7);
        parse_fails(build("[u s [{} {}]]", 3, 2, "ping", 2, 0, 0), 0);
        /* params[0] not a map */
        parse_fails(build("[u u s [[]]]", 4, 0, 7, "ping", 1, 0), 7);
        parse_fails(build("[u u s [s]]", 4, 0, 7, "ping", 1, "x"), 7);
        parse_fails(build("[u u s [n]]", 4, 0, 7, "ping", 1), 7);
        parse_fails(build("[u u s [u]]", 4, 0, 7, "ping", 1, 3), 7);
        parse_fails(build("[u s [n]]", 3, 2, "ping", 1), 0);
        ck_assert_ptr_nonnull(strstr(err, "map"));
}
END_TEST

/* err may be NULL or short: no crash, still NUL-terminated. */
START_TEST(parse_err_buffer)
{
        struct proto_msg m;
        const msgpack_object *o = build("[u u s n]", 4, 0, 7, "ping");
        ck_assert_int_eq(proto_parse_msg(o, &m, NULL, 0), -EINVAL);
        ck_assert_uint_eq(m.msgid, 7);
        char small[8];
        memset(small, 'x', sizeof(small));
        ck_assert_int_eq(proto_parse_msg(o, &m, small, sizeof(small)), -EINVAL);
        ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
        ck_assert_int_eq(proto_parse_msg(o, &m, small, 0), -EINVAL);
}
END_TEST

/* ---- proto_args_decode ------------------------------------------------- */

enum { A_MODEL, A_TRACE, A_LATENCY, A_TOKENS, A_CONF, A_OK, A_FILES, A__N };

static const struct proto_arg spec[A__N] = {
        [A_MODEL] = { "model", PROTO_ARG_STR, true, 1, 256 },
        [A_TRACE] = { "trace_id", PROTO_ARG_TRACE_ID, false, 1, 128 },
        [A_LATENCY] = { "latency_ms", PROTO_ARG_MS, false, 0, 0 },
        [A_TOKENS] = { "tokens", PROTO_ARG_U32, false, 0, 0 },
        [A_CONF] = { "confidence", PROTO_ARG_UNIT, false, 0, 0 },
        [A_OK] = { "success", PROTO_ARG_BOOL, false, 0, 0 },
        [A_FILES] = { "files", PROTO_ARG_ARRAY, false, 1, 3 },
};

static struct proto_val vals[A__N];

static int decode(const msgpack_object *map)
{
        memset(vals, 0x5a, sizeof(vals));
        err[0] = '\0';
        return proto_args_decode(map, spec, A__N, vals, "", err, sizeof(err));
}

/* Decode {"model": "m", NAME: <one value built from fmt>}. */
static int decode_one(const char *name, const char *fmt, ...)
{
        /* The fixed head packed by hand, then the value from the caller's
         * va_list packed alone and appended: one map in one buffer. */
        msgpack_sbuffer_clear(&M.sb);
        msgpack_pack_map(&M.pk, 2);
        proto_pack_cstr(&M.pk, "model");
        proto_pack_cstr(&M.pk, "m");
        proto_pack_cstr(&M.pk, name);
        struct mp v;
        mp_init(&v);
        va_list ap;
        va_start(ap, fmt);
        vbuild(&v, fmt, ap);
        va_end(ap);
        msgpack_sbuffer_write(&M.sb, v.sb.data, v.sb.size);
        mp_destroy(&v);
        return decode(mp_unpack(&M));
}

/* Expect a refusal whose message starts with "NAME: " and holds `why`. */
static void refused(int rc, const char *name, const char *why)
{
        ck_assert_int_eq(rc, -EINVAL);
        char head[80];
        snprintf(head, sizeof(head), "%s: ", name);
        ck_assert_msg(strncmp(err, head, strlen(head)) == 0, "error \"%s\" does not name %s", err,
                      name);
        if (why)
                ck_assert_msg(strstr(err, why) != NULL, "error \"%s\" lacks \"%s\"", err, why);
}

START_TEST(args_all_types)
{
        const msgpack_object *o = build(
                "{ s s  s s  s d  s u  s d  s t  s [s s] }", 7,
                "model", "qwen/qwen3-4b:q4_k_m",
                "trace_id", "run-7.step_2:a",
                "latency_ms", 12.5,
                "tokens", 4000000000u,
                "confidence", 0.25,
                "success", /* true */
                "files", 2, "a.c", "b.c");
        ck_assert_int_eq(decode(o), 0);
        for (int i = 0; i < A__N; i++) {
                ck_assert(vals[i].set);
                ck_assert_ptr_eq(vals[i].o, &o->via.map.ptr[i].val);
        }
        ck_assert_uint_eq(vals[A_MODEL].s.len, 20);
        ck_assert_mem_eq(vals[A_MODEL].s.ptr, "qwen/qwen3-4b:q4_k_m", 20);
        ck_assert_uint_eq(vals[A_TRACE].s.len, 14);
        ck_assert_mem_eq(vals[A_TRACE].s.ptr, "run-7.step_2:a", 14);
        ck_assert_uint_eq(vals[A_LATENCY].u, 13);
        ck_assert_uint_eq(vals[A_TOKENS].u, 4000000000u);
        ck_assert_double_eq(vals[A_CONF].d, 0.25);
        ck_assert(vals[A_OK].b);
        ck_assert_uint_eq(vals[A_FILES].o->via.array.size, 2);

        /* Order does not matter; what is not given is not set. */
        o = build("{s u s s}", 2, "tokens", 5, "model", "m");
        ck_assert_int_eq(decode(o), 0);
        ck_assert(vals[A_MODEL].set && vals[A_TOKENS].set);
        ck_assert_uint_eq(vals[A_TOKENS].u, 5);
        for (int i = 0; i < A__N; i++)
                if (i != A_MODEL && i != A_TOKENS)
                        ck_assert(!vals[i].set);
}
END_TEST

START_TEST(args_unknown)
{
        refused(decode(build("{s s s s}", 2, "model", "m", "modle", "x")), "modle",
                "unknown argument");
        /* Even alone, and before a missing required one is noticed. */
        refused(decode(build("{s u}", 1, "latency", 5)), "latency", "unknown");
        /* A prefix of a known name, a known name with a NUL after it. */
        refused(decode(build("{s s s s}", 2, "model", "m", "mode", "x")), "mode", "unknown");
        refused(decode(build("{s s S s}", 2, "model", "m", "model\0x", (size_t)7, "x")), "model?x",
                "unknown");
        /* Shown printably and briefly. */
        refused(decode(build("{s s s s}", 2, "model", "m", "a\tb\xc3\xa9", "x")), "a?b??",
                "unknown");
        char longname[200];
        memset(longname, 'k', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ck_assert_int_eq(decode(build("{s s s s}", 2, "model", "m", longname, "x")), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "...: unknown argument"));
        ck_assert_uint_lt(strlen(err), 100);
        /* With a prefix (array elements). */
        memset(vals, 0, sizeof(vals));
        const msgpack_object *o = build("{s s s s}", 2, "model", "m", "outptu", "x");
        ck_assert_int_eq(proto_args_decode(o, spec, A__N, vals, "actions[3].", err, sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "actions[3].outptu: unknown argument");
        /* Keys must be strings. */
        ck_assert_int_eq(decode(build("{u s s s}", 2, 5, "x", "model", "m")), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "names must be strings"));
        ck_assert_int_eq(decode(build("{b s}", 1, "model", (size_t)5, "m")), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "names must be strings"));
}
END_TEST

START_TEST(args_required_and_twice)
{
        refused(decode(build("{s s}", 1, "trace_id", "x")), "model", "required");
        refused(decode(build("{}", 0)), "model", "required");
        refused(decode(NULL), "model", "required");
        /* No required argument: NULL (no params) is fine. */
        memset(vals, 0x5a, sizeof(vals));
        ck_assert_int_eq(proto_args_decode(NULL, spec + 1, A__N - 1, vals, "", err, sizeof(err)),
                         0);
        for (int i = 0; i < A__N - 1; i++)
                ck_assert(!vals[i].set);
        /* Given twice: refused even with the same value. */
        refused(decode(build("{s s s s}", 2, "model", "a", "model", "b")), "model", "given twice");
        refused(decode(build("{s s s u s u}", 3, "model", "a", "tokens", 1, "tokens", 1)), "tokens",
                "given twice");
        /* The map itself must be a map. */
        ck_assert_int_eq(decode(build("[s s]", 2, "model", "m")), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "must be a map"));
        /* A prefix names the element. */
        ck_assert_int_eq(proto_args_decode(NULL, spec, A__N, vals, "actions[0].", err,
                                           sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "actions[0].model: required");
}
END_TEST

START_TEST(args_str)
{
        char buf[300];
        memset(buf, 'a', sizeof(buf));
        /* Length bounds [1, 256]. */
        refused(decode(build("{s s}", 1, "model", "")), "model", "1 to 256 bytes");
        ck_assert_int_eq(decode(build("{s S}", 1, "model", buf, (size_t)1)), 0);
        ck_assert_int_eq(decode(build("{s S}", 1, "model", buf, (size_t)256)), 0);
        ck_assert_uint_eq(vals[A_MODEL].s.len, 256);
        refused(decode(build("{s S}", 1, "model", buf, (size_t)257)), "model", "257");
        /* Not a string. */
        refused(decode(build("{s u}", 1, "model", 5)), "model", "must be a string");
        refused(decode(build("{s n}", 1, "model")), "model", "must be a string");
        refused(decode(build("{s b}", 1, "model", "m", (size_t)1)), "model", "must be a string");
        refused(decode(build("{s [s]}", 1, "model", 1, "m")), "model", "must be a string");
        /* NUL inside. */
        refused(decode(build("{s S}", 1, "model", "a\0b", (size_t)3)), "model", "NUL");
        refused(decode(build("{s S}", 1, "model", "\0", (size_t)1)), "model", "NUL");
        /* min == max has its own wording. */
        struct proto_arg fixed = { "sha", PROTO_ARG_STR, true, 4, 4 };
        struct proto_val v;
        ck_assert_int_eq(proto_arg_check(build("s", "abc"), &fixed, &v, "", err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "sha: must be 4 bytes long");
        ck_assert_int_eq(proto_arg_check(build("s", "abcd"), &fixed, &v, "", err, sizeof(err)), 0);
        ck_assert(v.set);
}
END_TEST

/* Strict UTF-8, directly and through the decoder. */
START_TEST(args_utf8)
{
        static const struct {
                const char *s;
                size_t len;
        } good[] = {
                { "plain ascii", 11 },
                { "\xc3\xa9", 2 },             /* U+00E9 */
                { "\xc2\x80", 2 },             /* U+0080, smallest 2-byte */
                { "\xdf\xbf", 2 },             /* U+07FF */
                { "\xe0\xa0\x80", 3 },         /* U+0800, smallest 3-byte */
                { "\xe2\x82\xac", 3 },         /* U+20AC */
                { "\xed\x9f\xbf", 3 },         /* U+D7FF, below the surrogates */
                { "\xee\x80\x80", 3 },         /* U+E000, above them */
                { "\xef\xbf\xbf", 3 },         /* U+FFFF */
                { "\xf0\x90\x80\x80", 4 },     /* U+10000, smallest 4-byte */
                { "\xf0\x9d\x84\x9e", 4 },     /* U+1D11E */
                { "\xf4\x8f\xbf\xbf", 4 },     /* U+10FFFF, the last */
                { "a\xc3\xa9z\xe3\x80\x80", 7 },
        };
        static const struct {
                const char *s;
                size_t len;
        } bad[] = {
                { "\x80", 1 },                 /* lone continuation */
                { "\xbf", 1 },
                { "\xc0\xaf", 2 },             /* overlong '/' (2 bytes) */
                { "\xc1\xbf", 2 },             /* overlong U+007F */
                { "\xe0\x80\xaf", 3 },         /* overlong '/' (3 bytes) */
                { "\xe0\x9f\xbf", 3 },         /* overlong U+07FF */
                { "\xf0\x80\x80\xaf", 4 },     /* overlong '/' (4 bytes) */
                { "\xf0\x8f\xbf\xbf", 4 },     /* overlong U+FFFF */
                { "\xed\xa0\x80", 3 },         /* U+D800, high surrogate */
                { "\xed\xaf\xbf", 3 },         /* U+DBFF */
                { "\xed\xb0\x80", 3 },         /* U+DC00, low surrogate */
                { "\xed\xbf\xbf", 3 },         /* U+DFFF */
                { "\xed\xa0\xbd\xed\xb8\x80", 6 }, /* CESU-8 surrogate pair */
                { "\xf4\x90\x80\x80", 4 },     /* U+110000 */
                { "\xf5\x80\x80\x80", 4 },
                { "\xf8\x88\x80\x80\x80", 5 }, /* 5-byte form */
                { "\xfe", 1 },
                { "\xff", 1 },
                { "\xc3", 1 },                 /* truncated */
                { "\xe2\x82", 2 },
                { "\xf0\x9d\x84", 3 },
                { "\xc3\x28", 2 },             /* bad continuation */
                { "\xe2\x28\xa1", 3 },
                { "\xf0\x28\x8c\xbc", 4 },
                { "ok\xc3", 3 },               /* truncated at the end */
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                ck_assert_msg(proto_utf8_valid(good[i].s, good[i].len), "good[%zu] refused", i);
                ck_assert_int_eq(decode(build("{s S}", 1, "model", good[i].s, good[i].len)), 0);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(!proto_utf8_valid(bad[i].s, bad[i].len), "bad[%zu] accepted", i);
                refused(decode(build("{s S}", 1, "model", bad[i].s, bad[i].len)), "model", "UTF-8");
        }
        ck_assert(proto_utf8_valid("", 0));
        /* The length bounds the scan: a valid prefix of a longer buffer. */
        ck_assert(proto_utf8_valid("ab\xff", 2));
}
END_TEST

START_TEST(args_trace_id)
{
        const char *all = "ABCXYZabcxyz0189._:-";
        ck_assert_int_eq(decode_one("trace_id", "s", all), 0);
        ck_assert_uint_eq(vals[A_TRACE].s.len, strlen(all));
        static const char *const bad[] = { "a b", "a/b", "a+b", "a\\b", "\xc3\xa9", "a,b", "a\tb",
                                           "a#b", "a@b", "~" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                refused(decode_one("trace_id", "s", bad[i]), "trace_id", "A-Z a-z 0-9");
        refused(decode_one("trace_id", "S", "a\0b", (size_t)3), "trace_id", "A-Z a-z 0-9");
        char buf[200];
        memset(buf, 'x', sizeof(buf));
        ck_assert_int_eq(decode_one("trace_id", "S", buf, (size_t)128), 0);
        refused(decode_one("trace_id", "S", buf, (size_t)129), "trace_id", "1 to 128");
        refused(decode_one("trace_id", "s", ""), "trace_id", "1 to 128");
        refused(decode_one("trace_id", "u", 5), "trace_id", "must be a string");
}
END_TEST

START_TEST(args_u32)
{
        ck_assert_int_eq(decode_one("tokens", "u", 0), 0);
        ck_assert_uint_eq(vals[A_TOKENS].u, 0);
        ck_assert_int_eq(decode_one("tokens", "U", 4294967295ull), 0);
        ck_assert_uint_eq(vals[A_TOKENS].u, UINT32_MAX);
        refused(decode_one("tokens", "U", 4294967296ull), "tokens", "at most 4294967295");
        refused(decode_one("tokens", "U", 18446744073709551615ull), "tokens", "at most");
        refused(decode_one("tokens", "i", -1), "tokens", "negative");
        refused(decode_one("tokens", "i", -2147483647 - 1), "tokens", "negative");
        /* Floats are for latency_ms only. */
        refused(decode_one("tokens", "d", 1.0), "tokens", "non-negative integer");
        refused(decode_one("tokens", "f", 1.0), "tokens", "non-negative integer");
        refused(decode_one("tokens", "s", "5"), "tokens", "non-negative integer");
        refused(decode_one("tokens", "n"), "tokens", NULL);
        refused(decode_one("tokens", "t"), "tokens", NULL);
}
END_TEST

START_TEST(args_ms)
{
        static const struct {
                double in;
                uint32_t out;
        } ok[] = {
                { 12.5, 13 }, { 12.4, 12 }, { 12.6, 13 }, { 0.0, 0 }, { 0.4, 0 }, { 0.5, 1 },
                { 2.5, 3 }, /* half away from zero, not to even */
                { 1200.0, 1200 }, { 4294967294.5, 4294967295u }, { 4294967295.0, 4294967295u },
                { 4294967295.4, 4294967295u }, { -0.0, 0 },
        };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                ck_assert_msg(decode_one("latency_ms", "d", ok[i].in) == 0, "%g refused: %s",
                              ok[i].in, err);
                ck_assert_uint_eq(vals[A_LATENCY].u, ok[i].out);
        }
        /* float32 on the wire too. */
        ck_assert_int_eq(decode_one("latency_ms", "f", 12.5), 0);
        ck_assert_uint_eq(vals[A_LATENCY].u, 13);
        /* Integers as U32. */
        ck_assert_int_eq(decode_one("latency_ms", "u", 7), 0);
        ck_assert_uint_eq(vals[A_LATENCY].u, 7);
        ck_assert_int_eq(decode_one("latency_ms", "U", 4294967295ull), 0);
        refused(decode_one("latency_ms", "U", 4294967296ull), "latency_ms", "at most");
        refused(decode_one("latency_ms", "i", -1), "latency_ms", "negative");
        /* Refused floats. */
        refused(decode_one("latency_ms", "d", NAN), "latency_ms", "finite non-negative");
        refused(decode_one("latency_ms", "d", INFINITY), "latency_ms", "finite non-negative");
        refused(decode_one("latency_ms", "d", -INFINITY), "latency_ms", "finite non-negative");
        refused(decode_one("latency_ms", "f", (double)NAN), "latency_ms", "finite");
        refused(decode_one("latency_ms", "d", -0.5), "latency_ms", "finite non-negative");
        refused(decode_one("latency_ms", "d", -1.0), "latency_ms", "finite non-negative");
        refused(decode_one("latency_ms", "d", 4294967295.5), "latency_ms", "at most");
        refused(decode_one("latency_ms", "d", 1e300), "latency_ms", "at most");
        refused(decode_one("latency_ms", "s", "12"), "latency_ms", "integer or float");
}
END_TEST

START_TEST(args_unit)
{
        ck_assert_int_eq(decode_one("confidence", "u", 0), 0);
        ck_assert_double_eq(vals[A_CONF].d, 0.0);
        ck_assert_int_eq(decode_one("confidence", "u", 1), 0);
        ck_assert_double_eq(vals[A_CONF].d, 1.0);
        refused(decode_one("confidence", "u", 2), "confidence", "[0, 1]");
        refused(decode_one("confidence", "U", 18446744073709551615ull), "confidence", "[0, 1]");
        refused(decode_one("confidence", "i", -1), "confidence", "[0, 1]");
        static const double ok[] = { 0.0, 1e-300, 0.25, 0.5, 0.9, 0.9999999999, 1.0 };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                ck_assert_int_eq(decode_one("confidence", "d", ok[i]), 0);
                ck_assert_double_eq(vals[A_CONF].d, ok[i]);
        }
        ck_assert_int_eq(decode_one("confidence", "f", 0.25), 0);
        ck_assert_double_eq(vals[A_CONF].d, 0.25);
        ck_assert_int_eq(decode_one("confidence", "f", 1.0), 0);
        refused(decode_one("confidence", "d", 1.0000001), "confidence", "[0, 1]");
        refused(decode_one("confidence", "f", 1.0000001), "confidence", "[0, 1]");
        refused(decode_one("confidence", "d", -1e-300), "confidence", "[0, 1]");
        refused(decode_one("confidence", "d", NAN), "confidence", "finite");
        refused(decode_one("confidence", "d", INFINITY), "confidence", "finite");
        refused(decode_one("confidence", "d", 2.0), "confidence", "[0, 1]");
        refused(decode_one("confidence", "s", "0.5"), "confidence", "must be a number");
        refused(decode_one("confidence", "t"), "confidence", "must be a number");
        refused(decode_one("confidence", "n"), "confidence", "must be a number");
}
END_TEST

START_TEST(args_bool)
{
        ck_assert_int_eq(decode_one("success", "t"), 0);
        ck_assert(vals[A_OK].set && vals[A_OK].b);
        ck_assert_int_eq(decode_one("success", "F"), 0);
        ck_assert(vals[A_OK].set && !vals[A_OK].b);
        refused(decode_one("success", "u", 1), "success", "boolean");
        refused(decode_one("success", "u", 0), "success", "boolean");
        refused(decode_one("success", "s", "true"), "success", "boolean");
        refused(decode_one("success", "n"), "success", "boolean");
}
END_TEST

START_TEST(args_array)
{
        /* files: [1, 3] entries; the elements are the caller's business. */
        refused(decode_one("files", "[]", 0), "files", "1 to 3 entries (got 0)");
        ck_assert_int_eq(decode_one("files", "[s]", 1, "a"), 0);
        ck_assert_int_eq(decode_one("files", "[s u n]", 3, "a", 5), 0);
        ck_assert_int_eq(vals[A_FILES].o->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(vals[A_FILES].o->via.array.size, 3);
        refused(decode_one("files", "[s s s s]", 4, "a", "b", "c", "d"), "files", "(got 4)");
        refused(decode_one("files", "{}", 0), "files", "must be an array");
        refused(decode_one("files", "s", "a.c"), "files", "must be an array");
        /* proto_arg_check on each element, named by the caller's prefix. */
        const msgpack_object *o = build("[s s]", 2, "ok.c", "bad\xff");
        struct proto_arg fa = { "", PROTO_ARG_STR, true, 1, 16 };
        struct proto_val v;
        ck_assert_int_eq(proto_arg_check(&o->via.array.ptr[0], &fa, &v, "files[0]", err,
                                         sizeof(err)),
                         0);
        ck_assert_uint_eq(v.s.len, 4);
        ck_assert_int_eq(proto_arg_check(&o->via.array.ptr[1], &fa, &v, "files[1]", err,
                                         sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "files[1]: must be valid UTF-8");
        ck_assert(!v.set);
}
END_TEST

START_TEST(map_helpers)
{
        const msgpack_object *o = build("{s u s s u s}", 3, "a", 1, "bb", "x", 7, "c");
        ck_assert_ptr_eq(proto_map_get(o, "a"), &o->via.map.ptr[0].val);
        ck_assert_ptr_eq(proto_map_get(o, "bb"), &o->via.map.ptr[1].val);
        ck_assert_ptr_null(proto_map_get(o, "b"));
        ck_assert_ptr_null(proto_map_get(o, "bbb"));
        ck_assert_ptr_null(proto_map_get(o, "c")); /* a value, not a key */
        ck_assert_ptr_null(proto_map_get(NULL, "a"));
        ck_assert_ptr_null(proto_map_get(&o->via.map.ptr[0].val, "a")); /* not a map */
        ck_assert(proto_str_eq(&o->via.map.ptr[1].val, "x"));
        ck_assert(!proto_str_eq(&o->via.map.ptr[1].val, "xx"));
        ck_assert(!proto_str_eq(&o->via.map.ptr[1].val, ""));
        ck_assert(!proto_str_eq(&o->via.map.ptr[0].val, "1"));
}
END_TEST

/* ---- the profile spec ---------------------------------------------------- */

START_TEST(profile_spec)
{
        struct proto_val v[PROTO_PROFILE__COUNT], tv[PROTO_TASK_STATS__COUNT];

        /* A profile as query answers it: every field lands at its index;
         * derived ones are accepted. */
        const msgpack_object *o = build("{s s s u s u s u s U s d s d s u s {s {s u s u s u s d s d s d}}"
                                        " s {s d s d s d} s n}", 11,
                                        "model", "gpt-4o", "total_calls", 10, "success_count", 7,
                                        "fail_count", 2, "total_latency_ms", 5000ULL,
                                        "ema_quality", 0.75, "success_rate", 0.77, "updated_at", 99,
                                        "tasks", 1, "code", 6, "calls", 10, "successes", 7,
                                        "failures", 2, "avg_latency_ms", 500.0,
                                        "ema_quality", 0.75, "success_rate", 0.77,
                                        "posterior", 3, "alpha", 6.5, "beta", 2.5, "judged", 9.0,
                                        "degraded_since");
        ck_assert_int_eq(proto_args_decode(o, proto_profile_spec, PROTO_PROFILE__COUNT, v, "p.",
                                           err, sizeof(err)), 0);
        ck_assert_uint_eq(v[PROTO_PROFILE_MODEL].s.len, 6);
        ck_assert_uint_eq(v[PROTO_PROFILE_TOTAL_CALLS].u64, 10);
        ck_assert_uint_eq(v[PROTO_PROFILE_SUCCESS_COUNT].u64, 7);
        ck_assert_uint_eq(v[PROTO_PROFILE_FAIL_COUNT].u64, 2);
        ck_assert_uint_eq(v[PROTO_PROFILE_TOTAL_LATENCY_MS].u64, 5000);
        ck_assert_double_eq(v[PROTO_PROFILE_EMA_QUALITY].d, 0.75);
        ck_assert_uint_eq(v[PROTO_PROFILE_UPDATED_AT].u64, 99);
        ck_assert(v[PROTO_PROFILE_SUCCESS_RATE].set);
        ck_assert(v[PROTO_PROFILE_EVIDENCE].set);   /* posterior */
        ck_assert(!v[PROTO_PROFILE_EVIDENCE + 1].set);
        ck_assert(v[PROTO_PROFILE_DEGRADED_SINCE].set);
        ck_assert(!v[PROTO_PROFILE_DEGRADED].set);
        const msgpack_object *code = proto_map_get(v[PROTO_PROFILE_TASKS].o, "code");
        ck_assert_ptr_nonnull(code);
        ck_assert_int_eq(proto_args_decode(code, proto_task_stats_spec, PROTO_TASK_STATS__COUNT,
                                           tv, "t.", err, sizeof(err)), 0);
        ck_assert_uint_eq(tv[PROTO_TASK_STATS_CALLS].u64, 10);
        ck_assert_uint_eq(tv[PROTO_TASK_STATS_SUCCESSES].u64, 7);
        ck_assert_uint_eq(tv[PROTO_TASK_STATS_FAILURES].u64, 2);
        ck_assert_double_eq(tv[PROTO_TASK_STATS_AVG_LATENCY_MS].d, 500.0);
        ck_assert_double_eq(tv[PROTO_TASK_STATS_EMA_QUALITY].d, 0.75);

        /* A required field missing, and a count that is negative, are named. */
        o = build("{s s s u s u s u s u}", 5, "model", "m", "total_calls", 1, "success_count", 1,
                  "fail_count", 0, "total_latency_ms", 3);
        ck_assert_int_lt(proto_args_decode(o, proto_profile_spec, PROTO_PROFILE__COUNT, v, "p.",
                                           err, sizeof(err)), 0);
        ck_assert_str_eq(err, "p.ema_quality: required");
        o = build("{s i s u s u s d s d}", 5, "calls", -1, "successes", 0, "failures", 0,
                  "avg_latency_ms", 1.0, "ema_quality", 0.5);
        ck_assert_int_lt(proto_args_decode(o, proto_task_stats_spec, PROTO_TASK_STATS__COUNT, tv,
                                           "t.", err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(strstr(err, "t.calls:"));
        /* The model's length is the daemon's to bound: any length from 1. */
        ck_assert_uint_eq(proto_profile_spec[PROTO_PROFILE_MODEL].min, 1);
        ck_assert_uint_eq(proto_profile_spec[PROTO_PROFILE_MODEL].max, UINT32_MAX);
}
END_TEST

/* ---- packers report a failed write ------------------------------------- */

/* A writer that takes `room` writes, then fails them all (as msgpack-c's
 * sbuffer does when it cannot grow). */
struct tight {
        int room, calls;
};

static int tight_write(void *data, const char *buf, size_t len)
{
        struct tight *t = data;
        (void)buf;
        (void)len;
        t->calls++;
        return t->room-- > 0 ? 0 : -1;
}

START_TEST(packers_report_failure)
{
        /* The writes of a whole error reply, with room for all. */
        struct tight all = { 1000, 0 };
        msgpack_packer apk;
        msgpack_packer_init(&apk, &all, tight_write);
        ck_assert_int_eq(proto_pack_error(&apk, 7, PROTO_BAD_REQUEST, "x: bad"), 0);
        int writes = all.calls;
        ck_assert_int_gt(writes, 8);
        /* With less room it fails, and stops at the first failed write. */
        for (int room = 0; room <= writes; room++) {
                struct tight t = { room, 0 };
                msgpack_packer pk;
                msgpack_packer_init(&pk, &t, tight_write);
                int r = proto_pack_error(&pk, 7, PROTO_BAD_REQUEST, "x: bad");
                ck_assert_int_eq(r, room < writes ? -ENOMEM : 0);
                ck_assert_int_eq(t.calls, room < writes ? room + 1 : writes);
        }
        struct tight t = { 1, 0 };
        msgpack_packer pk;
        msgpack_packer_init(&pk, &t, tight_write);
        ck_assert_int_eq(proto_pack_kv_u64(&pk, "key", 1), -ENOMEM);   /* the key's body */
        t.room = 2;
        ck_assert_int_eq(proto_pack_kv_bool(&pk, "key", true), -ENOMEM); /* the value */
        t.room = 3;
        ck_assert_int_eq(proto_pack_kv_str(&pk, "key", NULL), 0);
        t.room = 0;
        ck_assert_int_eq(proto_pack_ok_head(&pk, 1), -ENOMEM);
        ck_assert_int_eq(proto_pack_request_head(&pk, 1, "ping"), -ENOMEM);
        ck_assert_int_eq(proto_pack_notify_head(&pk, "ping"), -ENOMEM);
}
END_TEST

/* ---- name tables ---------------------------------------------------------- */

START_TEST(name_tables)
{
        /* Every name finds its own index, and only its whole self. */
        static const struct {
                const char *const *names;
                int n;
        } tables[] = {
                { proto_task_names, PROTO_TASK__COUNT },
                { proto_kind_names, PROTO_KIND__COUNT },
                { proto_durability_names, PROTO_DURABILITY__COUNT },
        };
        for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
                for (int i = 0; i < tables[t].n; i++) {
                        const char *name = tables[t].names[i];
                        ck_assert_ptr_nonnull(name);
                        ck_assert_int_eq(proto_name_find(tables[t].names, tables[t].n, name,
                                                         strlen(name)), i);
                        ck_assert_int_eq(proto_name_find(tables[t].names, tables[t].n, name,
                                                         strlen(name) - 1), -EINVAL);
                        ck_assert_str_eq(proto_name(tables[t].names, tables[t].n, i), name);
                }
                ck_assert_str_eq(proto_name(tables[t].names, tables[t].n, tables[t].n), "?");
                ck_assert_str_eq(proto_name(tables[t].names, tables[t].n, -1), "?");
                ck_assert_int_eq(proto_name_find(tables[t].names, tables[t].n, "", 0), -EINVAL);
        }
        /* The contract's spellings and order. */
        ck_assert_str_eq(proto_task_names[PROTO_TASK_REASONING], "reasoning");
        ck_assert_str_eq(proto_kind_names[PROTO_KIND_ACCEPTED_WITH_EDITS], "accepted_with_edits");
        ck_assert_str_eq(proto_durability_names[PROTO_DURABILITY_FSYNC], "fsync");
        ck_assert_int_eq(proto_name_find(proto_task_names, PROTO_TASK__COUNT, "Code", 4), -EINVAL);
        /* A confidence weighs the three conversation kinds alone. */
        for (int k = 0; k < PROTO_KIND__COUNT; k++)
                ck_assert_int_eq(proto_kind_needs_confidence(k), k <= PROTO_KIND_REJECTED);
}
END_TEST

/* ---- encoding and responses -------------------------------------------- */

/* After a proto_pack_* call into M: it returned 0, and M holds one object. */
static const msgpack_object *packed(int rc)
{
        ck_assert_int_eq(rc, 0);
        return mp_unpack(&M);
}

START_TEST(pack_error_roundtrip)
{
        for (int e = PROTO_BAD_REQUEST; e < PROTO_ERROR__COUNT; e++) {
                uint32_t ids[] = { 0, 42, UINT32_MAX };
                for (size_t i = 0; i < 3; i++) {
                        msgpack_sbuffer_clear(&M.sb);
                        const msgpack_object *o = packed(
                                proto_pack_error(&M.pk, ids[i], (enum proto_error)e, "why: x"));
                        uint32_t msgid = 1;
                        const msgpack_object *error = NULL, *result = NULL;
                        ck_assert_int_eq(proto_parse_response(o, &msgid, &error, &result), 0);
                        ck_assert_uint_eq(msgid, ids[i]);
                        ck_assert_ptr_nonnull(error);
                        ck_assert_int_eq(error->type, MSGPACK_OBJECT_MAP);
                        ck_assert_uint_eq(error->via.map.size, 2);
                        const msgpack_object *code = proto_map_get(error, "code");
                        ck_assert(proto_str_eq(code, proto_error_name((enum proto_error)e)));
                        ck_assert_int_eq(proto_error_parse(code->via.str.ptr, code->via.str.size),
                                         e);
                        ck_assert(proto_str_eq(proto_map_get(error, "message"), "why: x"));
                        ck_assert_int_eq(result->type, MSGPACK_OBJECT_NIL);
                        /* The shape on the wire: [1, msgid, {..}, nil]. */
                        ck_assert_uint_eq(o->via.array.size, 4);
                        ck_assert_uint_eq(o->via.array.ptr[0].via.u64, PROTO_RESPONSE);
                }
        }
        /* No message: the code stands in for it. */
        msgpack_sbuffer_clear(&M.sb);
        const msgpack_object *o = packed(proto_pack_error(&M.pk, 5, PROTO_OVERLOADED, NULL));
        uint32_t msgid;
        const msgpack_object *error, *result;
        ck_assert_int_eq(proto_parse_response(o, &msgid, &error, &result), 0);
        ck_assert(proto_str_eq(proto_map_get(error, "message"), "overloaded"));
}
END_TEST

START_TEST(pack_ok_roundtrip)
{
        uint32_t ids[] = { 0, 7, UINT32_MAX };
        for (size_t i = 0; i < 3; i++) {
                msgpack_sbuffer_clear(&M.sb);
                ck_assert_int_eq(proto_pack_ok_head(&M.pk, ids[i]), 0);
                msgpack_pack_map(&M.pk, 1);
                ck_assert_int_eq(proto_pack_cstr(&M.pk, "trace_id"), 0);
                ck_assert_int_eq(proto_pack_str(&M.pk, "t-1xyz", 3), 0);
                const msgpack_object *o = mp_unpack(&M);
                uint32_t msgid = 1;
                const msgpack_object *error = o, *result = NULL;
                ck_assert_int_eq(proto_parse_response(o, &msgid, &error, &result), 0);
                ck_assert_uint_eq(msgid, ids[i]);
                ck_assert_ptr_null(error);
                ck_assert_ptr_nonnull(result);
                ck_assert(proto_str_eq(proto_map_get(result, "trace_id"), "t-1"));
        }
        /* A nil result is a result too. */
        msgpack_sbuffer_clear(&M.sb);
        proto_pack_ok_head(&M.pk, 3);
        msgpack_pack_nil(&M.pk);
        uint32_t msgid;
        const msgpack_object *error, *result;
        ck_assert_int_eq(proto_parse_response(mp_unpack(&M), &msgid, &error, &result), 0);
        ck_assert_ptr_null(error);
        ck_assert_int_eq(result->type, MSGPACK_OBJECT_NIL);
}
END_TEST

START_TEST(parse_response_bad)
{
        uint32_t msgid = 77;
        const msgpack_object *error = NULL, *result = NULL;
#define BAD(...) ck_assert_int_eq(proto_parse_response(build(__VA_ARGS__), &msgid, &error, &result), -EINVAL)
        BAD("{}", 0);
        BAD("u", 1);
        BAD("[]", 0);
        BAD("[u u n]", 3, 1, 7);
        BAD("[u u n n n]", 5, 1, 7);
        BAD("[u u n n]", 4, 0, 7);            /* a request's tag */
        BAD("[u u n n]", 4, 2, 7);
        BAD("[i u n n]", 4, -1, 7);
        BAD("[u s n n]", 4, 1, "7");           /* msgid not an integer */
        BAD("[u U n n]", 4, 1, 4294967296ull); /* msgid too large */
        BAD("[u i n n]", 4, 1, -7);
        BAD("[u u s n]", 4, 1, 7, "bad_request"); /* error neither nil nor a map */
        BAD("[u u [] n]", 4, 1, 7, 0);
#undef BAD
        ck_assert_uint_eq(msgid, 77); /* outputs untouched on failure */
        ck_assert_ptr_null(error);
        ck_assert_ptr_null(result);
}
END_TEST

START_TEST(pack_request_roundtrip)
{
        /* A request and a notification back to back on one stream, as a
         * pipelining client writes them. */
        msgpack_sbuffer_clear(&M.sb);
        ck_assert_int_eq(proto_pack_request_head(&M.pk, UINT32_MAX, "start"), 0);
        msgpack_pack_array(&M.pk, 1);
        msgpack_pack_map(&M.pk, 2);
        proto_pack_cstr(&M.pk, "model");
        proto_pack_cstr(&M.pk, "m1");
        proto_pack_cstr(&M.pk, "latency_ms");
        msgpack_pack_double(&M.pk, 99.5);
        ck_assert_int_eq(proto_pack_notify_head(&M.pk, "ping"), 0);
        msgpack_pack_array(&M.pk, 0);

        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        struct proto_msg m;
        ck_assert_int_eq(msgpack_unpack_next(&up, M.sb.data, M.sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(proto_parse_msg(&up.data, &m, err, sizeof(err)), 0);
        ck_assert_int_eq(m.type, PROTO_REQUEST);
        ck_assert_uint_eq(m.msgid, UINT32_MAX);
        ck_assert_uint_eq(m.method.len, 5);
        ck_assert_mem_eq(m.method.ptr, "start", 5);
        ck_assert_int_eq(decode(m.args), 0);
        ck_assert_mem_eq(vals[A_MODEL].s.ptr, "m1", 2);
        ck_assert_uint_eq(vals[A_LATENCY].u, 100);

        ck_assert_int_eq(msgpack_unpack_next(&up, M.sb.data, M.sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(proto_parse_msg(&up.data, &m, err, sizeof(err)), 0);
        ck_assert_int_eq(m.type, PROTO_NOTIFY);
        ck_assert_uint_eq(m.msgid, 0);
        ck_assert_mem_eq(m.method.ptr, "ping", 4);
        ck_assert_ptr_null(m.args);
        ck_assert_uint_eq(off, M.sb.size);
        ck_assert_int_eq(msgpack_unpack_next(&up, M.sb.data, M.sb.size, &off),
                         MSGPACK_UNPACK_CONTINUE);
        msgpack_unpacked_destroy(&up);

        /* A truncated message is not an object yet. */
        msgpack_sbuffer_clear(&M.sb);
        proto_pack_request_head(&M.pk, 1, "ping");
        msgpack_pack_array(&M.pk, 0);
        msgpack_unpacked_init(&up);
        for (size_t cut = 0; cut < M.sb.size; cut++) {
                off = 0;
                ck_assert_int_eq(msgpack_unpack_next(&up, M.sb.data, cut, &off),
                                 MSGPACK_UNPACK_CONTINUE);
        }
        msgpack_unpacked_destroy(&up);
}
END_TEST

START_TEST(error_names)
{
        static const char *const names[PROTO_ERROR__COUNT] = {
                [PROTO_BAD_REQUEST] = "bad_request",
                [PROTO_UNKNOWN_METHOD] = "unknown_method",
                [PROTO_UNKNOWN_TRACE] = "unknown_trace",
                [PROTO_DUPLICATE_TRACE] = "duplicate_trace",
                [PROTO_ALREADY_COMPLETED] = "already_completed",
                [PROTO_TOO_LARGE] = "too_large",
                [PROTO_OVERLOADED] = "overloaded",
                [PROTO_FORBIDDEN] = "forbidden",
                [PROTO_UNAVAILABLE] = "unavailable",
                [PROTO_INTERNAL] = "internal",
        };
        for (int e = PROTO_BAD_REQUEST; e < PROTO_ERROR__COUNT; e++) {
                ck_assert_str_eq(proto_error_name((enum proto_error)e), names[e]);
                ck_assert_int_eq(proto_error_parse(names[e], strlen(names[e])), e);
                /* Length counts: a prefix or a longer buffer is no code. */
                ck_assert_int_eq(proto_error_parse(names[e], strlen(names[e]) - 1), -EINVAL);
                char longer[64];
                snprintf(longer, sizeof(longer), "%sx", names[e]);
                ck_assert_int_eq(proto_error_parse(longer, strlen(longer)), -EINVAL);
        }
        /* Out of range is reported as internal, never as garbage. */
        ck_assert_str_eq(proto_error_name(PROTO_ERROR__COUNT), "internal");
        ck_assert_str_eq(proto_error_name((enum proto_error)-1), "internal");
        ck_assert_str_eq(proto_error_name((enum proto_error)1000), "internal");
        ck_assert_int_eq(proto_error_parse("nope", 4), -EINVAL);
        ck_assert_int_eq(proto_error_parse("", 0), -EINVAL);
        ck_assert_int_eq(proto_error_parse("BAD_REQUEST", 11), -EINVAL);
        /* "ok" is no error code a daemon sends. */
        ck_assert_int_eq(proto_error_parse("ok", 2), -EINVAL);
}
END_TEST

/* ---- main -------------------------------------------------------------- */

/* ---- the framing guard --------------------------------------------------- */

/* Feed buf in chunks of `step` bytes; count DONE; return the final status. */
static enum proto_skim_status skim_all(const uint8_t *buf, size_t n, size_t step, uint64_t limit,
                                       int *done)
{
        struct proto_skim sk;
        memset(&sk, 0, sizeof(sk));
        *done = 0;
        for (size_t off = 0; off < n;) {
                size_t len = n - off < step ? n - off : step, used;
                enum proto_skim_status st = proto_skim_feed(&sk, buf + off, len, limit, &used);
                if (used > len) /* a plain check: ck_assert is slow in a loop this long */
                        ck_abort_msg("skim took %zu of %zu bytes", used, len);
                off += used;
                if (st == PROTO_SKIM_DONE)
                        (*done)++;
                else if (st != PROTO_SKIM_MORE)
                        return st;
        }
        return sk.bytes == 0 && sk.owed == 0 ? PROTO_SKIM_DONE : PROTO_SKIM_MORE;
}

START_TEST(skim_frames_real_messages)
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        /* Every kind of header: a request with strings of each width, bins,
         * ext, floats, ints of each width, nested maps and arrays. */
        for (int i = 0; i < 3; i++) {
                proto_pack_request_head(&pk, 7, "start");
                msgpack_pack_array(&pk, 1);
                msgpack_pack_map(&pk, 9);
                proto_pack_cstr(&pk, "short");
                proto_pack_cstr(&pk, "x");
                char big[70000];
                memset(big, 'a', sizeof(big));
                proto_pack_cstr(&pk, "str16");
                proto_pack_str(&pk, big, 300);
                proto_pack_cstr(&pk, "str32");
                proto_pack_str(&pk, big, sizeof(big));
                proto_pack_cstr(&pk, "bin");
                msgpack_pack_bin(&pk, 3);
                msgpack_pack_bin_body(&pk, "abc", 3);
                proto_pack_cstr(&pk, "ext");
                msgpack_pack_ext(&pk, 5, 1);
                msgpack_pack_ext_body(&pk, "hello", 5);
                proto_pack_cstr(&pk, "fixext");
                msgpack_pack_ext(&pk, 4, 2);
                msgpack_pack_ext_body(&pk, "abcd", 4);
                proto_pack_cstr(&pk, "f");
                msgpack_pack_double(&pk, 0.5);
                proto_pack_cstr(&pk, "ints");
                msgpack_pack_array(&pk, 6);
                msgpack_pack_uint64(&pk, UINT64_MAX);
                msgpack_pack_int64(&pk, INT64_MIN);
                msgpack_pack_uint16(&pk, 1000);
                msgpack_pack_int8(&pk, -100);
                msgpack_pack_nil(&pk);
                msgpack_pack_true(&pk);
                proto_pack_cstr(&pk, "nested");
                msgpack_pack_array(&pk, 20);
                for (int k = 0; k < 20; k++) {
                        msgpack_pack_map(&pk, 1);
                        msgpack_pack_int(&pk, k);
                        msgpack_pack_array(&pk, 0);
                }
        }
        static const size_t steps[] = { 1, 2, 3, 7, 64, 4096, 1 << 20 };
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                int done;
                enum proto_skim_status st =
                        skim_all((const uint8_t *)sb.data, sb.size, steps[i], 1u << 20, &done);
                ck_assert_int_eq(st, PROTO_SKIM_DONE);
                ck_assert_int_eq(done, 3);
        }
        /* Cut short: not done. */
        int done;
        ck_assert_int_eq(skim_all((const uint8_t *)sb.data, sb.size - 1, 5, 1u << 20, &done),
                         PROTO_SKIM_MORE);
        ck_assert_int_eq(done, 2);
        msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(skim_refuses_declared_sizes)
{
        int done;
        /* Five bytes declaring 2^24 elements, 2^23 pairs, 2^32-1 bytes. */
        static const uint8_t arr[] = { 0xdd, 0x01, 0x00, 0x00, 0x00 };
        static const uint8_t map[] = { 0xdf, 0x00, 0x80, 0x00, 0x00 };
        static const uint8_t str[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
        ck_assert_int_eq(skim_all(arr, sizeof(arr), 1, 4u << 20, &done), PROTO_SKIM_TOO_LARGE);
        ck_assert_int_eq(skim_all(map, sizeof(map), 5, 4u << 20, &done), PROTO_SKIM_TOO_LARGE);
        ck_assert_int_eq(skim_all(str, sizeof(str), 2, 4u << 20, &done), PROTO_SKIM_TOO_LARGE);
        /* At the limit exactly: a 10-byte message with limit 10 passes,
         * limit 9 does not. */
        static const uint8_t ten[] = { 0x99, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
        ck_assert_int_eq(skim_all(ten, sizeof(ten), 3, 10, &done), PROTO_SKIM_DONE);
        ck_assert_int_eq(skim_all(ten, sizeof(ten), 3, 9, &done), PROTO_SKIM_TOO_LARGE);
        /* The declaration alone is refused before its elements arrive. */
        ck_assert_int_eq(skim_all(ten, 1, 1, 9, &done), PROTO_SKIM_TOO_LARGE);
}
END_TEST

START_TEST(skim_refuses_never_used_byte)
{
        int done;
        static const uint8_t good_then_bad[] = { 0x93, 0x01, 0x02, 0x03, 0xc1 };
        static const uint8_t inside[] = { 0x92, 0x01, 0xc1 };
        ck_assert_int_eq(skim_all(good_then_bad, sizeof(good_then_bad), 100, 64, &done),
                         PROTO_SKIM_INVALID);
        ck_assert_int_eq(done, 1); /* the message before it stands */
        ck_assert_int_eq(skim_all(inside, sizeof(inside), 1, 64, &done), PROTO_SKIM_INVALID);
        ck_assert_int_eq(done, 0);
}
END_TEST

static Suite *proto_suite(void)
{
        Suite *s = suite_create("proto");

        TCase *msg = tcase_create("parse_msg");
        tcase_add_checked_fixture(msg, setup, teardown);
        tcase_add_test(msg, parse_good_request);
        tcase_add_test(msg, parse_good_notification);
        tcase_add_test(msg, parse_not_an_array);
        tcase_add_test(msg, parse_wrong_length);
        tcase_add_test(msg, parse_wrong_type_tag);
        tcase_add_test(msg, parse_bad_msgid);
        tcase_add_test(msg, parse_bad_method);
        tcase_add_test(msg, parse_bad_params);
        tcase_add_test(msg, parse_err_buffer);
        suite_add_tcase(s, msg);

        TCase *args = tcase_create("args");
        tcase_add_checked_fixture(args, setup, teardown);
        tcase_add_test(args, args_all_types);
        tcase_add_test(args, args_unknown);
        tcase_add_test(args, args_required_and_twice);
        tcase_add_test(args, args_str);
        tcase_add_test(args, args_utf8);
        tcase_add_test(args, args_trace_id);
        tcase_add_test(args, args_u32);
        tcase_add_test(args, args_ms);
        tcase_add_test(args, args_unit);
        tcase_add_test(args, args_bool);
        tcase_add_test(args, args_array);
        tcase_add_test(args, map_helpers);
        tcase_add_test(args, profile_spec);
        tcase_add_test(args, name_tables);
        suite_add_tcase(s, args);

        TCase *enc = tcase_create("encode");
        tcase_add_checked_fixture(enc, setup, teardown);
        tcase_add_test(enc, pack_error_roundtrip);
        tcase_add_test(enc, pack_ok_roundtrip);
        tcase_add_test(enc, parse_response_bad);
        tcase_add_test(enc, pack_request_roundtrip);
        tcase_add_test(enc, error_names);
        tcase_add_test(enc, packers_report_failure);
        suite_add_tcase(s, enc);

        TCase *skim = tcase_create("skim");
        tcase_set_timeout(skim, 60); /* byte-at-a-time framing of ~200 KB, on a busy machine */
        tcase_add_test(skim, skim_frames_real_messages);
        tcase_add_test(skim, skim_refuses_declared_sizes);
        tcase_add_test(skim, skim_refuses_never_used_byte);
        suite_add_tcase(s, skim);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(proto_suite());
        srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY, default normal */
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

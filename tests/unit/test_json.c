/* test_json.c - Check tests of client/json.c, the JSON printer and parser
 * behind outcomectl's --json, export and import: the export format's rules
 * (integers up to 2^64-1, floats in the shortest form that reads back,
 * nesting at most JSON_MAX_DEPTH, errors as LINE:COLUMN, a key given twice
 * refused), strings, round trips, and the negative errnos returned. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static msgpack_zone *zone;

static void setup(void)
{
        zone = msgpack_zone_new(4096);
        ck_assert_ptr_nonnull(zone);
}

static void teardown(void)
{
        msgpack_zone_free(zone);
}

/* Parse text; the return code, with *o and err filled. */
static int parse(const char *text, msgpack_object *o, char *err, size_t errlen)
{
        err[0] = '\0';
        return json_parse(text, strlen(text), zone, o, err, errlen);
}

static msgpack_object parse_ok(const char *text)
{
        char err[256];
        msgpack_object o;
        int r = parse(text, &o, err, sizeof(err));
        ck_assert_msg(r == 0, "%s: %d %s", text, r, err);
        return o;
}

/* The parse must fail with rc and exactly this error text. */
static void parse_fails(const char *text, int rc, const char *want)
{
        char err[256];
        msgpack_object o;
        int r = parse(text, &o, err, sizeof(err));
        ck_assert_msg(r == rc, "%s: returned %d, want %d (%s)", text, r, rc, err);
        ck_assert_str_eq(err, want);
}

/* json_print into a string (malloc'ed). */
static char *print(const msgpack_object *o)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(json_print(f, o), 0);
        ck_assert_int_eq(fclose(f), 0);
        return buf;
}

static char *format_double(double d)
{
        char *buf = malloc(40);
        ck_assert_ptr_nonnull(buf);
        json_format_double(buf, 40, d);
        return buf;
}

/* ---- integers ------------------------------------------------------------ */

START_TEST(integers_to_2_64_minus_1)
{
        msgpack_object o = parse_ok("18446744073709551615");
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(o.via.u64, UINT64_MAX);
        char *s = print(&o);
        ck_assert_str_eq(s, "18446744073709551615");
        free(s);

        o = parse_ok("0");
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(o.via.u64, 0);
        o = parse_ok("-0"); /* -0 is 0 */
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(o.via.u64, 0);
        o = parse_ok("-9223372036854775808");
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        ck_assert(o.via.i64 == INT64_MIN);
        o = parse_ok("[9007199254740993]"); /* past a double's 2^53: kept exact */
        ck_assert_uint_eq(o.via.array.ptr[0].via.u64, 9007199254740993ull);

        parse_fails("18446744073709551616", -ERANGE, "1:1: integer out of range");
        parse_fails("[1, 99999999999999999999]", -ERANGE, "1:5: integer out of range");
        parse_fails("-9223372036854775809", -ERANGE, "1:1: integer out of range");
        parse_fails("012", -EINVAL, "1:1: a number must not start with 0");
        parse_fails("-", -EINVAL, "1:2: unexpected end of input, expected a digit");
        parse_fails("+1", -EINVAL, "1:1: unexpected '+', expected a JSON value");
}
END_TEST

/* ---- floats -------------------------------------------------------------- */

START_TEST(floats_parse)
{
        msgpack_object o = parse_ok("1.5");
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_FLOAT64);
        ck_assert(o.via.f64 == 1.5);
        o = parse_ok("1E2");
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_FLOAT64);
        ck_assert(o.via.f64 == 100.0);
        o = parse_ok("-2.5e-3");
        ck_assert(o.via.f64 == -2.5e-3);
        o = parse_ok("4.9406564584124654e-324");
        ck_assert(o.via.f64 == 5e-324);

        parse_fails("1e400", -ERANGE, "1:1: number out of range");
        parse_fails("[0, -1e309]", -ERANGE, "1:5: number out of range");
        parse_fails("1.", -EINVAL, "1:3: unexpected end of input, expected a digit after '.'");
        parse_fails("1.e5", -EINVAL, "1:3: unexpected 'e', expected a digit after '.'");
        parse_fails("1e+", -EINVAL,
                    "1:4: unexpected end of input, expected a digit in the exponent");
        parse_fails(".5", -EINVAL, "1:1: unexpected '.', expected a JSON value");
        parse_fails("NaN", -EINVAL, "1:1: unexpected 'N', expected a JSON value");
}
END_TEST

START_TEST(floats_print_shortest)
{
        static const struct {
                double d;
                const char *want;
        } cases[] = {
                { 0.1, "0.1" },
                { 0.5, "0.5" },
                { 1.0, "1.0" },
                { 100.0, "100.0" },
                { -0.0, "-0.0" },
                { 1e300, "1e+300" },
                { 0.30000000000000004, "0.30000000000000004" },
                { 123456789012345678.0, "1.2345678901234568e+17" },
                { 1.7976931348623157e308, "1.7976931348623157e+308" },
                { 2.2250738585072014e-308, "2.2250738585072014e-308" }, /* DBL_MIN */
                { 5e-324, "5e-324" },                                  /* subnormal */
                { 1.5e-323, "1.5e-323" },
                { 0.875, "0.875" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *s = format_double(cases[i].d);
                ck_assert_msg(strcmp(s, cases[i].want) == 0, "%.17g printed %s, want %s",
                              cases[i].d, s, cases[i].want);
                free(s);
        }
        char *s = format_double(NAN);
        ck_assert_str_eq(s, "null");
        free(s);
}
END_TEST

static uint64_t xorshift64(uint64_t *s)
{
        uint64_t x = *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

/* Significant digits of a number's text: those of its mantissa without
 * the leading and trailing zeros. */
static int digits(const char *s)
{
        char m[48];
        size_t n = 0;
        for (; *s && *s != 'e' && *s != 'E' && n < sizeof(m); s++)
                if (*s >= '0' && *s <= '9' && (n > 0 || *s != '0'))
                        m[n++] = *s;
        while (n > 0 && m[n - 1] == '0')
                n--;
        return (int)n;
}

/* Random doubles of every exponent, subnormals included: what is printed
 * reads back to the same bits (printed and parsed again), looks like a
 * float, and has no more significant digits than the shortest %.*g that
 * reads back. */
START_TEST(floats_round_trip)
{
        uint64_t seed = 0x9e3779b97f4a7c15ull;
        for (int i = 0; i < 20000; i++) {
                uint64_t bits = xorshift64(&seed);
                if (i % 4 == 0)
                        bits &= 0x800fffffffffffffull; /* a subnormal */
                double d;
                memcpy(&d, &bits, sizeof(d));
                if (!isfinite(d))
                        continue;
                char *s = format_double(d);
                double back = strtod(s, NULL);
                ck_assert_msg(memcmp(&back, &d, sizeof(d)) == 0, "%a printed %s", d, s);
                ck_assert_msg(strpbrk(s, ".e") != NULL, "%s does not look like a float", s);
                int shortest = 1;
                char buf[40];
                for (; shortest < 17; shortest++) {
                        snprintf(buf, sizeof(buf), "%.*g", shortest, d);
                        if (strtod(buf, NULL) == d)
                                break;
                }
                ck_assert_msg(digits(s) <= shortest, "%a printed %s; %.*g reads back", d, s,
                              shortest, d);
                /* through the parser too */
                msgpack_object o = parse_ok(s);
                ck_assert_int_eq(o.type, MSGPACK_OBJECT_FLOAT64);
                ck_assert(memcmp(&o.via.f64, &d, sizeof(d)) == 0);
                free(s);
        }
}
END_TEST

/* ---- nesting ------------------------------------------------------------- */

static char *nested(int depth, char open, char close)
{
        char *s = malloc((size_t)depth * 2 + 1);
        ck_assert_ptr_nonnull(s);
        memset(s, open, (size_t)depth);
        memset(s + depth, close, (size_t)depth);
        s[depth * 2] = '\0';
        return s;
}

START_TEST(depth_limit)
{
        char *ok = nested(JSON_MAX_DEPTH, '[', ']');
        msgpack_object o = parse_ok(ok);
        int depth = 0;
        for (const msgpack_object *p = &o; p->type == MSGPACK_OBJECT_ARRAY;
             p = p->via.array.size ? &p->via.array.ptr[0] : &(msgpack_object){ 0 })
                depth++;
        ck_assert_int_eq(depth, JSON_MAX_DEPTH);
        char *s = print(&o);
        ck_assert_str_eq(s, ok);
        free(s);
        free(ok);

        char *deep = nested(JSON_MAX_DEPTH + 1, '[', ']');
        parse_fails(deep, -EINVAL, "1:65: nested deeper than 64 levels");
        free(deep);

        /* Objects count the same; a very deep input fails without
         * recursing further (no stack overflow). */
        char text[64 * 6 + 16] = "";
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
                strcat(text, "{\"a\":");
        strcat(text, "1");
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
                strcat(text, "}");
        parse_ok(text);
        char *huge = nested(1000000, '[', ']');
        parse_fails(huge, -EINVAL, "1:65: nested deeper than 64 levels");
        free(huge);
}
END_TEST

/* ---- errors: where ------------------------------------------------------- */

START_TEST(error_positions)
{
        parse_fails("", -EINVAL, "1:1: unexpected end of input, expected a JSON value");
        parse_fails("  \n ", -EINVAL, "2:2: unexpected end of input, expected a JSON value");
        parse_fails("1 2", -EINVAL, "1:3: more text after the JSON value");
        parse_fails("[1,\n2", -EINVAL, "2:2: unexpected end of input, expected ',' or ']'");
        parse_fails("{\n  \"a\": 1,\n  \"b\" 2\n}", -EINVAL, "3:7: unexpected '2', expected ':'");
        parse_fails("{\"a\":1,}", -EINVAL, "1:8: unexpected '}', expected a string key");
        parse_fails("[1,]", -EINVAL, "1:4: unexpected ']', expected a JSON value");
        parse_fails("tru", -EINVAL, "1:1: unexpected 't', expected a JSON value");
        parse_fails("[true false]", -EINVAL, "1:7: unexpected 'f', expected ',' or ']'");
        /* The column counts characters: é is 2 bytes, 😀 4, each one column. */
        parse_fails("[\"é😀\", x]", -EINVAL, "1:8: unexpected 'x', expected a JSON value");
        /* A byte that is not printable is named in hex. */
        parse_fails("[\x01]", -EINVAL, "1:2: unexpected byte 0x01, expected a JSON value");
        parse_fails("\"abc", -EINVAL, "1:1: string not closed");
        parse_fails("\"a\tb\"", -EINVAL,
                    "1:3: control character 0x09 in a string (write it as \\u0009)");
        parse_fails("\"a\\qb\"", -EINVAL, "1:3: unknown escape '\\q'");
        parse_fails("\"\\u12G4\"", -EINVAL, "1:6: \\u needs four hex digits");
        parse_fails("\"\\udc00\"", -EINVAL, "1:2: lone low surrogate \\udc00");
        parse_fails("\"\\ud800x\"", -EINVAL,
                    "1:2: high surrogate \\ud800 without a low one after it");
        parse_fails("\"\xff\"", -EINVAL, "1:2: invalid UTF-8 in a string");
        parse_fails("\"\xc0\xaf\"", -EINVAL, "1:2: invalid UTF-8 in a string"); /* overlong */
        parse_fails("\"\xed\xa0\x80\"", -EINVAL, "1:2: invalid UTF-8 in a string"); /* surrogate */

        /* A short buffer gets as much as fits, NUL-terminated. */
        char err[8];
        msgpack_object o;
        ck_assert_int_eq(json_parse("[1,", 3, zone, &o, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "1:4: un");
        ck_assert_int_eq(json_parse("[1,", 3, zone, &o, NULL, 0), -EINVAL);
}
END_TEST

/* ---- duplicate keys ----------------------------------------------------- */

START_TEST(duplicate_keys_refused)
{
        parse_fails("{\"a\":1,\"b\":2,\"a\":3}", -EINVAL, "1:14: key \"a\" given twice");
        parse_fails("{\n \"x\": {\"k\": 1,\n        \"k\": 2}}", -EINVAL,
                    "3:9: key \"k\" given twice");
        /* Compared after the escapes are decoded. */
        parse_fails("{\"a\":1,\"\\u0061\":2}", -EINVAL, "1:8: key \"a\" given twice");
        /* Keys that share a prefix, or differ only in case, are different;
         * the same key in two objects is fine. */
        msgpack_object o = parse_ok("{\"a\":1,\"ab\":2,\"A\":3,\"\":4,\"o\":{\"a\":5}}");
        ck_assert_int_eq(o.via.map.size, 5);
        /* Many keys (sorted internally): the duplicate is still found. */
        char *text = malloc(100000);
        ck_assert_ptr_nonnull(text);
        size_t n = (size_t)sprintf(text, "{");
        for (int i = 0; i < 5000; i++)
                n += (size_t)sprintf(text + n, "\"k%d\":%d,", i, i);
        sprintf(text + n, "\"k4321\":0}");
        char err[128];
        ck_assert_int_eq(parse(text, &o, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, "key \"k4321\" given twice") != NULL, "%s", err);
        text[n - 1] = '}';
        text[n] = '\0';
        o = parse_ok(text);
        ck_assert_int_eq(o.via.map.size, 5000);
        free(text);
}
END_TEST

/* ---- strings ------------------------------------------------------------- */

START_TEST(strings)
{
        msgpack_object o = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0000\\u00e9\\ud83d\\ude00\"");
        static const char want[] = "a\"b\\c/d\b\f\n\r\t\0\xc3\xa9\xf0\x9f\x98\x80";
        ck_assert_int_eq(o.type, MSGPACK_OBJECT_STR);
        ck_assert_uint_eq(o.via.str.size, sizeof(want) - 1);
        ck_assert(memcmp(o.via.str.ptr, want, sizeof(want) - 1) == 0);
        char *s = print(&o);
        ck_assert_str_eq(s, "\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0000\xc3\xa9\xf0\x9f\x98\x80\"");
        free(s);

        /* A byte order mark, then white space around the value. */
        o = parse_ok("\xef\xbb\xbf \t\r\n\"x\" \n");
        ck_assert_uint_eq(o.via.str.size, 1);

        /* Printing bytes that are not UTF-8, and DEL. */
        msgpack_object raw = { .type = MSGPACK_OBJECT_STR,
                               .via.str = { .size = 4, .ptr = "a\xff\x7f\xc3" } };
        s = print(&raw);
        ck_assert_str_eq(s, "\"a\\ufffd\\u007f\\ufffd\"");
        free(s);
}
END_TEST

/* ---- round trips ---------------------------------------------------------- */

START_TEST(round_trips)
{
        /* Written the way json_print writes: printing what was parsed gives
         * back the same text. */
        static const char *const docs[] = {
                "{\"format\":\"outcomed-profiles\",\"version\":1,\"exported_at\":1795805556,"
                "\"profiles\":[{\"model\":\"gpt-4o\",\"call_count\":18446744073709551615,"
                "\"ema_quality\":0.1,\"tasks\":{\"code\":{\"success\":3,\"failures\":0}},"
                "\"cost\":1.2345678901234568e+17,\"degraded\":false,\"p50\":null}]}",
                "[]",
                "{}",
                "[[],{},[{}],-1,0,1.0,-0.0,5e-324,true,false,null,\"\"]",
                "\"\\u0001\\u001f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                "-9223372036854775808",
        };
        for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
                msgpack_object o = parse_ok(docs[i]);
                char *s = print(&o);
                ck_assert_str_eq(s, docs[i]);
                free(s);
        }
        /* White space and other spellings go; the values stay. */
        msgpack_object o = parse_ok(" { \"a\" : [ 1 , 2.50 , 1E1 , \"\\u0041\" ] } ");
        char *s = print(&o);
        ck_assert_str_eq(s, "{\"a\":[1,2.5,10.0,\"A\"]}");
        free(s);
        /* Keys keep the order they were written in. */
        o = parse_ok("{\"z\":1,\"a\":2,\"m\":3}");
        s = print(&o);
        ck_assert_str_eq(s, "{\"z\":1,\"a\":2,\"m\":3}");
        free(s);
}
END_TEST

/* What json_print does with what JSON has no word for. */
START_TEST(print_msgpack_only_types)
{
        msgpack_object kv_key = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 7 };
        msgpack_object_kv kv = { .key = kv_key,
                                 .val = { .type = MSGPACK_OBJECT_BIN,
                                          .via.bin = { .size = 4, .ptr = "abcd" } } };
        msgpack_object map = { .type = MSGPACK_OBJECT_MAP, .via.map = { .size = 1, .ptr = &kv } };
        char *s = print(&map);
        ck_assert_str_eq(s, "{\"7\":\"YWJjZA==\"}");
        free(s);
        msgpack_object f32 = { .type = MSGPACK_OBJECT_FLOAT32, .via.f64 = (double)0.1f };
        s = print(&f32);
        ck_assert_str_eq(s, "0.1");
        free(s);
}
END_TEST

/* A write that fails is a negative errno. */
START_TEST(print_errors)
{
        FILE *f = fopen("/dev/full", "w");
        if (f == NULL)
                return; /* no /dev/full here */
        setvbuf(f, NULL, _IONBF, 0);
        msgpack_object o = parse_ok("[1,2,3]");
        ck_assert_int_eq(json_print(f, &o), -EIO);
        ck_assert_int_eq(json_print_string(f, "x", 1), -EIO);
        fclose(f);
}
END_TEST

/* The errno of the first error is what json_parse returns, through every
 * level of nesting, and with no room for the message too. */
START_TEST(errno_of_the_first_error)
{
        static const struct {
                const char *text;
                int rc;
        } cases[] = {
                { "[[[1e400]]]", -ERANGE },
                { "{\"a\": [18446744073709551616]}", -ERANGE },
                { "{\"a\": {\"b\": [1,]}}", -EINVAL },
                { "{\"a\": 1, \"a\": 2}", -EINVAL },
                { "[\"\\u12\"]", -EINVAL },
                { "", -EINVAL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                msgpack_object o;
                char err[128];
                const char *t = cases[i].text;
                ck_assert_int_eq(json_parse(t, strlen(t), zone, &o, NULL, 0), cases[i].rc);
                ck_assert_int_eq(json_parse(t, strlen(t), zone, &o, err, sizeof(err)), cases[i].rc);
                ck_assert_uint_gt(strlen(err), 0);
        }
}
END_TEST

static Suite *json_suite(void)
{
        Suite *s = suite_create("json");
        TCase *tc = tcase_create("json");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, integers_to_2_64_minus_1);
        tcase_add_test(tc, floats_parse);
        tcase_add_test(tc, floats_print_shortest);
        tcase_add_test(tc, floats_round_trip);
        tcase_add_test(tc, depth_limit);
        tcase_add_test(tc, error_positions);
        tcase_add_test(tc, duplicate_keys_refused);
        tcase_add_test(tc, strings);
        tcase_add_test(tc, round_trips);
        tcase_add_test(tc, print_msgpack_only_types);
        tcase_add_test(tc, print_errors);
        tcase_add_test(tc, errno_of_the_first_error);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(json_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* test_textshare.c - the git scanner's text evidence, textshare.c (README
 * "Watching a repository"): a significant line is a trimmed line of at least 4
 * characters (a UTF-8 sequence counts once) that is not only brackets and
 * punctuation and not a markdown fence; the suggestion's significant lines
 * are matched against the added lines as a multiset.  Cases written out,
 * then random inputs against a slow reference written here from the rules.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textshare.h"

static bool significant(const char *s)
{
        return textshare_significant(s, strlen(s));
}

static void share(const char *output, const char *added, size_t want_found, size_t want_total)
{
        size_t found = 99, total = 99;
        ck_assert_int_eq(textshare_share(output, added, strlen(added), &found, &total), 0);
        ck_assert_msg(found == want_found && total == want_total,
                      "output [%s] added [%s]: %zu of %zu, want %zu of %zu", output, added, found,
                      total, want_found, want_total);
}

START_TEST(test_significant_lines)
{
        static const char *const yes[] = {
                "abcd", "  x = 1;  ", "\t\tif (x)\r", "1234", "a---", "x```", "}); x",
                "é日本語",      /* four characters, eight bytes: letters */
                "return value;",
        };
        static const char *const no[] = {
                "", "    ", "abc", "  abc  ", "ab\t", "});", "})});", "----", "~~~~",
                "{ [ ( ) ] }", "```", "```c", "   ```python", "```` text here",
                "日本",          /* two characters, six bytes */
                "é;;",           /* three characters */
        };
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                ck_assert_msg(significant(yes[i]), "'%s' should count", yes[i]);
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                ck_assert_msg(!significant(no[i]), "'%s' should not count", no[i]);
}
END_TEST

START_TEST(test_share_cases)
{
        /* nothing suggested, nothing added */
        share("", "", 0, 0);
        share("int x = 1;\n", "", 0, 1);
        /* trimmed on both sides; CRLF is whitespace */
        share("    return value;\r\n", "return value;   ", 1, 1);
        share("abcd\r\nefgh\r\n", "abcd\nefgh\n", 2, 2);
        /* inner whitespace and case count */
        share("int  x;\n", "int x;\n", 0, 1);
        share("Foo();\n", "foo();\n", 0, 1);
        /* fences and short or punctuation-only lines are not counted */
        share("```c\nint x = 1;\n}\n```\n", "int x = 1;\n}\n", 1, 1);
        share("});\n}\n", "});\n}\n", 0, 0);
        /* a multiset: a line suggested twice must be added twice */
        share("foo();\nfoo();\nbar();\n", "foo();\nbar();\n", 2, 3);
        share("foo();\nfoo();\nbar();\n", "bar();\nfoo();\nfoo();\n", 3, 3);
        share("foo();\n", "foo();\nfoo();\nfoo();\n", 1, 1);
        share("x += 1;\nx += 1;\nx += 1;\n", "x += 1;\n", 1, 3);
        /* the last line without a newline counts too */
        share("alpha\nbeta", "beta\nalpha", 2, 2);
        /* added lines that are not significant are still there to match
         * nothing; a significant suggested line needs its exact twin */
        share("abcdef\n", "abc\ndef\n", 0, 1);
}
END_TEST

/* More distinct lines than the table's first size, each twice added. */
START_TEST(test_share_many_lines)
{
        size_t n = 3000, cap = n * 48;
        char *out = malloc(cap), *add = malloc(2 * cap);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(add);
        size_t ol = 0, al = 0;
        out[0] = add[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                al += (size_t)snprintf(add + al, 2 * cap - al, "line number %zu;\n", i);
                al += (size_t)snprintf(add + al, 2 * cap - al, "line number %zu;\n", i);
                if (i % 3 == 0) /* suggested three times: two are found */
                        for (int k = 0; k < 3; k++)
                                ol += (size_t)snprintf(out + ol, cap - ol, "line number %zu;\n", i);
                else if (i % 3 == 1)
                        ol += (size_t)snprintf(out + ol, cap - ol, "other line %zu;\n", i);
        }
        size_t found, total;
        ck_assert_int_eq(textshare_share(out, add, al, &found, &total), 0);
        ck_assert_uint_eq(total, 1000 * 3 + 1000);
        ck_assert_uint_eq(found, 1000 * 2);
        free(out);
        free(add);
}
END_TEST

/* ---- random inputs against a reference -------------------------------- */

static bool ref_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The rule, read from the README: trim; a fence is out; count characters
 * (UTF-8 continuation bytes are not characters); at least one letter,
 * digit or non-ASCII character. */
static bool ref_significant(const char *s, size_t n, const char **ts, size_t *tn)
{
        while (n && ref_space(s[0]))
                s++, n--;
        while (n && ref_space(s[n - 1]))
                n--;
        *ts = s;
        *tn = n;
        if (n >= 3 && s[0] == '`' && s[1] == '`' && s[2] == '`')
                return false;
        size_t chars = 0;
        int letters = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                chars += (c & 0xc0) != 0x80;
                letters += c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' &&
                                                                   (c | 0x20) <= 'z');
        }
        return chars >= 4 && letters > 0;
}

struct ref_line {
        const char *s;
        size_t n;
        bool used;
};

static size_t ref_split(const char *text, struct ref_line *v, size_t max, bool trim)
{
        size_t k = 0;
        for (const char *p = text; *p && k < max;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                v[k].s = p;
                v[k].n = n;
                v[k].used = false;
                if (trim) {
                        const char *ts;
                        size_t tn;
                        ref_significant(p, n, &ts, &tn);
                        v[k].s = ts;
                        v[k].n = tn;
                }
                k++;
                p = nl ? nl + 1 : p + n;
        }
        return k;
}

static void ref_share(const char *output, const char *added, size_t *found, size_t *total)
{
        static struct ref_line o[256], a[256];
        size_t no = ref_split(output, o, 256, false), na = ref_split(added, a, 256, true);
        *found = *total = 0;
        for (size_t i = 0; i < no; i++) {
                const char *ts;
                size_t tn;
                if (!ref_significant(o[i].s, o[i].n, &ts, &tn))
                        continue;
                (*total)++;
                for (size_t k = 0; k < na; k++) {
                        if (!a[k].used && a[k].n == tn && memcmp(a[k].s, ts, tn) == 0) {
                                a[k].used = true;
                                (*found)++;
                                break;
                        }
                }
        }
}

static const char *const pieces[] = {
        "int x;", "  int x;", "int x;\t", "}", "});", "```", "```c", "abc", "abcd", "ABCD",
        "é日本語", "日本", "return 0;", "", "   ", "----", "a---", "x = y + 1;", "\r",
};

static void random_text(char *buf, size_t cap, unsigned *seed, int lines)
{
        size_t n = 0;
        buf[0] = '\0';
        for (int i = 0; i < lines; i++) {
                const char *p = pieces[rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
                n += (size_t)snprintf(buf + n, cap - n, "%s%s", p,
                                      (i + 1 < lines || rand_r(seed) % 2) ? "\n" : "");
        }
}

START_TEST(test_share_against_reference)
{
        unsigned seed = 12345;
        char out[4096], add[4096];
        for (int round = 0; round < 2000; round++) {
                random_text(out, sizeof(out), &seed, 1 + rand_r(&seed) % 30);
                random_text(add, sizeof(add), &seed, rand_r(&seed) % 30);
                size_t f, t, rf, rt;
                ck_assert_int_eq(textshare_share(out, add, strlen(add), &f, &t), 0);
                ref_share(out, add, &rf, &rt);
                ck_assert_msg(f == rf && t == rt,
                              "round %d: %zu of %zu, reference %zu of %zu\noutput:\n%s\nadded:\n%s",
                              round, f, t, rf, rt, out, add);
        }
}
END_TEST

static Suite *textshare_suite(void)
{
        Suite *su = suite_create("textshare");
        TCase *tc = tcase_create("textshare");
        tcase_add_test(tc, test_significant_lines);
        tcase_add_test(tc, test_share_cases);
        tcase_add_test(tc, test_share_many_lines);
        tcase_add_test(tc, test_share_against_reference);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(textshare_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

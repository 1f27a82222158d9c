/* test_textbuf.c - Check tests of textbuf.c: appends keep the text
 * NUL-terminated and whole across growth, and reserve makes room without
 * changing the text. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"

START_TEST(appends)
{
        struct textbuf b = { 0 };
        textbuf_put(&b, "", 0);
        ck_assert_ptr_nonnull(b.p);
        ck_assert_str_eq(b.p, "");
        textbuf_puts(&b, "abc");
        textbuf_put(&b, "defgh", 2);
        ck_assert_str_eq(b.p, "abcde");
        ck_assert_uint_eq(b.len, 5);
        char want[10001];
        memcpy(want, "abcde", 5);
        for (int i = 5; i < 10000; i++) {
                char ch = (char)('a' + i % 26);
                textbuf_put(&b, &ch, 1);
                want[i] = ch;
        }
        want[10000] = '\0';
        ck_assert_uint_eq(b.len, 10000);
        ck_assert_str_eq(b.p, want);
        ck_assert(!b.oom);
        ck_assert_int_eq(textbuf_reserve(&b, 100000), 0);
        ck_assert_uint_ge(b.cap, b.len + 100001);
        ck_assert_str_eq(b.p, want);
        textbuf_free(&b);
        ck_assert_ptr_null(b.p);
        ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(oom_is_remembered)
{
        struct textbuf b = { 0 };
        textbuf_puts(&b, "x");
        ck_assert_int_lt(textbuf_reserve(&b, (size_t)-1 / 2), 0); /* cannot be had */
        ck_assert(b.oom);
        textbuf_puts(&b, "y"); /* ignored from now on */
        ck_assert_str_eq(b.p, "x");
        textbuf_free(&b);
}
END_TEST

static Suite *textbuf_suite(void)
{
        Suite *s = suite_create("textbuf");
        TCase *tc = tcase_create("textbuf");
        tcase_add_test(tc, appends);
        tcase_add_test(tc, oom_is_remembered);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(textbuf_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

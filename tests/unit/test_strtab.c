/* test_strtab.c - Check tests of strtab.c, the intrusive string-keyed
 * hash table: lookups find what was put and nothing else, a duplicate key
 * is refused by strtab_put_new, deletion, growth past many entries, and
 * iteration that sees every entry once (also while freeing them). */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strtab.h"

struct item {
        char *key;
        struct item *next;
        int value;
};

static struct item *item_new(const char *key, int value)
{
        struct item *it = calloc(1, sizeof(*it));
        ck_assert_ptr_nonnull(it);
        it->key = strdup(key);
        it->value = value;
        return it;
}

static void item_free(struct item *it)
{
        free(it->key);
        free(it);
}

static void table(struct strtab *tb)
{
        ck_assert_int_eq(strtab_init(tb, offsetof(struct item, key), offsetof(struct item, next)),
                         0);
}

START_TEST(put_get_del)
{
        struct strtab tb;
        table(&tb);
        struct item *a = item_new("a", 1), *b = item_new("b", 2), *a2 = item_new("a", 3);
        strtab_put(&tb, a);
        ck_assert_int_eq(strtab_put_new(&tb, b), 0);
        ck_assert_int_eq(strtab_put_new(&tb, a2), -EEXIST);
        ck_assert_uint_eq(tb.count, 2);
        ck_assert_ptr_eq(strtab_get(&tb, "a"), a);
        ck_assert_ptr_eq(strtab_get(&tb, "b"), b);
        ck_assert_ptr_null(strtab_get(&tb, "c"));
        ck_assert_ptr_null(strtab_get(&tb, ""));
        strtab_del(&tb, a);
        ck_assert_ptr_null(strtab_get(&tb, "a"));
        strtab_del(&tb, a); /* not in: nothing happens */
        ck_assert_uint_eq(tb.count, 1);
        ck_assert_int_eq(strtab_put_new(&tb, a2), 0);
        ck_assert_ptr_eq(strtab_get(&tb, "a"), a2);
        item_free(a);
        item_free(a2);
        item_free(b);
        strtab_free(&tb);
}
END_TEST

START_TEST(grows_and_iterates)
{
        enum { N = 20000 };
        struct strtab tb;
        table(&tb);
        strtab_reserve(&tb, 1000);
        ck_assert_uint_ge(tb.nbuckets, 1000);
        char key[32];
        for (int i = 0; i < N; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                ck_assert_int_eq(strtab_put_new(&tb, item_new(key, i)), 0);
        }
        ck_assert_uint_eq(tb.count, N);
        ck_assert_uint_ge(tb.nbuckets, N);
        for (int i = 0; i < N; i += 97) {
                snprintf(key, sizeof(key), "k%d", i);
                struct item *it = strtab_get(&tb, key);
                ck_assert_ptr_nonnull(it);
                ck_assert_int_eq(it->value, i);
        }
        char *seen = calloc(N, 1);
        size_t i, n = 0;
        for (struct item *it = strtab_first(&tb, &i), *next; it; it = next) {
                next = strtab_next(&tb, it, &i);
                ck_assert_int_eq(seen[it->value], 0);
                seen[it->value] = 1;
                n++;
                item_free(it);
        }
        ck_assert_uint_eq(n, N);
        free(seen);
        strtab_free(&tb);
        ck_assert_ptr_null(strtab_first(&tb, &i)); /* freed: empty */
}
END_TEST

static Suite *strtab_suite(void)
{
        Suite *s = suite_create("strtab");
        TCase *tc = tcase_create("strtab");
        tcase_add_test(tc, put_get_del);
        tcase_add_test(tc, grows_and_iterates);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(strtab_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

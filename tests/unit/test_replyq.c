/* test_replyq.c - Check tests of replyq.c, the order of a connection's
 * replies while some wait for a commit: releases go in order and stop at
 * the first reply whose batch is not committed, or at a placeholder; a
 * filled placeholder takes its place; a failed batch turns its changes and
 * every reply behind the first of them into `unavailable`, except a
 * stateless one.  Replies here are short strings packed as msgpack, so
 * that what comes out can be read back one by one. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "replyq.h"

/* The reply "text": a msgpack str. */
static void push(struct replyq *q, const char *text, uint64_t seq, bool changed, bool stateless)
{
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_str_with_body(&pk, text, strlen(text));
        struct replyq_seg seg = { .seq = seq, .msgid = 7, .changed = changed,
                                  .stateless = stateless };
        ck_assert_int_eq(replyq_push(q, sb.data, sb.size, &seg), 0);
        msgpack_sbuffer_destroy(&sb);
}

/* What a release wrote, as "a b !" (! for an error reply). */
static void released(const msgpack_sbuffer *out, char *buf, size_t len)
{
        msgpack_unpacked u;
        size_t off = 0;
        buf[0] = '\0';
        msgpack_unpacked_init(&u);
        while (msgpack_unpack_next(&u, out->data, out->size, &off) == MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *o = &u.data;
                size_t n = strlen(buf);
                if (o->type == MSGPACK_OBJECT_STR)
                        snprintf(buf + n, len - n, "%s%.*s", n ? " " : "", (int)o->via.str.size,
                                 o->via.str.ptr);
                else
                        snprintf(buf + n, len - n, "%s!", n ? " " : "");
        }
        msgpack_unpacked_destroy(&u);
}

struct out {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char text[256];
        uint64_t errors;
};

static size_t release(struct replyq *q, struct out *o, uint64_t upto, uint64_t failed_from)
{
        msgpack_sbuffer_clear(&o->sb);
        size_t k = replyq_release(q, upto, failed_from, &o->pk, &o->errors);
        released(&o->sb, o->text, sizeof(o->text));
        return k;
}

static void out_init(struct out *o)
{
        memset(o, 0, sizeof(*o));
        msgpack_sbuffer_init(&o->sb);
        msgpack_packer_init(&o->pk, &o->sb, msgpack_sbuffer_write);
}

START_TEST(commits_release_in_order)
{
        struct replyq q;
        struct out o;
        replyq_init(&q);
        out_init(&o);
        push(&q, "a", 1, true, false); /* a change in batch 1 */
        push(&q, "b", 0, false, false); /* a read behind it */
        push(&q, "c", 2, true, false);
        push(&q, "d", 0, false, false);
        ck_assert_uint_eq(release(&q, &o, 0, 0), 0);
        ck_assert_uint_eq(q.n, 4);
        ck_assert_uint_eq(release(&q, &o, 1, 0), 2);
        ck_assert_str_eq(o.text, "a b");
        ck_assert_uint_eq(q.n, 2);
        ck_assert_uint_eq(release(&q, &o, 2, 0), 2);
        ck_assert_str_eq(o.text, "c d");
        ck_assert_uint_eq(q.n, 0);
        ck_assert_uint_eq(q.bytes.size, 0);
        ck_assert_uint_eq(o.errors, 0);
        replyq_destroy(&q);
        msgpack_sbuffer_destroy(&o.sb);
}
END_TEST

START_TEST(placeholder_holds_its_place)
{
        struct replyq q;
        struct out o;
        int tag;
        replyq_init(&q);
        out_init(&o);
        push(&q, "a", 0, false, false);
        ck_assert_int_eq(replyq_push_later(&q, 9, &tag), 0);
        push(&q, "c", 0, false, false);
        ck_assert_uint_eq(release(&q, &o, 5, 0), 1);
        ck_assert_str_eq(o.text, "a");
        ck_assert_int_eq(replyq_fill(&q, &o, "x", 1, 0), -ENOENT); /* no such tag */
        /* the answer, a change waiting for batch 6 */
        char packed[8];
        packed[0] = (char)0xa2, packed[1] = 'b', packed[2] = 'b'; /* fixstr "bb" */
        ck_assert_int_eq(replyq_fill(&q, &tag, packed, 3, 6), 0);
        ck_assert_uint_eq(release(&q, &o, 5, 0), 0);
        ck_assert_uint_eq(release(&q, &o, 6, 0), 2);
        ck_assert_str_eq(o.text, "bb c");
        replyq_destroy(&q);
        msgpack_sbuffer_destroy(&o.sb);
}
END_TEST

START_TEST(failed_batch_spoils_what_follows)
{
        struct replyq q;
        struct out o;
        replyq_init(&q);
        out_init(&o);
        push(&q, "a", 1, true, false);
        push(&q, "b", 0, false, false); /* read behind a kept change */
        push(&q, "c", 2, true, false);  /* the first lost change */
        push(&q, "d", 0, false, false); /* a read that saw it */
        push(&q, "ping", 0, false, true);
        push(&q, "e", 3, true, false);
        ck_assert_uint_eq(release(&q, &o, 1, 0), 2);
        ck_assert_str_eq(o.text, "a b");
        ck_assert_uint_eq(release(&q, &o, 0, 2), 4);
        ck_assert_str_eq(o.text, "! ! ping !");
        ck_assert_uint_eq(o.errors, 3);
        ck_assert_uint_eq(q.n, 0);
        replyq_destroy(&q);
        msgpack_sbuffer_destroy(&o.sb);
}
END_TEST

START_TEST(clear_forgets)
{
        struct replyq q;
        replyq_init(&q);
        push(&q, "a", 1, true, false);
        replyq_clear(&q);
        ck_assert_uint_eq(q.n, 0);
        ck_assert_uint_eq(q.bytes.size, 0);
        replyq_destroy(&q);
}
END_TEST

static Suite *replyq_suite(void)
{
        Suite *s = suite_create("replyq");
        TCase *tc = tcase_create("replyq");
        tcase_add_test(tc, commits_release_in_order);
        tcase_add_test(tc, placeholder_holds_its_place);
        tcase_add_test(tc, failed_batch_spoils_what_follows);
        tcase_add_test(tc, clear_forgets);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(replyq_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

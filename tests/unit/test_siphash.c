/* test_siphash.c - Check tests of siphash.c: SipHash-2-4 against the
 * published test vectors, the process key (zero until set, drawn by
 * siphash_init_random), and keys chosen to collide under FNV-1a spreading
 * out under it. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

/* The test vectors of SipHash's reference implementation: key 00 01 .. 0f,
 * message 00 01 .. (len - 1) for len = 0 .. 63, each result as the
 * little-endian uint64 of its 8 output bytes.  (libsodium's
 * crypto_shorthash_siphash24 gives the same 64.) */
static const uint64_t vectors[64] = {
        0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull,
        0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
        0xcf2794e0277187b7ull, 0x18765564cd99a68dull,
        0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
        0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull,
        0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
        0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull,
        0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
        0x3f2acc7f57c29bdbull, 0x699ae9f52cbe4794ull,
        0x4bc1b3f0968dd39cull, 0xbb6dc91da77961bdull,
        0xbed65cf21aa2ee98ull, 0xd0f2cbb02e3b67c7ull,
        0x93536795e3a33e88ull, 0xa80c038ccd5ccec8ull,
        0xb8ad50c6f649af94ull, 0xbce192de8a85b8eaull,
        0x17d835b85bbb15f3ull, 0x2f2e6163076bcfadull,
        0xde4daaaca71dc9a5ull, 0xa6a2506687956571ull,
        0xad87a3535c49ef28ull, 0x32d892fad841c342ull,
        0x7127512f72f27cceull, 0xa7f32346f95978e3ull,
        0x12e0b01abb051238ull, 0x15e034d40fa197aeull,
        0x314dffbe0815a3b4ull, 0x027990f029623981ull,
        0xcadcd4e59ef40c4dull, 0x9abfd8766a33735cull,
        0x0e3ea96b5304a7d0ull, 0xad0c42d6fc585992ull,
        0x187306c89bc215a9ull, 0xd4a60abcf3792b95ull,
        0xf935451de4f21df2ull, 0xa9538f0419755787ull,
        0xdb9acddff56ca510ull, 0xd06c98cd5c0975ebull,
        0xe612a3cb9ecba951ull, 0xc766e62cfcadaf96ull,
        0xee64435a9752fe72ull, 0xa192d576b245165aull,
        0x0a8787bf8ecb74b2ull, 0x81b3e73d20b49b6full,
        0x7fa8220ba3b2eceaull, 0x245731c13ca42499ull,
        0xb78dbfaf3a8d83bdull, 0xea1ad565322a1a0bull,
        0x60e61c23a3795013ull, 0x6606d7e446282b93ull,
        0x6ca4ecb15c5f91e1ull, 0x9f626da15c9625f3ull,
        0xe51b38608ef25f57ull, 0x958a324ceb064572ull,
};

static void key_0_to_15(uint8_t k[SIPHASH_KEY_BYTES])
{
        for (int i = 0; i < SIPHASH_KEY_BYTES; i++)
                k[i] = (uint8_t)i;
}

START_TEST(reference_vectors)
{
        uint8_t k[SIPHASH_KEY_BYTES], m[64];
        key_0_to_15(k);
        for (int i = 0; i < 64; i++)
                m[i] = (uint8_t)i;
        for (size_t len = 0; len < 64; len++)
                ck_assert_msg(siphash24(k, m, len) == vectors[len],
                              "len %zu: %016llx, want %016llx", len,
                              (unsigned long long)siphash24(k, m, len),
                              (unsigned long long)vectors[len]);
}
END_TEST

/* The paper's worked example (its appendix A): the 15-byte message
 * 00 .. 0e under the key 00 .. 0f. */
START_TEST(paper_example)
{
        uint8_t k[SIPHASH_KEY_BYTES], m[15];
        key_0_to_15(k);
        for (int i = 0; i < 15; i++)
                m[i] = (uint8_t)i;
        ck_assert_uint_eq(siphash24(k, m, sizeof(m)), 0xa129ca6149be45e5ull);
}
END_TEST

/* Every byte of the key and of the message counts; so does the length
 * (a trailing zero byte is not the same message). */
START_TEST(key_message_and_length_count)
{
        uint8_t k[SIPHASH_KEY_BYTES] = { 0 };
        const char *msg = "trace-0001";
        uint64_t base = siphash24(k, msg, strlen(msg));
        for (int i = 0; i < SIPHASH_KEY_BYTES; i++) {
                k[i] ^= 1;
                ck_assert_uint_ne(siphash24(k, msg, strlen(msg)), base);
                k[i] ^= 1;
        }
        char buf[16];
        memcpy(buf, msg, 11);
        for (size_t i = 0; i < 10; i++) {
                buf[i] ^= 0x40;
                ck_assert_uint_ne(siphash24(k, buf, 10), base);
                buf[i] ^= 0x40;
        }
        ck_assert_uint_ne(siphash24(k, buf, 11), base); /* with its NUL */
}
END_TEST

START_TEST(process_key)
{
        static const uint8_t zero[SIPHASH_KEY_BYTES];
        const char *s = "gpt-4o";
        /* Zero until set: tests and fuzzers see the same hashes every run. */
        ck_assert_uint_eq(siphash_str(s), siphash24(zero, s, strlen(s)));
        ck_assert_uint_eq(siphash_bytes(s, strlen(s)), siphash_str(s));

        uint8_t k[SIPHASH_KEY_BYTES];
        key_0_to_15(k);
        siphash_set_key(k);
        ck_assert_uint_eq(siphash_str(s), siphash24(k, s, strlen(s)));

        /* Two draws differ from the zero key and from each other (each
         * equality has odds of 2^-64). */
        ck_assert_int_eq(siphash_init_random(), 0);
        uint64_t a = siphash_str(s);
        ck_assert_uint_ne(a, siphash24(zero, s, strlen(s)));
        ck_assert_int_eq(siphash_init_random(), 0);
        ck_assert_uint_ne(siphash_str(s), a);
        ck_assert_uint_eq(siphash_str(s), siphash_str(s)); /* stable between draws */
}
END_TEST

static uint64_t fnv1a_step(uint64_t h, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 1099511628211ull;
        }
        return h;
}

#define FNV_BASIS 1469598103934665603ull
#define LOW20 ((1u << 20) - 1)

/* Two printable 4-byte blocks that take FNV-1a from state h to states
 * equal in their low 20 bits (a birthday search: about 2^10 blocks).  The
 * low bits of FNV-1a's state depend only on the low bits of the state
 * before and on the bytes, so whatever follows keeps them equal. */
static void colliding_blocks(uint64_t h, char a[4], char b[4])
{
        static uint32_t seen[1u << 20]; /* low 20 bits -> block number + 1 */
        memset(seen, 0, sizeof(seen));
        for (uint32_t n = 0; n < 94u * 94 * 94 * 94; n++) {
                char blk[4];
                for (uint32_t i = 0, v = n; i < 4; i++, v /= 94)
                        blk[i] = (char)(33 + v % 94);
                uint32_t low = (uint32_t)fnv1a_step(h, blk, 4) & LOW20;
                if (seen[low]) {
                        for (uint32_t i = 0, v = seen[low] - 1; i < 4; i++, v /= 94)
                                a[i] = (char)(33 + v % 94);
                        memcpy(b, blk, 4);
                        return;
                }
                seen[low] = n + 1;
        }
        ck_abort_msg("no colliding blocks");
}

/* 2^11 ids of 11 blocks that all share FNV-1a's low 20 bits, and so one
 * bucket of any table of up to 2^20 buckets, spread out under the keyed
 * hash: no bucket of 4096 holds more than 12 of them (the mean is 0.5). */
START_TEST(fnv_collisions_spread)
{
        enum { STAGES = 11, N = 1 << STAGES, BUCKETS = 4096 };
        char blocks[STAGES][2][4];
        uint64_t h = FNV_BASIS;
        for (int i = 0; i < STAGES; i++) {
                colliding_blocks(h, blocks[i][0], blocks[i][1]);
                h = fnv1a_step(h, blocks[i][0], 4);
        }
        ck_assert_int_eq(siphash_init_random(), 0);
        unsigned *load = calloc(BUCKETS, sizeof(*load));
        ck_assert_ptr_nonnull(load);
        uint64_t first = 0;
        for (unsigned id = 0; id < N; id++) {
                char s[4 * STAGES];
                for (int i = 0; i < STAGES; i++)
                        memcpy(s + 4 * i, blocks[i][(id >> i) & 1], 4);
                uint64_t f = fnv1a_step(FNV_BASIS, s, sizeof(s)) & LOW20;
                if (id == 0)
                        first = f;
                ck_assert_uint_eq(f, first); /* the flood works on FNV-1a */
                load[siphash_bytes(s, sizeof(s)) & (BUCKETS - 1)]++;
        }
        unsigned max = 0;
        for (int i = 0; i < BUCKETS; i++)
                max = load[i] > max ? load[i] : max;
        ck_assert_uint_le(max, 12);
        free(load);
}
END_TEST

static Suite *siphash_suite(void)
{
        Suite *s = suite_create("siphash");
        TCase *tc = tcase_create("siphash");
        tcase_add_test(tc, reference_vectors);
        tcase_add_test(tc, paper_example);
        tcase_add_test(tc, key_message_and_length_count);
        tcase_add_test(tc, process_key);
        tcase_add_test(tc, fnv_collisions_spread);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(siphash_suite());
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

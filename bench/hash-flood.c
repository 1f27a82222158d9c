/* hash-flood.c - does a client choosing trace ids slow the daemon down?
 *
 * Sends N `start`s with client-chosen trace ids, P in flight, twice: first
 * with random ids, then with ids built to collide under the unkeyed FNV-1a
 * the tracker's tables used before they were keyed.  The daemon's pending
 * table then holds them all in one chain if its hash is FNV-1a, and spread
 * out if it is keyed (SipHash).  While each batch is being handled, another
 * connection's `ping` is timed: what one flooding client costs the others.
 *
 * The colliding ids: FNV-1a's state is xor-then-multiply, so its low k bits
 * depend only on the low k bits of the state before and on the bytes.  For
 * each of 16 stages a birthday search finds two 4-byte blocks that take the
 * state to the same low 20 bits; the 2^16 strings made of one block per
 * stage then all share their low 20 bits (one bucket of any table of up to
 * 2^20 buckets).  Random ids have the same length; both use only the
 * characters a trace id may hold.
 *
 * Prints one line per run and the ratio of the rates; exits 1 when the
 * colliding ids start more than 2x slower than the random ones (or on an
 * error), 0 otherwise.  bench/hash-flood.sh runs it against a fresh daemon.
 *
 *   hash-flood [-s SOCKET] [-n N (<= 65536)] [-P IN_FLIGHT]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "outcome_client.h"

#define FLOOD_STAGES 16
#define FLOOD_BLOCK 4
#define FLOOD_LOW_BITS 20
#define FLOOD_ID_BYTES (2 + FLOOD_STAGES * FLOOD_BLOCK) /* "c-" + blocks */

static uint64_t fnv1a_step(uint64_t h, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 1099511628211ull;
        }
        return h;
}

/* The characters a trace id may hold. */
static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
#define ID_CHARS (sizeof(id_chars) - 1)

static void block_of(uint32_t n, char out[FLOOD_BLOCK])
{
        for (int i = 0; i < FLOOD_BLOCK; i++, n /= ID_CHARS)
                out[i] = id_chars[n % ID_CHARS];
}

/* Two blocks taking state h to equal low bits.  0, or -ENOENT. */
static int colliding_blocks(uint64_t h, uint32_t *seen, char a[FLOOD_BLOCK], char b[FLOOD_BLOCK])
{
        const uint32_t mask = (1u << FLOOD_LOW_BITS) - 1;
        memset(seen, 0, sizeof(*seen) << FLOOD_LOW_BITS);
        for (uint32_t n = 0; n < ID_CHARS * ID_CHARS * ID_CHARS * ID_CHARS; n++) {
                char blk[FLOOD_BLOCK];
                block_of(n, blk);
                uint32_t low = (uint32_t)fnv1a_step(h, blk, FLOOD_BLOCK) & mask;
                if (seen[low]) {
                        block_of(seen[low] - 1, a);
                        memcpy(b, blk, FLOOD_BLOCK);
                        return 0;
                }
                seen[low] = n + 1;
        }
        return -ENOENT;
}

/* n ids, each FLOOD_ID_BYTES + NUL, back to back. */
static char *colliding_ids(unsigned n)
{
        char blocks[FLOOD_STAGES][2][FLOOD_BLOCK];
        uint32_t *seen = malloc(sizeof(*seen) << FLOOD_LOW_BITS);
        char *ids = malloc((size_t)n * (FLOOD_ID_BYTES + 1));
        if (!seen || !ids)
                goto fail;
        uint64_t h = fnv1a_step(1469598103934665603ull, "c-", 2);
        for (int i = 0; i < FLOOD_STAGES; i++) {
                if (colliding_blocks(h, seen, blocks[i][0], blocks[i][1]) < 0)
                        goto fail;
                h = fnv1a_step(h, blocks[i][0], FLOOD_BLOCK);
        }
        for (unsigned k = 0; k < n; k++) {
                char *id = ids + (size_t)k * (FLOOD_ID_BYTES + 1);
                memcpy(id, "c-", 2);
                for (int i = 0; i < FLOOD_STAGES; i++)
                        memcpy(id + 2 + i * FLOOD_BLOCK, blocks[i][(k >> i) & 1], FLOOD_BLOCK);
                id[FLOOD_ID_BYTES] = '\0';
        }
        free(seen);
        return ids;
fail:
        free(seen);
        free(ids);
        return NULL;
}

static char *random_ids(unsigned n)
{
        static const char hex[] = "0123456789abcdef";
        char *ids = malloc((size_t)n * (FLOOD_ID_BYTES + 1));
        if (!ids)
                return NULL;
        for (unsigned k = 0; k < n; k++) {
                char *id = ids + (size_t)k * (FLOOD_ID_BYTES + 1);
                unsigned char rnd[FLOOD_ID_BYTES];
                if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
                        free(ids);
                        return NULL;
                }
                id[0] = 'r';
                id[1] = '-';
                for (int i = 2; i < FLOOD_ID_BYTES; i++)
                        id[i] = hex[rnd[i] & 15];
                id[FLOOD_ID_BYTES] = '\0';
        }
        return ids;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
        size_t n = strlen(s);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
}

struct flood_result {
        double rate;        /* starts per second */
        double ping_max_ms; /* the other connection's slowest ping */
        unsigned errors;
};

/* Start every id, `depth` in flight; a ping on `other` behind each batch. */
static int run(struct oc_client *c, struct oc_client *other, const char *ids, unsigned n,
               unsigned depth, struct flood_result *out)
{
        char err[256];
        struct flood_result res = { 0 };
        double t0 = now_s();
        for (unsigned done = 0; done < n;) {
                unsigned batch = n - done < depth ? n - done : depth;
                for (unsigned i = 0; i < batch; i++) {
                        msgpack_packer *pk = oc_begin(c, "start");
                        msgpack_pack_array(pk, 1);
                        msgpack_pack_map(pk, 3);
                        pack_str(pk, "model");
                        pack_str(pk, "hash-flood");
                        pack_str(pk, "task");
                        pack_str(pk, "generate");
                        pack_str(pk, "trace_id");
                        pack_str(pk, ids + (size_t)(done + i) * (FLOOD_ID_BYTES + 1));
                }
                if (oc_flush(c, err, sizeof(err)) < 0)
                        goto fail;
                msgpack_packer *pk = oc_begin(other, "ping");
                msgpack_pack_array(pk, 0);
                double p0 = now_s();
                if (oc_flush(other, err, sizeof(err)) < 0)
                        goto fail;
                for (unsigned i = 0; i < batch; i++) {
                        struct oc_reply r;
                        if (oc_recv(c, &r, err, sizeof(err)) < 0)
                                goto fail;
                        res.errors += r.code != NULL;
                        oc_reply_destroy(&r);
                }
                struct oc_reply r;
                if (oc_recv(other, &r, err, sizeof(err)) < 0)
                        goto fail;
                double ping_ms = (now_s() - p0) * 1e3;
                oc_reply_destroy(&r);
                res.ping_max_ms = ping_ms > res.ping_max_ms ? ping_ms : res.ping_max_ms;
                done += batch;
        }
        res.rate = n / (now_s() - t0);
        *out = res;
        return 0;
fail:
        fprintf(stderr, "hash-flood: %s\n", err);
        return -EIO;
}

int main(int argc, char **argv)
{
        const char *socket = NULL;
        unsigned n = 65536, depth = 256;
        int ch;
        while ((ch = getopt(argc, argv, "s:n:P:h")) != -1) {
                switch (ch) {
                case 's': socket = optarg; break;
                case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
                case 'P': depth = (unsigned)strtoul(optarg, NULL, 10); break;
                default:
                        fprintf(stderr, "usage: hash-flood [-s SOCKET] [-n N (1..65536)] "
                                        "[-P IN_FLIGHT (1..4096)]\n");
                        return ch == 'h' ? 0 : 2;
                }
        }
        if (n < 1 || n > 1u << FLOOD_STAGES || depth < 1 || depth > 4096) {
                fprintf(stderr, "hash-flood: -n 1..65536, -P 1..4096\n");
                return 2;
        }
        char err[256];
        struct oc_client *c = NULL, *other = NULL;
        char *rnd = random_ids(n), *col = colliding_ids(n);
        int rc = 1;
        if (!rnd || !col) {
                fprintf(stderr, "hash-flood: cannot make the ids\n");
                goto out;
        }
        if (oc_connect(&c, socket, err, sizeof(err)) < 0 ||
            oc_connect(&other, socket, err, sizeof(err)) < 0) {
                fprintf(stderr, "hash-flood: %s\n", err);
                goto out;
        }
        struct flood_result r, k;
        if (run(c, other, rnd, n, depth, &r) < 0 || run(c, other, col, n, depth, &k) < 0)
                goto out;
        double ratio = r.rate / k.rate;
        printf("random ids:    %u starts, %.0f/s, errors %u, other client's ping max %.1f ms\n",
               n, r.rate, r.errors, r.ping_max_ms);
        printf("colliding ids: %u starts, %.0f/s, errors %u, other client's ping max %.1f ms\n",
               n, k.rate, k.errors, k.ping_max_ms);
        printf("ratio random/colliding: %.2f (target <= 2): %s\n", ratio,
               ratio <= 2.0 ? "met" : "MISSED");
        rc = ratio <= 2.0 && !r.errors && !k.errors ? 0 : 1;
out:
        oc_close(c);
        oc_close(other);
        free(rnd);
        free(col);
        return rc;
}

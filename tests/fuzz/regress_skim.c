/* regress_skim.c - the framing guard and msgpack's fixext values: a
 * regression test for what fuzz_request found (regressions/request/
 * skim-fixext8-hdr-overflow).
 *
 * proto_skim_feed keeps a value's header in hdr[9] and counted fixext8
 * (0xd7) and fixext16 (0xd8) as headers of 10 and 18 bytes (marker, type
 * and data), so it wrote their data past hdr: over `have` and `need`, then
 * past the struct, into whatever the caller keeps next to it (server.c's
 * struct conn: `ready`, `bad`, the reply buffer).  A client could so
 * write bytes of its choosing into the daemon's memory.  Checked here
 * without any sanitizer: every fixext size frames at exactly the end of its
 * message, whatever its data bytes, and the memory after the struct is
 * untouched.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

struct boxed {
        struct proto_skim s;
        uint8_t canary[64];
};

static int failures;

static void check(int cond, const char *what, unsigned size, unsigned fill)
{
        if (!cond) {
                printf("FAIL: fixext%u with data bytes 0x%02x: %s\n", size, fill, what);
                failures++;
        }
}

int main(void)
{
        static const uint8_t markers[] = { 0xd4, 0xd5, 0xd6, 0xd7, 0xd8 };
        static const uint8_t fills[] = { 0x00, 0x01, 0x09, 0x7f, 0xc1, 0xdd, 0xff };

        for (unsigned m = 0; m < sizeof(markers); m++) {
                unsigned size = 1u << m;
                for (unsigned f = 0; f < sizeof(fills); f++) {
                        /* [0, 1, "ping", [{"x": fixext}]], then a nil */
                        uint8_t msg[64];
                        size_t n = 0;
                        memcpy(msg, "\x94\x00\x01\xa4ping\x91\x81\xa1x", 12);
                        n = 12;
                        msg[n++] = markers[m];
                        msg[n++] = 0x01; /* ext type */
                        memset(msg + n, fills[f], size);
                        n += size;
                        msg[n++] = 0xc0;

                        /* Whole, then a byte at a time. */
                        for (int bytewise = 0; bytewise < 2; bytewise++) {
                                struct boxed b;
                                memset(&b, 0xa5, sizeof(b));
                                memset(&b.s, 0, sizeof(b.s));
                                size_t off = 0, used = 0;
                                enum proto_skim_status st = PROTO_SKIM_MORE;
                                while (off < n - 1 && st == PROTO_SKIM_MORE) {
                                        size_t piece = bytewise ? 1 : n - 1 - off;
                                        st = proto_skim_feed(&b.s, msg + off, piece, 1024, &used);
                                        off += used;
                                }
                                check(st == PROTO_SKIM_DONE, "the message does not frame", size,
                                      fills[f]);
                                check(off == n - 1, "framed at the wrong byte", size, fills[f]);
                                int intact = 1;
                                for (size_t i = 0; i < sizeof(b.canary); i++)
                                        intact &= b.canary[i] == 0xa5;
                                check(intact, "memory after struct proto_skim overwritten", size,
                                      fills[f]);
                                /* The next message (the nil) frames alone. */
                                st = proto_skim_feed(&b.s, msg + n - 1, 1, 1024, &used);
                                check(st == PROTO_SKIM_DONE && used == 1,
                                      "the next message does not frame", size, fills[f]);
                        }
                }
        }
        printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
        return failures ? 1 : 0;
}

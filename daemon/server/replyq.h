/* replyq.h - the order of a connection's replies while some must wait.
 *
 * Under durability = ack the reply to a state change must not leave before
 * its change is committed, and no reply may overtake one sent before it on
 * the same connection.  A connection's waiting replies are a queue: each
 * segment is one reply's bytes (or a notification's empty mark), tagged
 * with the batch it waits for (0: none of its own, it only waits behind
 * the others).  A reply given later (`scan`) holds its place as an empty
 * placeholder until it is filled.  Releasing a committed batch moves the
 * segments up to it, in order, to the connection's output; a failed batch
 * turns every held reply from its first lost change on into an
 * `unavailable` error, except a placeholder's and a stateless one's
 * (ping: its answer holds whatever happened).
 *
 * No I/O and no libuv: the server (server.c) owns a queue per connection
 * and decides when to push and release.
 */
#ifndef OUTCOMED_REPLYQ_H
#define OUTCOMED_REPLYQ_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct replyq_seg {
        uint64_t seq;   /* the batch it waits for; 0: none of its own */
        uint32_t msgid;
        uint32_t len;
        bool changed;   /* a state change: `unavailable` if its batch fails */
        bool failed;    /* its batch failed: answered `unavailable` in its turn */
        bool stateless; /* a reply no state change can spoil (ping) */
        void *later;    /* a placeholder (len 0) until filled; the owner's tag */
};

struct replyq {
        msgpack_sbuffer bytes;   /* the held replies, back to back, in order */
        struct replyq_seg *segs; /* one per reply in bytes */
        size_t n, cap;
};

void replyq_init(struct replyq *q);
void replyq_destroy(struct replyq *q);
/* Forget every segment (the connection closes). */
void replyq_clear(struct replyq *q);

/* Hold reply[0..len) behind the held ones, as described by seg (its len
 * is set here).  0, or -ENOMEM and nothing changed. */
int replyq_push(struct replyq *q, const char *reply, size_t len, const struct replyq_seg *seg);
/* Hold the place of a reply given later, tagged `later`.  0 or -ENOMEM. */
int replyq_push_later(struct replyq *q, uint32_t msgid, void *later);
/* Fill the placeholder tagged `later` with reply[0..len); seq: the batch
 * holding the changes it reports (0: none).  0; -ENOENT when no
 * placeholder has that tag; -ENOMEM (nothing changed). */
int replyq_fill(struct replyq *q, const void *later, const char *reply, size_t len,
                uint64_t seq);
/* Release, in order, the segments whose batches are committed (seq <=
 * upto), up to the first placeholder; with failed_from (not 0), the
 * changes of batches from that one on, and every reply behind the first of
 * them, are answered `unavailable` instead, and everything up to a
 * placeholder goes.  Released bytes go through pk (raw, as they were
 * packed).  Returns how many segments were released; *errors counts the
 * `unavailable` errors packed. */
size_t replyq_release(struct replyq *q, uint64_t upto, uint64_t failed_from, msgpack_packer *pk,
                      uint64_t *errors);

#endif

/* replyq.c - a connection's held replies (replyq.h): their bytes in one
 * buffer, their segments in an array, both in reply order. */
#include "replyq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

void replyq_init(struct replyq *q)
{
        msgpack_sbuffer_init(&q->bytes);
        q->segs = NULL;
        q->n = q->cap = 0;
}

void replyq_destroy(struct replyq *q)
{
        msgpack_sbuffer_destroy(&q->bytes);
        free(q->segs);
        q->segs = NULL;
        q->n = q->cap = 0;
}

void replyq_clear(struct replyq *q)
{
        msgpack_sbuffer_clear(&q->bytes);
        q->n = 0;
}

/* Room for one more segment.  0 or -ENOMEM. */
static int replyq__room(struct replyq *q)
{
        if (q->n < q->cap)
                return 0;
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct replyq_seg *v = realloc(q->segs, cap * sizeof(*v));
        if (!v)
                return -ENOMEM;
        q->segs = v;
        q->cap = cap;
        return 0;
}

int replyq_push(struct replyq *q, const char *reply, size_t len, const struct replyq_seg *seg)
{
        if (len > UINT32_MAX || replyq__room(q) < 0 ||
            (len && msgpack_sbuffer_write(&q->bytes, reply, len) != 0))
                return -ENOMEM;
        q->segs[q->n] = *seg;
        q->segs[q->n++].len = (uint32_t)len;
        return 0;
}

int replyq_push_later(struct replyq *q, uint32_t msgid, void *later)
{
        return replyq_push(q, NULL, 0, &(struct replyq_seg){ .msgid = msgid, .later = later });
}

int replyq_fill(struct replyq *q, const void *later, const char *reply, size_t len, uint64_t seq)
{
        size_t off = 0, k = 0;
        while (k < q->n && q->segs[k].later != later)
                off += q->segs[k++].len;
        if (k == q->n)
                return -ENOENT;
        size_t tail = q->bytes.size - off;
        if (len > UINT32_MAX || msgpack_sbuffer_write(&q->bytes, reply, len) != 0)
                return -ENOMEM;
        memmove(q->bytes.data + off + len, q->bytes.data + off, tail);
        memcpy(q->bytes.data + off, reply, len);
        q->segs[k].later = NULL;
        q->segs[k].len = (uint32_t)len;
        if (seq) {
                q->segs[k].seq = seq;
                q->segs[k].changed = true;
        }
        return 0;
}

/* From the first lost change on (a notification's too), every reply on
 * the connection saw state that is gone: the changes and the reads behind
 * them answer `unavailable`. */
static void replyq__fail(struct replyq *q, uint64_t failed_from)
{
        bool lost = false;
        for (size_t i = 0; i < q->n; i++) {
                lost |= q->segs[i].seq != 0 && q->segs[i].seq >= failed_from;
                if (lost && !q->segs[i].later && !q->segs[i].stateless)
                        q->segs[i].failed = true;
        }
}

size_t replyq_release(struct replyq *q, uint64_t upto, uint64_t failed_from, msgpack_packer *pk,
                      uint64_t *errors)
{
        size_t off = 0, k = 0;
        if (failed_from)
                replyq__fail(q, failed_from);
        for (; k < q->n; k++) {
                const struct replyq_seg *h = &q->segs[k];
                if (h->later || (!failed_from && !h->failed && h->seq > upto))
                        break;
                if (h->failed && h->len > 0) {
                        proto_pack_error(pk, h->msgid, PROTO_UNAVAILABLE,
                                         "the change could not be written to the database "
                                         "(see the daemon's log); it was not recorded");
                        (*errors)++;
                } else if (h->len) { /* a notification's mark has no bytes */
                        (void)pk->callback(pk->data, q->bytes.data + off, h->len);
                }
                off += h->len;
        }
        if (k == 0)
                return 0;
        if (q->bytes.size > off)
                memmove(q->bytes.data, q->bytes.data + off, q->bytes.size - off);
        q->bytes.size -= off;
        memmove(q->segs, q->segs + k, (q->n - k) * sizeof(*q->segs));
        q->n -= k;
        return k;
}

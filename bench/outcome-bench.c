/* outcome-bench.c - a load generator for outcomed: N connections with P
 * requests in flight each, for a time or a count, running the router cycle
 * (start -> complete -> outcome) or one method, and reporting throughput,
 * latency percentiles and errors by code.
 *
 * Design: each thread (-t) owns an epoll set and a share of the
 * connections; nothing is shared between threads until the end, when the
 * main thread adds up their counters and histograms.  A connection keeps
 * P "slots".  In the cycle workload a slot is one router call going
 * through its three requests, each issued when the previous reply arrives;
 * for a single method a slot simply re-issues its request.  Replies come
 * back in request order (the contract says so), so the requests in flight
 * on a connection are a FIFO ring of at most P entries, and a reply whose
 * msgid is not the ring's head is a broken peer.
 *
 * One read() takes every reply that has arrived; the next requests they
 * trigger are packed back to back into the connection's output buffer and
 * written with one write() at the end of that batch, the way a pipelining
 * router would.  Latency is measured per request, from the moment it is
 * packed (just before that write) to the read() that brought its reply;
 * the clock is read once per batch, so the figures include no time spent
 * by this program packing other requests after the reply arrived.
 *
 * Latencies go into log-linear histograms (64 sub-buckets per power of
 * two: values are exact to 1.6%), nanoseconds in, microseconds out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "outcome_client.h"
#include "proto.h"

#define BENCH_READ_RESERVE (64 * 1024)
#define BENCH_MAX_CONNS 100000u
#define BENCH_MAX_DEPTH 65536u
#define BENCH_MAX_THREADS 256u

/* ---- methods and errors ------------------------------------------------ */

enum bench_method {
        M_START,
        M_COMPLETE,
        M_OUTCOME,
        M_PING,
        M_STATS,
        M_QUERY,
        M_RANK,
        M__COUNT,
        M_CYCLE = M__COUNT, /* the workload, not a method */
};

static const char *const method_names[M__COUNT] = {
        "start", "complete", "outcome", "ping", "stats", "query", "rank",
};

/* Errors: the contract's codes, then what can go wrong on our side. */
enum {
        E_UNKNOWN_CODE = PROTO_ERROR__COUNT, /* an error code the contract does not have */
        E_CLOSED,                            /* the daemon closed a connection */
        E_BAD_REPLY,                         /* not a response, or out of order */
        E_TIMEOUT,                           /* no reply within --timeout */
        E__COUNT
};

static const char *bench_error_name(int e)
{
        switch (e) {
        case E_UNKNOWN_CODE: return "unknown_code";
        case E_CLOSED: return "connection_closed";
        case E_BAD_REPLY: return "bad_reply";
        case E_TIMEOUT: return "timeout";
        default: return proto_error_name((enum proto_error)e);
        }
}

/* ---- histograms -------------------------------------------------------- */

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
        uint64_t n, sum, max;
        uint64_t b[HIST_BUCKETS];
};

static unsigned hist__index(uint64_t v)
{
        if (v < HIST_SUB)
                return (unsigned)v;
        unsigned msb = 63u - (unsigned)__builtin_clzll(v);
        unsigned shift = msb - HIST_SUB_BITS;
        return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The highest value a bucket holds. */
static uint64_t hist__upper(unsigned i)
{
        if (i < HIST_SUB)
                return i;
        unsigned shift = i / HIST_SUB - 1;
        uint64_t mant = i % HIST_SUB + HIST_SUB;
        return ((mant + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
        h->b[hist__index(v)]++;
        h->n++;
        h->sum += v;
        if (v > h->max)
                h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
        for (unsigned i = 0; i < HIST_BUCKETS; i++)
                to->b[i] += from->b[i];
        to->n += from->n;
        to->sum += from->sum;
        if (from->max > to->max)
                to->max = from->max;
}

/* The value under which a fraction q of the samples lie (0 when empty). */
static uint64_t hist_quantile(const struct hist *h, double q)
{
        if (h->n == 0)
                return 0;
        uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
        if (rank == 0)
                rank = 1;
        for (unsigned i = 0; i < HIST_BUCKETS; i++) {
                seen += h->b[i];
                if (seen >= rank) {
                        uint64_t u = hist__upper(i);
                        return u < h->max ? u : h->max;
                }
        }
        return h->max;
}

/* ---- options ----------------------------------------------------------- */

struct bench_opts {
        char socket[OC_SOCKET_PATH_MAX + 1];
        unsigned conns;
        unsigned depth;
        unsigned threads;
        double duration;    /* seconds; 0: until the count is reached */
        double warmup;      /* seconds before measuring */
        double timeout;     /* seconds without a reply before giving up */
        uint64_t count;     /* requests to measure; 0: by duration */
        int workload;       /* M_CYCLE or a method */
        const char *model;
        unsigned models;    /* spread the cycle over this many model ids */
        const char *task;
        const char *kind;
        double confidence;
        const char *reason; /* NULL: no reason argument */
        const char *domain; /* NULL: no domain; else the prefix of --domains names */
        unsigned domains;   /* spread starts and ranks over this many domains */
        double cost_weight; /* rank's */
        bool json;
};

static volatile sig_atomic_t bench_interrupted;

static void bench_on_signal(int sig)
{
        (void)sig;
        bench_interrupted = 1;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- connections and workers ------------------------------------------- */

struct slot {
        uint8_t step;       /* the cycle's request in flight (M_START...) */
        bool busy;          /* a request of this slot is in flight */
        uint32_t model;     /* index into the model ids */
        uint32_t domain;    /* index of the domain (--domains) */
        uint32_t idlen;
        char id[PROTO_TRACE_ID_MAX + 1];
};

struct inflight {
        uint64_t sent_ns;
        uint32_t msgid;
        uint32_t slot;
        uint8_t method;
};

struct worker;

struct conn {
        int fd;
        bool dead;
        bool want_out;       /* EPOLLOUT is armed: the kernel took only part */
        struct worker *w;
        msgpack_unpacker unp;
        msgpack_unpacked res;
        msgpack_sbuffer out;
        size_t out_off;      /* bytes of out already written */
        msgpack_packer pk;
        struct inflight *ring;
        unsigned head, count;
        struct slot *slots;
        uint32_t next_msgid;
};

struct counters {
        struct hist hist[M__COUNT];
        uint64_t method_errors[M__COUNT];
        uint64_t errors[E__COUNT];
        uint64_t cycles;         /* cycles whose outcome was answered without error */
        uint64_t cycles_failed;  /* cycles cut short by an error reply */
        char first[E__COUNT][160]; /* the first message seen for each code */
};

struct worker {
        pthread_t thread;
        const struct bench_opts *o;
        char **model_ids;
        uint32_t *model_lens;
        int ep;
        struct conn *conns;
        unsigned nconns;
        unsigned live;           /* connections not dead */
        uint64_t inflight;       /* requests in flight over all connections */
        uint64_t budget;         /* requests still to issue in count mode */
        uint64_t warm_end;       /* measuring starts then */
        uint64_t deadline;       /* stop issuing then (0: none) */
        uint64_t t_begin, t_end; /* the measured span */
        uint64_t last_progress;
        bool measuring;
        bool stopping;
        uint32_t cycle_seq;      /* varies latency_ms a little */
        uint64_t rank_seed;      /* rank's seeds */
        struct counters k;
};

static int conn__write_cb(void *data, const char *buf, size_t len)
{
        return msgpack_sbuffer_write(data, buf, len);
}

static void conn__pack_kv_str(msgpack_packer *pk, const char *key, const char *val, size_t len)
{
        proto_pack_cstr(pk, key);
        proto_pack_str(pk, val, len);
}

/* Count a request against the budget; false when no more may start. */
static bool worker__take(struct worker *w, uint64_t n)
{
        if (w->stopping || bench_interrupted)
                return false;
        if (!w->measuring || w->o->count == 0)
                return true;
        if (w->budget < n)
                return false;
        w->budget -= n;
        return true;
}

/* Pack one request of `slot` and put it in the ring. */
/* The slot's domain as "<prefix>-<i>" (or the prefix alone for one). */
static void conn__pack_domain(msgpack_packer *pk, const struct bench_opts *o, uint32_t i)
{
        char buf[160];
        int n = o->domains > 1 ? snprintf(buf, sizeof(buf), "%s-%u", o->domain, i)
                               : snprintf(buf, sizeof(buf), "%s", o->domain);
        conn__pack_kv_str(pk, "domain", buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void conn__issue(struct conn *c, uint32_t si, enum bench_method m, uint64_t now)
{
        struct worker *w = c->w;
        const struct bench_opts *o = w->o;
        struct slot *s = &c->slots[si];
        msgpack_packer *pk = &c->pk;
        uint32_t msgid = c->next_msgid++;
        if (c->next_msgid == 0)
                c->next_msgid = 1; /* msgid 0 is the daemon's */

        proto_pack_request_head(pk, msgid, method_names[m]);
        switch (m) {
        case M_START: {
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 2 + (o->reason != NULL) + (o->domain != NULL));
                conn__pack_kv_str(pk, "model", w->model_ids[s->model], w->model_lens[s->model]);
                conn__pack_kv_str(pk, "task", o->task, strlen(o->task));
                if (o->reason)
                        conn__pack_kv_str(pk, "reason", o->reason, strlen(o->reason));
                if (o->domain)
                        conn__pack_domain(pk, o, s->domain);
                break;
        }
        case M_RANK: {
                /* A router's question: the --models ids (at most 16) as
                 * candidates, a cost weight, a seed, the slot's domain. */
                unsigned nc = o->models < 16 ? o->models : 16;
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 4 + (o->domain != NULL));
                conn__pack_kv_str(pk, "task", o->task, strlen(o->task));
                proto_pack_cstr(pk, "candidates");
                msgpack_pack_array(pk, nc);
                for (unsigned k = 0; k < nc; k++)
                        proto_pack_str(pk, w->model_ids[k], w->model_lens[k]);
                proto_pack_cstr(pk, "cost_weight");
                msgpack_pack_double(pk, o->cost_weight);
                proto_pack_cstr(pk, "seed");
                msgpack_pack_uint64(pk, ++w->rank_seed);
                if (o->domain)
                        conn__pack_domain(pk, o, s->domain);
                break;
        }
        case M_COMPLETE:
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 4);
                conn__pack_kv_str(pk, "trace_id", s->id, s->idlen);
                proto_pack_cstr(pk, "latency_ms");
                msgpack_pack_uint32(pk, 400 + (w->cycle_seq++ % 800));
                proto_pack_cstr(pk, "input_tokens");
                msgpack_pack_uint32(pk, 900);
                proto_pack_cstr(pk, "output_tokens");
                msgpack_pack_uint32(pk, 240);
                break;
        case M_OUTCOME:
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 3);
                conn__pack_kv_str(pk, "trace_id", s->id, s->idlen);
                conn__pack_kv_str(pk, "kind", o->kind, strlen(o->kind));
                proto_pack_cstr(pk, "confidence");
                msgpack_pack_double(pk, o->confidence);
                break;
        case M_QUERY:
                msgpack_pack_array(pk, 1);
                msgpack_pack_map(pk, 1);
                conn__pack_kv_str(pk, "model", w->model_ids[s->model], w->model_lens[s->model]);
                break;
        default:
                msgpack_pack_array(pk, 0);
                break;
        }
        unsigned tail = (c->head + c->count) % o->depth;
        c->ring[tail] = (struct inflight){ .sent_ns = now, .msgid = msgid, .slot = si,
                                           .method = (uint8_t)m };
        c->count++;
        w->inflight++;
        s->busy = true;
        s->step = (uint8_t)m;
}

/* Give a free slot its next piece of work, if any may start. */
static void conn__begin(struct conn *c, uint32_t si, uint64_t now)
{
        struct worker *w = c->w;
        struct slot *s = &c->slots[si];
        if (w->o->workload == M_CYCLE) {
                if (!worker__take(w, 3))
                        return;
                s->model = w->o->models > 1 ? (uint32_t)((s->model + 1) % w->o->models) : 0;
                s->domain = w->o->domains > 1 ? (uint32_t)((s->domain + 7) % w->o->domains) : 0;
                conn__issue(c, si, M_START, now);
        } else {
                if (!worker__take(w, 1))
                        return;
                s->domain = w->o->domains > 1 ? (uint32_t)((s->domain + 7) % w->o->domains) : 0;
                conn__issue(c, si, (enum bench_method)w->o->workload, now);
        }
}

static void conn__kill(struct conn *c, int why)
{
        struct worker *w = c->w;
        if (c->dead)
                return;
        c->dead = true;
        w->live--;
        if (c->count > 0)
                w->k.errors[why] += c->count;
        w->inflight -= c->count;
        c->count = 0;
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
}

static void conn__arm(struct conn *c, bool out)
{
        if (c->want_out == out)
                return;
        struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
        if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
                c->want_out = out;
}

static void conn__flush(struct conn *c)
{
        if (c->dead)
                return;
        while (c->out_off < c->out.size) {
                ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.size - c->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                conn__arm(c, true);
                                return;
                        }
                        conn__kill(c, E_CLOSED);
                        return;
                }
                c->out_off += (size_t)n;
        }
        msgpack_sbuffer_clear(&c->out);
        c->out_off = 0;
        conn__arm(c, false);
}

/* Count an error reply by its code, keeping the first message of each. */
static void worker__error(struct worker *w, const msgpack_object *err)
{
        const msgpack_object *code = proto_map_get(err, "code");
        const msgpack_object *msg = proto_map_get(err, "message");
        int e = code && code->type == MSGPACK_OBJECT_STR
                        ? proto_error_parse(code->via.str.ptr, code->via.str.size)
                        : -1;
        if (e <= 0)
                e = E_UNKNOWN_CODE;
        w->k.errors[e]++;
        if (!w->k.first[e][0] && msg && msg->type == MSGPACK_OBJECT_STR) {
                size_t n = msg->via.str.size < sizeof(w->k.first[e]) - 1 ? msg->via.str.size
                                                                         : sizeof(w->k.first[e]) - 1;
                memcpy(w->k.first[e], msg->via.str.ptr, n);
                w->k.first[e][n] = '\0';
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char)w->k.first[e][i] < 0x20)
                                w->k.first[e][i] = ' ';
        }
}

/* One reply: account it, then give its slot the next request. */
static void conn__reply(struct conn *c, const msgpack_object *o, uint64_t now)
{
        struct worker *w = c->w;
        uint32_t msgid;
        const msgpack_object *err, *result;

        if (proto_parse_response(o, &msgid, &err, &result) < 0) {
                conn__kill(c, E_BAD_REPLY);
                return;
        }
        if (msgid == 0 || c->count == 0 || c->ring[c->head].msgid != msgid) {
                /* msgid 0: the daemon's word on the whole connection
                 * (refused, too large...); it closes it next. */
                if (msgid == 0 && err) {
                        worker__error(w, err);
                        if (c->count > 0) {
                                c->head = (c->head + 1) % w->o->depth;
                                c->count--;
                                w->inflight--;
                        }
                }
                conn__kill(c, msgid == 0 ? E_CLOSED : E_BAD_REPLY);
                return;
        }
        struct inflight f = c->ring[c->head];
        c->head = (c->head + 1) % w->o->depth;
        c->count--;
        w->inflight--;
        w->last_progress = now;
        struct slot *s = &c->slots[f.slot];
        s->busy = false;
        hist_add(&w->k.hist[f.method], now > f.sent_ns ? now - f.sent_ns : 0);

        if (err) {
                worker__error(w, err);
                w->k.method_errors[f.method]++;
                if (w->o->workload == M_CYCLE)
                        w->k.cycles_failed++;
                conn__begin(c, f.slot, now);
                return;
        }
        if (w->o->workload != M_CYCLE) {
                conn__begin(c, f.slot, now);
                return;
        }
        /* The cycle's next step goes on even while stopping, so that no
         * trace is left pending. */
        switch (f.method) {
        case M_START: {
                const msgpack_object *id = proto_map_get(result, "trace_id");
                if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0 ||
                    id->via.str.size > PROTO_TRACE_ID_MAX) {
                        w->k.errors[E_BAD_REPLY]++;
                        w->k.cycles_failed++;
                        conn__begin(c, f.slot, now);
                        return;
                }
                memcpy(s->id, id->via.str.ptr, id->via.str.size);
                s->idlen = id->via.str.size;
                conn__issue(c, f.slot, M_COMPLETE, now);
                break;
        }
        case M_COMPLETE:
                conn__issue(c, f.slot, M_OUTCOME, now);
                break;
        default:
                w->k.cycles++;
                conn__begin(c, f.slot, now);
                break;
        }
}

static void conn__on_readable(struct conn *c)
{
        if (!msgpack_unpacker_reserve_buffer(&c->unp, BENCH_READ_RESERVE)) {
                conn__kill(c, E_BAD_REPLY);
                return;
        }
        ssize_t n;
        do {
                n = recv(c->fd, msgpack_unpacker_buffer(&c->unp),
                         msgpack_unpacker_buffer_capacity(&c->unp), MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
        if (n <= 0) {
                conn__kill(c, E_CLOSED);
                return;
        }
        uint64_t now = now_ns();
        msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
        for (;;) {
                msgpack_unpack_return r = msgpack_unpacker_next(&c->unp, &c->res);
                if (r == MSGPACK_UNPACK_CONTINUE)
                        break;
                if (r != MSGPACK_UNPACK_SUCCESS) {
                        conn__kill(c, E_BAD_REPLY);
                        return;
                }
                conn__reply(c, &c->res.data, now);
                if (c->dead)
                        return;
        }
        conn__flush(c);
}

/* Start measuring: forget what the warm-up counted. */
static void worker__measure(struct worker *w, uint64_t now)
{
        memset(&w->k, 0, sizeof(w->k));
        w->measuring = true;
        w->t_begin = now;
}

static void *worker_run(void *arg)
{
        struct worker *w = arg;
        const struct bench_opts *o = w->o;
        struct epoll_event evs[256];
        uint64_t now = now_ns();
        uint64_t timeout_ns = (uint64_t)(o->timeout * 1e9);

        w->last_progress = now;
        if (o->warmup <= 0)
                worker__measure(w, now);
        for (unsigned i = 0; i < w->nconns; i++) {
                struct conn *c = &w->conns[i];
                for (uint32_t si = 0; si < o->depth; si++)
                        conn__begin(c, si, now);
                conn__flush(c);
        }
        for (;;) {
                now = now_ns();
                if (!w->measuring && now >= w->warm_end)
                        worker__measure(w, now);
                if (!w->stopping && (bench_interrupted || (w->deadline && now >= w->deadline)))
                        w->stopping = true;
                if (w->inflight == 0 || w->live == 0) {
                        /* Nothing in flight: either done, or (count mode
                         * with the warm-up over) no slot may start. */
                        if (w->measuring || w->stopping || w->live == 0)
                                break;
                }
                if (w->inflight > 0 && now - w->last_progress > timeout_ns) {
                        for (unsigned i = 0; i < w->nconns; i++)
                                conn__kill(&w->conns[i], E_TIMEOUT);
                        break;
                }
                int ms = 100;
                if (!w->measuring && w->warm_end > now && (w->warm_end - now) / 1000000 < 100)
                        ms = (int)((w->warm_end - now) / 1000000) + 1;
                if (w->deadline && !w->stopping && w->deadline > now &&
                    (w->deadline - now) / 1000000 < (uint64_t)ms)
                        ms = (int)((w->deadline - now) / 1000000) + 1;
                int n = epoll_wait(w->ep, evs, 256, ms);
                if (n < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < n; i++) {
                        struct conn *c = evs[i].data.ptr;
                        if (c->dead)
                                continue;
                        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                conn__on_readable(c);
                        if (!c->dead && (evs[i].events & EPOLLOUT))
                                conn__flush(c);
                }
        }
        w->t_end = now_ns();
        if (!w->measuring)
                worker__measure(w, w->t_end);
        return NULL;
}

/* ---- set-up ------------------------------------------------------------ */

static int bench_connect(const char *path, int *out, char *err, size_t errlen)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, path, strlen(path));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                snprintf(err, errlen, "socket: %s", strerror(errno));
                return -errno;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;
                snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(e));
                close(fd);
                return -e;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                int e = errno;
                snprintf(err, errlen, "fcntl: %s", strerror(e));
                close(fd);
                return -e;
        }
        *out = fd;
        return 0;
}

static int conn_init(struct conn *c, struct worker *w, int fd, unsigned idx)
{
        const struct bench_opts *o = w->o;
        c->fd = fd;
        c->w = w;
        c->next_msgid = 1;
        c->ring = calloc(o->depth, sizeof(*c->ring));
        c->slots = calloc(o->depth, sizeof(*c->slots));
        if (!c->ring || !c->slots || !msgpack_unpacker_init(&c->unp, BENCH_READ_RESERVE))
                return -ENOMEM;
        msgpack_unpacked_init(&c->res);
        msgpack_sbuffer_init(&c->out);
        msgpack_packer_init(&c->pk, &c->out, conn__write_cb);
        /* Spread the slots over the model ids. */
        for (uint32_t i = 0; i < o->depth; i++)
                c->slots[i].model = o->models > 1 ? (uint32_t)((idx * o->depth + i) % o->models) : 0;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        return 0;
}

static void conn_destroy(struct conn *c)
{
        if (c->fd >= 0)
                close(c->fd);
        if (c->ring) {
                msgpack_unpacked_destroy(&c->res);
                msgpack_unpacker_destroy(&c->unp);
                msgpack_sbuffer_destroy(&c->out);
        }
        free(c->ring);
        free(c->slots);
}

/* ---- reporting --------------------------------------------------------- */

static double us(uint64_t ns)
{
        return (double)ns / 1000.0;
}

static void fmt_lat(char *buf, size_t len, uint64_t ns)
{
        if (ns < 10000)
                snprintf(buf, len, "%.1f us", us(ns));
        else if (ns < 1000000)
                snprintf(buf, len, "%.0f us", us(ns));
        else if (ns < 1000000000)
                snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
        else
                snprintf(buf, len, "%.2f s", (double)ns / 1e9);
}

static void json_lat(FILE *f, const struct hist *h)
{
        fprintf(f,
                "{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}",
                us(hist_quantile(h, 0.50)), us(hist_quantile(h, 0.90)),
                us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)), us(h->max),
                h->n ? us(h->sum / h->n) : 0.0);
}

static void json_str(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\')
                        fprintf(f, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(f, "\\u%04x", ch);
                else
                        fputc(ch, f);
        }
        fputc('"', f);
}

/* CPU seconds this process used so far, all threads. */
static double self_cpu(void)
{
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return 0;
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void report(const struct bench_opts *o, const struct counters *k, double elapsed,
                   double cpu, bool interrupted)
{
        struct hist *all = calloc(1, sizeof(*all));
        uint64_t errors = 0;
        if (!all) {
                fprintf(stderr, "outcome-bench: out of memory\n");
                return;
        }
        for (int m = 0; m < M__COUNT; m++)
                hist_merge(all, &k->hist[m]);
        for (int e = 1; e < E__COUNT; e++)
                errors += k->errors[e];
        double rps = elapsed > 0 ? (double)all->n / elapsed : 0;
        double cps = elapsed > 0 ? (double)k->cycles / elapsed : 0;
        const char *workload = o->workload == M_CYCLE ? "cycle" : method_names[o->workload];

        if (o->json) {
                printf("{\"tool\":\"outcome-bench\",\"version\":\"%s\",\"socket\":", OUTCOMED_VERSION);
                json_str(stdout, o->socket);
                printf(",\"workload\":\"%s\",\"connections\":%u,\"pipeline\":%u,\"threads\":%u,"
                       "\"warmup_s\":%.3f,\"elapsed_s\":%.6f,\"interrupted\":%s,"
                       "\"client_cpu_s\":%.3f,\"requests\":%" PRIu64 ",\"requests_per_s\":%.1f",
                       workload, o->conns, o->depth, o->threads, o->warmup, elapsed,
                       interrupted ? "true" : "false", cpu, all->n, rps);
                if (o->workload == M_CYCLE)
                        printf(",\"cycles\":%" PRIu64 ",\"cycles_per_s\":%.1f,\"cycles_failed\":%" PRIu64,
                               k->cycles, cps, k->cycles_failed);
                printf(",\"latency_us\":");
                json_lat(stdout, all);
                printf(",\"methods\":{");
                bool first = true;
                for (int m = 0; m < M__COUNT; m++) {
                        if (k->hist[m].n == 0)
                                continue;
                        printf("%s\"%s\":{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
                               ",\"latency_us\":",
                               first ? "" : ",", method_names[m], k->hist[m].n, k->method_errors[m]);
                        json_lat(stdout, &k->hist[m]);
                        printf("}");
                        first = false;
                }
                printf("},\"errors_total\":%" PRIu64 ",\"errors\":{", errors);
                first = true;
                for (int e = 1; e < E__COUNT; e++) {
                        if (!k->errors[e])
                                continue;
                        printf("%s\"%s\":%" PRIu64, first ? "" : ",", bench_error_name(e), k->errors[e]);
                        first = false;
                }
                printf("},\"first_error_messages\":{");
                first = true;
                for (int e = 1; e < E__COUNT; e++) {
                        if (!k->errors[e] || !k->first[e][0])
                                continue;
                        printf("%s\"%s\":", first ? "" : ",", bench_error_name(e));
                        json_str(stdout, k->first[e]);
                        first = false;
                }
                printf("}}\n");
                free(all);
                return;
        }

        if (o->workload == M_CYCLE)
                printf("workload     router cycle (start -> complete -> outcome %s)\n", o->kind);
        else
                printf("workload     %s\n", workload);
        printf("socket       %s\n", o->socket);
        printf("load         %u connection%s x %u in flight, %u thread%s\n", o->conns,
               o->conns == 1 ? "" : "s", o->depth, o->threads, o->threads == 1 ? "" : "s");
        printf("measured     %.2f s%s", elapsed, interrupted ? " (interrupted)" : "");
        if (o->warmup > 0)
                printf(", after %.1f s of warm-up", o->warmup);
        printf("\n");
        /* Near a whole core per thread, the client may be the limit. */
        printf("client CPU   %.2f s, %.0f%% of %u core%s%s\n\n", cpu,
               elapsed > 0 ? cpu * 100 / (elapsed + o->warmup) / o->threads : 0.0, o->threads,
               o->threads == 1 ? "" : "s",
               elapsed > 0 && cpu / (elapsed + o->warmup) / o->threads > 0.9
                       ? " (busy: the client may be the limit; try -t 2)"
                       : "");
        printf("%-10s %12s %12s %10s %10s %10s %10s %8s\n", "METHOD", "REQUESTS", "REQ/S", "P50",
               "P99", "P99.9", "MAX", "ERRORS");
        for (int m = 0; m <= M__COUNT; m++) {
                const struct hist *h = m < M__COUNT ? &k->hist[m] : all;
                if (m < M__COUNT && h->n == 0)
                        continue;
                char p50[24], p99[24], p999[24], mx[24];
                fmt_lat(p50, sizeof(p50), hist_quantile(h, 0.50));
                fmt_lat(p99, sizeof(p99), hist_quantile(h, 0.99));
                fmt_lat(p999, sizeof(p999), hist_quantile(h, 0.999));
                fmt_lat(mx, sizeof(mx), h->max);
                printf("%-10s %12" PRIu64 " %12.0f %10s %10s %10s %10s %8" PRIu64 "\n",
                       m < M__COUNT ? method_names[m] : "all", h->n,
                       elapsed > 0 ? (double)h->n / elapsed : 0.0, p50, p99, p999, mx,
                       m < M__COUNT ? k->method_errors[m] : errors);
        }
        if (o->workload == M_CYCLE)
                printf("\ncycles       %" PRIu64 " done, %.0f/s; %" PRIu64 " cut short by an error\n",
                       k->cycles, cps, k->cycles_failed);
        printf("%serrors       ", o->workload == M_CYCLE ? "" : "\n");
        if (errors == 0) {
                printf("none\n");
        } else {
                bool first = true;
                for (int e = 1; e < E__COUNT; e++) {
                        if (!k->errors[e])
                                continue;
                        printf("%s%s %" PRIu64, first ? "" : ", ", bench_error_name(e), k->errors[e]);
                        first = false;
                }
                printf("\n");
                for (int e = 1; e < E__COUNT; e++)
                        if (k->errors[e] && k->first[e][0])
                                printf("  first %s: %s\n", bench_error_name(e), k->first[e]);
        }
        free(all);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *f)
{
        fprintf(f,
"Usage: outcome-bench [OPTION]...\n"
"Put load on an outcomed daemon and report its throughput, latency percentiles\n"
"and errors.  Opens N connections, keeps P requests in flight on each, and runs\n"
"for a time or a count.\n"
"\n"
"Workload (default: --cycle):\n"
"      --cycle            the router cycle: start, then complete (latency_ms,\n"
"                         input_tokens, output_tokens), then outcome (kind,\n"
"                         confidence), each sent when the reply to the previous\n"
"                         one arrives.  P in flight means P concurrent cycles per\n"
"                         connection.  Every request counts as a request; a cycle\n"
"                         counts once its outcome is answered\n"
"  -m, --method NAME      one method, again and again: ping, stats, rank (the\n"
"                         --models ids, at most 16, as candidates), query (of the\n"
"                         --model profile), or start (a trace stays pending for\n"
"                         each start: it fills the daemon's pending traces, whose\n"
"                         limit is 1,000,000 by default, and they are written to\n"
"                         its database)\n"
"      --model ID         model id of the cycle's starts (default outcome-bench)\n"
"      --models K         spread the cycles over K model ids, ID-0 .. ID-(K-1)\n"
"      --task TASK        task of the starts (default generate)\n"
"      --kind KIND        kind of the outcomes (default accepted)\n"
"      --confidence C     confidence of the outcomes (default 0.9)\n"
"      --reason TEXT      send this reason with each start (default: none)\n"
"      --domain NAME      starts and ranks name a domain (default: none)\n"
"      --domains K        spread them over K domains, NAME-0 .. NAME-(K-1)\n"
"      --cost-weight W    rank's cost_weight (default 0)\n"
"\n"
"Load:\n"
"  -c, --connections N    connections (default 1)\n"
"  -P, --pipeline P       requests in flight on each connection (default 1)\n"
"  -t, --threads T        client threads sharing the connections (default 1)\n"
"  -d, --duration SECS    measure for this long (default 10, unless -n is given)\n"
"  -n, --requests N       measure this many requests, over all connections, then\n"
"                         stop; in --cycle mode a cycle starts only while 3 remain,\n"
"                         so the count is rounded down to a multiple of 3.  With\n"
"                         both -n and -d the first limit reached ends the run\n"
"  -w, --warmup SECS      run this long first without measuring (default 0)\n"
"      --timeout SECS     give up when no reply came for this long (default 10);\n"
"                         the requests left are counted as 'timeout' errors\n"
"\n"
"Output:\n"
"      --json             print one line of JSON instead of the table\n"
"  -s, --socket PATH      the daemon's socket. Default: $OUTCOMED_SOCKET, else the\n"
"                         first that exists of $XDG_RUNTIME_DIR/outcomed.sock and\n"
"                         /run/outcomed/outcomed.sock\n"
"  -h, --help             print this help and exit\n"
"  -V, --version          print the version and exit\n"
"\n"
"What is measured:\n"
"  requests/s   replies received / measured time; cycles/s likewise for cycles.\n"
"               The measured time runs from the end of the warm-up to the last\n"
"               reply: when the time is up no new cycle starts, but the ones\n"
"               under way finish, so that no trace is left pending.\n"
"  latency      per request, from the moment it is written to the socket to the\n"
"               read that brings its reply (p50, p99, p99.9, max; 1.6%%\n"
"               resolution).  With P > 1 this includes the time a request waits\n"
"               behind the others on its connection.\n"
"  errors       replies with an error, by the contract's code (bad_request,\n"
"               unknown_trace, overloaded...), and on this side:\n"
"               connection_closed (requests lost when the daemon closed a\n"
"               connection), bad_reply (not a well-formed reply, or out of\n"
"               order) and timeout.  A cycle whose step fails is dropped (its\n"
"               trace may stay pending) and a new one starts in its place.\n"
"  client CPU   this program's own CPU time: near 100%% of a core per thread,\n"
"               the client, not the daemon, may be the limit.\n"
"\n"
"The cycle writes real data: the profiles of the --model ids gain calls and\n"
"outcomes, kept in the daemon's database.  Run it against a daemon of its own\n"
"(outcomed --socket /tmp/b.sock --db /tmp/b.db) to keep your profiles clean.\n"
"Each thread is one epoll loop; one is enough to load a daemon that has one\n"
"core, use -t 2 or more when the client's own CPU is the limit.\n"
"\n"
"Examples:\n"
"  outcome-bench -c 50 -P 16 -d 10             50 routers, 16 cycles each at once\n"
"  outcome-bench -c 1 -n 100000 --method ping   round trips of one client\n"
"  outcome-bench -c 50 -w 2 --json | jq .latency_us.p99\n"
"\n"
"Exit status: 0 when every request was answered without error, 1 when some were\n"
"not (errors are listed), 2 on a usage error, 3 when the daemon cannot be\n"
"reached.\n");
}

static int parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
                fprintf(stderr, "outcome-bench: %s: '%s' is not a whole number in [%llu, %llu]\n",
                        opt, s, (unsigned long long)min, (unsigned long long)max);
                return -EINVAL;
        }
        *out = v;
        return 0;
}

static int parse_secs(const char *opt, const char *s, double min, double *out)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v < min || v > 86400.0 * 365) {
                fprintf(stderr, "outcome-bench: %s: '%s' is not a number of seconds >= %g\n", opt, s,
                        min);
                return -EINVAL;
        }
        *out = v;
        return 0;
}

/* Returns 0, 1 when the program should exit 0 (help, version), or 2. */
static int parse_args(int argc, char **argv, struct bench_opts *o, const char **socket)
{
        enum { O_CYCLE = 256, O_MODEL, O_MODELS, O_TASK, O_KIND, O_CONF, O_REASON, O_DOMAIN,
               O_DOMAINS, O_COST_WEIGHT, O_JSON,
               O_TIMEOUT };
        static const struct option opts[] = {
                { "cycle", no_argument, NULL, O_CYCLE },
                { "method", required_argument, NULL, 'm' },
                { "model", required_argument, NULL, O_MODEL },
                { "models", required_argument, NULL, O_MODELS },
                { "task", required_argument, NULL, O_TASK },
                { "kind", required_argument, NULL, O_KIND },
                { "confidence", required_argument, NULL, O_CONF },
                { "reason", required_argument, NULL, O_REASON },
                { "domain", required_argument, NULL, O_DOMAIN },
                { "domains", required_argument, NULL, O_DOMAINS },
                { "cost-weight", required_argument, NULL, O_COST_WEIGHT },
                { "connections", required_argument, NULL, 'c' },
                { "pipeline", required_argument, NULL, 'P' },
                { "threads", required_argument, NULL, 't' },
                { "duration", required_argument, NULL, 'd' },
                { "requests", required_argument, NULL, 'n' },
                { "warmup", required_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, O_TIMEOUT },
                { "json", no_argument, NULL, O_JSON },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { 0 },
        };
        bool have_duration = false;
        uint64_t v;
        int ch;

        while ((ch = getopt_long(argc, argv, "m:c:P:t:d:n:w:s:hV", opts, NULL)) != -1) {
                switch (ch) {
                case O_CYCLE: o->workload = M_CYCLE; break;
                case 'm': {
                        int found = -1;
                        for (int m = M_PING; m < M__COUNT; m++)
                                if (strcmp(optarg, method_names[m]) == 0)
                                        found = m;
                        if (strcmp(optarg, "start") == 0)
                                found = M_START;
                        if (strcmp(optarg, "cycle") == 0)
                                found = M_CYCLE;
                        if (found < 0) {
                                fprintf(stderr, "outcome-bench: --method: '%s' is not one of "
                                                "ping, stats, query, rank, start\n", optarg);
                                return 2;
                        }
                        o->workload = found;
                        break;
                }
                case O_MODEL: o->model = optarg; break;
                case O_MODELS:
                        if (parse_uint("--models", optarg, 1, 1000000, &v) < 0)
                                return 2;
                        o->models = (unsigned)v;
                        break;
                case O_TASK: o->task = optarg; break;
                case O_DOMAIN:
                        if (!*optarg || strlen(optarg) > 100) {
                                fprintf(stderr, "outcome-bench: --domain: 1 to 100 bytes\n");
                                return 2;
                        }
                        o->domain = optarg;
                        break;
                case O_DOMAINS:
                        if (parse_uint("--domains", optarg, 1, 10000000, &v) < 0)
                                return 2;
                        o->domains = (unsigned)v;
                        break;
                case O_COST_WEIGHT: {
                        char *end;
                        o->cost_weight = strtod(optarg, &end);
                        if (end == optarg || *end || !(o->cost_weight >= 0 && o->cost_weight <= 1e6)) {
                                fprintf(stderr, "outcome-bench: --cost-weight: '%s' is not a "
                                                "number >= 0\n", optarg);
                                return 2;
                        }
                        break;
                }
                case O_KIND: o->kind = optarg; break;
                case O_CONF: {
                        char *end;
                        o->confidence = strtod(optarg, &end);
                        if (end == optarg || *end || !(o->confidence >= 0 && o->confidence <= 1)) {
                                fprintf(stderr, "outcome-bench: --confidence: '%s' is not a "
                                                "number in [0, 1]\n", optarg);
                                return 2;
                        }
                        break;
                }
                case O_REASON: o->reason = optarg; break;
                case 'c':
                        if (parse_uint("--connections", optarg, 1, BENCH_MAX_CONNS, &v) < 0)
                                return 2;
                        o->conns = (unsigned)v;
                        break;
                case 'P':
                        if (parse_uint("--pipeline", optarg, 1, BENCH_MAX_DEPTH, &v) < 0)
                                return 2;
                        o->depth = (unsigned)v;
                        break;
                case 't':
                        if (parse_uint("--threads", optarg, 1, BENCH_MAX_THREADS, &v) < 0)
                                return 2;
                        o->threads = (unsigned)v;
                        break;
                case 'd':
                        if (parse_secs("--duration", optarg, 0.001, &o->duration) < 0)
                                return 2;
                        have_duration = true;
                        break;
                case 'n':
                        if (parse_uint("--requests", optarg, 1, UINT64_MAX / 2, &o->count) < 0)
                                return 2;
                        break;
                case 'w':
                        if (parse_secs("--warmup", optarg, 0, &o->warmup) < 0)
                                return 2;
                        break;
                case O_TIMEOUT:
                        if (parse_secs("--timeout", optarg, 0.001, &o->timeout) < 0)
                                return 2;
                        break;
                case O_JSON: o->json = true; break;
                case 's': *socket = optarg; break;
                case 'h': usage(stdout); return 1;
                case 'V': printf("outcome-bench %s\n", OUTCOMED_VERSION); return 1;
                default:
                        fprintf(stderr, "Try 'outcome-bench --help'.\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "outcome-bench: unexpected argument '%s'\n"
                                "Try 'outcome-bench --help'.\n", argv[optind]);
                return 2;
        }
        if (!have_duration && o->count == 0)
                o->duration = 10;
        if (o->threads > o->conns)
                o->threads = o->conns;
        if (o->workload == M_CYCLE && o->count && o->count < 3) {
                fprintf(stderr, "outcome-bench: --requests: a cycle is 3 requests\n");
                return 2;
        }
        if (o->model[0] == '\0' || o->task[0] == '\0' || o->kind[0] == '\0') {
                fprintf(stderr, "outcome-bench: --model, --task and --kind may not be empty\n");
                return 2;
        }
        return 0;
}

static int make_model_ids(const struct bench_opts *o, char ***ids, uint32_t **lens)
{
        char **v = calloc(o->models, sizeof(*v));
        uint32_t *l = calloc(o->models, sizeof(*l));
        if (!v || !l)
                goto oom;
        for (unsigned i = 0; i < o->models; i++) {
                int n = o->models > 1 ? asprintf(&v[i], "%s-%u", o->model, i)
                                      : asprintf(&v[i], "%s", o->model);
                if (n < 0) {
                        v[i] = NULL;
                        goto oom;
                }
                l[i] = (uint32_t)n;
        }
        *ids = v;
        *lens = l;
        return 0;
oom:
        for (unsigned i = 0; v && i < o->models; i++)
                free(v[i]);
        free(v);
        free(l);
        return -ENOMEM;
}

int main(int argc, char **argv)
{
        struct bench_opts o = {
                .conns = 1,
                .depth = 1,
                .threads = 1,
                .timeout = 10,
                .workload = M_CYCLE,
                .model = "outcome-bench",
                .models = 1,
                .domains = 1,
                .task = "generate",
                .kind = "accepted",
                .confidence = 0.9,
        };
        const char *sock = NULL;
        char err[512];
        struct worker *ws = NULL;
        char **model_ids = NULL;
        uint32_t *model_lens = NULL;
        int rc = parse_args(argc, argv, &o, &sock);
        if (rc != 0)
                return rc == 1 ? 0 : rc;
        if (oc_socket_path(sock, o.socket, sizeof(o.socket), err, sizeof(err)) < 0) {
                fprintf(stderr, "outcome-bench: %s\n", err);
                return 3;
        }
        if (make_model_ids(&o, &model_ids, &model_lens) < 0) {
                fprintf(stderr, "outcome-bench: out of memory\n");
                return 1;
        }

        struct sigaction sa = { .sa_handler = bench_on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        rc = 1;
        ws = calloc(o.threads, sizeof(*ws));
        if (!ws)
                goto oom;
        for (unsigned t = 0; t < o.threads; t++) {
                struct worker *w = &ws[t];
                w->o = &o;
                w->model_ids = model_ids;
                w->model_lens = model_lens;
                w->ep = -1;
                w->nconns = o.conns / o.threads + (t < o.conns % o.threads ? 1 : 0);
                w->conns = calloc(w->nconns, sizeof(*w->conns));
                for (unsigned i = 0; w->conns && i < w->nconns; i++)
                        w->conns[i].fd = -1;
                w->ep = epoll_create1(EPOLL_CLOEXEC);
                if (!w->conns || w->ep < 0)
                        goto oom;
                /* The count is split over the threads; a cycle takes 3. */
                uint64_t share = o.count / o.threads + (t < o.count % o.threads ? 1 : 0);
                w->budget = share;
        }
        /* Connect everything before the clock starts. */
        for (unsigned i = 0; i < o.conns; i++) {
                struct worker *w = &ws[i % o.threads];
                struct conn *c = &w->conns[i / o.threads];
                int fd = -1;
                int r = bench_connect(o.socket, &fd, err, sizeof(err));
                if (r < 0) {
                        fprintf(stderr, "outcome-bench: %s%s\n", err,
                                i > 0 ? " (after some connections succeeded)" : "");
                        rc = 3;
                        goto out;
                }
                if (conn_init(c, w, fd, i) < 0) {
                        close(fd);
                        c->fd = -1;
                        goto oom;
                }
                w->live++;
        }
        uint64_t t0 = now_ns();
        uint64_t warm_end = t0 + (uint64_t)(o.warmup * 1e9);
        for (unsigned t = 0; t < o.threads; t++) {
                ws[t].warm_end = warm_end;
                ws[t].deadline = o.duration > 0 ? warm_end + (uint64_t)(o.duration * 1e9) : 0;
        }
        unsigned started = 0;
        for (unsigned t = 1; t < o.threads; t++) {
                if (pthread_create(&ws[t].thread, NULL, worker_run, &ws[t]) != 0) {
                        fprintf(stderr, "outcome-bench: cannot start a thread\n");
                        bench_interrupted = 1;
                        break;
                }
                started = t;
        }
        worker_run(&ws[0]);
        for (unsigned t = 1; t <= started; t++)
                pthread_join(ws[t].thread, NULL);

        struct counters *k = calloc(1, sizeof(*k));
        if (!k)
                goto oom;
        uint64_t begin = UINT64_MAX, end = 0;
        for (unsigned t = 0; t < o.threads; t++) {
                const struct worker *w = &ws[t];
                for (int m = 0; m < M__COUNT; m++) {
                        hist_merge(&k->hist[m], &w->k.hist[m]);
                        k->method_errors[m] += w->k.method_errors[m];
                }
                for (int e = 0; e < E__COUNT; e++) {
                        k->errors[e] += w->k.errors[e];
                        if (!k->first[e][0])
                                memcpy(k->first[e], w->k.first[e], sizeof(k->first[e]));
                }
                k->cycles += w->k.cycles;
                k->cycles_failed += w->k.cycles_failed;
                if (w->t_begin < begin)
                        begin = w->t_begin;
                if (w->t_end > end)
                        end = w->t_end;
        }
        double elapsed = end > begin ? (double)(end - begin) / 1e9 : 0;
        report(&o, k, elapsed, self_cpu(), bench_interrupted != 0);
        rc = 0;
        for (int e = 1; e < E__COUNT; e++)
                if (k->errors[e])
                        rc = 1;
        free(k);
        goto out;
oom:
        fprintf(stderr, "outcome-bench: out of memory\n");
        rc = 1;
out:
        for (unsigned t = 0; ws && t < o.threads; t++) {
                for (unsigned i = 0; ws[t].conns && i < ws[t].nconns; i++)
                        conn_destroy(&ws[t].conns[i]);
                free(ws[t].conns);
                if (ws[t].ep >= 0)
                        close(ws[t].ep);
        }
        free(ws);
        for (unsigned i = 0; model_ids && i < o.models; i++)
                free(model_ids[i]);
        free(model_ids);
        free(model_lens);
        return rc;
}

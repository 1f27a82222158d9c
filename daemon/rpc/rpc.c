/* rpc.c - the method table and its handlers.
 *
 * Each handler declares its named arguments as a table (limits taken from
 * the configuration), lets proto_args_decode check them and name the bad
 * field, turns them into tracker calls, and packs the result.  A handler
 * packs its reply only once nothing can fail any more, so an error reply
 * never follows half a result.  Strings handed to the tracker are copied,
 * NUL-terminated, into a per-request arena freed when the request ends.
 */
#include "rpc.h"

#include "cleanup.h"
#include "journal.h"
#include "metrics.h"
#include "rank.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
        RPC_MUTATES = 1 << 0,  /* changes state: the store must see it */
        RPC_STATELESS = 1 << 1, /* its answer holds whatever happens to the state */
};

struct rpc__chunk {
        struct rpc__chunk *next;
        _Alignas(max_align_t) char data[];
};

struct rpc_req {
        struct rpc_env *env;
        const struct proto_msg *m;
        const struct config_limits *lim;
        msgpack_packer *pk;
        uint32_t uid;
        uint64_t now;
        struct rpc__chunk *arena; /* what did not fit in `small` */
        char *small;              /* the first bytes of the arena, on the stack */
        size_t small_used, small_cap;
        enum proto_error code; /* what was answered */
        const struct rpc_defer *defer; /* NULL: the reply cannot wait */
        bool deferred;         /* the handler took a place for a later reply */
};

typedef int (*rpc_handler)(struct rpc_req *r);

struct rpc_method {
        const char *name;
        rpc_handler handler;
        unsigned flags;
};

/* ---- helpers ----------------------------------------------------------- */

static int rpc__error(struct rpc_req *r, enum proto_error code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Pack an error reply; returns -1 for the handler to return. */
static int rpc__error(struct rpc_req *r, enum proto_error code, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        proto_pack_error(r->pk, r->m->msgid, code, msg);
        r->code = code;
        return -1;
}

/* Map a tracker errno to the contract's code and a message. */
static int rpc__tracker_error(struct rpc_req *r, int err, const char *trace_id)
{
        switch (err) {
        case -ENOENT:
                rpc__error(r, PROTO_UNKNOWN_TRACE, "trace_id: '%s' is not pending", trace_id);
                break;
        case -EEXIST:
                rpc__error(r, PROTO_DUPLICATE_TRACE,
                           "trace_id: '%s' is pending for another model or task", trace_id);
                break;
        case -EALREADY:
                rpc__error(r, PROTO_ALREADY_COMPLETED, "trace_id: '%s' is already completed",
                           trace_id);
                break;
        case -EPERM:
                rpc__error(r, PROTO_FORBIDDEN, "trace_id: '%s' was started by another user",
                           trace_id);
                break;
        case -ENOSPC:
                /* Only start adds a pending trace, and it checks that limit first. */
                if (r->m->method.len == 5 && memcmp(r->m->method.ptr, "start", 5) == 0 &&
                    r->lim->pending && tracker_pending_count(r->env->tracker) >= r->lim->pending)
                        r->env->counters.overloaded_pending_total++;
                else
                        r->env->counters.overloaded_models_total++;
                rpc__error(r, PROTO_OVERLOADED,
                           "limit reached: %zu of %llu models, %zu of %llu pending traces",
                           tracker_profile_count(r->env->tracker),
                           (unsigned long long)r->lim->models,
                           tracker_pending_count(r->env->tracker),
                           (unsigned long long)r->lim->pending);
                break;
        default:
                rpc__error(r, PROTO_INTERNAL, "internal error: %s", strerror(-err));
                break;
        }
        return -1;
}

static int rpc__args(struct rpc_req *r, const struct proto_arg *spec, size_t n,
                     struct proto_val *vals)
{
        char err[512];
        if (proto_args_decode(r->m->args, spec, n, vals, "", err, sizeof(err)) < 0) {
                rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
                return -1;
        }
        return 0;
}

/* size bytes of the request's arena, aligned for any type: from the
 * request's small buffer on the stack while it lasts (a router's request
 * needs a few hundred bytes), else a malloc'ed chunk freed with it. */
static void *rpc__alloc_raw(struct rpc_req *r, size_t size)
{
        size_t at = (r->small_used + 15) & ~(size_t)15;
        if (at <= r->small_cap && size <= r->small_cap - at) {
                r->small_used = at + size;
                return r->small + at;
        }
        struct rpc__chunk *c = malloc(sizeof(*c) + size);
        if (!c)
                return NULL;
        c->next = r->arena;
        r->arena = c;
        return c->data;
}

/* A NUL-terminated copy of s in the request's arena (NULL when unset). */
static char *rpc__cstr(struct rpc_req *r, const struct proto_val *v)
{
        if (!v->set)
                return NULL;
        char *p = rpc__alloc_raw(r, v->s.len + 1);
        if (!p)
                return NULL;
        if (v->s.len) /* an empty str may have no pointer */
                memcpy(p, v->s.ptr, v->s.len);
        p[v->s.len] = '\0';
        return p;
}

static void *rpc__alloc(struct rpc_req *r, size_t size)
{
        void *p = rpc__alloc_raw(r, size);
        if (p)
                memset(p, 0, size);
        return p;
}

#define RPC_OOM(r) rpc__error((r), PROTO_INTERNAL, "out of memory")

/* Journal a change the tracker has made.  Without a journal (unit tests)
 * nothing is recorded. */
static int rpc__record(struct rpc_req *r, struct journal_entry *e)
{
        const struct rpc_journal *j = &r->env->journal;
        e->at = r->now;
        e->uid = r->uid;
        if (!j->record || j->record(j->data, e) == 0)
                return 0;
        return rpc__error(r, PROTO_INTERNAL,
                          "out of memory recording the change; it may be lost at a restart");
}
#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

static void rpc__pack_key(msgpack_packer *pk, const char *key)
{
        proto_pack_cstr(pk, key);
}

static void rpc__pack_trace_id_result(struct rpc_req *r, const char *id)
{
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        proto_pack_kv_str(r->pk, "trace_id", id);
}

static int rpc__task(struct rpc_req *r, const struct proto_val *v, enum tracker_task *task)
{
        if (tracker_task_parse(v->s.ptr, v->s.len, task) == 0)
                return 0;
        rpc__error(r, PROTO_BAD_REQUEST,
                   "task: unknown task '%.*s' (one of generate, embed, classify, code, reasoning)",
                   (int)(v->s.len > 64 ? 64 : v->s.len), v->s.ptr);
        return -1;
}

/* A domain: 1..PROTO_DOMAIN_MAX bytes of UTF-8 (checked by the decoder)
 * with no control characters; *out is a NUL-terminated copy. */
static int rpc__domain(struct rpc_req *r, const struct proto_val *v, const char *field,
                       const char **out)
{
        *out = NULL;
        if (!v->set)
                return 0;
        if (!proto_domain_ok(v->s.ptr, v->s.len))
                return rpc__error(r, PROTO_BAD_REQUEST,
                                  "%s: must be 1 to %u bytes of UTF-8 without control characters",
                                  field, PROTO_DOMAIN_MAX);
        if (!(*out = rpc__cstr(r, v)))
                return RPC_OOM(r);
        return 0;
}

/* A repository-relative path: not absolute, no "..", no empty part. */
static bool rpc__relative_path_ok(const char *p)
{
        if (p[0] == '/' || p[0] == '\0')
                return false;
        for (const char *s = p; *s;) {
                const char *e = strchr(s, '/');
                size_t n = e ? (size_t)(e - s) : strlen(s);
                if (n == 0 || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
                s += n + (e ? 1 : 0);
        }
        return true;
}

/* ---- start ------------------------------------------------------------- */

/* A start's repo and files: only a code trace names them, files need a
 * repo, and the repo is an absolute path to a watched repository (*repo:
 * its configured path, malloc'ed). */
static int rpc__start_repo(struct rpc_req *r, const struct proto_val *rv,
                           const struct proto_val *fv, enum tracker_task task, char **repo)
{
        if ((rv->set || fv->set) && task != TASK_CODE) {
                rpc__error(r, PROTO_BAD_REQUEST, "%s: only code traces name a repository",
                           rv->set ? "repo" : "files");
                return -1;
        }
        if (fv->set && !rv->set) {
                rpc__error(r, PROTO_BAD_REQUEST, "files: needs repo");
                return -1;
        }
        if (!rv->set)
                return 0;
        const char *path = rpc__cstr(r, rv);
        if (!path)
                return RPC_OOM(r);
        if (path[0] != '/') {
                rpc__error(r, PROTO_BAD_REQUEST, "repo: must be an absolute path");
                return -1;
        }
        if (!config_repo_watched(r->env->cfg, path, repo)) {
                rpc__error(r, PROTO_BAD_REQUEST,
                           "repo: '%.200s' is not a watched repository (add it as a "
                           "[git] repo line of the configuration)",
                           path);
                return -1;
        }
        return 0;
}

/* A start's files: relative paths inside the repository, into s. */
static int rpc__start_files(struct rpc_req *r, const msgpack_object *arr,
                            struct tracker_start *s)
{
        uint32_t n = arr->via.array.size;
        const char **files = rpc__alloc(r, (n + 1) * sizeof(char *));
        if (!files)
                return RPC_OOM(r);
        const struct proto_arg fspec = { "files[]", PROTO_ARG_STR, true, 1, r->lim->path_bytes };
        for (uint32_t i = 0; i < n; i++) {
                struct proto_val fv;
                char err[512], prefix[32];
                snprintf(prefix, sizeof(prefix), "files[%u]", i);
                struct proto_arg fs = fspec;
                fs.name = prefix;
                if (proto_arg_check(&arr->via.array.ptr[i], &fs, &fv, "", err, sizeof(err)) < 0) {
                        rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
                        return -1;
                }
                if (!(files[i] = rpc__cstr(r, &fv)))
                        return RPC_OOM(r);
                if (!rpc__relative_path_ok(files[i])) {
                        rpc__error(r, PROTO_BAD_REQUEST,
                                   "%s: must be a relative path inside the repository "
                                   "(no leading /, no ..)",
                                   prefix);
                        return -1;
                }
        }
        s->files = files;
        s->nfiles = n;
        return 0;
}

static int rpc__start(struct rpc_req *r)
{
        const struct config_limits *L = r->lim;
        const struct proto_arg spec[] = {
                { "model", PROTO_ARG_STR, true, 1, L->model_bytes },
                { "task", PROTO_ARG_STR, true, 0, 64 },
                { "reason", PROTO_ARG_STR, false, 0, L->text_bytes },
                { "trace_id", PROTO_ARG_TRACE_ID, false, 1, PROTO_TRACE_ID_MAX },
                { "repo", PROTO_ARG_STR, false, 1, L->path_bytes },
                { "files", PROTO_ARG_ARRAY, false, 0, L->files },
                { "domain", PROTO_ARG_STR, false, 0, 4 * PROTO_DOMAIN_MAX },
        };
        struct proto_val v[NARGS(spec)];
        struct tracker_start s = { .uid = r->uid, .now = r->now };
        CLEANUP_FREE char *repo = NULL;
        const char *id;

        if (rpc__args(r, spec, NARGS(spec), v) < 0 || rpc__task(r, &v[1], &s.task) < 0 ||
            rpc__domain(r, &v[6], "domain", &s.domain) < 0 ||
            rpc__start_repo(r, &v[4], &v[5], s.task, &repo) < 0 ||
            (v[5].set && rpc__start_files(r, v[5].o, &s) < 0))
                return -1;
        /* The base: HEAD when the suggestion was made, so that commits made
         * after it count.  None when the repository has no commit yet, or
         * cannot be read now (the scanner logs why). */
        char base[48];
        if (repo && r->env->git.head &&
            r->env->git.head(r->env->git.data, repo, base, sizeof(base)) == 0)
                s.base = base;
        s.model = rpc__cstr(r, &v[0]);
        s.reason = v[2].set ? rpc__cstr(r, &v[2]) : "";
        s.trace_id = rpc__cstr(r, &v[3]);
        s.repo = repo;
        if (!s.model || !s.reason || (v[3].set && !s.trace_id))
                return RPC_OOM(r);
        int rc = tracker_start(r->env->tracker, &s, &id);
        if (rc < 0) {
                rpc__tracker_error(r, rc, s.trace_id ? s.trace_id : "");
                return rc;
        }
        struct journal_entry e = {
                .op = JOURNAL_START, .trace_id = id, .model = s.model, .task = s.task,
                .reason = s.reason, .repo = s.repo, .files = s.files, .nfiles = s.nfiles,
                .base = s.base, .domain = s.domain,
        };
        if ((rc = rpc__record(r, &e)) < 0)
                return rc;
        rpc__pack_trace_id_result(r, id);
        return 0;
}

/* ---- complete, fail ---------------------------------------------------- */

static int rpc__complete(struct rpc_req *r)
{
        const struct config_limits *L = r->lim;
        const struct proto_arg spec[] = {
                { "trace_id", PROTO_ARG_TRACE_ID, true, 1, PROTO_TRACE_ID_MAX },
                { "latency_ms", PROTO_ARG_MS, true, 0, 0 },
                { "input_tokens", PROTO_ARG_U32, false, 0, 0 },
                { "output_tokens", PROTO_ARG_U32, false, 0, 0 },
                { "output", PROTO_ARG_STR, false, 0, L->output_bytes },
        };
        struct proto_val v[NARGS(spec)];
        if (rpc__args(r, spec, NARGS(spec), v) < 0)
                return -1;
        struct tracker_complete c = {
                .trace_id = rpc__cstr(r, &v[0]),
                .latency_ms = v[1].u,
                .input_tokens = v[2].u,
                .output_tokens = v[3].u,
                .uid = r->uid,
                .now = r->now,
        };
        if (!c.trace_id)
                return RPC_OOM(r);
        /* The output is kept for code traces only: git judges it later. */
        const struct tracker_trace *tr = tracker_trace_get(r->env->tracker, c.trace_id);
        if (v[4].set && tr && tr->task == TASK_CODE && !(c.output = rpc__cstr(r, &v[4])))
                return RPC_OOM(r);
        int rc = tracker_complete(r->env->tracker, &c);
        if (rc < 0)
                return rpc__tracker_error(r, rc, c.trace_id);
        struct journal_entry e = {
                .op = JOURNAL_COMPLETE, .trace_id = c.trace_id, .latency_ms = c.latency_ms,
                .input_tokens = c.input_tokens, .output_tokens = c.output_tokens,
                .output = c.output,
        };
        if (rpc__record(r, &e) < 0)
                return -1;
        rpc__pack_trace_id_result(r, c.trace_id);
        return 0;
}

static int rpc__fail(struct rpc_req *r)
{
        const struct proto_arg spec[] = {
                { "trace_id", PROTO_ARG_TRACE_ID, true, 1, PROTO_TRACE_ID_MAX },
                { "error", PROTO_ARG_STR, false, 0, r->lim->text_bytes },
        };
        struct proto_val v[NARGS(spec)];
        if (rpc__args(r, spec, NARGS(spec), v) < 0)
                return -1;
        char *id = rpc__cstr(r, &v[0]);
        if (!id)
                return RPC_OOM(r);
        int rc = tracker_fail(r->env->tracker, id, r->uid, r->now);
        if (rc < 0)
                return rpc__tracker_error(r, rc, id);
        struct journal_entry e = { .op = JOURNAL_FAIL, .trace_id = id,
                                   .error = v[1].set ? rpc__cstr(r, &v[1]) : NULL };
        if (rpc__record(r, &e) < 0)
                return -1;
        rpc__pack_trace_id_result(r, id);
        return 0;
}

/* ---- outcome ----------------------------------------------------------- */

static void rpc__pack_result(msgpack_packer *pk, const struct tracker_result *res)
{
        msgpack_pack_map(pk, res->deferred ? 5 : 4);
        proto_pack_kv_str(pk, "trace_id", res->trace_id);
        proto_pack_kv_str(pk, "kind", tracker_kind_name(res->kind));
        rpc__pack_key(pk, "quality");
        if (res->has_quality)
                msgpack_pack_double(pk, res->quality);
        else
                msgpack_pack_nil(pk);
        rpc__pack_key(pk, "success");
        if (!res->has_success)
                msgpack_pack_nil(pk);
        else if (res->success)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
        if (res->deferred)
                proto_pack_kv_bool(pk, "deferred", true);
}

struct rpc__seq_results {
        struct tracker_result *v;
        size_t n;
        char **ids;
        struct rpc_req *r;
        bool oom;
};

static void rpc__seq_cb(void *data, const struct tracker_result *res)
{
        struct rpc__seq_results *sr = data;
        struct proto_val pv = { .set = true, .s = { res->trace_id, (uint32_t)strlen(res->trace_id) } };
        char *id = rpc__cstr(sr->r, &pv);
        if (!id)
                sr->oom = true; /* the state changed; the reply lists what it can */
        sr->v[sr->n] = *res;
        sr->v[sr->n].trace_id = id ? id : "";
        sr->n++;
        struct journal_entry e = { .op = JOURNAL_OUTCOME, .trace_id = res->trace_id,
                                   .kind = res->kind, .confidence = res->confidence,
                                   .deferred = res->deferred };
        const struct rpc_journal *j = &sr->r->env->journal;
        e.at = sr->r->now;
        e.uid = sr->r->uid;
        if (j->record && j->record(j->data, &e) < 0)
                sr->oom = true;
}

static int rpc__outcome_sequence(struct rpc_req *r, const msgpack_object *arr)
{
        const struct config_limits *L = r->lim;
        const struct proto_arg spec[] = {
                { "trace_id", PROTO_ARG_STR, true, 0, PROTO_TRACE_ID_MAX },
                { "success", PROTO_ARG_BOOL, true, 0, 0 },
                { "confidence", PROTO_ARG_UNIT, true, 0, 0 },
                { "output", PROTO_ARG_STR, false, 0, L->output_bytes },
        };
        uint32_t n = arr->via.array.size;
        struct tracker_action *acts = rpc__alloc(r, (n ? n : 1) * sizeof(*acts));
        struct rpc__seq_results sr = { .r = r };
        sr.v = rpc__alloc(r, (n ? n : 1) * sizeof(*sr.v));
        if (!acts || !sr.v)
                return RPC_OOM(r);
        for (uint32_t i = 0; i < n; i++) {
                struct proto_val v[NARGS(spec)];
                char prefix[32], err[512];
                snprintf(prefix, sizeof(prefix), "actions[%u].", i);
                const msgpack_object *a = &arr->via.array.ptr[i];
                if (a->type != MSGPACK_OBJECT_MAP) {
                        rpc__error(r, PROTO_BAD_REQUEST, "actions[%u]: must be a map", i);
                        return -1;
                }
                if (proto_args_decode(a, spec, NARGS(spec), v, prefix, err, sizeof(err)) < 0) {
                        rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
                        return -1;
                }
                for (uint32_t k = 0; k < v[0].s.len; k++) {
                        char ch = v[0].s.ptr[k];
                        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' ||
                              ch == '-')) {
                                rpc__error(r, PROTO_BAD_REQUEST,
                                           "%strace_id: may only hold A-Z a-z 0-9 . _ : -",
                                           prefix);
                                return -1;
                        }
                }
                acts[i].trace_id = rpc__cstr(r, &v[0]);
                acts[i].success = v[1].b;
                acts[i].confidence = v[2].d;
                acts[i].output = v[3].set ? rpc__cstr(r, &v[3]) : "";
                if (!acts[i].trace_id || !acts[i].output)
                        return RPC_OOM(r);
        }
        int rc = tracker_sequence(r->env->tracker, acts, n, r->uid, r->now, rpc__seq_cb, &sr);
        if (rc < 0)
                return rpc__tracker_error(r, rc, "");
        if (sr.oom)
                return rpc__error(r, PROTO_INTERNAL,
                                  "out of memory recording the outcomes; they may be lost at a "
                                  "restart");
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        rpc__pack_key(r->pk, "results");
        msgpack_pack_array(r->pk, (uint32_t)sr.n);
        for (size_t i = 0; i < sr.n; i++)
                rpc__pack_result(r->pk, &sr.v[i]);
        return 0;
}

static int rpc__outcome(struct rpc_req *r)
{
        const struct proto_arg spec[] = {
                { "trace_id", PROTO_ARG_TRACE_ID, false, 1, PROTO_TRACE_ID_MAX },
                { "kind", PROTO_ARG_STR, false, 0, 64 },
                { "confidence", PROTO_ARG_UNIT, false, 0, 0 },
                { "actions", PROTO_ARG_ARRAY, false, 0, r->lim->list_entries },
        };
        struct proto_val v[NARGS(spec)];
        enum tracker_kind kind;
        struct tracker_result res;

        if (rpc__args(r, spec, NARGS(spec), v) < 0)
                return -1;
        if (v[3].set) {
                for (int i = 0; i < 3; i++) {
                        if (v[i].set) {
                                rpc__error(r, PROTO_BAD_REQUEST,
                                           "%s: not allowed with actions (the sequence form)",
                                           spec[i].name);
                                return -1;
                        }
                }
                return rpc__outcome_sequence(r, v[3].o);
        }
        if (!v[0].set || !v[1].set) {
                rpc__error(r, PROTO_BAD_REQUEST, "%s: required (or give actions)",
                           v[0].set ? "kind" : "trace_id");
                return -1;
        }
        if (tracker_kind_parse(v[1].s.ptr, v[1].s.len, &kind) < 0) {
                rpc__error(r, PROTO_BAD_REQUEST,
                           "kind: unknown kind '%.*s' (one of accepted, accepted_with_edits, "
                           "rejected, inconclusive, applied, signature_changed, body_modified, "
                           "symbol_added, modified, ignored)",
                           (int)(v[1].s.len > 64 ? 64 : v[1].s.len), v[1].s.ptr);
                return -1;
        }
        if (tracker_kind_needs_confidence(kind) && !v[2].set) {
                rpc__error(r, PROTO_BAD_REQUEST, "confidence: required for kind %s",
                           tracker_kind_name(kind));
                return -1;
        }
        char *id = rpc__cstr(r, &v[0]);
        if (!id)
                return RPC_OOM(r);
        int rc = tracker_outcome(r->env->tracker, id, kind, v[2].d, r->uid, r->now, &res);
        if (rc < 0)
                return rpc__tracker_error(r, rc, id);
        struct journal_entry e = { .op = JOURNAL_OUTCOME, .trace_id = id, .kind = res.kind,
                                   .confidence = res.confidence, .deferred = res.deferred };
        if (rpc__record(r, &e) < 0)
                return -1;
        proto_pack_ok_head(r->pk, r->m->msgid);
        rpc__pack_result(r->pk, &res);
        return 0;
}

/* ---- query ------------------------------------------------------------- */

/* Task names in byte order, so that maps come out sorted. */
static const enum tracker_task rpc__tasks_sorted[TASK__COUNT] = {
        TASK_CLASSIFY, TASK_CODE, TASK_EMBED, TASK_GENERATE, TASK_REASONING,
};

static void rpc__pack_nil_or(msgpack_packer *pk, const char *key, bool has, double v)
{
        rpc__pack_key(pk, key);
        if (has)
                msgpack_pack_double(pk, v);
        else
                msgpack_pack_nil(pk);
}

/* The evidence behind a profile's or a task's numbers: 7 pairs. */
static void rpc__pack_evidence(struct rpc_req *r, msgpack_packer *pk, const char *model,
                               const struct tracker_evidence *ev, const uint32_t *sketch,
                               uint64_t successes)
{
        struct tracker_evidence now;
        double mean, lo, hi;
        tracker_evidence_at(r->env->tracker, ev, r->now, &now);
        tracker_posterior(&now, &mean, &lo, &hi);
        rpc__pack_key(pk, "posterior");
        msgpack_pack_map(pk, 6);
        proto_pack_kv_f64(pk, "alpha", now.alpha);
        proto_pack_kv_f64(pk, "beta", now.beta);
        proto_pack_kv_f64(pk, "judged", now.judged);
        proto_pack_kv_f64(pk, "mean", mean);
        proto_pack_kv_f64(pk, "lo", lo);
        proto_pack_kv_f64(pk, "hi", hi);
        double p50 = tracker_sketch_percentile(sketch, 0.5);
        double p95 = tracker_sketch_percentile(sketch, 0.95);
        rpc__pack_nil_or(pk, "latency_p50_ms", p50 >= 0, p50);
        rpc__pack_nil_or(pk, "latency_p95_ms", p95 >= 0, p95);
        proto_pack_kv_u64(pk, "input_tokens", now.input_tokens);
        proto_pack_kv_u64(pk, "output_tokens", now.output_tokens);
        double tokens = (double)now.input_tokens + (double)now.output_tokens;
        rpc__pack_nil_or(pk, "tokens_per_accepted", successes > 0, tokens / (double)successes);
        const struct config_price *pr = config_price(r->env->cfg, model);
        double cost = pr ? (double)now.input_tokens / 1e6 * pr->input_per_mtok +
                                   (double)now.output_tokens / 1e6 * pr->output_per_mtok
                         : 0.0;
        rpc__pack_nil_or(pk, "cost_per_accepted", pr && successes > 0, cost / (double)successes);
}

#define RPC_EVIDENCE_PAIRS 7

static void rpc__pack_task(struct rpc_req *r, msgpack_packer *pk, const char *model,
                           const struct tracker_task_stats *ts)
{
        msgpack_pack_map(pk, 6 + RPC_EVIDENCE_PAIRS);
        proto_pack_kv_u64(pk, "calls", ts->calls);
        proto_pack_kv_u64(pk, "successes", ts->successes);
        proto_pack_kv_u64(pk, "failures", ts->failures);
        proto_pack_kv_f64(pk, "avg_latency_ms", ts->avg_latency_ms);
        proto_pack_kv_f64(pk, "ema_quality", ts->ema_quality);
        proto_pack_kv_f64(pk, "success_rate", tracker_success_rate(ts->successes, ts->failures));
        rpc__pack_evidence(r, pk, model, &ts->ev, ts->latency, ts->successes);
}

static void rpc__pack_cell(struct rpc_req *r, msgpack_packer *pk, const struct tracker_cell *c)
{
        static const uint32_t no_sketch[TRACKER_SKETCH_BUCKETS];
        msgpack_pack_map(pk, 7 + RPC_EVIDENCE_PAIRS);
        proto_pack_kv_u64(pk, "calls", c->calls);
        proto_pack_kv_u64(pk, "successes", c->successes);
        proto_pack_kv_u64(pk, "failures", c->failures);
        proto_pack_kv_f64(pk, "success_rate", tracker_success_rate(c->successes, c->failures));
        rpc__pack_key(pk, "recent");
        msgpack_pack_map(pk, 2);
        proto_pack_kv_f64(pk, "alpha", c->recent_alpha);
        proto_pack_kv_f64(pk, "beta", c->recent_beta);
        rpc__pack_key(pk, "window");
        msgpack_pack_map(pk, 2);
        proto_pack_kv_f64(pk, "alpha", c->win_alpha);
        proto_pack_kv_f64(pk, "beta", c->win_beta);
        proto_pack_kv_u64(pk, "updated_at", c->updated_at);
        rpc__pack_evidence(r, pk, c->model, &c->ev, no_sketch, c->successes);
}

/* The profile's cells as {TASK: {DOMAIN: CELL}}, of one task or all (only
 * < 0), of one domain or all (NULL); v has room for all of them. */
static void rpc__pack_cells(struct rpc_req *r, const struct tracker_profile *p, int only_task,
                            const char *domain, const struct tracker_cell **v)
{
        msgpack_packer *pk = r->pk;
        long n = (long)tracker_cells_sorted(p, only_task, v);
        long k = 0;
        for (long i = 0; i < n; i++)
                if (!domain || strcmp(v[i]->domain, domain) == 0)
                        v[k++] = v[i];
        uint32_t ntasks = 0;
        for (long i = 0; i < k; i++)
                ntasks += i == 0 || v[i]->task != v[i - 1]->task;
        rpc__pack_key(pk, "domains");
        msgpack_pack_map(pk, ntasks);
        for (long i = 0, j; i < k; i = j) {
                for (j = i; j < k && v[j]->task == v[i]->task; j++)
                        ;
                proto_pack_cstr(pk, tracker_task_name(v[i]->task));
                msgpack_pack_map(pk, (uint32_t)(j - i));
                for (long m = i; m < j; m++) {
                        proto_pack_cstr(pk, v[m]->domain);
                        rpc__pack_cell(r, pk, v[m]);
                }
        }
}

/* With cells (room for every cell of p), the "domains" key too, with the
 * cells of `domain` (all when NULL). */
static void rpc__pack_profile(struct rpc_req *r, const struct tracker_profile *p, int only_task,
                              uint64_t threshold, const struct tracker_cell **cells,
                              const char *domain)
{
        msgpack_packer *pk = r->pk;
        uint32_t sketch[TRACKER_SKETCH_BUCKETS];
        msgpack_pack_map(pk, 12 + RPC_EVIDENCE_PAIRS + (cells ? 1 : 0));
        proto_pack_kv_str(pk, "model", p->model);
        proto_pack_kv_u64(pk, "total_calls", p->total_calls);
        proto_pack_kv_u64(pk, "success_count", p->success_count);
        proto_pack_kv_u64(pk, "fail_count", p->fail_count);
        proto_pack_kv_u64(pk, "total_latency_ms", p->total_latency_ms);
        proto_pack_kv_f64(pk, "avg_latency_ms", tracker_profile_avg_latency(p));
        proto_pack_kv_f64(pk, "success_rate", tracker_success_rate(p->success_count, p->fail_count));
        proto_pack_kv_f64(pk, "ema_quality", p->ema_quality);
        proto_pack_kv_bool(pk, "degraded", tracker_profile_degraded(p, threshold));
        /* Under the configured threshold, whatever the request's. */
        rpc__pack_key(pk, "degraded_since");
        if (p->degraded_since)
                msgpack_pack_uint64(pk, p->degraded_since);
        else
                msgpack_pack_nil(pk);
        proto_pack_kv_u64(pk, "updated_at", p->updated_at);
        tracker_profile_sketch(p, sketch);
        rpc__pack_evidence(r, pk, p->model, &p->ev, sketch, p->success_count);
        rpc__pack_key(pk, "tasks");
        uint32_t n = 0;
        for (int i = 0; i < TASK__COUNT; i++)
                if (p->tasks[i].present && (only_task < 0 || only_task == i))
                        n++;
        msgpack_pack_map(pk, n);
        for (int i = 0; i < TASK__COUNT; i++) {
                enum tracker_task t = rpc__tasks_sorted[i];
                if (!p->tasks[t].present || (only_task >= 0 && only_task != (int)t))
                        continue;
                proto_pack_cstr(pk, tracker_task_name(t));
                rpc__pack_task(r, pk, p->model, &p->tasks[t]);
        }
        if (cells)
                rpc__pack_cells(r, p, only_task, domain, cells);
}

static void rpc__pack_pending(msgpack_packer *pk, const struct tracker_trace *tr)
{
        uint32_t n = 9 + (tr->repo ? 2 : 0);
        msgpack_pack_map(pk, n);
        proto_pack_kv_str(pk, "trace_id", tr->id);
        proto_pack_kv_str(pk, "model", tr->model);
        proto_pack_kv_str(pk, "task", tracker_task_name(tr->task));
        proto_pack_kv_str(pk, "reason", tr->reason);
        proto_pack_kv_u64(pk, "started_at", tr->started_at);
        proto_pack_kv_bool(pk, "completed", tr->completed);
        proto_pack_kv_u64(pk, "latency_ms", tr->latency_ms);
        proto_pack_kv_u64(pk, "input_tokens", tr->input_tokens);
        proto_pack_kv_u64(pk, "output_tokens", tr->output_tokens);
        if (tr->repo) {
                proto_pack_kv_str(pk, "repo", tr->repo);
                rpc__pack_key(pk, "files");
                msgpack_pack_array(pk, tr->nfiles);
                for (uint32_t i = 0; i < tr->nfiles; i++)
                        proto_pack_cstr(pk, tr->files[i]);
        }
}

static int rpc__query_pending(struct rpc_req *r, const char *model, int task, uint32_t limit)
{
        struct tracker *t = r->env->tracker;
        uint32_t n = 0;
        const struct tracker_trace *tr;
        for (tr = tracker_pending_first(t); tr && n < limit; tr = tracker_pending_next(tr))
                if ((!model || strcmp(tr->model, model) == 0) && (task < 0 || tr->task == task))
                        n++;
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        rpc__pack_key(r->pk, "pending");
        msgpack_pack_array(r->pk, n);
        uint32_t k = 0;
        for (tr = tracker_pending_first(t); tr && k < n; tr = tracker_pending_next(tr)) {
                if ((!model || strcmp(tr->model, model) == 0) && (task < 0 || tr->task == task)) {
                        rpc__pack_pending(r->pk, tr);
                        k++;
                }
        }
        return 0;
}

static int rpc__query(struct rpc_req *r)
{
        const struct proto_arg spec[] = {
                { "model", PROTO_ARG_STR, false, 1, r->lim->model_bytes },
                { "task", PROTO_ARG_STR, false, 0, 64 },
                { "degrade_threshold", PROTO_ARG_U32, false, 0, 0 },
                { "pending", PROTO_ARG_BOOL, false, 0, 0 },
                { "limit", PROTO_ARG_U32, false, 0, 0 },
                { "domains", PROTO_ARG_BOOL, false, 0, 0 },
                { "domain", PROTO_ARG_STR, false, 0, 4 * PROTO_DOMAIN_MAX },
        };
        struct proto_val v[NARGS(spec)];
        enum tracker_task task;
        int only_task = -1;
        const char *domain;

        if (rpc__args(r, spec, NARGS(spec), v) < 0 || rpc__domain(r, &v[6], "domain", &domain) < 0)
                return -1;
        if ((v[5].set || v[6].set) && v[3].set && v[3].b)
                return rpc__error(r, PROTO_BAD_REQUEST, "%s: not with pending: true",
                                  v[5].set ? "domains" : "domain");
        bool want_cells = (v[5].set && v[5].b) || domain;
        if (v[1].set) {
                if (rpc__task(r, &v[1], &task) < 0)
                        return -1;
                only_task = (int)task;
        }
        const char *model = v[0].set ? rpc__cstr(r, &v[0]) : NULL;
        if (v[0].set && !model)
                return RPC_OOM(r);
        if (v[3].set && v[3].b)
                return rpc__query_pending(r, model, only_task, v[4].set ? v[4].u : 1000);
        if (v[4].set) {
                rpc__error(r, PROTO_BAD_REQUEST, "limit: only with pending: true");
                return -1;
        }
        uint64_t threshold = v[2].set ? v[2].u : r->env->cfg->degrade_threshold;

        const struct tracker_profile **all = NULL, *one = NULL;
        long n;
        if (model) {
                one = tracker_profile_get(r->env->tracker, model);
                all = &one;
                n = one ? 1 : 0;
        } else {
                n = tracker_profiles_sorted(r->env->tracker, &all);
                if (n < 0)
                        return RPC_OOM(r);
        }
        uint32_t count = 0;
        for (long i = 0; i < n; i++)
                if (only_task < 0 || all[i]->tasks[only_task].present)
                        count++;
        /* Room to sort the largest profile's cells, taken before anything
         * is packed. */
        const struct tracker_cell **cells = NULL;
        if (want_cells) {
                size_t most = 1;
                for (long i = 0; i < n; i++) {
                        size_t c = tracker_profile_cells(all[i]);
                        most = c > most ? c : most;
                }
                if (!(cells = malloc(most * sizeof(*cells)))) {
                        if (!model)
                                free(all);
                        return RPC_OOM(r);
                }
        }
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        rpc__pack_key(r->pk, "profiles");
        msgpack_pack_array(r->pk, count);
        for (long i = 0; i < n; i++)
                if (only_task < 0 || all[i]->tasks[only_task].present)
                        rpc__pack_profile(r, all[i], only_task, threshold, cells, domain);
        free(cells);
        if (!model)
                free(all);
        return 0;
}

/* ---- rank -------------------------------------------------------------- */

static bool rpc__price(void *data, const char *model, double *in, double *out)
{
        const struct config_price *p = config_price(data, model);
        if (!p)
                return false;
        *in = p->input_per_mtok;
        *out = p->output_per_mtok;
        return true;
}

/* Why a model is degraded: {"model", "failures", "successes", "threshold",
 * "since"}; since is nil unless it is degraded under the configured
 * threshold too (the one degraded_since is kept for). */
static void rpc__pack_degraded_why(msgpack_packer *pk, const struct rank_item *it,
                                   uint64_t threshold)
{
        msgpack_pack_map(pk, 5);
        proto_pack_kv_str(pk, "model", it->model);
        proto_pack_kv_u64(pk, "failures", it->failures);
        proto_pack_kv_u64(pk, "successes", it->successes);
        proto_pack_kv_u64(pk, "threshold", threshold);
        rpc__pack_key(pk, "since");
        if (it->degraded_since)
                msgpack_pack_uint64(pk, it->degraded_since);
        else
                msgpack_pack_nil(pk);
}

static void rpc__pack_rank_item(msgpack_packer *pk, const struct rank_item *it,
                                uint64_t threshold)
{
        msgpack_pack_map(pk, 15);
        proto_pack_kv_str(pk, "model", it->model);
        proto_pack_kv_f64(pk, "score", it->score);
        proto_pack_kv_bool(pk, "prior", it->prior);
        proto_pack_kv_bool(pk, "degraded", it->degraded);
        proto_pack_kv_f64(pk, "quality", it->quality);
        proto_pack_kv_f64(pk, "mean", it->mean);
        proto_pack_kv_f64(pk, "lo", it->lo);
        proto_pack_kv_f64(pk, "hi", it->hi);
        proto_pack_kv_f64(pk, "judged", it->judged);
        rpc__pack_nil_or(pk, "latency_ms", it->latency_ms >= 0, it->latency_ms);
        proto_pack_kv_f64(pk, "latency_penalty", it->latency_penalty);
        rpc__pack_nil_or(pk, "cost_per_accepted", it->cost >= 0, it->cost);
        proto_pack_kv_f64(pk, "cost_penalty", it->cost_penalty);
        proto_pack_kv_bool(pk, "explore", it->explore);
        rpc__pack_key(pk, "degraded_why");
        if (it->degraded)
                rpc__pack_degraded_why(pk, it, threshold);
        else
                msgpack_pack_nil(pk);
}

static int rpc__rank(struct rpc_req *r)
{
        const struct config_limits *L = r->lim;
        const struct proto_arg spec[] = {
                { "task", PROTO_ARG_STR, true, 0, 64 },
                { "candidates", PROTO_ARG_ARRAY, false, 0, L->list_entries },
                { "strategy", PROTO_ARG_STR, false, 0, 32 },
                { "latency_weight", PROTO_ARG_REAL, false, 0, 0 },
                { "cost_weight", PROTO_ARG_REAL, false, 0, 0 },
                { "exclude_degraded", PROTO_ARG_BOOL, false, 0, 0 },
                { "degrade_threshold", PROTO_ARG_U32, false, 0, 0 },
                { "seed", PROTO_ARG_U64, false, 0, 0 },
                { "domain", PROTO_ARG_STR, false, 0, 4 * PROTO_DOMAIN_MAX },
        };
        struct proto_val v[NARGS(spec)];
        static uint64_t draws; /* varies thompson's seed from call to call */
        struct rank_options o = {
                .strategy = RANK_KG,
                .exclude_degraded = true,
                .degrade_threshold = r->env->cfg->degrade_threshold,
                .now = r->now,
                .price = rpc__price,
                .price_data = (void *)r->env->cfg,
        };
        if (rpc__args(r, spec, NARGS(spec), v) < 0 || rpc__task(r, &v[0], &o.task) < 0 ||
            rpc__domain(r, &v[8], "domain", &o.domain) < 0)
                return -1;
        if (v[2].set && rank_strategy_parse(v[2].s.ptr, v[2].s.len, &o.strategy) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST,
                                  "strategy: unknown strategy '%.*s' (one of kg, mean, lcb, "
                                  "thompson, ema)",
                                  (int)(v[2].s.len > 32 ? 32 : v[2].s.len), v[2].s.ptr);
        o.latency_weight = v[3].d;
        o.cost_weight = v[4].d;
        /* kg's posterior already weighs a model's failures, and a model
         * left out is never tried again: kg leaves nobody out unless
         * asked. */
        o.exclude_degraded = v[5].set ? v[5].b : o.strategy != RANK_KG;
        if (v[6].set)
                o.degrade_threshold = v[6].u;
        o.seed = v[7].set ? v[7].u64 : r->now * 0x9e3779b97f4a7c15ull ^ ++draws;
        if (v[1].set) {
                const msgpack_object *arr = v[1].o;
                const char **c = rpc__alloc(r, (arr->via.array.size + 1) * sizeof(char *));
                if (!c)
                        return RPC_OOM(r);
                for (uint32_t i = 0; i < arr->via.array.size; i++) {
                        struct proto_val cv;
                        char err[512], name[32];
                        snprintf(name, sizeof(name), "candidates[%u]", i);
                        const struct proto_arg cs = { name, PROTO_ARG_STR, true, 1, L->model_bytes };
                        if (proto_arg_check(&arr->via.array.ptr[i], &cs, &cv, "", err,
                                            sizeof(err)) < 0)
                                return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
                        if (!(c[i] = rpc__cstr(r, &cv)))
                                return RPC_OOM(r);
                        for (uint32_t k = 0; k < i; k++)
                                if (strcmp(c[k], c[i]) == 0)
                                        return rpc__error(r, PROTO_BAD_REQUEST,
                                                          "%s: '%s' appears twice", name, c[i]);
                }
                o.candidates = c;
                o.ncandidates = arr->via.array.size;
        }
        struct rank_item *items;
        long n = rank_compute(r->env->tracker, &o, &items);
        if (n < 0)
                return RPC_OOM(r);
        uint32_t ranked = 0;
        for (long i = 0; i < n; i++)
                ranked += !items[i].excluded;
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 5);
        proto_pack_kv_str(r->pk, "task", tracker_task_name(o.task));
        proto_pack_kv_str(r->pk, "strategy", rank_strategy_name(o.strategy));
        rpc__pack_key(r->pk, "ranked");
        msgpack_pack_array(r->pk, ranked);
        for (long i = 0; i < n; i++)
                if (!items[i].excluded)
                        rpc__pack_rank_item(r->pk, &items[i], o.degrade_threshold);
        rpc__pack_key(r->pk, "excluded");
        msgpack_pack_array(r->pk, (uint32_t)(n - ranked));
        for (long i = 0; i < n; i++)
                if (items[i].excluded)
                        proto_pack_cstr(r->pk, items[i].model);
        rpc__pack_key(r->pk, "excluded_why");
        msgpack_pack_array(r->pk, (uint32_t)(n - ranked));
        for (long i = 0; i < n; i++)
                if (items[i].excluded)
                        rpc__pack_degraded_why(r->pk, &items[i], o.degrade_threshold);
        free(items);
        return 0;
}

/* ---- forget, import ---------------------------------------------------- */

static int rpc__forget(struct rpc_req *r)
{
        const struct proto_arg spec[] = {
                { "model", PROTO_ARG_STR, true, 1, r->lim->model_bytes },
                { "task", PROTO_ARG_STR, false, 0, 64 },
                { "domain", PROTO_ARG_STR, false, 0, 4 * PROTO_DOMAIN_MAX },
        };
        struct proto_val v[NARGS(spec)];
        enum tracker_task task = TASK_GENERATE;
        const char *domain;
        if (rpc__args(r, spec, NARGS(spec), v) < 0 ||
            (v[1].set && rpc__task(r, &v[1], &task) < 0) ||
            rpc__domain(r, &v[2], "domain", &domain) < 0)
                return -1;
        if (v[1].set != (domain != NULL))
                return rpc__error(r, PROTO_BAD_REQUEST,
                                  "%s: forgetting one domain cell takes model, task and domain",
                                  v[1].set ? "domain" : "task");
        char *model = rpc__cstr(r, &v[0]);
        if (!model)
                return RPC_OOM(r);
        bool forgotten = (domain ? tracker_forget_cell(r->env->tracker, model, task, domain)
                                 : tracker_forget(r->env->tracker, model)) == 0;
        if (forgotten) {
                struct journal_entry e = { .op = JOURNAL_FORGET, .model = model, .task = task,
                                           .domain = domain };
                if (rpc__record(r, &e) < 0)
                        return -1;
        }
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, domain ? 4 : 2);
        proto_pack_kv_str(r->pk, "model", model);
        if (domain) {
                proto_pack_kv_str(r->pk, "task", tracker_task_name(task));
                proto_pack_kv_str(r->pk, "domain", domain);
        }
        proto_pack_kv_bool(r->pk, "forgotten", forgotten);
        return 0;
}

/* The evidence pairs of a profile or task as `query` answers them: the
 * posterior's alpha, beta and judged, and the token sums, are imported;
 * the derived ones are accepted and ignored (latency sketches are not
 * exported: their percentiles start afresh). */
#define RPC_EVIDENCE_ARGS \
        { "posterior", PROTO_ARG_MAP, false, 0, 0 }, \
        { "input_tokens", PROTO_ARG_U64, false, 0, 0 }, \
        { "output_tokens", PROTO_ARG_U64, false, 0, 0 }, \
        { "latency_p50_ms", PROTO_ARG_ANY, false, 0, 0 }, \
        { "latency_p95_ms", PROTO_ARG_ANY, false, 0, 0 }, \
        { "tokens_per_accepted", PROTO_ARG_ANY, false, 0, 0 }, \
        { "cost_per_accepted", PROTO_ARG_ANY, false, 0, 0 }

/* v[0..2]: posterior, input_tokens, output_tokens. */
static int rpc__import_evidence(struct rpc_req *r, const struct proto_val *v, const char *prefix,
                                struct tracker_evidence *ev)
{
        const struct proto_arg pspec[] = {
                { "alpha", PROTO_ARG_REAL, true, 0, 0 },
                { "beta", PROTO_ARG_REAL, true, 0, 0 },
                { "judged", PROTO_ARG_REAL, true, 0, 0 },
                { "mean", PROTO_ARG_ANY, false, 0, 0 },
                { "lo", PROTO_ARG_ANY, false, 0, 0 },
                { "hi", PROTO_ARG_ANY, false, 0, 0 },
        };
        struct proto_val pv[NARGS(pspec)];
        char pprefix[128], err[512];
        memset(ev, 0, sizeof(*ev));
        ev->at = r->now;
        ev->input_tokens = v[1].u64;
        ev->output_tokens = v[2].u64;
        if (!v[0].set)
                return 0;
        snprintf(pprefix, sizeof(pprefix), "%sposterior.", prefix);
        if (proto_args_decode(v[0].o, pspec, NARGS(pspec), pv, pprefix, err, sizeof(err)) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
        ev->alpha = pv[0].d;
        ev->beta = pv[1].d;
        ev->judged = pv[2].d;
        return 0;
}

/* One profile of an import, in the shape `query` answers (derived fields
 * are accepted and ignored). */
static int rpc__import_profile(struct rpc_req *r, const msgpack_object *o, uint32_t i,
                               struct tracker_profile *p)
{
        const struct proto_arg spec[] = {
                { "model", PROTO_ARG_STR, true, 1, r->lim->model_bytes },
                { "total_calls", PROTO_ARG_U64, true, 0, 0 },
                { "success_count", PROTO_ARG_U64, true, 0, 0 },
                { "fail_count", PROTO_ARG_U64, true, 0, 0 },
                { "total_latency_ms", PROTO_ARG_U64, true, 0, 0 },
                { "ema_quality", PROTO_ARG_UNIT, true, 0, 0 },
                { "updated_at", PROTO_ARG_U64, false, 0, 0 },
                { "tasks", PROTO_ARG_MAP, false, 0, 0 },
                { "avg_latency_ms", PROTO_ARG_ANY, false, 0, 0 },
                { "success_rate", PROTO_ARG_ANY, false, 0, 0 },
                { "degraded", PROTO_ARG_ANY, false, 0, 0 },
                RPC_EVIDENCE_ARGS,
                { "degraded_since", PROTO_ARG_ANY, false, 0, 0 },
        };
        const struct proto_arg tspec[] = {
                { "calls", PROTO_ARG_U64, true, 0, 0 },
                { "successes", PROTO_ARG_U64, true, 0, 0 },
                { "failures", PROTO_ARG_U64, true, 0, 0 },
                { "avg_latency_ms", PROTO_ARG_REAL, true, 0, 0 },
                { "ema_quality", PROTO_ARG_UNIT, true, 0, 0 },
                { "success_rate", PROTO_ARG_ANY, false, 0, 0 },
                RPC_EVIDENCE_ARGS,
        };
        struct proto_val v[NARGS(spec)], tv[NARGS(tspec)];
        char prefix[48], err[512];

        snprintf(prefix, sizeof(prefix), "profiles[%u].", i);
        if (o->type != MSGPACK_OBJECT_MAP)
                return rpc__error(r, PROTO_BAD_REQUEST, "profiles[%u]: must be a map", i);
        if (proto_args_decode(o, spec, NARGS(spec), v, prefix, err, sizeof(err)) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
        memset(p, 0, sizeof(*p));
        if (!(p->model = rpc__cstr(r, &v[0])))
                return RPC_OOM(r);
        p->total_calls = v[1].u64;
        p->success_count = v[2].u64;
        p->fail_count = v[3].u64;
        p->total_latency_ms = v[4].u64;
        p->ema_quality = v[5].d;
        p->updated_at = v[6].u64;
        /* nil or unix seconds; kept only while the profile is degraded
         * under the configured threshold (tracker_import). */
        if (v[18].set && v[18].o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                p->degraded_since = v[18].o->via.u64;
        else if (v[18].set && v[18].o->type != MSGPACK_OBJECT_NIL)
                return rpc__error(r, PROTO_BAD_REQUEST,
                                  "%sdegraded_since: must be nil or an unsigned integer", prefix);
        if (rpc__import_evidence(r, &v[11], prefix, &p->ev) < 0)
                return -1;
        const msgpack_object *tasks = v[7].set ? v[7].o : NULL;
        for (uint32_t k = 0; tasks && k < tasks->via.map.size; k++) {
                const msgpack_object_kv *kv = &tasks->via.map.ptr[k];
                enum tracker_task t;
                if (kv->key.type != MSGPACK_OBJECT_STR ||
                    tracker_task_parse(kv->key.via.str.ptr, kv->key.via.str.size, &t) < 0)
                        return rpc__error(r, PROTO_BAD_REQUEST, "%stasks: unknown task", prefix);
                char tprefix[96];
                snprintf(tprefix, sizeof(tprefix), "%stasks.%s.", prefix, tracker_task_name(t));
                if (kv->val.type != MSGPACK_OBJECT_MAP)
                        return rpc__error(r, PROTO_BAD_REQUEST, "%s: must be a map", tprefix);
                if (proto_args_decode(&kv->val, tspec, NARGS(tspec), tv, tprefix, err,
                                      sizeof(err)) < 0)
                        return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
                struct tracker_task_stats *ts = &p->tasks[t];
                ts->present = true;
                ts->calls = tv[0].u64;
                ts->successes = tv[1].u64;
                ts->failures = tv[2].u64;
                if (tv[3].d > (double)UINT32_MAX)
                        return rpc__error(r, PROTO_BAD_REQUEST,
                                          "%savg_latency_ms: must be at most 4294967295", tprefix);
                ts->avg_latency_ms = tv[3].d;
                ts->ema_quality = tv[4].d;
                if (rpc__import_evidence(r, &tv[6], tprefix, &ts->ev) < 0)
                        return -1;
        }
        return 0;
}

/* A cell's {"alpha", "beta"} map (its recent evidence, or its window),
 * when given: into *a and *b. */
static int rpc__import_pair(struct rpc_req *r, const struct proto_val *v, const char *prefix,
                            const char *name, double *a, double *b)
{
        const struct proto_arg spec[] = {
                { "alpha", PROTO_ARG_REAL, true, 0, 0 },
                { "beta", PROTO_ARG_REAL, true, 0, 0 },
        };
        struct proto_val pv[NARGS(spec)];
        char field[80], err[512];
        if (!v->set)
                return 0;
        snprintf(field, sizeof(field), "%s%s.", prefix, name);
        if (proto_args_decode(v->o, spec, NARGS(spec), pv, field, err, sizeof(err)) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
        *a = pv[0].d;
        *b = pv[1].d;
        return 0;
}

/* One cell of an import: {model, task, domain, the numbers of a CELL as
 * `query` answers it (derived ones accepted and ignored)}. */
static int rpc__import_cell(struct rpc_req *r, const msgpack_object *o, uint32_t i,
                            struct tracker_cell *c)
{
        const struct proto_arg spec[] = {
                { "model", PROTO_ARG_STR, true, 1, r->lim->model_bytes },
                { "task", PROTO_ARG_STR, true, 0, 64 },
                { "domain", PROTO_ARG_STR, true, 0, 4 * PROTO_DOMAIN_MAX },
                { "calls", PROTO_ARG_U64, true, 0, 0 },
                { "successes", PROTO_ARG_U64, true, 0, 0 },
                { "failures", PROTO_ARG_U64, true, 0, 0 },
                { "recent", PROTO_ARG_MAP, false, 0, 0 },
                { "updated_at", PROTO_ARG_U64, false, 0, 0 },
                { "success_rate", PROTO_ARG_ANY, false, 0, 0 },
                { "window", PROTO_ARG_MAP, false, 0, 0 },
                RPC_EVIDENCE_ARGS,
        };
        struct proto_val v[NARGS(spec)];
        char prefix[48], field[64], err[512];
        enum tracker_task task;

        snprintf(prefix, sizeof(prefix), "cells[%u].", i);
        if (o->type != MSGPACK_OBJECT_MAP)
                return rpc__error(r, PROTO_BAD_REQUEST, "cells[%u]: must be a map", i);
        if (proto_args_decode(o, spec, NARGS(spec), v, prefix, err, sizeof(err)) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST, "%s", err);
        memset(c, 0, sizeof(*c));
        if (tracker_task_parse(v[1].s.ptr, v[1].s.len, &task) < 0)
                return rpc__error(r, PROTO_BAD_REQUEST, "%stask: unknown task", prefix);
        c->task = (uint8_t)task;
        snprintf(field, sizeof(field), "%sdomain", prefix);
        if (rpc__domain(r, &v[2], field, &c->domain) < 0)
                return -1;
        if (!(c->model = rpc__cstr(r, &v[0])))
                return RPC_OOM(r);
        c->calls = v[3].u64;
        c->successes = v[4].u64;
        c->failures = v[5].u64;
        c->updated_at = v[7].set ? v[7].u64 : r->now;
        if (rpc__import_pair(r, &v[6], prefix, "recent", &c->recent_alpha, &c->recent_beta) < 0 ||
            rpc__import_pair(r, &v[9], prefix, "window", &c->win_alpha, &c->win_beta) < 0)
                return -1;
        return rpc__import_evidence(r, &v[10], prefix, &c->ev);
}

static int rpc__import(struct rpc_req *r)
{
        const struct proto_arg spec[] = {
                { "profiles", PROTO_ARG_ARRAY, false, 0, r->lim->list_entries },
                { "mode", PROTO_ARG_STR, false, 0, 16 },
                { "cells", PROTO_ARG_ARRAY, false, 0, r->lim->list_entries },
        };
        struct proto_val v[NARGS(spec)];
        if (rpc__args(r, spec, NARGS(spec), v) < 0)
                return -1;
        if (!v[0].set && !v[2].set)
                return rpc__error(r, PROTO_BAD_REQUEST, "profiles: required (or cells)");
        uint32_t np = v[0].set ? v[0].o->via.array.size : 0;
        uint32_t nc = v[2].set ? v[2].o->via.array.size : 0;
        if ((uint64_t)np + nc > r->lim->list_entries)
                return rpc__error(r, PROTO_BAD_REQUEST,
                                  "cells: profiles and cells together are more than %u entries",
                                  r->lim->list_entries);
        bool replace = false;
        if (v[1].set) {
                if (v[1].s.len == 7 && memcmp(v[1].s.ptr, "replace", 7) == 0)
                        replace = true;
                else if (!(v[1].s.len == 5 && memcmp(v[1].s.ptr, "merge", 5) == 0))
                        return rpc__error(r, PROTO_BAD_REQUEST,
                                          "mode: must be \"merge\" or \"replace\"");
        }
        /* Check every profile and cell first: a bad one changes nothing. */
        uint32_t n = np, created = 0, fresh = 0, cells_created = 0, fresh_cells = 0;
        struct tracker_profile *ps = rpc__alloc(r, (n ? n : 1) * sizeof(*ps));
        struct tracker_cell *cs = rpc__alloc(r, (nc ? nc : 1) * sizeof(*cs));
        if (!ps || !cs)
                return RPC_OOM(r);
        for (uint32_t i = 0; i < n; i++) {
                if (rpc__import_profile(r, &v[0].o->via.array.ptr[i], i, &ps[i]) < 0)
                        return -1;
                for (uint32_t k = 0; k < i; k++)
                        if (strcmp(ps[k].model, ps[i].model) == 0)
                                return rpc__error(r, PROTO_BAD_REQUEST,
                                                  "profiles[%u].model: '%s' appears twice", i,
                                                  ps[i].model);
                fresh += tracker_profile_get(r->env->tracker, ps[i].model) == NULL;
        }
        if (fresh && r->lim->models &&
            tracker_profile_count(r->env->tracker) + fresh > r->lim->models)
                return rpc__tracker_error(r, -ENOSPC, "");
        for (uint32_t i = 0; i < nc; i++) {
                if (rpc__import_cell(r, &v[2].o->via.array.ptr[i], i, &cs[i]) < 0)
                        return -1;
                bool known = tracker_profile_get(r->env->tracker, cs[i].model) != NULL;
                for (uint32_t k = 0; k < n && !known; k++)
                        known = strcmp(ps[k].model, cs[i].model) == 0;
                if (!known)
                        return rpc__error(r, PROTO_BAD_REQUEST,
                                          "cells[%u].model: '%s' has no profile (import it "
                                          "first, or in the same call)",
                                          i, cs[i].model);
                for (uint32_t k = 0; k < i; k++)
                        if (cs[k].task == cs[i].task && strcmp(cs[k].model, cs[i].model) == 0 &&
                            strcmp(cs[k].domain, cs[i].domain) == 0)
                                return rpc__error(r, PROTO_BAD_REQUEST,
                                                  "cells[%u]: the cell of '%s' appears twice", i,
                                                  cs[i].domain);
                /* A replaced profile loses its cells: all of them are new. */
                bool replaced = false;
                for (uint32_t k = 0; k < n && !replaced; k++)
                        replaced = replace && strcmp(ps[k].model, cs[i].model) == 0;
                fresh_cells += replaced || !tracker_cell_get(r->env->tracker, cs[i].model,
                                                            (enum tracker_task)cs[i].task,
                                                            cs[i].domain);
        }
        if (fresh_cells && r->lim->domains &&
            tracker_cell_count(r->env->tracker) + fresh_cells > r->lim->domains)
                return rpc__error(r, PROTO_OVERLOADED, "limit reached: %zu of %llu domain cells",
                                  tracker_cell_count(r->env->tracker),
                                  (unsigned long long)r->lim->domains);
        for (uint32_t i = 0; i < n; i++) {
                bool was_created;
                int rc = tracker_import(r->env->tracker, &ps[i], replace, r->now, &was_created);
                if (rc < 0)
                        return rpc__tracker_error(r, rc, "");
                created += was_created;
                struct journal_entry e = { .op = JOURNAL_IMPORT, .model = ps[i].model,
                                           .profile = &ps[i], .replace = replace };
                if (rpc__record(r, &e) < 0)
                        return -1;
        }
        for (uint32_t i = 0; i < nc; i++) {
                bool was_created;
                int rc = tracker_import_cell(r->env->tracker, &cs[i], replace, r->now,
                                             &was_created);
                if (rc < 0)
                        return rpc__tracker_error(r, rc, "");
                cells_created += was_created;
                struct journal_entry e = { .op = JOURNAL_IMPORT_CELL, .model = cs[i].model,
                                           .cell = &cs[i], .replace = replace };
                if (rpc__record(r, &e) < 0)
                        return -1;
        }
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 5);
        proto_pack_kv_u64(r->pk, "imported", n);
        proto_pack_kv_u64(r->pk, "created", created);
        proto_pack_kv_u64(r->pk, "cells", nc);
        proto_pack_kv_u64(r->pk, "cells_created", cells_created);
        proto_pack_kv_str(r->pk, "mode", replace ? "replace" : "merge");
        return 0;
}

/* ---- scan -------------------------------------------------------------- */

/* The reply to `scan`: {"repos", "judged": [{"trace_id", "kind",
 * "evidence"}...], "duration_ms"}. */
static void rpc__pack_scan(msgpack_packer *pk, uint32_t msgid, const struct rpc_scan_report *rep)
{
        proto_pack_ok_head(pk, msgid);
        msgpack_pack_map(pk, 3);
        proto_pack_kv_u64(pk, "repos", rep->repos);
        rpc__pack_key(pk, "judged");
        msgpack_pack_array(pk, (uint32_t)rep->njudged);
        for (size_t i = 0; i < rep->njudged; i++) {
                const struct rpc_scan_judged *j = &rep->judged[i];
                msgpack_pack_map(pk, 3);
                proto_pack_kv_str(pk, "trace_id", j->trace_id);
                proto_pack_kv_str(pk, "kind", tracker_kind_name(j->kind));
                proto_pack_kv_str(pk, "evidence", j->evidence ? j->evidence : "");
        }
        proto_pack_kv_u64(pk, "duration_ms", rep->duration_ms);
}

/* A `scan` waiting for its scan.  It is the scanner's callback argument
 * from before the server holds the reply's place, so that a failure to
 * hold it leaves nothing behind but this (later stays NULL). */
struct rpc__scan_wait {
        struct rpc_env *env;
        struct rpc_later *later;
};

static void rpc__scan_done(void *arg, const struct rpc_scan_report *rep)
{
        struct rpc__scan_wait *w = arg;
        if (w->later) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                if (rep) {
                        rpc__pack_scan(&pk, w->later->msgid, rep);
                } else {
                        proto_pack_error(&pk, w->later->msgid, PROTO_UNAVAILABLE,
                                         "the daemon is stopping; the scan did not run");
                        w->env->counters.errors_total++;
                }
                w->later->answer(w->later, sb.data, sb.size, rep && rep->njudged > 0);
                msgpack_sbuffer_destroy(&sb);
        }
        free(w);
}

/* Run a git scan now and answer once it is done (the reply waits, and so
 * do the replies after it on the connection).  Without a scanner (tests)
 * the answer is an empty report, at once. */
static int rpc__scan(struct rpc_req *r)
{
        const struct rpc_git *g = &r->env->git;
        if (rpc__args(r, NULL, 0, NULL) < 0)
                return -1;
        if (!g->scan) {
                struct rpc_scan_report none = { 0 };
                rpc__pack_scan(r->pk, r->m->msgid, &none);
                return 0;
        }
        if (!r->defer) /* a notification: the scan runs, nobody waits */
                return g->scan(g->data, NULL, NULL) < 0 ? RPC_OOM(r) : 0;
        struct rpc__scan_wait *w = calloc(1, sizeof(*w));
        if (!w)
                return RPC_OOM(r);
        w->env = r->env;
        if (g->scan(g->data, rpc__scan_done, w) < 0) {
                free(w);
                return RPC_OOM(r);
        }
        w->later = r->defer->hold(r->defer->ctx, r->m->msgid);
        if (!w->later)
                return RPC_OOM(r); /* w is freed when the scan is done */
        r->deferred = true;
        return 0;
}

/* ---- ping, stats ------------------------------------------------------- */

static bool rpc__writable(const struct rpc_env *env)
{
        return !env->journal.writable || env->journal.writable(env->journal.data);
}

static int rpc__ping(struct rpc_req *r)
{
        if (rpc__args(r, NULL, 0, NULL) < 0)
                return -1;
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        proto_pack_kv_str(r->pk, "version", OUTCOMED_VERSION);
        return 0;
}

/* stats' "config": the configuration in force, so that a reload can be
 * seen from outside. */
static void rpc__pack_config(struct rpc_req *r)
{
        static const char *const levels[] = { "error", "warn", "info", "debug" };
        const struct config *cfg = r->env->cfg;
        const struct config_limits *l = &cfg->limits;
        const struct rpc_counters *c = &r->env->counters;
        msgpack_packer *pk = r->pk;

        msgpack_pack_map(pk, 11);
        proto_pack_kv_str(pk, "file", cfg->file);
        proto_pack_kv_u64(pk, "loaded_at", c->config_loaded_at);
        proto_pack_kv_u64(pk, "reloads_total", c->reloads_total);
        proto_pack_kv_u64(pk, "reload_errors_total", c->reload_errors_total);
        proto_pack_kv_str(pk, "log_level",
                         cfg->log_level >= 0 && cfg->log_level < 4 ? levels[cfg->log_level] : NULL);
        proto_pack_kv_u64(pk, "flush_interval_ms", cfg->flush_interval_ms);
        proto_pack_kv_u64(pk, "degrade_threshold", cfg->degrade_threshold);
        rpc__pack_key(pk, "watched_repos");
        msgpack_pack_array(pk, cfg->ngit_repos);
        for (size_t i = 0; i < cfg->ngit_repos; i++)
                proto_pack_cstr(pk, cfg->git_repos[i]);
        rpc__pack_key(pk, "allow_uids");
        msgpack_pack_array(pk, cfg->nallow_uids);
        for (size_t i = 0; i < cfg->nallow_uids; i++)
                msgpack_pack_uint32(pk, cfg->allow_uids[i]);
        proto_pack_kv_str(pk, "allow_group", cfg->allow_group);
        rpc__pack_key(pk, "limits");
        msgpack_pack_map(pk, 16);
        proto_pack_kv_u64(pk, "message_bytes", l->message_bytes);
        proto_pack_kv_u64(pk, "model_bytes", l->model_bytes);
        proto_pack_kv_u64(pk, "text_bytes", l->text_bytes);
        proto_pack_kv_u64(pk, "output_bytes", l->output_bytes);
        proto_pack_kv_u64(pk, "files", l->files);
        proto_pack_kv_u64(pk, "path_bytes", l->path_bytes);
        proto_pack_kv_u64(pk, "list_entries", l->list_entries);
        proto_pack_kv_u64(pk, "models", l->models);
        proto_pack_kv_u64(pk, "pending", l->pending);
        proto_pack_kv_u64(pk, "domains", l->domains);
        proto_pack_kv_u64(pk, "connections", l->connections);
        proto_pack_kv_u64(pk, "connections_per_uid", l->connections_per_uid);
        proto_pack_kv_u64(pk, "requests_in_flight", l->requests_in_flight);
        proto_pack_kv_u64(pk, "reply_buffer_bytes", l->reply_buffer_bytes);
        proto_pack_kv_u64(pk, "partial_bytes", l->partial_bytes);
        proto_pack_kv_u64(pk, "message_timeout_ms", l->message_timeout_ms);
}

static int rpc__stats(struct rpc_req *r)
{
        const struct rpc_counters *c = &r->env->counters;
        if (rpc__args(r, NULL, 0, NULL) < 0)
                return -1;
        /* The pairs go to a side buffer first, so that the map's count is
         * counted rather than kept in step by hand. */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_packer *out = r->pk;
        r->pk = &pk;
        proto_pack_kv_str(r->pk, "version", OUTCOMED_VERSION);
        proto_pack_kv_u64(r->pk, "uptime_s",
                         r->now > r->env->started_at ? r->now - r->env->started_at : 0);
        proto_pack_kv_u64(r->pk, "connections", c->connections);
        proto_pack_kv_u64(r->pk, "connections_total", c->connections_total);
        proto_pack_kv_u64(r->pk, "connections_refused_total", c->refused_total);
        proto_pack_kv_u64(r->pk, "connections_dropped_total", c->dropped_total);
        proto_pack_kv_u64(r->pk, "partial_bytes", c->partial_bytes);
        proto_pack_kv_u64(r->pk, "partial_drops_total", c->partial_drops_total);
        proto_pack_kv_u64(r->pk, "message_timeouts_total", c->message_timeouts_total);
        proto_pack_kv_u64(r->pk, "requests_total", c->requests_total);
        proto_pack_kv_u64(r->pk, "errors_total", c->errors_total);
        proto_pack_kv_u64(r->pk, "notify_errors_total", c->notify_errors_total);
        proto_pack_kv_u64(r->pk, "pending", tracker_pending_count(r->env->tracker));
        proto_pack_kv_u64(r->pk, "profiles", tracker_profile_count(r->env->tracker));
        proto_pack_kv_u64(r->pk, "domain_cells", tracker_cell_count(r->env->tracker));
        proto_pack_kv_u64(r->pk, "domain_cells_refused_total",
                          tracker_cells_refused(r->env->tracker));
        proto_pack_kv_u64(r->pk, "commits_total", c->commits_total);
        proto_pack_kv_u64(r->pk, "commit_errors_total", c->commit_errors_total);
        proto_pack_kv_u64(r->pk, "journal_total", c->journal_total);
        proto_pack_kv_u64(r->pk, "snapshots_total", c->snapshots_total);
        proto_pack_kv_u64(r->pk, "last_commit_at", c->last_commit_at);
        proto_pack_kv_u64(r->pk, "expired_total", c->expired_total);
        proto_pack_kv_u64(r->pk, "unavailable_total", c->unavailable_total);
        proto_pack_kv_u64(r->pk, "replayed", c->replayed);
        proto_pack_kv_u64(r->pk, "scans_total", c->scans_total);
        proto_pack_kv_u64(r->pk, "git_judged_total", c->git_judged_total);
        proto_pack_kv_bool(r->pk, "writable", rpc__writable(r->env));
        proto_pack_kv_str(r->pk, "durability",
                         r->env->cfg->durability == DURABILITY_RELAXED ? "relaxed"
                         : r->env->cfg->durability == DURABILITY_FSYNC ? "fsync"
                                                                        : "ack");
        proto_pack_kv_u64(r->pk, "max_message_bytes", r->lim->message_bytes);
        rpc__pack_key(r->pk, "config");
        rpc__pack_config(r);
        r->pk = out;
        /* Count the pairs: every key is a string at the map's top level. */
        msgpack_unpacked u;
        size_t off = 0;
        uint32_t n = 0;
        msgpack_unpacked_init(&u);
        while (msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS)
                n++;
        msgpack_unpacked_destroy(&u);
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, n / 2);
        msgpack_pack_str_body(r->pk, sb.data, sb.size); /* raw bytes: the pairs */
        msgpack_sbuffer_destroy(&sb);
        return 0;
}

/* ---- metrics ----------------------------------------------------------- */

static int rpc__metrics(struct rpc_req *r)
{
        if (rpc__args(r, NULL, 0, NULL) < 0)
                return -1;
        char *text;
        size_t len;
        if (metrics_render(r->env->metrics, r->env, r->now, &text, &len) < 0)
                return RPC_OOM(r);
        proto_pack_ok_head(r->pk, r->m->msgid);
        msgpack_pack_map(r->pk, 1);
        rpc__pack_key(r->pk, "text");
        msgpack_pack_str_with_body(r->pk, text, len);
        free(text);
        return 0;
}

/* ---- dispatch ---------------------------------------------------------- */

static const struct rpc_method rpc__methods[] = {
        { "start", rpc__start, RPC_MUTATES },
        { "complete", rpc__complete, RPC_MUTATES },
        { "fail", rpc__fail, RPC_MUTATES },
        { "outcome", rpc__outcome, RPC_MUTATES },
        { "forget", rpc__forget, RPC_MUTATES },
        { "import", rpc__import, RPC_MUTATES },
        { "query", rpc__query, 0 },
        { "rank", rpc__rank, 0 },
        { "ping", rpc__ping, RPC_STATELESS },
        { "stats", rpc__stats, 0 },
        { "scan", rpc__scan, 0 },
        { "metrics", rpc__metrics, 0 },
};

enum proto_error rpc_handle(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                            msgpack_packer *pk, bool *changed)
{
        struct rpc_done done;
        enum proto_error e = rpc_handle_later(env, m, uid, pk, NULL, &done);
        *changed = done.changed;
        return e;
}

enum proto_error rpc_handle_later(struct rpc_env *env, const struct proto_msg *m, uint32_t uid,
                                  msgpack_packer *pk, const struct rpc_defer *defer,
                                  struct rpc_done *done)
{
        _Alignas(max_align_t) char small[2048];
        struct rpc_req r = {
                .small = small,
                .small_cap = sizeof(small),
                .env = env,
                .m = m,
                .lim = &env->cfg->limits,
                .pk = pk,
                .uid = uid,
                .now = (uint64_t)time(NULL),
                .code = PROTO_OK,
                .defer = defer,
        };
        const struct rpc_method *method = NULL;
        for (size_t i = 0; i < NARGS(rpc__methods); i++) {
                if (strlen(rpc__methods[i].name) == m->method.len &&
                    memcmp(rpc__methods[i].name, m->method.ptr, m->method.len) == 0) {
                        method = &rpc__methods[i];
                        break;
                }
        }
        if (!method) {
                char shown[65];
                size_t n = m->method.len < 64 ? m->method.len : 64;
                for (size_t i = 0; i < n; i++)
                        shown[i] = (m->method.ptr[i] >= 0x20 && m->method.ptr[i] < 0x7f)
                                           ? m->method.ptr[i]
                                           : '?';
                shown[n] = '\0';
                rpc__error(&r, PROTO_UNKNOWN_METHOD, "no such method: '%s'", shown);
        } else if ((method->flags & RPC_MUTATES) && !rpc__writable(env)) {
                env->counters.unavailable_total++;
                rpc__error(&r, PROTO_UNAVAILABLE,
                           "the database cannot be written now (see the daemon's log); "
                           "changes are refused until it can, reads still work");
        } else {
                method->handler(&r);
        }
        done->changed = method && (method->flags & RPC_MUTATES) && r.code == PROTO_OK;
        done->deferred = r.deferred;
        done->stateless = method && (method->flags & RPC_STATELESS);
        while (r.arena) {
                struct rpc__chunk *c = r.arena;
                r.arena = c->next;
                free(c);
        }
        return r.code;
}

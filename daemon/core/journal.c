/* journal.c - encode state changes as msgpack maps, and apply them again.
 *
 * The map's keys are short and stable (they are on disk): "op", "at", "uid",
 * "id", "model", then the op's own fields.  Floats are stored as float64,
 * so a replay reproduces the live numbers bit for bit.
 */
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const char *const journal__ops[JOURNAL__COUNT] = {
        [JOURNAL_START] = "start",     [JOURNAL_COMPLETE] = "complete",
        [JOURNAL_FAIL] = "fail",       [JOURNAL_OUTCOME] = "outcome",
        [JOURNAL_EXPIRE] = "expire",   [JOURNAL_FORGET] = "forget",
        [JOURNAL_IMPORT] = "import",   [JOURNAL_IMPORT_CELL] = "import_cell",
};

static const char *const journal__sources[] = { "conversation", "git", "expiry" };

const char *journal_op_name(enum journal_op op)
{
        return (unsigned)op < JOURNAL__COUNT ? journal__ops[op] : "?";
}

/* ---- encoding ---------------------------------------------------------- */

static void journal__pack_evidence(msgpack_packer *pk, const struct tracker_evidence *e)
{
        msgpack_pack_double(pk, e->alpha);
        msgpack_pack_double(pk, e->beta);
        msgpack_pack_double(pk, e->judged);
        msgpack_pack_uint64(pk, e->at);
        msgpack_pack_uint64(pk, e->input_tokens);
        msgpack_pack_uint64(pk, e->output_tokens);
}

static void journal__pack_profile(msgpack_packer *pk, const struct tracker_profile *p)
{
        uint32_t ntasks = 0;
        for (int i = 0; i < TASK__COUNT; i++)
                ntasks += p->tasks[i].present;
        msgpack_pack_map(pk, 10);
        proto_pack_kv_str(pk, "model", p->model);
        proto_pack_cstr(pk, "ev");
        msgpack_pack_array(pk, 6);
        journal__pack_evidence(pk, &p->ev);
        proto_pack_kv_u64(pk, "calls", p->total_calls);
        proto_pack_kv_u64(pk, "ok", p->success_count);
        proto_pack_kv_u64(pk, "failed", p->fail_count);
        proto_pack_kv_u64(pk, "latency", p->total_latency_ms);
        proto_pack_kv_f64(pk, "ema", p->ema_quality);
        proto_pack_kv_u64(pk, "updated", p->updated_at);
        proto_pack_kv_u64(pk, "dsince", p->degraded_since);
        proto_pack_cstr(pk, "tasks");
        msgpack_pack_map(pk, ntasks);
        for (int i = 0; i < TASK__COUNT; i++) {
                const struct tracker_task_stats *ts = &p->tasks[i];
                if (!ts->present)
                        continue;
                proto_pack_cstr(pk, tracker_task_name((enum tracker_task)i));
                msgpack_pack_array(pk, 11);
                msgpack_pack_uint64(pk, ts->calls);
                msgpack_pack_uint64(pk, ts->successes);
                msgpack_pack_uint64(pk, ts->failures);
                msgpack_pack_double(pk, ts->avg_latency_ms);
                msgpack_pack_double(pk, ts->ema_quality);
                journal__pack_evidence(pk, &ts->ev);
        }
}

int journal_encode(const struct journal_entry *e, msgpack_sbuffer *sb)
{
        msgpack_packer pk;
        uint32_t n = 3; /* op, at, uid */
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);

        n += (e->trace_id != NULL) + (e->model != NULL);
        switch (e->op) {
        case JOURNAL_START:
                n += 2 + (e->repo != NULL) * 2 + (e->base != NULL) + (e->domain != NULL);
                break;
        case JOURNAL_FORGET: n += (e->domain != NULL) * 2; break;
        case JOURNAL_IMPORT_CELL: n += 2; break;
        case JOURNAL_COMPLETE: n += 3 + (e->output != NULL); break;
        case JOURNAL_FAIL: n += e->error != NULL; break;
        case JOURNAL_OUTCOME: n += 4 + (e->evidence != NULL); break;
        case JOURNAL_IMPORT: n += 2; break;
        default: break;
        }
        size_t before = sb->size;
        msgpack_pack_map(&pk, n);
        proto_pack_kv_str(&pk, "op", journal_op_name(e->op));
        proto_pack_kv_u64(&pk, "at", e->at);
        proto_pack_kv_u64(&pk, "uid", e->uid);
        if (e->trace_id)
                proto_pack_kv_str(&pk, "id", e->trace_id);
        if (e->model)
                proto_pack_kv_str(&pk, "model", e->model);
        switch (e->op) {
        case JOURNAL_START:
                proto_pack_kv_str(&pk, "task", tracker_task_name(e->task));
                proto_pack_kv_str(&pk, "reason", e->reason ? e->reason : "");
                if (e->repo) {
                        proto_pack_kv_str(&pk, "repo", e->repo);
                        proto_pack_cstr(&pk, "files");
                        msgpack_pack_array(&pk, e->nfiles);
                        for (uint32_t i = 0; i < e->nfiles; i++)
                                proto_pack_cstr(&pk, e->files[i]);
                }
                if (e->base)
                        proto_pack_kv_str(&pk, "base", e->base);
                if (e->domain)
                        proto_pack_kv_str(&pk, "domain", e->domain);
                break;
        case JOURNAL_FORGET:
                if (e->domain) {
                        proto_pack_kv_str(&pk, "task", tracker_task_name(e->task));
                        proto_pack_kv_str(&pk, "domain", e->domain);
                }
                break;
        case JOURNAL_IMPORT_CELL:
                proto_pack_kv_bool(&pk, "replace", e->replace);
                proto_pack_cstr(&pk, "cell");
                msgpack_pack_array(&pk, 11);
                proto_pack_cstr(&pk, tracker_task_name(e->cell->task));
                proto_pack_cstr(&pk, e->cell->domain);
                msgpack_pack_uint64(&pk, e->cell->calls);
                msgpack_pack_uint64(&pk, e->cell->successes);
                msgpack_pack_uint64(&pk, e->cell->failures);
                msgpack_pack_array(&pk, 6);
                journal__pack_evidence(&pk, &e->cell->ev);
                msgpack_pack_double(&pk, e->cell->recent_alpha);
                msgpack_pack_double(&pk, e->cell->recent_beta);
                msgpack_pack_double(&pk, e->cell->win_alpha);
                msgpack_pack_double(&pk, e->cell->win_beta);
                msgpack_pack_uint64(&pk, e->cell->updated_at);
                break;
        case JOURNAL_COMPLETE:
                proto_pack_kv_u64(&pk, "latency", e->latency_ms);
                proto_pack_kv_u64(&pk, "in", e->input_tokens);
                proto_pack_kv_u64(&pk, "out", e->output_tokens);
                if (e->output)
                        proto_pack_kv_str(&pk, "output", e->output);
                break;
        case JOURNAL_FAIL:
                if (e->error)
                        proto_pack_kv_str(&pk, "error", e->error);
                break;
        case JOURNAL_OUTCOME:
                proto_pack_kv_str(&pk, "kind", tracker_kind_name(e->kind));
                proto_pack_kv_f64(&pk, "confidence", e->confidence);
                proto_pack_kv_str(&pk, "source", journal__sources[e->source]);
                proto_pack_kv_bool(&pk, "deferred", e->deferred);
                if (e->evidence)
                        proto_pack_kv_str(&pk, "evidence", e->evidence);
                break;
        case JOURNAL_IMPORT:
                proto_pack_kv_bool(&pk, "replace", e->replace);
                proto_pack_cstr(&pk, "profile");
                journal__pack_profile(&pk, e->profile);
                break;
        default:
                break;
        }
        /* msgpack_sbuffer_write fails only when realloc does. */
        return sb->size > before ? 0 : -ENOMEM;
}

/* ---- applying ---------------------------------------------------------- */

struct journal__reader {
        const msgpack_object *map;
        char *scratch[8]; /* NUL-terminated copies handed to the tracker */
        int nscratch;
        char *err;
        size_t errlen;
        int bad;
};

static const msgpack_object *journal__get(struct journal__reader *r, const char *key, int type)
{
        const msgpack_object *o = proto_map_get(r->map, key);
        if (o && (int)o->type != type && !(type == MSGPACK_OBJECT_FLOAT64 &&
                                          o->type == MSGPACK_OBJECT_FLOAT32)) {
                if (!r->bad)
                        snprintf(r->err, r->errlen, "journal entry: '%s' has the wrong type", key);
                r->bad = -EINVAL;
                return NULL;
        }
        return o;
}

static char *journal__cstr_of(struct journal__reader *r, const msgpack_object *o)
{
        if (r->nscratch == 8) {
                r->bad = -EINVAL;
                return NULL;
        }
        char *s = malloc(o->via.str.size + 1);
        if (!s) {
                r->bad = -ENOMEM;
                return NULL;
        }
        if (o->via.str.size) /* an empty str may have no pointer */
                memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
        r->scratch[r->nscratch++] = s;
        return s;
}

/* A string field: NULL when absent (or when required, an error). */
static char *journal__str(struct journal__reader *r, const char *key, bool required)
{
        const msgpack_object *o = journal__get(r, key, MSGPACK_OBJECT_STR);
        if (!o) {
                if (required && !r->bad) {
                        snprintf(r->err, r->errlen, "journal entry: '%s' missing", key);
                        r->bad = -EINVAL;
                }
                return NULL;
        }
        return journal__cstr_of(r, o);
}

static uint64_t journal__u64(struct journal__reader *r, const char *key)
{
        const msgpack_object *o = journal__get(r, key, MSGPACK_OBJECT_POSITIVE_INTEGER);
        return o ? o->via.u64 : 0;
}

static double journal__f64(struct journal__reader *r, const char *key)
{
        const msgpack_object *o = journal__get(r, key, MSGPACK_OBJECT_FLOAT64);
        return o ? o->via.f64 : 0.0;
}

static bool journal__bool(struct journal__reader *r, const char *key)
{
        const msgpack_object *o = journal__get(r, key, MSGPACK_OBJECT_BOOLEAN);
        return o ? o->via.boolean : false;
}

static void journal__unpack_evidence(const msgpack_object *a, struct tracker_evidence *e)
{
        e->alpha = a[0].via.f64;
        e->beta = a[1].via.f64;
        e->judged = a[2].via.f64;
        e->at = a[3].via.u64;
        e->input_tokens = a[4].via.u64;
        e->output_tokens = a[5].via.u64;
}

/* An import_cell's "cell": [task, domain, calls, ok, failed, ev[6],
 * recent_alpha, recent_beta, win_alpha, win_beta, updated]; its model
 * comes from the entry. */
static int journal__unpack_cell(struct journal__reader *r, const msgpack_object *arr,
                                struct tracker_cell *c)
{
        memset(c, 0, sizeof(*c));
        const msgpack_object *a = arr->via.array.ptr;
        enum tracker_task t;
        if (arr->via.array.size != 11 || a[0].type != MSGPACK_OBJECT_STR ||
            a[1].type != MSGPACK_OBJECT_STR || a[5].type != MSGPACK_OBJECT_ARRAY ||
            a[5].via.array.size != 6 ||
            tracker_task_parse(a[0].via.str.ptr, a[0].via.str.size, &t) < 0)
                return -EINVAL;
        c->task = (uint8_t)t;
        if (!(c->domain = journal__cstr_of(r, &a[1])))
                return -ENOMEM;
        c->calls = a[2].via.u64;
        c->successes = a[3].via.u64;
        c->failures = a[4].via.u64;
        journal__unpack_evidence(a[5].via.array.ptr, &c->ev);
        c->recent_alpha = a[6].via.f64;
        c->recent_beta = a[7].via.f64;
        c->win_alpha = a[8].via.f64;
        c->win_beta = a[9].via.f64;
        c->updated_at = a[10].via.u64;
        return 0;
}

static int journal__unpack_profile(struct journal__reader *r, const msgpack_object *m,
                                   struct tracker_profile *p)
{
        struct journal__reader sub = { .map = m, .err = r->err, .errlen = r->errlen };
        memset(p, 0, sizeof(*p));
        const msgpack_object *model = journal__get(&sub, "model", MSGPACK_OBJECT_STR);
        if (!model)
                return -EINVAL;
        p->model = journal__cstr_of(r, model);
        p->total_calls = journal__u64(&sub, "calls");
        p->success_count = journal__u64(&sub, "ok");
        p->fail_count = journal__u64(&sub, "failed");
        p->total_latency_ms = journal__u64(&sub, "latency");
        p->ema_quality = journal__f64(&sub, "ema");
        p->updated_at = journal__u64(&sub, "updated");
        p->degraded_since = journal__u64(&sub, "dsince"); /* absent before 008: 0 */
        const msgpack_object *tasks = journal__get(&sub, "tasks", MSGPACK_OBJECT_MAP);
        for (uint32_t i = 0; tasks && i < tasks->via.map.size; i++) {
                const msgpack_object_kv *kv = &tasks->via.map.ptr[i];
                enum tracker_task t;
                const msgpack_object *v = &kv->val;
                if (kv->key.type != MSGPACK_OBJECT_STR ||
                    tracker_task_parse(kv->key.via.str.ptr, kv->key.via.str.size, &t) < 0 ||
                    v->type != MSGPACK_OBJECT_ARRAY ||
                    (v->via.array.size != 5 && v->via.array.size != 11))
                        return -EINVAL;
                const msgpack_object *a = v->via.array.ptr;
                struct tracker_task_stats *ts = &p->tasks[t];
                ts->present = true;
                ts->calls = a[0].via.u64;
                ts->successes = a[1].via.u64;
                ts->failures = a[2].via.u64;
                ts->avg_latency_ms = a[3].via.f64;
                ts->ema_quality = a[4].via.f64;
                if (v->via.array.size == 11)
                        journal__unpack_evidence(a + 5, &ts->ev);
        }
        const msgpack_object *ev = journal__get(&sub, "ev", MSGPACK_OBJECT_ARRAY);
        if (ev && ev->via.array.size == 6)
                journal__unpack_evidence(ev->via.array.ptr, &p->ev);
        return sub.bad ? sub.bad : (p->model ? 0 : -ENOMEM);
}

/* What every entry carries beside its op. */
struct journal__head {
        uint64_t at;
        uint32_t uid;
        const char *id; /* the trace's; NULL for the ops on models */
};

/* A start's "files" as NUL-terminated copies in *out (NULL when none);
 * free them with journal__files_free. */
static int journal__files(struct journal__reader *r, const msgpack_object *files,
                          const char ***out, uint32_t *n)
{
        *out = NULL;
        *n = 0;
        if (!files || !files->via.array.size)
                return 0;
        const char **fv = calloc(files->via.array.size, sizeof(*fv));
        if (!fv)
                return -ENOMEM;
        *out = fv;
        for (uint32_t i = 0; i < files->via.array.size; i++) {
                const msgpack_object *f = &files->via.array.ptr[i];
                if (f->type != MSGPACK_OBJECT_STR) {
                        snprintf(r->err, r->errlen,
                                 "journal entry: bad start: files[%u] is not a string", i);
                        return -EINVAL;
                }
                /* Not NUL-terminated in place: copy. */
                char *c = malloc(f->via.str.size + 1);
                if (!c)
                        return -ENOMEM;
                if (f->via.str.size)
                        memcpy(c, f->via.str.ptr, f->via.str.size);
                c[f->via.str.size] = '\0';
                fv[(*n)++] = c;
        }
        return 0;
}

static void journal__files_free(const char **fv, uint32_t n)
{
        for (uint32_t i = 0; i < n; i++)
                free((char *)fv[i]);
        free(fv);
}

static int journal__apply_start(struct tracker *t, struct journal__reader *r,
                                const struct journal__head *h)
{
        struct tracker_start s = { .uid = h->uid, .now = h->at, .trace_id = h->id };
        const char *task = journal__str(r, "task", true);
        s.model = journal__str(r, "model", true);
        s.reason = journal__str(r, "reason", false);
        s.repo = journal__str(r, "repo", false);
        s.base = journal__str(r, "base", false);
        s.domain = journal__str(r, "domain", false);
        const msgpack_object *files = journal__get(r, "files", MSGPACK_OBJECT_ARRAY);
        if (r->bad || !task || tracker_task_parse(task, strlen(task), &s.task) < 0) {
                snprintf(r->err, r->errlen, "journal entry: bad start");
                return r->bad ? r->bad : -EINVAL;
        }
        const char **fv;
        int rc = journal__files(r, files, &fv, &s.nfiles);
        if (rc == 0) {
                const char *out_id;
                s.files = fv;
                rc = tracker_start(t, &s, &out_id);
        }
        journal__files_free(fv, s.nfiles);
        return rc;
}

static int journal__apply_complete(struct tracker *t, struct journal__reader *r,
                                   const struct journal__head *h)
{
        struct tracker_complete c = {
                .trace_id = h->id,
                .latency_ms = (uint32_t)journal__u64(r, "latency"),
                .input_tokens = (uint32_t)journal__u64(r, "in"),
                .output_tokens = (uint32_t)journal__u64(r, "out"),
                .output = journal__str(r, "output", false),
                .uid = h->uid,
                .now = h->at,
        };
        return r->bad ? r->bad : tracker_complete(t, &c);
}

static int journal__apply_fail(struct tracker *t, struct journal__reader *r,
                               const struct journal__head *h)
{
        (void)r;
        return tracker_fail(t, h->id, h->uid, h->at);
}

static int journal__apply_outcome(struct tracker *t, struct journal__reader *r,
                                  const struct journal__head *h)
{
        const char *kind = journal__str(r, "kind", true);
        const char *src = journal__str(r, "source", true);
        double c = journal__f64(r, "confidence");
        enum tracker_kind k;
        enum tracker_source so = TRACKER_SRC_CONVERSATION;
        if (r->bad || !kind || !src || tracker_kind_parse(kind, strlen(kind), &k) < 0) {
                snprintf(r->err, r->errlen, "journal entry: bad outcome");
                return r->bad ? r->bad : -EINVAL;
        }
        for (int i = 0; i < 3; i++)
                if (strcmp(src, journal__sources[i]) == 0)
                        so = (enum tracker_source)i;
        if (journal__bool(r, "deferred"))
                return 0; /* the conversation's view of a git-judged trace */
        struct tracker_result res;
        return tracker_resolve(t, h->id, k, c, h->uid, h->at, so, &res);
}

static int journal__apply_expire(struct tracker *t, struct journal__reader *r,
                                 const struct journal__head *h)
{
        (void)r;
        struct tracker_result res;
        return tracker_resolve(t, h->id, KIND_INCONCLUSIVE, 0.0, 0, h->at, TRACKER_SRC_EXPIRY,
                               &res);
}

static int journal__apply_forget(struct tracker *t, struct journal__reader *r,
                                 const struct journal__head *h)
{
        (void)h;
        const char *model = journal__str(r, "model", true);
        const char *task = journal__str(r, "task", false);
        const char *domain = journal__str(r, "domain", false);
        enum tracker_task tk;
        int rc;
        if (!model || (domain && (!task || tracker_task_parse(task, strlen(task), &tk) < 0)))
                rc = -EINVAL;
        else
                rc = domain ? tracker_forget_cell(t, model, tk, domain) : tracker_forget(t, model);
        return rc == -ENOENT ? 0 : rc; /* forgetting nothing is still nothing */
}

static int journal__apply_import(struct tracker *t, struct journal__reader *r,
                                 const struct journal__head *h)
{
        const msgpack_object *po = journal__get(r, "profile", MSGPACK_OBJECT_MAP);
        struct tracker_profile p;
        bool created;
        int rc = po ? journal__unpack_profile(r, po, &p) : -EINVAL;
        return rc < 0 ? rc : tracker_import(t, &p, journal__bool(r, "replace"), h->at, &created);
}

static int journal__apply_import_cell(struct tracker *t, struct journal__reader *r,
                                      const struct journal__head *h)
{
        const msgpack_object *co = journal__get(r, "cell", MSGPACK_OBJECT_ARRAY);
        struct tracker_cell c;
        bool created;
        int rc = co ? journal__unpack_cell(r, co, &c) : -EINVAL;
        if (rc == 0 && !(c.model = journal__str(r, "model", true)))
                rc = -EINVAL;
        return rc < 0 ? rc
                      : tracker_import_cell(t, &c, journal__bool(r, "replace"), h->at, &created);
}

/* Each op's handler, and whether its entries name a trace ("id"). */
static const struct journal__applier {
        int (*apply)(struct tracker *t, struct journal__reader *r, const struct journal__head *h);
        bool has_id;
} journal__appliers[JOURNAL__COUNT] = {
        [JOURNAL_START] = { journal__apply_start, true },
        [JOURNAL_COMPLETE] = { journal__apply_complete, true },
        [JOURNAL_FAIL] = { journal__apply_fail, true },
        [JOURNAL_OUTCOME] = { journal__apply_outcome, true },
        [JOURNAL_EXPIRE] = { journal__apply_expire, true },
        [JOURNAL_FORGET] = { journal__apply_forget, false },
        [JOURNAL_IMPORT] = { journal__apply_import, false },
        [JOURNAL_IMPORT_CELL] = { journal__apply_import_cell, false },
};

int journal_apply(struct tracker *t, const void *data, size_t len, size_t *off, char *err,
                  size_t errlen)
{
        msgpack_unpacked u;
        struct journal__reader r = { .err = err, .errlen = errlen };
        int rc = -EINVAL;

        msgpack_unpacked_init(&u);
        if (!data || *off >= len ||
            msgpack_unpack_next(&u, data, len, off) != MSGPACK_UNPACK_SUCCESS) {
                snprintf(err, errlen, "journal entry: not msgpack");
                *off = len;
                rc = -EBADMSG;
                goto out;
        }
        if (u.data.type != MSGPACK_OBJECT_MAP) {
                snprintf(err, errlen, "journal entry: not a msgpack map");
                goto out;
        }
        r.map = &u.data;
        const msgpack_object *opo = journal__get(&r, "op", MSGPACK_OBJECT_STR);
        int op = -1;
        for (int i = 0; opo && i < JOURNAL__COUNT; i++)
                if (proto_str_eq(opo, journal__ops[i]))
                        op = i;
        struct journal__head h = {
                .at = journal__u64(&r, "at"),
                .uid = (uint32_t)journal__u64(&r, "uid"),
        };
        h.id = journal__str(&r, "id", op < 0 || journal__appliers[op].has_id);
        if (op < 0) {
                snprintf(err, errlen, "journal entry: unknown op");
                goto out;
        }
        if (r.bad) {
                rc = r.bad;
                goto out;
        }
        rc = journal__appliers[op].apply(t, &r, &h);
        if (rc < 0 && err && !err[0])
                snprintf(err, errlen, "journal entry %s %s: %s", journal__ops[op],
                         h.id ? h.id : "", strerror(-rc));
out:
        for (int i = 0; i < r.nscratch; i++)
                free(r.scratch[i]);
        msgpack_unpacked_destroy(&u);
        return rc;
}

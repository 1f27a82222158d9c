/* proto.c - msgpack-RPC message shapes, named-argument decoding and reply
 * encoding, shared by outcomed and its clients.  See proto.h. */
#include "proto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const error_names[PROTO_ERROR__COUNT] = {
        [PROTO_OK] = "ok",
        [PROTO_BAD_REQUEST] = "bad_request",
        [PROTO_UNKNOWN_METHOD] = "unknown_method",
        [PROTO_UNKNOWN_TRACE] = "unknown_trace",
        [PROTO_DUPLICATE_TRACE] = "duplicate_trace",
        [PROTO_ALREADY_COMPLETED] = "already_completed",
        [PROTO_TOO_LARGE] = "too_large",
        [PROTO_OVERLOADED] = "overloaded",
        [PROTO_FORBIDDEN] = "forbidden",
        [PROTO_UNAVAILABLE] = "unavailable",
        [PROTO_INTERNAL] = "internal",
};

const char *proto_error_name(enum proto_error e)
{
        return (unsigned)e < PROTO_ERROR__COUNT ? error_names[e] : "internal";
}

int proto_error_parse(const char *s, size_t len)
{
        int e = proto_name_find(error_names, PROTO_ERROR__COUNT, s, len);
        return e == PROTO_OK ? -EINVAL : e;
}

/* In the order of their enums (test_proto checks each name's index). */
const char *const proto_task_names[PROTO_TASK__COUNT] = {
        "generate", "embed", "classify", "code", "reasoning",
};

const char *const proto_kind_names[PROTO_KIND__COUNT] = {
        "accepted", "accepted_with_edits", "rejected", "inconclusive", "applied",
        "signature_changed", "body_modified", "symbol_added", "modified", "ignored",
};

const char *const proto_durability_names[PROTO_DURABILITY__COUNT] = { "ack", "relaxed", "fsync" };

const char *proto_name(const char *const *names, int n, int i)
{
        return i >= 0 && i < n ? names[i] : "?";
}

int proto_name_find(const char *const *names, int n, const char *s, size_t len)
{
        for (int i = 0; i < n; i++)
                if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
                        return i;
        return -EINVAL;
}

bool proto_kind_needs_confidence(int kind)
{
        return kind == PROTO_KIND_ACCEPTED || kind == PROTO_KIND_ACCEPTED_WITH_EDITS ||
               kind == PROTO_KIND_REJECTED;
}

static int proto__fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int proto__fail(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        if (err && errlen)
                vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

bool proto_str_eq(const msgpack_object *o, const char *s)
{
        size_t len = strlen(s);
        return o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
               memcmp(o->via.str.ptr, s, len) == 0;
}

const msgpack_object *proto_map_get(const msgpack_object *map, const char *key)
{
        if (!map || map->type != MSGPACK_OBJECT_MAP)
                return NULL;
        for (uint32_t i = 0; i < map->via.map.size; i++)
                if (proto_str_eq(&map->via.map.ptr[i].key, key))
                        return &map->via.map.ptr[i].val;
        return NULL;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool proto_domain_ok(const char *s, size_t len)
{
        if (len < 1 || len > PROTO_DOMAIN_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

bool proto_utf8_valid(const char *str, size_t len)
{
        if (len == 0)
                return true; /* an empty msgpack str may come with no pointer */
        const unsigned char *s = (const unsigned char *)str, *end = s + len;
        while (s < end) {
                unsigned char c = *s;
                size_t n;
                uint32_t cp;
                if (c < 0x80) {
                        s++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        n = 1, cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2, cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3, cp = c & 0x07;
                } else {
                        return false;
                }
                if ((size_t)(end - s) <= n)
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((s[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i] & 0x3f);
                }
                if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
                        return false;
                s += n + 1;
        }
        return true;
}

int proto_parse_msg(const msgpack_object *o, struct proto_msg *m, char *err, size_t errlen)
{
        memset(m, 0, sizeof(*m));
        m->type = PROTO_REQUEST;
        if (o->type != MSGPACK_OBJECT_ARRAY)
                return proto__fail(err, errlen, "a message must be a msgpack-RPC array");
        const msgpack_object *v = o->via.array.ptr;
        uint32_t n = o->via.array.size;
        if (n >= 2 && v[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && v[1].via.u64 <= UINT32_MAX)
                m->msgid = (uint32_t)v[1].via.u64;
        if (n == 0 || v[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            (v[0].via.u64 != PROTO_REQUEST && v[0].via.u64 != PROTO_NOTIFY))
                return proto__fail(err, errlen,
                                   "message type must be 0 (request) or 2 (notification)");
        /* A malformed message is answered whatever its type tag says: m->type
         * stays PROTO_REQUEST until the message is known to be well formed. */
        int type = (int)v[0].via.u64;
        const msgpack_object *method, *params;
        if (type == PROTO_REQUEST) {
                if (n != 4)
                        return proto__fail(err, errlen, "a request is [0, msgid, method, params]");
                if (v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || v[1].via.u64 > UINT32_MAX)
                        return proto__fail(err, errlen,
                                           "msgid must be an unsigned 32-bit integer");
                method = &v[2];
                params = &v[3];
        } else {
                if (n != 3)
                        return proto__fail(err, errlen, "a notification is [2, method, params]");
                method = &v[1];
                params = &v[2];
        }
        if (method->type != MSGPACK_OBJECT_STR)
                return proto__fail(err, errlen, "method must be a string");
        m->method.ptr = method->via.str.ptr;
        m->method.len = method->via.str.size;
        if (params->type != MSGPACK_OBJECT_ARRAY)
                return proto__fail(err, errlen, "params must be an array");
        if (params->via.array.size > 1)
                return proto__fail(err, errlen,
                                   "params must be empty or hold one map of named arguments");
        if (params->via.array.size == 1) {
                const msgpack_object *a = &params->via.array.ptr[0];
                if (a->type != MSGPACK_OBJECT_MAP)
                        return proto__fail(err, errlen, "params[0] must be a map of named arguments");
                m->args = a;
        }
        m->type = type;
        if (type == PROTO_NOTIFY)
                m->msgid = 0;
        return 0;
}

static bool proto__trace_id_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == ':' || c == '-';
}

/* A float or an integer as a double; every negative integer is -1 (any
 * negative number fails the range checks alike).  -1 when o is no number. */
static int proto__number(const msgpack_object *o, double *d)
{
        if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
                *d = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *d = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *d = -1.0;
        else
                return -EINVAL;
        return 0;
}

int proto_arg_check(const msgpack_object *o, const struct proto_arg *a, struct proto_val *v,
                    const char *prefix, char *err, size_t errlen)
{
        const char *name = a->name;
        memset(v, 0, sizeof(*v));
        v->o = o;
        switch ((enum proto_arg_type)a->type) {
        case PROTO_ARG_STR:
        case PROTO_ARG_TRACE_ID: {
                if (o->type != MSGPACK_OBJECT_STR)
                        return proto__fail(err, errlen, "%s%s: must be a string", prefix, name);
                const char *s = o->via.str.ptr;
                uint32_t len = o->via.str.size;
                if (len < a->min || len > a->max) {
                        if (a->min == a->max)
                                return proto__fail(err, errlen, "%s%s: must be %u bytes long",
                                                   prefix, name, a->max);
                        return proto__fail(err, errlen,
                                           "%s%s: must be %u to %u bytes long (got %u)", prefix,
                                           name, a->min, a->max, len);
                }
                if (a->type == PROTO_ARG_TRACE_ID) {
                        for (uint32_t i = 0; i < len; i++)
                                if (!proto__trace_id_char((unsigned char)s[i]))
                                        return proto__fail(err, errlen,
                                                           "%s%s: may only hold A-Z a-z 0-9 . _ : -",
                                                           prefix, name);
                } else {
                        if (len && memchr(s, '\0', len)) /* an empty str may have no pointer */
                                return proto__fail(err, errlen, "%s%s: must not hold NUL bytes",
                                                   prefix, name);
                        if (!proto_utf8_valid(s, len))
                                return proto__fail(err, errlen, "%s%s: must be valid UTF-8",
                                                   prefix, name);
                }
                v->s.ptr = s;
                v->s.len = len;
                break;
        }
        case PROTO_ARG_U32:
        case PROTO_ARG_MS:
                if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                        if (o->via.u64 > UINT32_MAX)
                                return proto__fail(err, errlen,
                                                   "%s%s: must be at most 4294967295", prefix,
                                                   name);
                        v->u = (uint32_t)o->via.u64;
                } else if (a->type == PROTO_ARG_MS && (o->type == MSGPACK_OBJECT_FLOAT32 ||
                                                       o->type == MSGPACK_OBJECT_FLOAT64)) {
                        double d = o->via.f64;
                        if (!isfinite(d) || d < 0)
                                return proto__fail(err, errlen,
                                                   "%s%s: must be a finite non-negative number",
                                                   prefix, name);
                        d = round(d);
                        if (d > (double)UINT32_MAX)
                                return proto__fail(err, errlen,
                                                   "%s%s: must be at most 4294967295", prefix,
                                                   name);
                        v->u = (uint32_t)d;
                } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                        return proto__fail(err, errlen, "%s%s: must not be negative", prefix, name);
                } else {
                        return proto__fail(err, errlen, "%s%s: must be %s", prefix, name,
                                           a->type == PROTO_ARG_MS
                                                   ? "a non-negative integer or float"
                                                   : "a non-negative integer");
                }
                break;
        case PROTO_ARG_UNIT: {
                double d;
                if (proto__number(o, &d) < 0)
                        return proto__fail(err, errlen, "%s%s: must be a number", prefix, name);
                if (!isfinite(d) || d < 0.0 || d > 1.0)
                        return proto__fail(err, errlen, "%s%s: must be a finite number in [0, 1]",
                                           prefix, name);
                v->d = d;
                break;
        }
        case PROTO_ARG_BOOL:
                if (o->type != MSGPACK_OBJECT_BOOLEAN)
                        return proto__fail(err, errlen, "%s%s: must be a boolean", prefix, name);
                v->b = o->via.boolean;
                break;
        case PROTO_ARG_U64:
                if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                        return proto__fail(err, errlen, "%s%s: must not be negative", prefix, name);
                if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return proto__fail(err, errlen, "%s%s: must be a non-negative integer",
                                           prefix, name);
                v->u64 = o->via.u64;
                break;
        case PROTO_ARG_REAL: {
                double d;
                if (proto__number(o, &d) < 0)
                        return proto__fail(err, errlen, "%s%s: must be a number", prefix, name);
                if (!isfinite(d) || d < 0.0)
                        return proto__fail(err, errlen, "%s%s: must be a finite number >= 0",
                                           prefix, name);
                v->d = d;
                break;
        }
        case PROTO_ARG_ANY:
                break;
        case PROTO_ARG_MAP:
                if (o->type != MSGPACK_OBJECT_MAP)
                        return proto__fail(err, errlen, "%s%s: must be a map", prefix, name);
                break;
        case PROTO_ARG_ARRAY:
                if (o->type != MSGPACK_OBJECT_ARRAY)
                        return proto__fail(err, errlen, "%s%s: must be an array", prefix, name);
                if (o->via.array.size < a->min || o->via.array.size > a->max)
                        return proto__fail(err, errlen, "%s%s: must hold %u to %u entries (got %u)",
                                           prefix, name, a->min, a->max, o->via.array.size);
                break;
        default:
                return proto__fail(err, errlen, "%s%s: unknown argument type", prefix, name);
        }
        v->set = true;
        return 0;
}

const struct proto_arg proto_profile_spec[PROTO_PROFILE__COUNT] = {
        [PROTO_PROFILE_MODEL] = { "model", PROTO_ARG_STR, true, 1, UINT32_MAX },
        [PROTO_PROFILE_TOTAL_CALLS] = { "total_calls", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_PROFILE_SUCCESS_COUNT] = { "success_count", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_PROFILE_FAIL_COUNT] = { "fail_count", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_PROFILE_TOTAL_LATENCY_MS] = { "total_latency_ms", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_PROFILE_EMA_QUALITY] = { "ema_quality", PROTO_ARG_UNIT, true, 0, 0 },
        [PROTO_PROFILE_UPDATED_AT] = { "updated_at", PROTO_ARG_U64, false, 0, 0 },
        [PROTO_PROFILE_TASKS] = { "tasks", PROTO_ARG_MAP, false, 0, 0 },
        [PROTO_PROFILE_AVG_LATENCY_MS] = { "avg_latency_ms", PROTO_ARG_ANY, false, 0, 0 },
        [PROTO_PROFILE_SUCCESS_RATE] = { "success_rate", PROTO_ARG_ANY, false, 0, 0 },
        [PROTO_PROFILE_DEGRADED] = { "degraded", PROTO_ARG_ANY, false, 0, 0 },
        PROTO_EVIDENCE_ARGS,
        [PROTO_PROFILE_DEGRADED_SINCE] = { "degraded_since", PROTO_ARG_ANY, false, 0, 0 },
};

const struct proto_arg proto_task_stats_spec[PROTO_TASK_STATS__COUNT] = {
        [PROTO_TASK_STATS_CALLS] = { "calls", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_TASK_STATS_SUCCESSES] = { "successes", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_TASK_STATS_FAILURES] = { "failures", PROTO_ARG_U64, true, 0, 0 },
        [PROTO_TASK_STATS_AVG_LATENCY_MS] = { "avg_latency_ms", PROTO_ARG_REAL, true, 0, 0 },
        [PROTO_TASK_STATS_EMA_QUALITY] = { "ema_quality", PROTO_ARG_UNIT, true, 0, 0 },
        [PROTO_TASK_STATS_SUCCESS_RATE] = { "success_rate", PROTO_ARG_ANY, false, 0, 0 },
        PROTO_EVIDENCE_ARGS,
};

int proto_args_decode(const msgpack_object *map, const struct proto_arg *spec, size_t n,
                      struct proto_val *vals, const char *prefix, char *err, size_t errlen)
{
        if (!prefix)
                prefix = "";
        for (size_t j = 0; j < n; j++)
                memset(&vals[j], 0, sizeof(vals[j]));
        if (map && map->type != MSGPACK_OBJECT_MAP)
                return proto__fail(err, errlen, "%sarguments must be a map", prefix);
        uint32_t count = map ? map->via.map.size : 0;
        for (uint32_t i = 0; i < count; i++) {
                const msgpack_object_kv *kv = &map->via.map.ptr[i];
                if (kv->key.type != MSGPACK_OBJECT_STR)
                        return proto__fail(err, errlen, "%sargument names must be strings", prefix);
                const char *k = kv->key.via.str.ptr;
                uint32_t klen = kv->key.via.str.size;
                size_t j;
                for (j = 0; j < n; j++)
                        if (strlen(spec[j].name) == klen && memcmp(spec[j].name, k, klen) == 0)
                                break;
                if (j == n) {
                        /* Name the stranger, printably and briefly. */
                        char shown[64];
                        size_t s = 0;
                        for (uint32_t c = 0; c < klen && s + 1 < sizeof(shown); c++)
                                shown[s++] = (k[c] >= 0x20 && k[c] < 0x7f) ? k[c] : '?';
                        shown[s] = '\0';
                        return proto__fail(err, errlen, "%s%s%s: unknown argument", prefix, shown,
                                           klen >= sizeof(shown) ? "..." : "");
                }
                if (vals[j].set)
                        return proto__fail(err, errlen, "%s%s: given twice", prefix, spec[j].name);
                int r = proto_arg_check(&kv->val, &spec[j], &vals[j], prefix, err, errlen);
                if (r < 0)
                        return r;
        }
        for (size_t j = 0; j < n; j++)
                if (spec[j].required && !vals[j].set)
                        return proto__fail(err, errlen, "%s%s: required", prefix, spec[j].name);
        return 0;
}

int proto_pack_ok_head(msgpack_packer *pk, uint32_t msgid)
{
        return msgpack_pack_array(pk, 4) || msgpack_pack_uint8(pk, PROTO_RESPONSE) ||
                               msgpack_pack_uint32(pk, msgid) || msgpack_pack_nil(pk)
                       ? -ENOMEM
                       : 0;
}

/* Copy s into buf (size n), replacing each byte that does not start or
 * continue a valid UTF-8 sequence with '?': messages quote client text,
 * cut to fit, and a cut may fall inside a character. */
static const char *proto__utf8_clean(const char *s, char *buf, size_t n)
{
        size_t len = strlen(s), o = 0;
        if (len >= n)
                len = n - 1;
        for (size_t i = 0; i < len;) {
                size_t k = 1;
                while (k <= 4 && i + k <= len && !proto_utf8_valid(s + i, k))
                        k++;
                if (k <= 4 && i + k <= len) {
                        memcpy(buf + o, s + i, k);
                        o += k;
                        i += k;
                } else {
                        buf[o++] = '?';
                        i++;
                }
        }
        buf[o] = '\0';
        return buf;
}

int proto_pack_error(msgpack_packer *pk, uint32_t msgid, enum proto_error e, const char *message)
{
        char clean[1024];
        if (msgpack_pack_array(pk, 4) || msgpack_pack_uint8(pk, PROTO_RESPONSE) ||
            msgpack_pack_uint32(pk, msgid) || msgpack_pack_map(pk, 2) ||
            proto_pack_kv_str(pk, "code", proto_error_name(e)) < 0 ||
            proto_pack_kv_str(pk, "message",
                              message ? proto__utf8_clean(message, clean, sizeof(clean))
                                      : proto_error_name(e)) < 0)
                return -ENOMEM;
        return msgpack_pack_nil(pk) ? -ENOMEM : 0;
}

int proto_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method)
{
        if (msgpack_pack_array(pk, 4) || msgpack_pack_uint8(pk, PROTO_REQUEST) ||
            msgpack_pack_uint32(pk, msgid))
                return -ENOMEM;
        return proto_pack_cstr(pk, method);
}

int proto_pack_notify_head(msgpack_packer *pk, const char *method)
{
        if (msgpack_pack_array(pk, 3) || msgpack_pack_uint8(pk, PROTO_NOTIFY))
                return -ENOMEM;
        return proto_pack_cstr(pk, method);
}

int proto_parse_response(const msgpack_object *o, uint32_t *msgid, const msgpack_object **error,
                         const msgpack_object **result)
{
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
                return -EINVAL;
        const msgpack_object *v = o->via.array.ptr;
        if (v[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || v[0].via.u64 != PROTO_RESPONSE ||
            v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || v[1].via.u64 > UINT32_MAX)
                return -EINVAL;
        if (v[2].type != MSGPACK_OBJECT_NIL && v[2].type != MSGPACK_OBJECT_MAP)
                return -EINVAL;
        *msgid = (uint32_t)v[1].via.u64;
        *error = v[2].type == MSGPACK_OBJECT_NIL ? NULL : &v[2];
        *result = &v[3];
        return 0;
}

/* ---- framing guard ------------------------------------------------------ */

/* Header size (first byte included) of a msgpack value starting with b. */
static uint8_t proto__skim_need(uint8_t b)
{
        if (b <= 0xbf || b >= 0xe0)
                return 1; /* fixint, fixmap, fixarray, fixstr, negative fixint */
        static const uint8_t need[0x20] = {
                /* c0 nil */ 1, /* c1 */ 1, /* c2 c3 */ 1, 1,
                /* c4-c6 bin8/16/32 */ 2, 3, 5,
                /* c7-c9 ext8/16/32 (length, type) */ 3, 4, 6,
                /* ca cb float32/64 */ 5, 9,
                /* cc-cf uint8..64 */ 2, 3, 5, 9,
                /* d0-d3 int8..64 */ 2, 3, 5, 9,
                /* d4-d8 fixext1..16 (type; the data is skipped as payload) */
                2, 2, 2, 2, 2,
                /* d9-db str8/16/32 */ 2, 3, 5,
                /* dc dd array16/32 */ 3, 5,
                /* de df map16/32 */ 3, 5,
        };
        return need[b - 0xc0];
}

static uint64_t proto__be(const uint8_t *p, int n)
{
        uint64_t v = 0;
        for (int i = 0; i < n; i++)
                v = (v << 8) | p[i];
        return v;
}

enum proto_skim_status proto_skim_feed(struct proto_skim *s, const uint8_t *p, size_t n,
                                       uint64_t limit, size_t *used)
{
        size_t i = 0;
        while (i < n) {
                if (s->skip) {
                        uint64_t take = s->skip < n - i ? s->skip : n - i;
                        s->skip -= take;
                        s->bytes += take;
                        i += (size_t)take;
                } else {
                        if (s->have == 0) {
                                if (s->owed == 0)
                                        s->owed = 1; /* a new message: one value */
                                if (p[i] == 0xc1) {
                                        *used = i;
                                        return PROTO_SKIM_INVALID;
                                }
                                s->need = proto__skim_need(p[i]);
                        }
                        s->hdr[s->have++] = p[i++];
                        s->bytes++;
                        if (s->have < s->need)
                                continue;
                        /* A whole header: this value fills one slot. */
                        uint8_t b = s->hdr[0];
                        uint64_t children = 0, payload = 0;
                        if (b >= 0x80 && b <= 0x8f)
                                children = 2u * (b & 0x0f);
                        else if (b >= 0x90 && b <= 0x9f)
                                children = b & 0x0f;
                        else if (b >= 0xa0 && b <= 0xbf)
                                payload = b & 0x1f;
                        else if (b == 0xc4 || b == 0xd9)
                                payload = s->hdr[1];
                        else if (b == 0xc5 || b == 0xda)
                                payload = proto__be(s->hdr + 1, 2);
                        else if (b == 0xc6 || b == 0xdb)
                                payload = proto__be(s->hdr + 1, 4);
                        else if (b == 0xc7)
                                payload = s->hdr[1];
                        else if (b == 0xc8)
                                payload = proto__be(s->hdr + 1, 2);
                        else if (b == 0xc9)
                                payload = proto__be(s->hdr + 1, 4);
                        else if (b >= 0xd4 && b <= 0xd8)
                                payload = 1u << (b - 0xd4); /* fixext 1, 2, 4, 8, 16 */
                        else if (b == 0xdc)
                                children = proto__be(s->hdr + 1, 2);
                        else if (b == 0xdd)
                                children = proto__be(s->hdr + 1, 4);
                        else if (b == 0xde)
                                children = 2 * proto__be(s->hdr + 1, 2);
                        else if (b == 0xdf)
                                children = 2 * proto__be(s->hdr + 1, 4);
                        s->owed = s->owed - 1 + children;
                        s->skip = payload;
                        s->have = s->need = 0;
                }
                /* Each element still owed takes at least one byte. */
                if (s->bytes + s->skip + s->owed > limit) {
                        *used = i;
                        return PROTO_SKIM_TOO_LARGE;
                }
                if (s->owed == 0 && s->skip == 0 && s->have == 0) {
                        s->bytes = 0;
                        *used = i;
                        return PROTO_SKIM_DONE;
                }
        }
        *used = i;
        return PROTO_SKIM_MORE;
}

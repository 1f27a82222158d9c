/* proto.h - outcomed's wire protocol (msgpack-RPC over a Unix stream
 * socket): error codes, the name tables of tasks, kinds and durability,
 * default limits, the profile's field spec, and the msgpack helpers shared
 * by the daemon and the client.  protocol/README.md is the protocol's
 * reference, with an example session.  (The daemon's version, which `ping`
 * answers, is the build's; the protocol has no version number of its own.)
 *
 * Nothing here allocates or does I/O: decoding points into the msgpack
 * object it was given (msgpack strings are not NUL-terminated), encoding
 * writes through a msgpack_packer.
 */
#ifndef OUTCOMED_PROTO_H
#define OUTCOMED_PROTO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <string.h>

/* msgpack-RPC message types. */
enum {
        PROTO_REQUEST = 0,
        PROTO_RESPONSE = 1,
        PROTO_NOTIFY = 2,
};

/* The contract's error codes, in its order. */
enum proto_error {
        PROTO_OK = 0,
        PROTO_BAD_REQUEST,
        PROTO_UNKNOWN_METHOD,
        PROTO_UNKNOWN_TRACE,
        PROTO_DUPLICATE_TRACE,
        PROTO_ALREADY_COMPLETED,
        PROTO_TOO_LARGE,
        PROTO_OVERLOADED,
        PROTO_FORBIDDEN,
        PROTO_UNAVAILABLE,
        PROTO_INTERNAL,
        PROTO_ERROR__COUNT
};

const char *proto_error_name(enum proto_error e);
/* -EINVAL when `s` (len bytes) is no code ("ok" is none). */
int proto_error_parse(const char *s, size_t len);

/* Names on the wire, one table each, in the order of their enums: a
 * call's task, an outcome's kind, and the daemon's durability (as `stats`
 * reports it and [store] durability takes it). */
enum proto_task {
        PROTO_TASK_GENERATE,
        PROTO_TASK_EMBED,
        PROTO_TASK_CLASSIFY,
        PROTO_TASK_CODE,
        PROTO_TASK_REASONING,
        PROTO_TASK__COUNT
};

enum proto_kind {
        PROTO_KIND_ACCEPTED,
        PROTO_KIND_ACCEPTED_WITH_EDITS,
        PROTO_KIND_REJECTED,
        PROTO_KIND_INCONCLUSIVE,
        PROTO_KIND_APPLIED,
        PROTO_KIND_SIGNATURE_CHANGED,
        PROTO_KIND_BODY_MODIFIED,
        PROTO_KIND_SYMBOL_ADDED,
        PROTO_KIND_MODIFIED,
        PROTO_KIND_IGNORED,
        PROTO_KIND__COUNT
};

enum proto_durability {
        PROTO_DURABILITY_ACK,
        PROTO_DURABILITY_RELAXED,
        PROTO_DURABILITY_FSYNC,
        PROTO_DURABILITY__COUNT
};

extern const char *const proto_task_names[PROTO_TASK__COUNT];
extern const char *const proto_kind_names[PROTO_KIND__COUNT];
extern const char *const proto_durability_names[PROTO_DURABILITY__COUNT];

/* names[i] for 0 <= i < n, else "?". */
const char *proto_name(const char *const *names, int n, int i);
/* The index of the name `s` (len bytes) in names[0..n), or -EINVAL. */
int proto_name_find(const char *const *names, int n, const char *s, size_t len);
/* True for the kinds judged with a confidence: accepted,
 * accepted_with_edits and rejected. */
bool proto_kind_needs_confidence(int kind);

/* Default limits of the contract (all configurable in the daemon). */
#define PROTO_MODEL_MAX 256u
#define PROTO_TEXT_MAX 4096u          /* reason, error */
#define PROTO_TRACE_ID_MAX 128u
#define PROTO_GEN_TRACE_ID_MAX 64u
#define PROTO_OUTPUT_MAX (1u << 20)   /* 1 MiB */
#define PROTO_MESSAGE_MAX (4u << 20)  /* 4 MiB */
#define PROTO_FILES_MAX 256u
#define PROTO_PATH_MAX 4096u          /* repo and each file */
#define PROTO_DOMAIN_MAX 128u         /* a domain, in bytes */
#define PROTO_LIST_MAX 1024u          /* actions, candidates */
#define PROTO_MAX_MODELS 100000u
#define PROTO_MAX_PENDING 1000000u
#define PROTO_SOCKET_PATH_MAX 107u    /* sizeof(sun_path) - 1 */

/* A string inside a msgpack buffer: not NUL-terminated. */
struct proto_str {
        const char *ptr;
        uint32_t len;
};

/* A decoded request or notification. */
struct proto_msg {
        int type;                /* PROTO_REQUEST or PROTO_NOTIFY */
        uint32_t msgid;          /* 0 for a notification */
        struct proto_str method;
        const msgpack_object *args; /* the named-arguments map, or NULL */
};

/* Decode a top-level message.  Returns 0, or -EINVAL with a message in err:
 * `m->msgid` is then the msgid to answer with (element 1 when it is an
 * unsigned 32-bit integer, else 0) and `m->type` tells whether an answer is
 * due (a notification is never answered). */
int proto_parse_msg(const msgpack_object *o, struct proto_msg *m, char *err, size_t errlen);

/* Named arguments, declared as a table and decoded by one helper that
 * names the bad field. */
enum proto_arg_type {
        PROTO_ARG_STR,        /* text: UTF-8, no NUL, len in [min, max] */
        PROTO_ARG_TRACE_ID,   /* text of [A-Za-z0-9._:-], len in [min, max] */
        PROTO_ARG_U32,        /* integer in [0, 2^32-1] */
        PROTO_ARG_MS,         /* U32, or a finite float >= 0 rounded to ms */
        PROTO_ARG_UNIT,       /* finite number in [0, 1], float or integer */
        PROTO_ARG_BOOL,
        PROTO_ARG_U64,        /* integer in [0, 2^64-1] (imported counts) */
        PROTO_ARG_REAL,       /* finite number >= 0, float or integer */
        PROTO_ARG_ANY,        /* anything: accepted and ignored (derived fields) */
        PROTO_ARG_MAP,        /* a map; its entries checked by the caller */
        PROTO_ARG_ARRAY,      /* count in [min, max]; elements checked by the caller */
};

struct proto_arg {
        const char *name;
        uint8_t type;         /* enum proto_arg_type */
        bool required;
        uint32_t min, max;    /* string length or array count */
};

struct proto_val {
        bool set;
        struct proto_str s;   /* STR, TRACE_ID */
        uint32_t u;           /* U32, MS */
        uint64_t u64;         /* U64 */
        double d;             /* UNIT, REAL */
        bool b;               /* BOOL */
        const msgpack_object *o; /* ARRAY (and the raw object for every type) */
};

/* Decode `map` (a msgpack map, or NULL for no arguments) against `spec` (n
 * entries) into vals[n].  An unknown key, a missing required one or a bad
 * value returns -EINVAL with "PREFIXname: why" in err. */
int proto_args_decode(const msgpack_object *map, const struct proto_arg *spec, size_t n,
                      struct proto_val *vals, const char *prefix, char *err, size_t errlen);

/* Check one value against one spec entry (used for array elements). */
int proto_arg_check(const msgpack_object *o, const struct proto_arg *a, struct proto_val *v,
                    const char *prefix, char *err, size_t errlen);

/* A profile as `query` answers it, which `export` writes and `import`
 * reads (protocol/README.md, "Export format"), declared once for the
 * daemon's import and outcomectl's check of a file: the profile's fields
 * (indexed by PROTO_PROFILE_*) and each task's (PROTO_TASK_STATS_*), the
 * derived ones accepted and ignored.  "model" is 1 byte or longer; its
 * upper limit is the daemon's [limits] model_bytes, checked apart.  Both
 * carry the evidence fields (PROTO_EVIDENCE_ARGS, PROTO_EVIDENCE_N of them,
 * a domain cell's too): posterior, input_tokens, output_tokens first. */
#define PROTO_EVIDENCE_ARGS                                              \
        { "posterior", PROTO_ARG_MAP, false, 0, 0 },                     \
        { "input_tokens", PROTO_ARG_U64, false, 0, 0 },                  \
        { "output_tokens", PROTO_ARG_U64, false, 0, 0 },                 \
        { "latency_p50_ms", PROTO_ARG_ANY, false, 0, 0 },                \
        { "latency_p95_ms", PROTO_ARG_ANY, false, 0, 0 },                \
        { "tokens_per_accepted", PROTO_ARG_ANY, false, 0, 0 },           \
        { "cost_per_accepted", PROTO_ARG_ANY, false, 0, 0 }
#define PROTO_EVIDENCE_N 7

enum proto_profile_field {
        PROTO_PROFILE_MODEL,
        PROTO_PROFILE_TOTAL_CALLS,
        PROTO_PROFILE_SUCCESS_COUNT,
        PROTO_PROFILE_FAIL_COUNT,
        PROTO_PROFILE_TOTAL_LATENCY_MS,
        PROTO_PROFILE_EMA_QUALITY,
        PROTO_PROFILE_UPDATED_AT,
        PROTO_PROFILE_TASKS,
        PROTO_PROFILE_AVG_LATENCY_MS,   /* derived */
        PROTO_PROFILE_SUCCESS_RATE,     /* derived */
        PROTO_PROFILE_DEGRADED,         /* derived */
        PROTO_PROFILE_EVIDENCE,         /* PROTO_EVIDENCE_N fields from here */
        PROTO_PROFILE_DEGRADED_SINCE = PROTO_PROFILE_EVIDENCE + PROTO_EVIDENCE_N,
        PROTO_PROFILE__COUNT
};

enum proto_task_stats_field {
        PROTO_TASK_STATS_CALLS,
        PROTO_TASK_STATS_SUCCESSES,
        PROTO_TASK_STATS_FAILURES,
        PROTO_TASK_STATS_AVG_LATENCY_MS,
        PROTO_TASK_STATS_EMA_QUALITY,
        PROTO_TASK_STATS_SUCCESS_RATE,  /* derived */
        PROTO_TASK_STATS_EVIDENCE,      /* PROTO_EVIDENCE_N fields from here */
        PROTO_TASK_STATS__COUNT = PROTO_TASK_STATS_EVIDENCE + PROTO_EVIDENCE_N
};

extern const struct proto_arg proto_profile_spec[PROTO_PROFILE__COUNT];
extern const struct proto_arg proto_task_stats_spec[PROTO_TASK_STATS__COUNT];

/* Helpers on msgpack objects. */
bool proto_str_eq(const msgpack_object *o, const char *s);
bool proto_utf8_valid(const char *s, size_t len);
/* A domain: 1..PROTO_DOMAIN_MAX bytes with no control character (C0 or
 * DEL); UTF-8 is checked apart (proto_utf8_valid). */
bool proto_domain_ok(const char *s, size_t len);
/* The value of `key` in a map whose keys are strings, or NULL. */
const msgpack_object *proto_map_get(const msgpack_object *map, const char *key);

/* Encoding.  Inline, so that the length of a literal key is known when
 * compiling (these run several times for every reply and journal entry).
 * Each returns 0, or -ENOMEM when the buffer could not grow (the only way
 * msgpack-c's writers fail), and stops at the first failure. */
static inline int proto_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
        return msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, s, len) ? -ENOMEM : 0;
}

static inline int proto_pack_cstr(msgpack_packer *pk, const char *s)
{
        return proto_pack_str(pk, s, strlen(s));
}

/* One key/value pair of a map: a string key, then the value (a NULL
 * string packs nil). */
static inline int proto_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
        if (proto_pack_cstr(pk, key) < 0)
                return -ENOMEM;
        return val ? proto_pack_cstr(pk, val) : msgpack_pack_nil(pk) ? -ENOMEM : 0;
}

static inline int proto_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
        return proto_pack_cstr(pk, key) < 0 || msgpack_pack_uint64(pk, val) ? -ENOMEM : 0;
}

static inline int proto_pack_kv_f64(msgpack_packer *pk, const char *key, double val)
{
        return proto_pack_cstr(pk, key) < 0 || msgpack_pack_double(pk, val) ? -ENOMEM : 0;
}

static inline int proto_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
        if (proto_pack_cstr(pk, key) < 0)
                return -ENOMEM;
        return (val ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? -ENOMEM : 0;
}
/* Each: 0, or -ENOMEM when the buffer could not grow.
 * [1, msgid, nil, ... : the caller packs the result next. */
int proto_pack_ok_head(msgpack_packer *pk, uint32_t msgid);
/* [1, msgid, {"code": ..., "message": ...}, nil] */
int proto_pack_error(msgpack_packer *pk, uint32_t msgid, enum proto_error e, const char *message);
/* [0, msgid, method, ... or [2, method, ... : the caller packs the params
 * array next (an array of one map, or an empty array). */
int proto_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method);
int proto_pack_notify_head(msgpack_packer *pk, const char *method);

/* Framing guard.  msgpack-c's unpacker reserves memory for a container as
 * soon as it reads the header (count * sizeof(msgpack_object)), and has no
 * size limit of its own: five bytes declaring 2^27 elements would make it
 * reserve 3 GiB.  The skimmer walks the msgpack headers of the incoming
 * bytes before the unpacker sees them, keeping only counts: every element
 * still owed needs at least one byte, so a message that declares more than
 * `limit` bytes can hold is refused before anything is allocated, and
 * message boundaries are known exactly.  It does not decode values. */
struct proto_skim {
        uint64_t owed;      /* elements still to come in the current message */
        uint64_t skip;      /* payload bytes still to come (str, bin, ext) */
        uint64_t bytes;     /* bytes of the current message so far */
        uint8_t hdr[9];
        uint8_t have, need; /* header bytes read / needed */
};

enum proto_skim_status {
        PROTO_SKIM_MORE,      /* all bytes taken; the message goes on */
        PROTO_SKIM_DONE,      /* a message ended after *used bytes */
        PROTO_SKIM_TOO_LARGE, /* the message is, or declares, more than limit bytes */
        PROTO_SKIM_INVALID,   /* a byte that is never msgpack (0xc1) */
};

/* Feed n bytes.  On DONE, *used bytes were taken and the state is ready for
 * the next message; call again with the rest.  After TOO_LARGE or INVALID
 * the stream cannot be resynchronised. */
enum proto_skim_status proto_skim_feed(struct proto_skim *s, const uint8_t *p, size_t n,
                                       uint64_t limit, size_t *used);

/* Client side: split a response.  Returns 0, or -EINVAL when `o` is not a
 * well-formed response.  *error is NULL on success. */
int proto_parse_response(const msgpack_object *o, uint32_t *msgid, const msgpack_object **error,
                         const msgpack_object **result);

#endif

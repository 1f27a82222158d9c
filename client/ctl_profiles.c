/* ctl_profiles.c - outcomectl's commands on whole profiles: forget (drop a
 * model's profile), export (every profile to a JSON file) and import (load
 * such a file through the daemon's `import` method, in chunks).
 *
 * The export format, version 1 (protocol/README.md, "Export format"):
 *
 *         {"format": "outcomed-profiles", "version": 1, "exported_at": UNIX_S,
 *          "profiles": [PROFILE...]}
 *
 * PROFILE is exactly what `query` answers, one per line.  Floats print so
 * that they read back to the same double and integers as integers, so an
 * export read back by import hands the daemon the very numbers query gave.
 *
 * Import checks the whole file before it sends anything: JSON, envelope,
 * no model twice, and each profile's contract fields with the daemon's own
 * checks (proto_arg_check), so that a damaged profile deep in a big file
 * does not leave the chunks before it imported.  Keys this outcomectl does
 * not know are the daemon's to judge.
 * A chunk holds at most IMPORT_CHUNK_MAX profiles (fewer when the daemon's
 * list_entries is lower) and packs to at most 90% of the daemon's message
 * limit; both limits come from `stats`.  Each profile is packed once alone
 * to learn its size, and chunks are cut greedily by those sizes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "json.h"
#include "proto.h"

#define EXPORT_FORMAT "outcomed-profiles"
#define EXPORT_VERSION 2    /* 2: profiles carry their domain cells */
#define EXPORT_VERSION_MIN 1 /* the oldest version import reads */

#define IMPORT_CHUNK_MAX 1000u   /* profiles per import call, at most */
#define IMPORT_OVERHEAD 64u      /* bytes of a request besides its profiles */

/* ---- forget ------------------------------------------------------------- */

/* "forgot MODEL", or why not; arg: the forget arguments. */
struct forget_args {
        const char *model, *task, *domain, *scope;
};

static int print_forget(struct ctl *ctl, const msgpack_object *result, void *arg)
{
        const struct forget_args *a = arg;
        const msgpack_object *f = ctl_get(result, "forgotten");

        (void)ctl;
        if (f == NULL || f->type != MSGPACK_OBJECT_BOOLEAN)
                return CTL_PRINT_JSON;
        fputs(f->via.boolean ? "forgot " : a->domain ? "no cell for " : "no profile for ", stdout);
        ctl_put_text(a->model, strlen(a->model), 0);
        if (a->domain)
                printf(" / %s / %s", a->task, a->domain);
        putchar('\n');
        return CTL_EXIT_OK;
}

static int run_forget(struct ctl *ctl, int argc, char **argv)
{
        struct forget_args a = { 0 };
        const struct ctl_opt opts[] = {
                CTL_VALUE("task", ctl_opt_text, &a.task, NULL),
                CTL_VALUE("domain", ctl_opt_text, &a.domain, NULL),
                CTL_VALUE("scope", ctl_opt_text, &a.scope, NULL),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, -1, "");
        if (status != CTL_GO)
                return status;
        if ((a.task == NULL) != (a.domain == NULL))
                return ctl_usage(ctl, "--task and --domain go together (one domain cell)");
        if (ctl_positionals(ctl, argc, argv, 1, "MODEL") < 0)
                return CTL_EXIT_USAGE;
        a.model = argv[optind];
        size_t len = strlen(a.model);
        if (len == 0)
                return ctl_usage(ctl, "MODEL must not be empty");
        if (ctl_check_text(ctl, "MODEL", a.model, len) < 0)
                return CTL_EXIT_USAGE;

        const struct ctl_arg args[] = {
                CTL_ARG_S("model", a.model), CTL_ARG_S("task", a.task), CTL_ARG_S("domain", a.domain),
                CTL_ARG_S("scope", a.scope),
        };
        return CTL_CALL(ctl, "forget", args, print_forget, &a);
}

CTL_COMMAND(forget, run_forget,
        "remove a model's profile (a retired model, a misnamed one)",
        "Usage: outcomectl forget MODEL [--task TASK --domain DOMAIN]\n"
        "\n"
        "Remove MODEL's profile, all its task statistics and its domain cells from\n"
        "the daemon (and, through its journal, from its database); with --task and\n"
        "--domain, only that one domain cell.  Prints 'forgot MODEL', or 'no\n"
        "profile for MODEL' when there was none; both exit 0.  With --json: the\n"
        "daemon's {\"model\", \"forgotten\"} (and task and domain).\n"
        "\n"
        "Traces of MODEL still pending are kept: a later complete, fail or outcome\n"
        "for one of them starts a new profile.  To keep a copy first:\n"
        "'outcomectl export FILE'.\n"
        "\n"
        "Options:\n"
        "  --task TASK       with --domain: forget only the cell of (MODEL, TASK, DOMAIN)\n"
        "  --domain DOMAIN\n"
        "  --scope fleet|host every host forgets it too (the default with a [fleet]\n"
        "                    section), or only this one\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Examples:\n"
        "  outcomectl forget gpt-4o-typo\n"
        "  outcomectl forget mixtral --task reasoning --domain 'college physics'\n");

/* ---- export ------------------------------------------------------------- */

/* The export document: the profiles one per line, so that it diffs well. */
static int write_export(FILE *f, const msgpack_object *list, long long at)
{
        fprintf(f, "{\"format\":\"%s\",\"version\":%d,\"exported_at\":%lld,\"profiles\":[",
                EXPORT_FORMAT, EXPORT_VERSION, at);
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                fputs(i ? ",\n" : "\n", f);
                if (json_print(f, &list->via.array.ptr[i]) < 0)
                        return -1;
        }
        fputs(list->via.array.size ? "\n]}\n" : "]}\n", f);
        return ferror(f) ? -1 : 0;
}

struct export_args {
        const msgpack_object *list;
        long long at;
};

static int export_write(FILE *f, void *arg)
{
        const struct export_args *a = arg;
        return write_export(f, a->list, a->at);
}

static int export_to_file(const char *path, const msgpack_object *list, long long at,
                          char *err, size_t errlen)
{
        struct export_args a = { list, at };
        return ctl_write_file(path, export_write, &a, err, errlen);
}

static int run_export(struct ctl *ctl, int argc, char **argv)
{
        struct oc_reply reply;
        int status = ctl_options(ctl, argc, argv, NULL, 0, -1, "");
        if (status != CTL_GO)
                return status;
        if (argc - optind > 1)
                return ctl_usage(ctl, "unexpected argument '%s'", argv[optind + 1]);
        const char *path = optind < argc ? argv[optind] : "-";
        bool to_stdout = strcmp(path, "-") == 0;
        if (path[0] == '\0')
                return ctl_usage(ctl, "FILE must not be empty");

        const struct ctl_arg args[] = { CTL_ARG_B("domains", true, true) };
        if (CTL_REQUEST(ctl, "query", args, 0) == NULL)
                return CTL_EXIT_CONNECT;
        status = ctl_call(ctl, &reply);
        if (status != CTL_EXIT_OK)
                return status;
        long long at = (long long)time(NULL);
        const msgpack_object *list = ctl_get(reply.result, "profiles");
        if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY) {
                fputs("outcomectl: export: the daemon's answer to query holds no profiles list\n",
                      stderr);
                status = CTL_EXIT_DAEMON;
                goto out;
        }
        if (to_stdout) {
                errno = 0;
                if (write_export(stdout, list, at) < 0 || fflush(stdout) != 0) {
                        fprintf(stderr, "outcomectl: export: cannot write the output: %s\n",
                                strerror(errno ? errno : EIO));
                        status = CTL_EXIT_DAEMON;
                }
                goto out;
        }
        char err[1024];
        if (export_to_file(path, list, at, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomectl: export: %s\n", err);
                status = CTL_EXIT_DAEMON;
                goto out;
        }
        if (ctl->json) {
                printf("{\"exported\":%" PRIu32 ",\"file\":", list->via.array.size);
                json_print_string(stdout, path, strlen(path));
                puts("}");
        } else {
                printf("exported %" PRIu32 " profile%s to ", list->via.array.size,
                       list->via.array.size == 1 ? "" : "s");
                ctl_put_text(path, strlen(path), 0);
                putchar('\n');
        }
out:
        oc_reply_destroy(&reply);
        return status;
}

CTL_COMMAND(export, run_export,
        "write every profile to a JSON file (for import elsewhere)",
        "Usage: outcomectl export [FILE]\n"
        "\n"
        "Write every model's profile, as 'query' returns it, to FILE as JSON (to\n"
        "standard output when FILE is missing or '-'):\n"
        "\n"
        "  {\"format\":\"outcomed-profiles\",\"version\":1,\"exported_at\":UNIX_SECONDS,\n"
        "   \"profiles\":[PROFILE,...]}\n"
        "\n"
        "one profile per line, floats written so that they read back exactly.\n"
        "'outcomectl import FILE' loads it into a daemon; protocol/README.md\n"
        "('Export format') describes it.\n"
        "\n"
        "FILE is written whole or not at all: to a temporary file in its directory,\n"
        "synced, then renamed over FILE (a symlink at FILE is replaced, not\n"
        "followed).  Prints 'exported N profiles to FILE' (with --json:\n"
        "{\"exported\":N,\"file\":FILE}); nothing else when writing to standard output.\n"
        "Exit status 1 when FILE cannot be written.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                    as in 'outcomectl --help'\n"
        "\n"
        "Examples:\n"
        "  outcomectl export profiles.json\n"
        "  outcomectl export | ssh newhost outcomectl import -\n");

/* ---- import ------------------------------------------------------------- */

/* The fields of `map` that `spec` names, each checked when present and
 * required ones present; keys not in spec are left to the daemon (a newer
 * daemon's export may carry more than this outcomectl knows of). */
static int check_fields(const msgpack_object *map, const struct proto_arg *spec, size_t n,
                        const char *prefix, char *err, size_t errlen)
{
        for (size_t j = 0; j < n; j++) {
                struct proto_val v;
                const msgpack_object *o = proto_map_get(map, spec[j].name);
                if (o == NULL && spec[j].required) {
                        snprintf(err, errlen, "%s%s: required", prefix, spec[j].name);
                        return -1;
                }
                if (o != NULL && proto_arg_check(o, &spec[j], &v, prefix, err, errlen) < 0)
                        return -1;
        }
        return 0;
}

/* One profile of the file: the fields of the contract's PROFILE, checked
 * by the spec the daemon's import checks them by (proto_profile_spec), so
 * that a damaged profile deep in a file is found before the first chunk
 * goes.
 * The model's length is checked later, against the daemon's own limit.
 * Returns 0 or -1 with err set. */
static int check_profile(const msgpack_object *o, uint32_t i, char *err, size_t errlen)
{
        char prefix[48];

        snprintf(prefix, sizeof(prefix), "profiles[%" PRIu32 "].", i);
        if (o->type != MSGPACK_OBJECT_MAP) {
                snprintf(err, errlen, "profiles[%" PRIu32 "]: must be an object", i);
                return -1;
        }
        if (check_fields(o, proto_profile_spec, PROTO_PROFILE__COUNT, prefix, err, errlen) < 0)
                return -1;
        const msgpack_object *tasks = proto_map_get(o, "tasks");
        for (uint32_t k = 0; tasks && k < tasks->via.map.size; k++) {
                const msgpack_object_kv *kv = &tasks->via.map.ptr[k];
                bool str = kv->key.type == MSGPACK_OBJECT_STR;
                uint32_t klen = str ? kv->key.via.str.size : 0;
                int t = str ? proto_name_find(proto_task_names, PROTO_TASK__COUNT,
                                              kv->key.via.str.ptr, klen) : -EINVAL;
                if (t < 0) {
                        snprintf(err, errlen, "%stasks: unknown task '%.*s' (tasks are generate, "
                                 "embed, classify, code, reasoning)", prefix,
                                 (int)(klen > 64 ? 64 : klen), str ? kv->key.via.str.ptr : "");
                        return -1;
                }
                char tprefix[96];
                const char *name = proto_task_names[t];
                snprintf(tprefix, sizeof(tprefix), "%stasks.%s.", prefix, name);
                if (kv->val.type != MSGPACK_OBJECT_MAP) {
                        snprintf(err, errlen, "%stasks.%s: must be an object", prefix, name);
                        return -1;
                }
                if (check_fields(&kv->val, proto_task_stats_spec, PROTO_TASK_STATS__COUNT, tprefix,
                                 err, errlen) < 0)
                        return -1;
        }
        return 0;
}

static const msgpack_object *model_of(const msgpack_object *profile)
{
        return proto_map_get(profile, "model");
}

/* qsort over pointers to profiles: by model, then in file order. */
static int cmp_model(const void *a, const void *b)
{
        const msgpack_object *pa = *(const msgpack_object *const *)a;
        const msgpack_object *pb = *(const msgpack_object *const *)b;
        const msgpack_object *x = model_of(pa), *y = model_of(pb);
        uint32_t n = x->via.str.size < y->via.str.size ? x->via.str.size : y->via.str.size;
        int c = n ? memcmp(x->via.str.ptr, y->via.str.ptr, n) : 0;
        if (c != 0)
                return c;
        if (x->via.str.size != y->via.str.size)
                return x->via.str.size < y->via.str.size ? -1 : 1;
        return (pa > pb) - (pa < pb);
}

/* The export document's envelope and every profile in it; a model given
 * twice would be merged twice (or replaced by the later one), so it is an
 * error.  Returns the profiles array, or NULL with err set. */
static const msgpack_object *check_document(const msgpack_object *doc, char *err, size_t errlen)
{
        if (doc->type != MSGPACK_OBJECT_MAP) {
                snprintf(err, errlen, "not an outcomed profile export: the top level is not a JSON "
                         "object");
                return NULL;
        }
        const msgpack_object *format = proto_map_get(doc, "format");
        if (format == NULL || !proto_str_eq(format, EXPORT_FORMAT)) {
                snprintf(err, errlen, "not an outcomed profile export: \"format\" is not \"%s\"",
                         EXPORT_FORMAT);
                return NULL;
        }
        const msgpack_object *version = proto_map_get(doc, "version");
        if (version == NULL || version->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(err, errlen, "\"version\" must be an integer (this outcomectl reads "
                         "version %d)", EXPORT_VERSION);
                return NULL;
        }
        if (version->via.u64 < EXPORT_VERSION_MIN || version->via.u64 > EXPORT_VERSION) {
                snprintf(err, errlen, "export format version %" PRIu64 " is not known to this "
                         "outcomectl, which reads versions %d to %d", version->via.u64,
                         EXPORT_VERSION_MIN, EXPORT_VERSION);
                return NULL;
        }
        const msgpack_object *list = proto_map_get(doc, "profiles");
        if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY) {
                snprintf(err, errlen, "\"profiles\" must be an array");
                return NULL;
        }
        uint32_t n = list->via.array.size;
        for (uint32_t i = 0; i < n; i++)
                if (check_profile(&list->via.array.ptr[i], i, err, errlen) < 0)
                        return NULL;
        if (n < 2)
                return list;

        const msgpack_object **sorted = malloc(n * sizeof(*sorted));
        if (sorted == NULL) {
                snprintf(err, errlen, "out of memory");
                return NULL;
        }
        for (uint32_t i = 0; i < n; i++)
                sorted[i] = &list->via.array.ptr[i];
        qsort(sorted, n, sizeof(*sorted), cmp_model);
        for (uint32_t i = 1; i < n; i++) {
                const msgpack_object *a = model_of(sorted[i - 1]), *b = model_of(sorted[i]);
                if (a->via.str.size != b->via.str.size ||
                    memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) != 0)
                        continue;
                snprintf(err, errlen, "profiles[%td].model: '%.*s' is also the model of "
                         "profiles[%td]", sorted[i] - list->via.array.ptr,
                         (int)(b->via.str.size > 64 ? 64 : b->via.str.size), b->via.str.ptr,
                         sorted[i - 1] - list->via.array.ptr);
                free(sorted);
                return NULL;
        }
        free(sorted);
        return list;
}

/* The daemon's limits that shape the chunks, from `stats` (the contract's
 * defaults for any it does not report). */
struct import_limits {
        uint64_t message_bytes;
        uint64_t list_entries;
        uint64_t model_bytes;
};

static uint64_t stat_u64(const msgpack_object *map, const char *key, uint64_t dflt)
{
        const msgpack_object *o = ctl_get(map, key);
        return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 > 0 ? o->via.u64 : dflt;
}

static int import_limits(struct ctl *ctl, struct import_limits *lim)
{
        struct oc_reply reply;
        int status = ctl_call_noargs(ctl, "stats", &reply);
        if (status != CTL_EXIT_OK)
                return status;
        const msgpack_object *limits = ctl_get(ctl_get(reply.result, "config"), "limits");
        lim->message_bytes = stat_u64(reply.result, "max_message_bytes",
                                      stat_u64(limits, "message_bytes", PROTO_MESSAGE_MAX));
        lim->list_entries = stat_u64(limits, "list_entries", PROTO_LIST_MAX);
        lim->model_bytes = stat_u64(limits, "model_bytes", PROTO_MODEL_MAX);
        oc_reply_destroy(&reply);
        return CTL_EXIT_OK;
}

/* One item of an import, packed: a profile (without its domain cells) or
 * a cell ({model, task, domain, the cell's numbers}). */
struct import_item {
        size_t off, len; /* in the packing buffer */
        bool cell;
};

/* Send items [from, to), all profiles or all cells, in one `import` call;
 * adds to *created. */
static int import_chunk(struct ctl *ctl, const char *buf, const struct import_item *items,
                        uint32_t from, uint32_t to, const char *mode, uint64_t *created)
{
        struct oc_reply reply;
        msgpack_packer *pk = ctl_request(ctl, "import", 2);
        if (pk == NULL)
                return CTL_EXIT_CONNECT;
        ctl_pack_key(pk, items[from].cell ? "cells" : "profiles");
        msgpack_pack_array(pk, to - from);
        for (uint32_t i = from; i < to; i++)
                pk->callback(pk->data, buf + items[i].off, items[i].len); /* packed already */
        ctl_pack_str(pk, "mode", mode);
        int status = ctl_call(ctl, &reply);
        if (status != CTL_EXIT_OK)
                return status;
        const msgpack_object *c = ctl_get(reply.result, items[from].cell ? "cells_created" : "created");
        if (c && c->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *created += c->via.u64;
        oc_reply_destroy(&reply);
        return CTL_EXIT_OK;
}

/* Pack a profile without its "domains". */
static int pack_profile(msgpack_packer *pk, const msgpack_object *p)
{
        uint32_t n = 0;
        for (uint32_t k = 0; k < p->via.map.size; k++)
                n += !proto_str_eq(&p->via.map.ptr[k].key, "domains");
        int r = msgpack_pack_map(pk, n);
        for (uint32_t k = 0; r == 0 && k < p->via.map.size; k++)
                if (!proto_str_eq(&p->via.map.ptr[k].key, "domains"))
                        r = msgpack_pack_object(pk, p->via.map.ptr[k].key) ||
                            msgpack_pack_object(pk, p->via.map.ptr[k].val);
        return r;
}

/* The cells of a version 2 profile, {TASK: {DOMAIN: CELL}}: checked, and
 * each packed as an item of its own.  Returns the number packed, or -1 with
 * err set (-2: out of memory). */
static long pack_cells(msgpack_packer *pk, msgpack_sbuffer *sb, const msgpack_object *p,
                       uint32_t i, struct import_item *items, char *err, size_t errlen)
{
        const msgpack_object *model = model_of(p), *domains = proto_map_get(p, "domains");
        long n = 0;
        if (domains == NULL)
                return 0;
        if (domains->type != MSGPACK_OBJECT_MAP) {
                snprintf(err, errlen, "profiles[%" PRIu32 "].domains: must be an object", i);
                return -1;
        }
        for (uint32_t t = 0; t < domains->via.map.size; t++) {
                const msgpack_object_kv *tk = &domains->via.map.ptr[t];
                bool known = tk->key.type == MSGPACK_OBJECT_STR &&
                             proto_name_find(proto_task_names, PROTO_TASK__COUNT,
                                             tk->key.via.str.ptr, tk->key.via.str.size) >= 0;
                if (!known || tk->val.type != MSGPACK_OBJECT_MAP) {
                        snprintf(err, errlen, "profiles[%" PRIu32 "].domains: each key must be a "
                                 "task and each value an object of domains", i);
                        return -1;
                }
                for (uint32_t d = 0; d < tk->val.via.map.size; d++) {
                        const msgpack_object_kv *dk = &tk->val.via.map.ptr[d];
                        if (dk->key.type != MSGPACK_OBJECT_STR || dk->val.type != MSGPACK_OBJECT_MAP ||
                            !proto_domain_ok(dk->key.via.str.ptr, dk->key.via.str.size)) {
                                snprintf(err, errlen, "profiles[%" PRIu32 "].domains.%.*s: a "
                                         "domain is 1 to 128 bytes without control characters, "
                                         "its cell an object", i, (int)tk->key.via.str.size,
                                         tk->key.via.str.ptr);
                                return -1;
                        }
                        size_t off = sb->size;
                        const msgpack_object *cell = &dk->val;
                        uint32_t keep = 0;
                        for (uint32_t k = 0; k < cell->via.map.size; k++)
                                keep += !proto_str_eq(&cell->via.map.ptr[k].key, "model") &&
                                        !proto_str_eq(&cell->via.map.ptr[k].key, "task") &&
                                        !proto_str_eq(&cell->via.map.ptr[k].key, "domain");
                        int r = msgpack_pack_map(pk, 3 + keep);
                        ctl_pack_key(pk, "model");
                        r |= msgpack_pack_object(pk, *model);
                        ctl_pack_key(pk, "task");
                        r |= msgpack_pack_object(pk, tk->key);
                        ctl_pack_key(pk, "domain");
                        r |= msgpack_pack_object(pk, dk->key);
                        for (uint32_t k = 0; k < cell->via.map.size; k++) {
                                const msgpack_object_kv *kv = &cell->via.map.ptr[k];
                                if (proto_str_eq(&kv->key, "model") || proto_str_eq(&kv->key, "task") ||
                                    proto_str_eq(&kv->key, "domain"))
                                        continue;
                                r |= msgpack_pack_object(pk, kv->key) ||
                                     msgpack_pack_object(pk, kv->val);
                        }
                        if (r != 0)
                                return -2;
                        items[n].off = off;
                        items[n].len = sb->size - off;
                        items[n].cell = true;
                        n++;
                }
        }
        return n;
}

/* How many items the document holds: its profiles and their cells. */
static size_t count_items(const msgpack_object *list)
{
        size_t n = list->via.array.size;
        for (uint32_t i = 0; i < list->via.array.size; i++) {
                const msgpack_object *d = proto_map_get(&list->via.array.ptr[i], "domains");
                for (uint32_t t = 0; d && d->type == MSGPACK_OBJECT_MAP && t < d->via.map.size; t++)
                        if (d->via.map.ptr[t].val.type == MSGPACK_OBJECT_MAP)
                                n += d->via.map.ptr[t].val.via.map.size;
        }
        return n;
}

static int import_fail(const char *name, const char *err)
{
        fprintf(stderr, "outcomectl: import: %s: %s\n", name, err);
        return CTL_EXIT_DAEMON;
}

static int run_import(struct ctl *ctl, int argc, char **argv)
{
        bool merge = false, replace = false;
        const struct ctl_opt opts[] = {
                CTL_FLAG("merge", &merge),
                CTL_FLAG("replace", &replace),
        };
        int status = CTL_OPTIONS(ctl, argc, argv, opts, -1, "");
        if (status != CTL_GO)
                return status;
        if (merge && replace)
                return ctl_usage(ctl, "--merge and --replace exclude each other");
        if (ctl_positionals(ctl, argc, argv, 1, "FILE (or - for standard input)") < 0)
                return CTL_EXIT_USAGE;
        const char *path = argv[optind];
        const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
        const char *mode = replace ? "replace" : "merge";

        char err[1024], *text = NULL;
        size_t len = 0;
        struct import_item *items = NULL;
        msgpack_zone *zone = NULL;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);

        if (ctl_slurp(path, &text, &len, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomectl: import: %s\n", err);
                status = CTL_EXIT_DAEMON;
                goto out;
        }
        zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
        if (zone == NULL) {
                status = import_fail(name, "out of memory");
                goto out;
        }
        msgpack_object doc;
        if (json_parse(text, len, zone, &doc, err, sizeof(err)) < 0) {
                fprintf(stderr, "outcomectl: import: %s:%s\n", name, err);
                status = CTL_EXIT_DAEMON;
                goto out;
        }
        const msgpack_object *list = check_document(&doc, err, sizeof(err));
        if (list == NULL) {
                status = import_fail(name, err);
                goto out;
        }

        struct import_limits lim;
        status = import_limits(ctl, &lim);
        if (status != CTL_EXIT_OK)
                goto out;
        uint32_t n = list->via.array.size;
        uint64_t per_call = lim.list_entries < IMPORT_CHUNK_MAX ? lim.list_entries : IMPORT_CHUNK_MAX;
        uint64_t budget = lim.message_bytes / 10 * 9;

        /* Every item packed (profiles first: their cells need them), with
         * the checks that need the daemon's limits: no item may be too
         * large to travel alone. */
        size_t nitems = count_items(list), ncells = 0;
        items = malloc((nitems ? nitems : 1) * sizeof(*items));
        if (items == NULL) {
                status = import_fail(name, "out of memory");
                goto out;
        }
        msgpack_packer spk;
        msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
        for (uint32_t i = 0; i < n; i++) {
                const msgpack_object *p = &list->via.array.ptr[i], *model = model_of(p);
                if (model->via.str.size > lim.model_bytes) {
                        snprintf(err, sizeof(err), "profiles[%" PRIu32 "].model: %" PRIu32 " bytes "
                                 "long, over the daemon's limit of %" PRIu64, i, model->via.str.size,
                                 lim.model_bytes);
                        status = import_fail(name, err);
                        goto out;
                }
                size_t off = sb.size;
                if (pack_profile(&spk, p) != 0) {
                        status = import_fail(name, "out of memory");
                        goto out;
                }
                items[i] = (struct import_item){ off, sb.size - off, false };
        }
        for (uint32_t i = 0; i < n; i++) {
                long k = pack_cells(&spk, &sb, &list->via.array.ptr[i], i, items + n + ncells, err,
                                    sizeof(err));
                if (k < 0) {
                        status = import_fail(name, k == -2 ? "out of memory" : err);
                        goto out;
                }
                ncells += (size_t)k;
        }
        nitems = n + ncells;
        for (size_t i = 0; i < nitems; i++) {
                if (IMPORT_OVERHEAD + items[i].len > budget) {
                        snprintf(err, sizeof(err), "%s[%zu] packs to %zu bytes, too large for the "
                                 "daemon's message limit of %" PRIu64 " bytes",
                                 items[i].cell ? "cells" : "profiles", items[i].cell ? i - n : i,
                                 items[i].len, lim.message_bytes);
                        status = import_fail(name, err);
                        goto out;
                }
        }

        uint64_t created = 0, cells_created = 0;
        uint32_t calls = 0, from = 0;
        while (from < nitems) {
                uint32_t to = from;
                uint64_t bytes = IMPORT_OVERHEAD;
                while (to < nitems && to - from < per_call && items[to].cell == items[from].cell &&
                       bytes + items[to].len <= budget)
                        bytes += items[to++].len;
                status = import_chunk(ctl, sb.data, items, from, to, mode,
                                      items[from].cell ? &cells_created : &created);
                if (status != CTL_EXIT_OK) {
                        const char *what = items[from].cell ? "cells" : "profiles";
                        uint32_t base = items[from].cell ? n : 0;
                        fprintf(stderr, "outcomectl: import: the refused call held %s[%" PRIu32
                                "..%" PRIu32 "] of %s", what, from - base, to - 1 - base, name);
                        if (calls > 0)
                                fprintf(stderr, "; the %" PRIu32 " item%s before it (profiles "
                                        "first, then domain cells) %s imported (%s) in %" PRIu32
                                        " call%s", from, from == 1 ? "" : "s",
                                        from == 1 ? "was" : "were", mode, calls,
                                        calls == 1 ? "" : "s");
                        fputs("\n", stderr);
                        goto out;
                }
                calls++;
                from = to;
        }
        if (ctl->json)
                printf("{\"imported\":%" PRIu32 ",\"created\":%" PRIu64 ",\"cells\":%zu,"
                       "\"cells_created\":%" PRIu64 ",\"calls\":%" PRIu32 ",\"mode\":\"%s\"}\n",
                       n, created, ncells, cells_created, calls, mode);
        else if (ncells)
                printf("imported %" PRIu32 " profile%s (%" PRIu64 " new) and %zu domain cell%s (%"
                       PRIu64 " new) in %" PRIu32 " call%s\n", n, n == 1 ? "" : "s", created,
                       ncells, ncells == 1 ? "" : "s", cells_created, calls,
                       calls == 1 ? "" : "s");
        else
                printf("imported %" PRIu32 " profile%s (%" PRIu64 " new) in %" PRIu32 " call%s\n",
                       n, n == 1 ? "" : "s", created, calls, calls == 1 ? "" : "s");
out:
        free(items);
        msgpack_sbuffer_destroy(&sb);
        if (zone != NULL)
                msgpack_zone_free(zone);
        free(text);
        return status;
}

CTL_COMMAND(import, run_import,
        "load profiles from an export file, merged or replacing",
        "Usage: outcomectl import FILE [--merge | --replace]\n"
        "\n"
        "Load the profiles of FILE (or of standard input when FILE is '-'), a file\n"
        "written by 'outcomectl export' (format \"outcomed-profiles\", version 1; see\n"
        "protocol/README.md, 'Export format'), into the daemon.\n"
        "\n"
        "  --merge     (the default) add to the profiles the daemon has: counts add up;\n"
        "              each EMA quality and each task's mean latency becomes the mean of\n"
        "              the two weighted by their calls (by their judged outcomes,\n"
        "              successes + failures, when neither side has calls).  A model the\n"
        "              daemon does not know is created as in the file.\n"
        "  --replace   a model in the file replaces the daemon's profile of that model\n"
        "              as a whole; models not in the file are left alone.\n"
        "\n"
        "The whole file is read and checked before anything is sent: it must be JSON\n"
        "(errors name LINE:COLUMN), of this format and version, each profile of the\n"
        "shape 'query' answers (derived fields such as avg_latency_ms and\n"
        "success_rate are ignored), and no model may appear twice.  The profiles then\n"
        "go in as few 'import' calls as the daemon's limits allow (at most 1000\n"
        "profiles and 90% of its message limit each, learnt from 'stats').\n"
        "\n"
        "A model new to the daemon keeps the file's updated_at; one merged or\n"
        "replaced gets the time of the import.  Latency percentiles start afresh\n"
        "(their sketches are not exported).\n"
        "\n"
        "Prints 'imported N profiles (M new) in K calls'; with --json\n"
        "{\"imported\":N,\"created\":M,\"calls\":K,\"mode\":MODE}.\n"
        "\n"
        "Exit status 1 when FILE cannot be read or is not a valid export (nothing\n"
        "is sent), or when the daemon refuses a call: each call is all or nothing,\n"
        "and the message says which profiles the calls before it imported.\n"
        "\n"
        "Options:\n"
        "  --merge, --replace  as above\n"
        "  -s, --socket PATH, -j, --json, --timeout SECS, -h, --help\n"
        "                      as in 'outcomectl --help'\n"
        "\n"
        "Examples:\n"
        "  outcomectl import profiles.json\n"
        "  outcomectl import --replace profiles.json\n"
        "  ssh oldhost outcomectl export | outcomectl import -\n");

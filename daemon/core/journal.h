/* journal.h - state changes as journal entries: encoded as msgpack maps
 * when they happen, applied to a tracker again when the journal is
 * replayed at start-up.
 *
 * An entry records a tracker operation with its inputs after checking (the
 * trace id a start generated, the kind and confidence an action sequence
 * inferred, the time, the uid), so that replaying entries in order on the
 * snapshot they follow gives exactly the state the live daemon had.  No
 * SQLite or libuv here: the store keeps the bytes, the caller decides when.
 */
#ifndef OUTCOMED_JOURNAL_H
#define OUTCOMED_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "tracker.h"

enum journal_op {
        JOURNAL_START,
        JOURNAL_COMPLETE,
        JOURNAL_FAIL,
        JOURNAL_OUTCOME,
        JOURNAL_EXPIRE,
        JOURNAL_FORGET,
        JOURNAL_IMPORT,
        JOURNAL_IMPORT_CELL,
        JOURNAL__COUNT
};

struct journal_entry {
        enum journal_op op;
        uint64_t at;             /* unix seconds */
        uint32_t uid;
        const char *trace_id;
        const char *model;
        /* start */
        enum tracker_task task;
        const char *reason;
        const char *domain;      /* start; forget of one cell (with task) */
        const char *repo;
        const char *const *files;
        uint32_t nfiles;
        const char *base;        /* HEAD's oid at start (code traces with a repo) */
        /* complete */
        uint32_t latency_ms, input_tokens, output_tokens;
        const char *output;
        /* fail */
        const char *error;
        /* outcome */
        enum tracker_kind kind;
        double confidence;
        enum tracker_source source;
        bool deferred;           /* recorded only: a code trace git judges */
        const char *evidence;    /* git's reason, for people */
        /* import */
        const struct tracker_profile *profile;
        const struct tracker_cell *cell; /* import_cell */
        bool replace;
};

/* The op's name, as stored in the journal's op column ("start", ...). */
const char *journal_op_name(enum journal_op op);

/* Append e to sb as one msgpack map.  0 or -ENOMEM. */
int journal_encode(const struct journal_entry *e, msgpack_sbuffer *sb);

/* Apply the encoded entry at data[*off..] to t (its limits should be
 * lifted during a replay) and move *off past it: a journal row holds one
 * or more entries back to back.  Returns 0, or a negative errno with err
 * filled when the entry cannot be applied; -EBADMSG when it is not msgpack
 * (*off is then len: the rest of the row cannot be read). */
int journal_apply(struct tracker *t, const void *data, size_t len, size_t *off, char *err,
                  size_t errlen);

#endif

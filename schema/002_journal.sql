-- 002_journal.sql - the journal: the state changes, in order.  A row holds one
-- change, or (op 'batch', since 005_journal_rows.sql) several of one commit,
-- their msgpack maps back to back in `data`; trace_id and model are set for a
-- row of one change only.
-- The profiles/task_stats/pending tables become a snapshot of the state as of
-- journal row meta.snapshot_upto; start-up loads the snapshot and replays the
-- rows after it.  AUTOINCREMENT keeps ids growing even after old rows are
-- pruned, so snapshot_upto never points past a newer row.

CREATE TABLE journal (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,  -- unix seconds
    op       TEXT    NOT NULL,  -- start, complete, fail, outcome, expire, forget, import; batch
    trace_id TEXT,
    model    TEXT,
    data     BLOB    NOT NULL   -- the change(s), msgpack maps (daemon/core/journal.c)
);
-- No index on `at`: rows are in time order by id, so pruning the oldest reads
-- from the start of the table, and each commit stays one B-tree insert a row.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('snapshot_upto', 0), ('probe', 0);

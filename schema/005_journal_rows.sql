-- 005_journal_rows.sql - journal rows of several changes (op 'batch': their
-- msgpack maps back to back in `data`, see 002_journal.sql).  A daemon
-- older than this schema would replay only the first change of such a row,
-- so the version bump itself is the point: it refuses a newer database.

INSERT INTO meta (key, value) VALUES ('journal_rows', 1);

-- 003_evidence.sql - the evidence behind the numbers (see tracker.h:
-- struct tracker_evidence): a Beta posterior per model and per task, the
-- judged outcomes behind it, token sums, and each task's latency sketch.

ALTER TABLE profiles ADD COLUMN alpha REAL NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN beta REAL NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN judged REAL NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN evidence_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;

ALTER TABLE task_stats ADD COLUMN alpha REAL NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN beta REAL NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN judged REAL NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN evidence_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
-- TRACKER_SKETCH_BUCKETS counts as 32-bit little-endian integers; NULL: empty.
ALTER TABLE task_stats ADD COLUMN latency BLOB;

-- 008_degraded_since.sql - when a profile last became degraded under the
-- configured degrade threshold (see tracker.h: degraded_since): unix
-- seconds, 0 while it is not degraded.  Rows written before this column
-- existed read 0; loading sets the time of a degraded one to its
-- updated_at (tracker_load_profile).

ALTER TABLE profiles ADD COLUMN degraded_since INTEGER NOT NULL DEFAULT 0;

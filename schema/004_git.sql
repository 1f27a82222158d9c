-- 004_git.sql - what the git scanner needs of a pending code trace
-- (daemon/git/gitscan.c): the commit HEAD pointed at when it started, and when
-- it completed (settle_s and deadline_s count from then).

ALTER TABLE pending ADD COLUMN base TEXT;                 -- hex oid; NULL: none
ALTER TABLE pending ADD COLUMN completed_at INTEGER NOT NULL DEFAULT 0;  -- unix seconds

-- 007_domains.sql - evidence per (model, task, domain) (see tracker.h: struct
-- tracker_cell), each task's sums over its cells (rank's empirical-Bayes
-- prior), and the domain a pending trace was started with.  A cell goes with
-- its profile (forget).

CREATE TABLE cells (
    model         TEXT    NOT NULL REFERENCES profiles(model) ON DELETE CASCADE,
    task          TEXT    NOT NULL,
    domain        TEXT    NOT NULL,
    calls         INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    alpha         REAL    NOT NULL,
    beta          REAL    NOT NULL,
    judged        REAL    NOT NULL,
    evidence_at   INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    recent_alpha  REAL    NOT NULL,
    recent_beta   REAL    NOT NULL,
    win_alpha     REAL    NOT NULL,
    win_beta      REAL    NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (model, task, domain)
) WITHOUT ROWID;

ALTER TABLE pending ADD COLUMN domain TEXT;               -- NULL: none

ALTER TABLE task_stats ADD COLUMN dom_cells REAL NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN dom_s1 REAL NOT NULL DEFAULT 0;
ALTER TABLE task_stats ADD COLUMN dom_s2 REAL NOT NULL DEFAULT 0;

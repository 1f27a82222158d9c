-- 001_init.sql - outcomed's first schema: a snapshot of the tracker's state.
-- Applied once, in one transaction, when PRAGMA user_version < 1.

CREATE TABLE profiles (
    model            TEXT PRIMARY KEY,
    total_calls      INTEGER NOT NULL,
    success_count    INTEGER NOT NULL,
    fail_count       INTEGER NOT NULL,
    total_latency_ms INTEGER NOT NULL,
    ema_quality      REAL    NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- One row per task entry a profile has (the seed creates them lazily).
CREATE TABLE task_stats (
    model          TEXT    NOT NULL REFERENCES profiles(model) ON DELETE CASCADE,
    task           TEXT    NOT NULL,
    calls          INTEGER NOT NULL,
    successes      INTEGER NOT NULL,
    failures       INTEGER NOT NULL,
    avg_latency_ms REAL    NOT NULL,
    ema_quality    REAL    NOT NULL,
    PRIMARY KEY (model, task)
) WITHOUT ROWID;

-- Pending traces; seq keeps the start order across restarts.
-- files holds the repository-relative paths joined by NUL bytes (a BLOB).
CREATE TABLE pending (
    trace_id      TEXT    PRIMARY KEY,
    seq           INTEGER NOT NULL UNIQUE,
    model         TEXT    NOT NULL,
    task          TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    repo          TEXT,
    files         BLOB,
    output        TEXT,
    started_at    INTEGER NOT NULL,
    completed     INTEGER NOT NULL,
    latency_ms    INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    uid           INTEGER NOT NULL
);

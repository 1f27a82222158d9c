-- 010_fleet.sql - the last fleet evidence read from PostgreSQL ([fleet]),
-- kept so that a restart with PostgreSQL down still serves it.  Written by
-- the fleet thread only; rows as in PostgreSQL's fleet_evidence, task 255
-- for a model's totals, sketch as 98 little-endian 32-bit counts.
CREATE TABLE fleet_hosts (
    host_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE fleet_evidence (
    host_id TEXT NOT NULL,
    model TEXT NOT NULL,
    task INTEGER NOT NULL,
    domain TEXT NOT NULL,
    calls INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    latency_sum_ms REAL NOT NULL,
    ema REAL NOT NULL,
    alpha REAL NOT NULL,
    beta REAL NOT NULL,
    judged REAL NOT NULL,
    at INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    recent_alpha REAL NOT NULL,
    recent_beta REAL NOT NULL,
    win_alpha REAL NOT NULL,
    win_beta REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    sketch BLOB NOT NULL,
    PRIMARY KEY (host_id, model, task, domain)
) WITHOUT ROWID;

-- The fleet thread's own numbers: forget_id, the last fleet_forgets row
-- applied (forgets with fleet scope).
CREATE TABLE fleet_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

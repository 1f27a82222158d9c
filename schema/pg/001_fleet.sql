-- 001_fleet.sql - the PostgreSQL side of [fleet]: hosts and their additive
-- evidence.  outcomed_fleet_schema holds the version (the daemon's migration
-- runner creates it); each host writes only its own rows.

-- One row per host: the version of its last published batch (increasing per
-- host) and when it was last seen (hosts not seen for host_ttl_days leave the
-- sums).
CREATE TABLE fleet_hosts (
    host_id text PRIMARY KEY,
    version bigint NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- A host's current evidence per (model, task, domain): task '*' holds the
-- model's totals, domain '' a task's totals.  A batch upserts the host's
-- changed rows with its version; a row the host no longer has is kept as a
-- tombstone (deleted) with the version that removed it, so that readers who
-- ask for versions above the last they saw learn about it.
CREATE TABLE fleet_evidence (
    host_id text NOT NULL,
    model text NOT NULL,
    task text NOT NULL,
    domain text NOT NULL,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    calls bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    latency_sum_ms double precision NOT NULL,
    ema double precision NOT NULL,
    alpha double precision NOT NULL,
    beta double precision NOT NULL,
    judged double precision NOT NULL,
    at bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    recent_alpha double precision NOT NULL,
    recent_beta double precision NOT NULL,
    win_alpha double precision NOT NULL,
    win_beta double precision NOT NULL,
    updated_at bigint NOT NULL,
    sketch bigint[] NOT NULL,
    PRIMARY KEY (host_id, model, task, domain)
);
CREATE INDEX fleet_evidence_by_version ON fleet_evidence (host_id, version);

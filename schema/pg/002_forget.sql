-- 002_forget.sql - forget with fleet scope: a tombstone every host applies
-- to its own evidence (else the other hosts would bring the model back).
-- task '' forgets the whole model; else (task, domain) is one domain cell.
CREATE TABLE fleet_forgets (
    id bigserial PRIMARY KEY,
    host_id text NOT NULL,
    model text NOT NULL,
    task text NOT NULL DEFAULT '',
    domain text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT now()
);

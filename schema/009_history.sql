-- 009_history.sql - the history (`history`): what each series did over time, written by
-- the store's writer in the same transaction as the journal rows of the
-- changes they count.  A series is (model, task), or (model, task, domain)
-- for a domain's; rows are spans of time by their start `t` (unix seconds):
-- a minute (history_minute), an hour with its latency sketch (history_hour),
-- a day for a domain's series (history_day).  Evidence (alpha, beta as of
-- ev_at) and the EMA are the series' after the span's last change.  Rows
-- older than [store] history_days are deleted with the journal's.
CREATE TABLE history_series (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    domain TEXT NOT NULL DEFAULT '',  -- '': the (model, task) series
    UNIQUE (model, task, domain)
);

CREATE TABLE history_minute (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    judged INTEGER NOT NULL,
    quality_sum REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    ema REAL,
    alpha REAL,
    beta REAL,
    ev_at INTEGER,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;

CREATE TABLE history_hour (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    judged INTEGER NOT NULL,
    quality_sum REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    ema REAL,
    alpha REAL,
    beta REAL,
    ev_at INTEGER,
    latency BLOB,  -- non-zero sketch buckets: index byte, LEB128 count
    PRIMARY KEY (series, t)
) WITHOUT ROWID;

CREATE TABLE history_day (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    judged INTEGER NOT NULL,
    quality_sum REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    ema REAL,
    alpha REAL,
    beta REAL,
    ev_at INTEGER,
    latency BLOB,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;

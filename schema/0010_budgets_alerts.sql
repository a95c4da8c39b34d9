-- Version 10: spend caps (budgets) per app and per app key, each key's daily spend
-- (app spend is read from usage_hourly), and the alert webhook outbox.

CREATE TABLE app_budgets (
    app_id          INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    daily_micros    INTEGER,               -- micro-USD; NULL: no daily cap
    monthly_micros  INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE key_budgets (
    key_id          INTEGER PRIMARY KEY REFERENCES app_keys(id) ON DELETE CASCADE,
    daily_micros    INTEGER,
    monthly_micros  INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE key_usage_daily (
    key_id       INTEGER NOT NULL,
    day          INTEGER NOT NULL,          -- Unix seconds, start of the UTC day
    calls        INTEGER NOT NULL DEFAULT 0,
    cost_micros  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
) STRICT;

-- Alert events waiting to be delivered (deleted once the receiver accepts them).
-- AUTOINCREMENT: ids are the events' ids for receivers, never reused after a delete.
CREATE TABLE alert_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event            TEXT NOT NULL,
    data             TEXT NOT NULL,         -- JSON object
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,               -- Unix ms; NULL: given up
    last_error       TEXT,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

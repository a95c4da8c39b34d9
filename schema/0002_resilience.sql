-- Version 2: credential health that survives restarts, the credentials each call tried,
-- and model aliases managed through the admin API.

ALTER TABLE credentials ADD COLUMN state_until INTEGER;   -- Unix ms when a cooldown/ejection ends

ALTER TABLE model_calls ADD COLUMN credentials_tried TEXT; -- JSON array of credential ids, in attempt order
ALTER TABLE model_calls ADD COLUMN requested_model TEXT;   -- as the client named it (an alias, or a bare model)

CREATE TABLE model_aliases (
    model       TEXT PRIMARY KEY,          -- the name clients use, e.g. "smart"
    targets     TEXT NOT NULL,             -- JSON array of "prefix/model", tried in order
    strategy    TEXT NOT NULL DEFAULT 'ordered' CHECK (strategy IN ('ordered', 'weighted')),
    weights     TEXT,                      -- JSON array, one per target, for 'weighted'
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

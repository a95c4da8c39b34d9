-- Version 9: cache-write and per-image prices, per-app explicit prices, and the history of
-- every rate change.

ALTER TABLE model_rates ADD COLUMN cache_write_per_mtok_micros INTEGER;  -- micro-USD per million cache-write tokens; NULL: as input
ALTER TABLE model_rates ADD COLUMN per_image_micros INTEGER;             -- micro-USD per generated image

-- An app's own price for a model, in micro-credits (not USD: no margin or credit value is
-- applied on top). Charged instead of the model's rate; the USD cost still uses the rate.
CREATE TABLE app_prices (
    app_id                      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    model                       TEXT NOT NULL,      -- prefix/model
    input_per_mtok_micros       INTEGER NOT NULL,   -- micro-credits per million input tokens
    output_per_mtok_micros      INTEGER NOT NULL,
    cached_per_mtok_micros      INTEGER,
    cache_write_per_mtok_micros INTEGER,
    per_image_micros            INTEGER,
    per_second_micros           INTEGER,
    per_mchar_micros            INTEGER,
    updated_at                  INTEGER NOT NULL,
    PRIMARY KEY (app_id, model)
) STRICT;

-- Every change to a rate or an app price, written in the change's transaction. The prices
-- are those after the change (NULL after a delete). No foreign key: the history outlives
-- the app.
CREATE TABLE rate_history (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    model                       TEXT NOT NULL,
    app_id                      INTEGER,            -- NULL: the model's rate (USD); else the app's price (credits)
    action                      TEXT NOT NULL,      -- put | delete | import
    input_per_mtok_micros       INTEGER,
    output_per_mtok_micros      INTEGER,
    cached_per_mtok_micros      INTEGER,
    cache_write_per_mtok_micros INTEGER,
    per_image_micros            INTEGER,
    per_second_micros           INTEGER,
    per_mchar_micros            INTEGER,
    note                        TEXT,
    created_at                  INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_history_model ON rate_history (model, id);

-- aihub schema, version 1. Times are Unix milliseconds unless a name says otherwise.
-- Costs are integer micro-US-dollars so sums are exact.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE providers (
    id          INTEGER PRIMARY KEY,
    prefix      TEXT NOT NULL UNIQUE,
    plugin      TEXT NOT NULL,
    base_url    TEXT,
    enabled     INTEGER NOT NULL DEFAULT 1,
    options     TEXT NOT NULL DEFAULT '{}',
    models      TEXT,              -- JSON array of model ids to list, NULL = the plugin's catalog
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE credentials (
    id           INTEGER PRIMARY KEY,
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret       BLOB NOT NULL,    -- version byte || XChaCha20 nonce || ciphertext; AAD = credential id
    secret_hint  TEXT NOT NULL,    -- masked form shown to operators, e.g. sk-...abcd
    weight       INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 0),
    enabled      INTEGER NOT NULL DEFAULT 1,
    state        TEXT NOT NULL DEFAULT 'healthy',
    last_error   TEXT,
    last_used_at INTEGER,
    use_count    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (provider_id, name)
) STRICT;

CREATE TABLE apps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE app_keys (
    id           INTEGER PRIMARY KEY,
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key_hash     BLOB NOT NULL UNIQUE,   -- SHA-256 of the key; the key itself is never stored
    key_prefix   TEXT NOT NULL,          -- first characters, to recognise a key
    name         TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX app_keys_app ON app_keys (app_id);

CREATE TABLE model_calls (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT NOT NULL,
    app_id        INTEGER,
    provider      TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    credential_id INTEGER,
    endpoint      TEXT NOT NULL,
    stream        INTEGER NOT NULL,
    status        TEXT NOT NULL,          -- ok | error | cancelled
    http_status   INTEGER NOT NULL,
    error_class   TEXT,
    error_message TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros   INTEGER NOT NULL DEFAULT 0,
    latency_ms    INTEGER NOT NULL,
    ttfb_ms       INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX model_calls_time ON model_calls (created_at, id);
CREATE INDEX model_calls_app_time ON model_calls (app_id, created_at);

CREATE TABLE usage_hourly (
    app_id        INTEGER NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    hour          INTEGER NOT NULL,       -- Unix seconds, start of the hour (UTC)
    calls         INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, provider, model, hour)
) STRICT;

CREATE TABLE model_rates (
    model                 TEXT PRIMARY KEY,   -- prefix/model as clients name it
    input_per_mtok_micros  INTEGER NOT NULL,  -- micro-USD per million input tokens
    output_per_mtok_micros INTEGER NOT NULL,
    cached_per_mtok_micros INTEGER,
    updated_at            INTEGER NOT NULL
) STRICT;

-- Version 3: the client format of each call, and OpenAI Responses kept for
-- `previous_response_id` and `GET /v1/responses/{id}`.

ALTER TABLE model_calls ADD COLUMN format TEXT NOT NULL DEFAULT 'openai_chat'; -- the client's wire format

CREATE TABLE responses (
    id            TEXT PRIMARY KEY,        -- resp_..., as the client sees it
    app_id        INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,           -- as the client named it
    provider      TEXT NOT NULL,           -- the routing prefix that served it
    native        INTEGER NOT NULL,        -- 1: the upstream itself holds the response (pass-through)
    body          TEXT NOT NULL,           -- the Response object as returned
    conversation  TEXT,                    -- JSON array of chat messages up to and including it
    created_at    INTEGER NOT NULL,        -- Unix ms
    expires_at    INTEGER NOT NULL         -- Unix ms; gone after this
) STRICT;

CREATE INDEX responses_expiry ON responses (expires_at);

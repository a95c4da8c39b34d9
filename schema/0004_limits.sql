-- Version 4: rate limits per app and per app key, as set through the admin API
-- (`PUT /api/admin/apps/{id}/limits`, `.../keys/{kid}/limits`).

CREATE TABLE app_limits (
    app_id      INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    limits      TEXT NOT NULL,             -- JSON {"rpm","tpm","max_concurrent","models":{...}}
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE key_limits (
    key_id      INTEGER PRIMARY KEY REFERENCES app_keys(id) ON DELETE CASCADE,
    limits      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

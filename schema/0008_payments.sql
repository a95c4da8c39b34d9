-- Version 8: payment events already turned into credit (a Stripe event grants once).

CREATE TABLE payment_events (
    event_id    TEXT PRIMARY KEY,          -- the provider's event id (Stripe `evt_...`)
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    grant_id    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

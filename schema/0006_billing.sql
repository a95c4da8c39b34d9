-- Version 6: credit billing. Amounts are integers of nano-credits (1e-9 credit).
-- The balance is the sum of the app's ledger; grants say what is left of each
-- credit top-up (consumed earliest expiry first, no expiry last) and when it expires.

CREATE TABLE credit_grants (
    id          INTEGER PRIMARY KEY,
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    amount      INTEGER NOT NULL,
    remaining   INTEGER NOT NULL,
    expires_at  INTEGER,                   -- Unix ms; NULL: never
    note        TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX credit_grants_open ON credit_grants (app_id, remaining, expires_at);

CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    app_id        INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('grant', 'charge', 'refund', 'expiry', 'adjustment')),
    amount        INTEGER NOT NULL,        -- signed: grants add, charges and expiries take
    balance_after INTEGER NOT NULL,
    call_id       INTEGER,                 -- model_calls.id of a charge
    grant_id      INTEGER,
    note          TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX ledger_app ON ledger (app_id, id);
CREATE UNIQUE INDEX ledger_one_charge_per_call ON ledger (call_id) WHERE kind = 'charge';

CREATE TABLE credit_balances (
    app_id      INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    balance     INTEGER NOT NULL
) STRICT;

-- Payment intents (issue 14, docs/payments.md): every charge is a row written by the unit of
-- work that decides it; the payments worker calls the processor outside the writer and settles
-- the row in a later unit. One row per charge attempt of an invoice; settled rows are kept with
-- the invoices they paid (financial records), so the table grows with invoices, no faster.
CREATE TABLE payment_intents (
    id             TEXT PRIMARY KEY,     -- pi_…; also the processor's idempotency key
    mode           TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    invoice_id     TEXT NOT NULL,
    subscription_id TEXT,
    amount_minor   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    purpose        TEXT NOT NULL,        -- JSON: what settling it does (domain::payments::model::Purpose)
    status         TEXT NOT NULL,        -- processing | requires_action | succeeded | failed | canceled
    processor      TEXT NOT NULL,        -- test | stripe | none
    payment_method TEXT,                 -- the card it charges (a test card's behaviour, or pm_…)
    processor_ref  TEXT,                 -- the processor's id for the charge (pi_… at Stripe)
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    decline_code   TEXT,
    claimed_until  INTEGER,              -- a worker's lease, in server time
    created_at     INTEGER NOT NULL,     -- in the customer's time
    updated_at     INTEGER NOT NULL,
    expires_at     INTEGER               -- requires_action: canceled after this (customer's time)
);
CREATE INDEX payment_intents_customer ON payment_intents (mode, customer_id, created_at);
CREATE INDEX payment_intents_subscription ON payment_intents (mode, subscription_id);
CREATE INDEX payment_intents_open ON payment_intents (status, claimed_until);

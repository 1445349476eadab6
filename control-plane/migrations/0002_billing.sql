-- Billing: calendar-anchored cycles, dunning, invoices, test clocks, usage meters.

-- Period n of the current cycle ends at cycle_anchor + n × charge period (catalog/period.rs).
ALTER TABLE subscriptions ADD COLUMN cycle_anchor INTEGER;
ALTER TABLE subscriptions ADD COLUMN cycle_index INTEGER NOT NULL DEFAULT 0;
-- Dunning: the open invoice being retried, how many retries have run, when the next one is due.
ALTER TABLE subscriptions ADD COLUMN dunning_invoice TEXT;
ALTER TABLE subscriptions ADD COLUMN dunning_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN next_retry_at INTEGER;
ALTER TABLE subscriptions ADD COLUMN checkout_session TEXT;
UPDATE subscriptions SET cycle_anchor = current_period_start WHERE cycle_anchor IS NULL;

ALTER TABLE customers ADD COLUMN test_clock TEXT;
-- Credit from prorated downgrades of quantity, applied to the next charge (minor units).
ALTER TABLE customers ADD COLUMN balance_minor INTEGER NOT NULL DEFAULT 0;

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT,
    status          TEXT NOT NULL,        -- draft | open | paid | uncollectible | void
    currency        TEXT NOT NULL,
    total_minor     INTEGER NOT NULL,
    reason          TEXT NOT NULL,        -- subscription_create | subscription_cycle | subscription_update | trial_end
    created_at      INTEGER NOT NULL,
    paid_at         INTEGER
);
CREATE INDEX invoices_customer ON invoices (mode, customer_id, created_at);
CREATE INDEX invoices_subscription ON invoices (mode, subscription_id, created_at);

CREATE TABLE invoice_lines (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id      TEXT,                 -- NULL: pending, goes on the subscription's next invoice
    mode            TEXT NOT NULL,
    subscription_id TEXT,
    description     TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    period_start    INTEGER,
    period_end      INTEGER,
    proration       INTEGER NOT NULL,
    plan_identifier TEXT
);
CREATE INDEX invoice_lines_invoice ON invoice_lines (invoice_id);
CREATE INDEX invoice_lines_pending ON invoice_lines (subscription_id) WHERE invoice_id IS NULL;

CREATE TABLE test_clocks (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    name        TEXT,
    frozen_time INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Usage per meter window. A window is [window_start, window_end); the current one is the one
-- containing "now" for the customer. Reports outside it start a new row.
CREATE TABLE usage_counters (
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    feature_id   TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER,
    value        INTEGER NOT NULL,
    PRIMARY KEY (mode, customer_id, feature_id, window_start)
);
-- Meter resets the billing clock has to publish (window ends).
CREATE INDEX usage_counters_end ON usage_counters (window_end);

-- The next time this customer's compiled entitlements change by themselves (a meter window
-- ending); the billing clock recompiles them then so edges see the reset.
ALTER TABLE customer_entitlements ADD COLUMN next_change_at INTEGER;
CREATE INDEX customer_entitlements_next_change ON customer_entitlements (next_change_at);

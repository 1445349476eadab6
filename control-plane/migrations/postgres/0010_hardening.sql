-- Issue 9: a circuit breaker per webhook endpoint, per-endpoint claim order, and the customer
-- credit balance kept per currency.

ALTER TABLE webhook_endpoints ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN circuit_opened_at BIGINT;
CREATE INDEX webhook_deliveries_endpoint_due
    ON webhook_deliveries (endpoint_id, status, next_attempt_at);

CREATE TABLE customer_balances (
    mode          TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    currency      TEXT NOT NULL,           -- ISO 4217 code as the prices spell it (lower case)
    balance_minor BIGINT NOT NULL,         -- credit (positive) in the currency's minor units
    PRIMARY KEY (mode, customer_id, currency)
);
-- A balance from before had no currency: it was made by invoices, so it is in the currency of
-- the customer's latest invoice (usd if there is none).
INSERT INTO customer_balances (mode, customer_id, currency, balance_minor)
SELECT c.mode, c.customer_id,
       COALESCE((SELECT i.currency FROM invoices i WHERE i.mode = c.mode AND i.customer_id = c.customer_id
                 ORDER BY i.created_at DESC LIMIT 1), 'usd'),
       c.balance_minor
FROM customers c WHERE c.balance_minor <> 0;

-- The billing clock finds open checkout sessions whose time is up.
CREATE INDEX checkout_sessions_open ON checkout_sessions (status, created_at);

-- Catalog edits recompile their customers in bounded chunks, each its own unit of work and
-- change-log entry, resumed from `cursor` after a restart; a row is deleted when its job is done.
CREATE TABLE catalog_recompiles (
    id         TEXT PRIMARY KEY,
    mode       TEXT NOT NULL,
    plans      TEXT,                      -- JSON array of plan identifiers; NULL: every customer
    cursor     TEXT NOT NULL DEFAULT '',  -- the last customer_id recompiled
    created_at BIGINT NOT NULL
);

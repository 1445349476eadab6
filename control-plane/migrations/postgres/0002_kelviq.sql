-- Kelviq's whole surface: archived customers, Kelviq-signed webhooks, event metering,
-- reported events, refunds, and license keys.

-- A customer archived (Kelviq's DELETE) keeps every row of their history but leaves lists,
-- and compiles to the default plans.
ALTER TABLE customers ADD COLUMN archived_at BIGINT;

-- Saved cards get a small integer id, as Kelviq's payment-method list shows them.
ALTER TABLE payment_methods ADD COLUMN number BIGSERIAL;

-- `standard` (Standard Webhooks) or `kelviq` (hex HMAC keyed with the secret's bytes).
ALTER TABLE webhook_endpoints ADD COLUMN signature_scheme TEXT NOT NULL DEFAULT 'standard';

-- A METER may count reported events of one name (event-based metering).
ALTER TABLE features ADD COLUMN event_name TEXT;
CREATE INDEX features_event_name ON features (mode, event_name);

-- A plan may grant a license key with an activation limit (NULL: no license).
ALTER TABLE plans ADD COLUMN license_activation_limit BIGINT;

-- Kelviq's report_event: stored once per idempotency key.
CREATE TABLE usage_events (
    mode            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,             -- as the caller sent it
    resource_id     TEXT,
    properties      TEXT,
    request_hash    TEXT NOT NULL,             -- the same key with another event is refused
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (mode, idempotency_key)
);
CREATE INDEX usage_events_customer ON usage_events (mode, customer_id, created_at);

-- Refunds of paid invoices; each has a credit note (an invoice of reason `credit_note`).
CREATE TABLE refunds (
    id             TEXT PRIMARY KEY,
    mode           TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    invoice_id     TEXT NOT NULL,
    credit_note_id TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT,
    internal_note  TEXT,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX refunds_invoice ON refunds (mode, invoice_id);
CREATE INDEX refunds_created ON refunds (mode, created_at);

CREATE TABLE licenses (
    id               TEXT PRIMARY KEY,
    mode             TEXT NOT NULL,
    license_key      TEXT NOT NULL UNIQUE,
    customer_id      TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    plan_identifier  TEXT NOT NULL,
    activation_limit BIGINT NOT NULL,
    enabled          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    activated_at     BIGINT
);
CREATE INDEX licenses_subscription ON licenses (mode, subscription_id);

CREATE TABLE license_instances (
    id             TEXT PRIMARY KEY,
    mode           TEXT NOT NULL,
    license_id     TEXT NOT NULL,
    name           TEXT,
    metadata       TEXT,
    activated_at   BIGINT NOT NULL,
    deactivated_at BIGINT
);
CREATE INDEX license_instances_license ON license_instances (license_id, deactivated_at);

-- Tollgate's schema on PostgreSQL: the same tables and columns as the SQLite migrations
-- 0001-0005 arrive at, so one set of statements runs on both engines. Integers are BIGINT
-- (Unix seconds, minor units, 0/1 flags), so every value decodes as i64 on both.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    mode        TEXT,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE features (
    mode         TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    reset_period TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (mode, identifier)
);

CREATE TABLE plans (
    mode        TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    public_key  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,
    is_default  BIGINT NOT NULL,
    trial_days  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (mode, identifier)
);

CREATE TABLE prices (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,
    plan_identifier TEXT NOT NULL,
    charge_period   TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    position        BIGINT NOT NULL DEFAULT 0,
    UNIQUE (mode, plan_identifier, charge_period)
);

CREATE TABLE plan_features (
    mode               TEXT NOT NULL,
    plan_identifier    TEXT NOT NULL,
    feature_identifier TEXT NOT NULL,
    has_access         BIGINT NOT NULL,
    usage_limit        BIGINT,
    position           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (mode, plan_identifier, feature_identifier)
);

CREATE TABLE test_clocks (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    name        TEXT,
    frozen_time BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    mode          TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    name          TEXT,
    email         TEXT,
    metadata      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL,
    test_clock    TEXT,
    balance_minor BIGINT NOT NULL DEFAULT 0,
    UNIQUE (mode, customer_id)
);
CREATE INDEX customers_email ON customers (mode, email);

CREATE TABLE payment_methods (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    behaviour   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX payment_methods_customer ON payment_methods (mode, customer_id);

CREATE TABLE checkout_sessions (
    id               TEXT PRIMARY KEY,
    mode             TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    plan_identifier  TEXT NOT NULL,
    charge_period    TEXT NOT NULL,
    quantity         BIGINT NOT NULL,
    trial_days       BIGINT,
    success_url      TEXT NOT NULL,
    cancel_url       TEXT,
    offering_id      TEXT,
    pricing_table_id TEXT,
    ip_address       TEXT,
    status           TEXT NOT NULL,
    subscription_id  TEXT,
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT
);
CREATE INDEX checkout_sessions_subscription ON checkout_sessions (mode, subscription_id);

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    mode                 TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    plan_identifier      TEXT NOT NULL,
    grp                  TEXT NOT NULL,
    charge_period        TEXT NOT NULL,
    amount_minor         BIGINT NOT NULL,
    currency             TEXT NOT NULL,
    quantity             BIGINT NOT NULL,
    status               TEXT NOT NULL,
    started_at           BIGINT NOT NULL,
    current_period_start BIGINT NOT NULL,
    current_period_end   BIGINT,
    trial_end            BIGINT,
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    cancel_at            BIGINT,
    canceled_at          BIGINT,
    ended_at             BIGINT,
    scheduled_plan       TEXT,
    scheduled_period     TEXT,
    created_at           BIGINT NOT NULL,
    modified_at          BIGINT NOT NULL,
    cycle_anchor         BIGINT,
    cycle_index          BIGINT NOT NULL DEFAULT 0,
    dunning_invoice      TEXT,
    dunning_attempts     BIGINT NOT NULL DEFAULT 0,
    next_retry_at        BIGINT,
    checkout_session     TEXT,
    scheduled_quantity   BIGINT,
    dunning_started_at   BIGINT
);
CREATE INDEX subscriptions_customer ON subscriptions (mode, customer_id, status);

CREATE TABLE customer_entitlements (
    mode           TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    entitlements   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    next_change_at BIGINT,
    PRIMARY KEY (mode, customer_id)
);
CREATE INDEX customer_entitlements_next_change ON customer_entitlements (next_change_at);

CREATE TABLE change_log (
    version    BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    changes    TEXT NOT NULL
);
CREATE INDEX change_log_created ON change_log (created_at);

CREATE TABLE sync_state (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO sync_state (id, version) VALUES (1, 0);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT,
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    total_minor     BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    paid_at         BIGINT
);
CREATE INDEX invoices_customer ON invoices (mode, customer_id, created_at);
CREATE INDEX invoices_subscription ON invoices (mode, subscription_id, created_at);

CREATE TABLE invoice_lines (
    id              BIGSERIAL PRIMARY KEY,
    invoice_id      TEXT,
    mode            TEXT NOT NULL,
    subscription_id TEXT,
    description     TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    period_start    BIGINT,
    period_end      BIGINT,
    proration       BIGINT NOT NULL,
    plan_identifier TEXT
);
CREATE INDEX invoice_lines_invoice ON invoice_lines (invoice_id);
CREATE INDEX invoice_lines_pending ON invoice_lines (subscription_id) WHERE invoice_id IS NULL;

CREATE TABLE usage_counters (
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    feature_id   TEXT NOT NULL,
    window_end   BIGINT NOT NULL,
    first_at     BIGINT NOT NULL,
    value        BIGINT NOT NULL,
    PRIMARY KEY (mode, customer_id, feature_id, window_end)
);
CREATE INDEX usage_counters_window_end ON usage_counters (window_end);

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    mode       TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    claimed_until    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Every row that is customer data carries `mode`: test and live never meet.
-- Times are Unix seconds (INTEGER); money is integer minor units of `currency`.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,             -- secret | publishable | edge_sync
    mode        TEXT,                      -- test | live; NULL for edge_sync
    hash        TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the key
    prefix      TEXT NOT NULL,             -- first characters, to recognise a key in lists
    name        TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
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
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (mode, identifier)
);

CREATE TABLE plans (
    mode        TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    public_key  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,
    is_default  INTEGER NOT NULL,
    trial_days  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (mode, identifier)
);

CREATE TABLE prices (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL,
    plan_identifier TEXT NOT NULL,
    charge_period   TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    UNIQUE (mode, plan_identifier, charge_period)
);

CREATE TABLE plan_features (
    mode               TEXT NOT NULL,
    plan_identifier    TEXT NOT NULL,
    feature_identifier TEXT NOT NULL,
    has_access         INTEGER NOT NULL,
    usage_limit        INTEGER,             -- NULL = unlimited
    PRIMARY KEY (mode, plan_identifier, feature_identifier)
);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    name        TEXT,
    email       TEXT,
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    UNIQUE (mode, customer_id)
);
CREATE INDEX customers_email ON customers (mode, email);

CREATE TABLE payment_methods (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    behaviour   TEXT NOT NULL,             -- succeeds | fails_later
    created_at  INTEGER NOT NULL
);
CREATE INDEX payment_methods_customer ON payment_methods (mode, customer_id);

CREATE TABLE checkout_sessions (
    id               TEXT PRIMARY KEY,
    mode             TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    plan_identifier  TEXT NOT NULL,
    charge_period    TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    trial_days       INTEGER,
    success_url      TEXT NOT NULL,
    cancel_url       TEXT,
    offering_id      TEXT,
    pricing_table_id TEXT,
    ip_address       TEXT,
    status           TEXT NOT NULL,        -- open | complete
    subscription_id  TEXT,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER
);

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    mode                 TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    plan_identifier      TEXT NOT NULL,
    grp                  TEXT NOT NULL,
    charge_period        TEXT NOT NULL,
    amount_minor         INTEGER NOT NULL,  -- unit price at the time of the (last) change
    currency             TEXT NOT NULL,
    quantity             INTEGER NOT NULL,
    status               TEXT NOT NULL,
    started_at           INTEGER NOT NULL,
    current_period_start INTEGER NOT NULL,
    current_period_end   INTEGER,          -- NULL for ONE_TIME
    trial_end            INTEGER,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    cancel_at            INTEGER,
    canceled_at          INTEGER,
    ended_at             INTEGER,
    scheduled_plan       TEXT,
    scheduled_period     TEXT,
    created_at           INTEGER NOT NULL,
    modified_at          INTEGER NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (mode, customer_id, status);

-- The compiled view the edges serve; rewritten in the same transaction as any change to it.
CREATE TABLE customer_entitlements (
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    entitlements TEXT NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (mode, customer_id)
);

-- One row per committed transaction that changed what edges serve, in commit order.
CREATE TABLE change_log (
    version    INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    changes    TEXT NOT NULL
);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,            -- hash of the caller's credential
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,                  -- NULL while the first request is in flight
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Webhooks: endpoints, an outbox of events written in the same transaction as the change, and
-- one delivery row per (event, endpoint), retried with backoff until it succeeds or gives up.

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,            -- JSON array of event types; ["*"] for all
    secret      TEXT NOT NULL,            -- whsec_<base64>
    description TEXT,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,          -- msg_…: the webhook-id header, stable across retries
    mode       TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    status           TEXT NOT NULL,       -- pending | succeeded | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

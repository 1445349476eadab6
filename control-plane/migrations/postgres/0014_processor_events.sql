-- Provider webhooks: the same as SQLite's 0014_processor_events.sql.
CREATE TABLE processor_events (
    id          TEXT PRIMARY KEY,     -- evt_…
    mode        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX processor_events_received ON processor_events (received_at);
-- A charge the card holder disputed (`charge.dispute.created`).
ALTER TABLE invoices ADD COLUMN disputed_at BIGINT;

-- Provider webhooks (issue 14): each Stripe event id once, so a redelivered event is a no-op.
-- Pruned 30 days after receipt (Stripe stops redelivering after 3 days).
CREATE TABLE processor_events (
    id          TEXT PRIMARY KEY,     -- evt_…
    mode        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX processor_events_received ON processor_events (received_at);
-- A charge the card holder disputed (`charge.dispute.created`).
ALTER TABLE invoices ADD COLUMN disputed_at INTEGER;

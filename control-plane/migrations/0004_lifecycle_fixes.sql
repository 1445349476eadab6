-- A scheduled downgrade keeps the quantity it was asked for.
ALTER TABLE subscriptions ADD COLUMN scheduled_quantity INTEGER;
-- When the failed charge that dunning is retrying happened (retries are counted from it).
ALTER TABLE subscriptions ADD COLUMN dunning_started_at INTEGER;

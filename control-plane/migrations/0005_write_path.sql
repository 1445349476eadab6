-- The write path (unit of work, group commit) and the schema it shares with PostgreSQL.

-- Change-log versions come from this one counter row, updated inside the transaction that
-- appends: gap-free and in commit order, on one writer or several.
CREATE TABLE sync_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO sync_state (id, version) SELECT 1, COALESCE(MAX(version), 0) FROM change_log;

-- Usage counters are keyed by the end of their window, which the compiled entitlements
-- already carry (`resetAt`): a usage report finds its counter without recomputing windows.
-- 9223372036854775807 is "never resets" (a ONE_TIME purchase).
CREATE TABLE usage_counters_v2 (
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    feature_id   TEXT NOT NULL,
    window_end   INTEGER NOT NULL,
    first_at     INTEGER NOT NULL,             -- when the window's first report arrived
    value        INTEGER NOT NULL,
    PRIMARY KEY (mode, customer_id, feature_id, window_end)
);
INSERT OR IGNORE INTO usage_counters_v2 (mode, customer_id, feature_id, window_end, first_at, value)
    SELECT mode, customer_id, feature_id, COALESCE(window_end, 9223372036854775807), window_start, value
    FROM usage_counters;
DROP TABLE usage_counters;
ALTER TABLE usage_counters_v2 RENAME TO usage_counters;
CREATE INDEX usage_counters_window_end ON usage_counters (window_end);

-- Definition order of a plan's prices and grants, which SQLite kept as rowid.
ALTER TABLE plan_features ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE plan_features SET position = rowid;
ALTER TABLE prices ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE prices SET position = rowid;

-- Stored idempotent responses expire and are pruned by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Webhook deliveries are claimed with a lease, so several replicas never send one twice and a
-- dead replica's claims are taken over.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until INTEGER;

CREATE INDEX change_log_created ON change_log (created_at);
CREATE INDEX checkout_sessions_subscription ON checkout_sessions (mode, subscription_id);

-- Refunds through the processor: the same as SQLite's 0015_refund_processor.sql.
ALTER TABLE refunds ADD COLUMN intent_id TEXT;
ALTER TABLE refunds ADD COLUMN processor_ref TEXT;
ALTER TABLE refunds ADD COLUMN failure_reason TEXT;
ALTER TABLE refunds ADD COLUMN claimed_until BIGINT;
CREATE INDEX refunds_pending ON refunds (status, claimed_until);

-- Refunds through the processor (issue 14): the charge a refund gives money back from, the
-- processor's id for the refund, and the payments worker's lease while it asks for it.
ALTER TABLE refunds ADD COLUMN intent_id TEXT;
ALTER TABLE refunds ADD COLUMN processor_ref TEXT;
ALTER TABLE refunds ADD COLUMN failure_reason TEXT;
ALTER TABLE refunds ADD COLUMN claimed_until INTEGER;
CREATE INDEX refunds_pending ON refunds (status, claimed_until);

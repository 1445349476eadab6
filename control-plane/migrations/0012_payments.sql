-- Payments (issue 14): what of an invoice the customer's credit balance paid, so a refund gives
-- the card back at most what the card paid and returns the rest to credit. Invoices written
-- before this migration count as wholly card-paid (the split was not recorded).
ALTER TABLE invoices ADD COLUMN credit_applied_minor INTEGER NOT NULL DEFAULT 0;
-- The part of a refund that went back to the customer's credit balance (`amount_minor` is the
-- part that went back to the card).
ALTER TABLE refunds ADD COLUMN credit_minor INTEGER NOT NULL DEFAULT 0;

-- Payments: the same columns as SQLite's 0012_payments.sql.
ALTER TABLE invoices ADD COLUMN credit_applied_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN credit_minor BIGINT NOT NULL DEFAULT 0;

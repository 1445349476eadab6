-- Reported usage events are pruned by age (issue 15): maintenance finds the oldest ones by
-- this index instead of scanning the table.
CREATE INDEX usage_events_created ON usage_events (created_at);

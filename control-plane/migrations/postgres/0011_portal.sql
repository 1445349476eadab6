-- The hosted customer portal: the same table as SQLite's 0011_portal.sql.
CREATE TABLE portal_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

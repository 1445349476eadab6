-- The hosted customer portal: the same table as SQLite's 0007_portal.sql. (Numbered 0003: 0002
-- is taken by the Kelviq-compatibility tables on their own branch.)
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

-- The hosted customer portal (control-plane/src/portal/): one row per portal session. The
-- session's token is never stored, only its SHA-256 (hex); the row binds it to one customer of
-- one mode until it expires. `csrf` is the per-session nonce every portal form carries.
CREATE TABLE portal_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    mode         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

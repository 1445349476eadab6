//! What an idempotent request carries to the writer.

pub const HEADER: &str = "idempotency-key";

/// A request's claim on an idempotency key: the writer stores the answer under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemClaim {
    /// The mode of the secret key that sent it (`mode:test`): keys of one mode share their
    /// idempotency keys, so a retry after a key rotation is still a replay.
    pub scope: String,
    pub key: String,
    /// Hash of the request (path and body): the same key with another request is refused.
    pub request_hash: String,
    /// Stored answers created before this (Unix seconds) have expired and no longer count.
    pub not_before: i64,
}

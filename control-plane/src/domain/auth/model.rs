//! Who is calling, and how authentication fails.

use crate::platform::http::error::{DomainError, Failure};
use tollgate_shared::ErrorKind;
use tollgate_shared::keys::KeyHash;
use tollgate_shared::{KeyKind, Mode};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid API key or missing Authorization header")]
    Missing,
    #[error("Invalid API key or missing Authorization header")]
    Invalid,
    #[error("{0}")]
    WrongKind(&'static str),
    #[error("this operation needs a live-mode secret key")]
    WrongMode,
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A caller holding a valid secret key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub mode: Mode,
    pub key_id: String,
    /// Scopes idempotency keys to the credential that sent them.
    pub credential_hash: KeyHash,
}

/// A caller holding a valid edge sync key.
#[derive(Debug, Clone)]
pub struct EdgeCaller {
    pub key_id: String,
}

/// A stored, unrevoked key as a lookup finds it.
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub id: String,
    pub kind: KeyKind,
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Default)]
pub struct BootstrapKeys {
    pub secret: Option<String>,
    pub publishable: Option<String>,
    pub live_secret: Option<String>,
    pub edge_sync: Option<String>,
}

impl DomainError for AuthError {
    fn failure(&self) -> Failure<'_> {
        match self {
            AuthError::Missing | AuthError::Invalid => Failure::Kind(ErrorKind::Unauthorized),
            AuthError::WrongKind(_) | AuthError::WrongMode => Failure::Kind(ErrorKind::Forbidden),
            AuthError::NotFound(_) => Failure::Kind(ErrorKind::NotFound),
            AuthError::Db(error) => Failure::Database {
                context: "auth",
                error,
            },
        }
    }
}

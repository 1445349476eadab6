//! Usage reports and reported events (Kelviq's `report_event`), and what can go wrong with them.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_shared::{Entitlement, ErrorKind};

use crate::domain::customers::model::CustomerError;
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::validate::Invalid;

/// An event as reported.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub customer_id: &'a str,
    pub event_name: &'a str,
    pub idempotency_key: &'a str,
    /// As the caller sent it (Kelviq's `YYYY-MM-DD HH:MM:SS.ffffff`).
    pub timestamp: &'a str,
    pub resource_id: Option<&'a str>,
    pub properties: Option<&'a Value>,
}

impl NewEvent<'_> {
    /// What makes two reports under one key the same event.
    pub fn hash(&self) -> String {
        let canonical = serde_json::json!([
            self.customer_id,
            self.event_name,
            self.timestamp,
            self.resource_id,
            self.properties,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What recording an event did.
#[derive(Debug)]
pub enum Recorded {
    /// Stored now; the meters counting its name moved (each as it now stands).
    New(Vec<Entitlement>),
    /// The same event was reported before under this key: nothing moved again.
    Duplicate,
    /// The key was used for another event.
    Conflict,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error("feature '{0}' not found")]
    FeatureNotFound(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl DomainError for UsageError {
    fn failure(&self) -> Failure<'_> {
        match self {
            UsageError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            UsageError::Customer(c) => c.failure(),
            UsageError::FeatureNotFound(_) => Failure::Kind(ErrorKind::NotFound),
            UsageError::Db(error) => Failure::Database {
                context: "usage",
                error,
            },
        }
    }
}

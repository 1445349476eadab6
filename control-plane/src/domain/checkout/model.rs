//! Checkout sessions and how checkout fails.

use tollgate_shared::Mode;

use crate::domain::catalog::model::CatalogError;
use crate::domain::customers::model::CustomerError;
use crate::domain::payments::model::Decline;
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::validate::Invalid;
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("checkout session '{0}' not found")]
    NotFound(String),
    #[error("checkout session '{0}' is already completed")]
    AlreadyCompleted(String),
    #[error("{0}")]
    Declined(#[from] Decline),
    #[error("this helper exists in test mode only")]
    TestModeOnly,
    /// The checkout can no longer be paid: its price is gone, its pending subscription was
    /// canceled, it expired, or the customer already has a plan in the group.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> SessionStatus {
        match s {
            "open" => SessionStatus::Open,
            "complete" => SessionStatus::Complete,
            _ => SessionStatus::Expired,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub plan_identifier: String,
    pub charge_period: String,
    pub quantity: i64,
    pub trial_days: Option<i64>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub status: SessionStatus,
    pub subscription_id: Option<String>,
    pub created_at: i64,
}

impl Session {
    /// Whether the session can no longer be paid for its age: `ttl` seconds after it was
    /// opened, both in the customer's time (a test clock's, if they live on one).
    pub fn is_expired(&self, now: i64, ttl: i64) -> bool {
        match self.status {
            SessionStatus::Expired => true,
            SessionStatus::Complete => false,
            SessionStatus::Open => now.saturating_sub(self.created_at) >= ttl,
        }
    }

    /// Where the payer goes after paying: `successUrl` with Stripe's `{CHECKOUT_SESSION_ID}`
    /// placeholder filled in.
    pub fn success_redirect(&self) -> String {
        self.success_url.replace("{CHECKOUT_SESSION_ID}", &self.id)
    }
}

pub fn checkout_url(public_url: &str, session_id: &str) -> String {
    format!("{public_url}/checkout/{session_id}/")
}

impl DomainError for CheckoutError {
    fn failure(&self) -> Failure<'_> {
        match self {
            CheckoutError::Customer(c) => c.failure(),
            CheckoutError::Catalog(c) => c.failure(),
            CheckoutError::Db(error) => Failure::Database {
                context: "checkout",
                error,
            },
            CheckoutError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            CheckoutError::NotFound(_) => Failure::Kind(ErrorKind::NotFound),
            CheckoutError::AlreadyCompleted(_) => Failure::Kind(ErrorKind::Conflict),
            CheckoutError::Declined(_) => Failure::Kind(ErrorKind::PaymentRequired),
            CheckoutError::TestModeOnly => Failure::Kind(ErrorKind::Forbidden),
            CheckoutError::Unavailable(_) => Failure::Kind(ErrorKind::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_by_age_in_customer_time() {
        let session = |status, created_at| Session {
            id: "cs".into(),
            mode: Mode::Test,
            customer_id: "c".into(),
            plan_identifier: "pro".into(),
            charge_period: "MONTHLY".into(),
            quantity: 1,
            trial_days: None,
            success_url: "https://x.example/".into(),
            cancel_url: None,
            status,
            subscription_id: None,
            created_at,
        };
        let ttl = 86_400;
        // (status, created_at, now, expired)
        let cases = [
            (SessionStatus::Open, 1_000, 1_000, false),
            (SessionStatus::Open, 1_000, 1_000 + ttl - 1, false),
            (SessionStatus::Open, 1_000, 1_000 + ttl, true),
            (SessionStatus::Open, 1_000, 500, false), // a test clock behind real time
            (SessionStatus::Expired, 1_000, 1_000, true),
            (SessionStatus::Complete, 1_000, 1_000 + 10 * ttl, false),
            (SessionStatus::Open, i64::MIN, i64::MAX, true),
        ];
        for (status, created, now, want) in cases {
            assert_eq!(
                session(status, created).is_expired(now, ttl),
                want,
                "{status:?} created {created} now {now}"
            );
        }
    }
}

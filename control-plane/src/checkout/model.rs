//! Checkout sessions and how checkout fails.

use tollgate_shared::Mode;

use super::payments::Decline;
use crate::catalog::model::CatalogError;
use crate::customers::model::CustomerError;
use crate::validate::Invalid;

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
    /// Where the payer goes after paying: `successUrl` with Stripe's `{CHECKOUT_SESSION_ID}`
    /// placeholder filled in.
    pub fn success_redirect(&self) -> String {
        self.success_url.replace("{CHECKOUT_SESSION_ID}", &self.id)
    }
}

pub fn checkout_url(public_url: &str, session_id: &str) -> String {
    format!("{public_url}/checkout/{session_id}/")
}

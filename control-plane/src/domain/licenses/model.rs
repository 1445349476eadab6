//! Licenses as stored and as callers see them, and the one validity rule.

use rand::Rng;
use serde::Serialize;
use tollgate_shared::Mode;

use crate::domain::subscriptions::model::{Status, SubscriptionView};
use crate::platform::db::sql::{FromRow, Row};
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::validate::Invalid;
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("license key not found")]
    NotFound,
    #[error("instance '{0}' of this license not found")]
    InstanceNotFound(String),
    #[error("license is not valid: {0}")]
    NotUsable(&'static str),
    #[error("activation limit reached: {limit} of {limit} activations are in use")]
    LimitReached { limit: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A `licenses` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub id: String,
    pub mode: Mode,
    pub key: String,
    pub customer_id: String,
    pub subscription_id: String,
    pub plan: String,
    pub activation_limit: i64,
    pub enabled: bool,
    pub created_at: i64,
    pub activated_at: Option<i64>,
}

impl FromRow for License {
    fn from_row(r: &Row) -> Result<Self, sqlx::Error> {
        Ok(License {
            id: r.try_get("id")?,
            mode: r.try_get::<Mode>("mode")?,
            key: r.try_get("license_key")?,
            customer_id: r.try_get("customer_id")?,
            subscription_id: r.try_get("subscription_id")?,
            plan: r.try_get("plan_identifier")?,
            activation_limit: r.try_get("activation_limit")?,
            enabled: r.try_get::<i64>("enabled")? != 0,
            created_at: r.try_get("created_at")?,
            activated_at: r.try_get("activated_at")?,
        })
    }
}

/// A new key: five groups of five characters from an alphabet without look-alikes (no `0/O`,
/// `1/I/L`), about 115 bits.
pub fn new_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let groups: Vec<String> = (0..5)
        .map(|_| {
            (0..5)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect();
    groups.join("-")
}

/// Why a license cannot be used, if it cannot: a disabled key, or a subscription that no
/// longer grants (ended, or awaiting payment). Kelviq's `code` values.
pub fn unusable(license: &License, subscription: Option<Status>) -> Option<&'static str> {
    if !license.enabled {
        return Some("DISABLED");
    }
    match subscription {
        Some(s) if s.is_granting() => None,
        _ => Some("EXPIRED"),
    }
}

/// A license's customer, as Kelviq's `LicenseCustomer`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCustomer {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The plan's group, as Kelviq's product.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlanProduct {
    pub id: String,
    pub identifier: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlan {
    pub identifier: String,
    pub name: Option<String>,
    pub product: Option<LicensePlanProduct>,
}

/// Kelviq's `LicenseDetails`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDetails {
    pub id: String,
    pub license_key: String,
    /// When the key was first activated.
    #[schema(format = DateTime)]
    pub activated_on: Option<String>,
    /// When the key stops being valid: the end of a subscription set to cancel, else null.
    #[schema(format = DateTime)]
    pub expires_on: Option<String>,
    /// Instances active now.
    pub activation_usage: i64,
    pub activation_limit: i64,
    /// Whether the key can be used now (enabled and its subscription granting).
    pub enabled: bool,
    pub customer: Option<LicenseCustomer>,
    pub plan: Option<LicensePlan>,
    pub subscription: Option<SubscriptionView>,
}

impl DomainError for LicenseError {
    fn failure(&self) -> Failure<'_> {
        match self {
            LicenseError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            LicenseError::Db(error) => Failure::Database {
                context: "licenses",
                error,
            },
            LicenseError::NotFound | LicenseError::InstanceNotFound(_) => {
                Failure::Kind(ErrorKind::NotFound)
            }
            LicenseError::NotUsable(_) | LicenseError::LimitReached { .. } => {
                Failure::Kind(ErrorKind::Conflict)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn license(enabled: bool) -> License {
        License {
            id: "lic".into(),
            mode: Mode::Test,
            key: new_key(),
            customer_id: "c".into(),
            subscription_id: "s".into(),
            plan: "p".into(),
            activation_limit: 2,
            enabled,
            created_at: 0,
            activated_at: None,
        }
    }

    #[test]
    fn keys_are_fresh_and_readable() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 29);
        assert!(a.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_key_is_usable_while_enabled_and_its_subscription_grants() {
        assert_eq!(unusable(&license(true), Some(Status::Active)), None);
        assert_eq!(unusable(&license(true), Some(Status::PastDue)), None);
        assert_eq!(
            unusable(&license(true), Some(Status::Canceled)),
            Some("EXPIRED")
        );
        assert_eq!(unusable(&license(true), None), Some("EXPIRED"));
        assert_eq!(
            unusable(&license(false), Some(Status::Active)),
            Some("DISABLED")
        );
    }
}

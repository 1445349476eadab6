//! Customers as callers see them, and the rules their fields follow.

use serde::Serialize;
use serde_json::Value;

use crate::platform::http::error::{DomainError, Failure};
use crate::platform::schema::TextRules;
use crate::platform::validate::{Invalid, invalid};
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Customer '{0}' not found")]
    NotFound(String),
    #[error("customer '{0}' already exists")]
    Exists(String),
    #[error("customer '{0}' is archived")]
    Archived(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub id: String,
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_on: String,
    pub modified_on: String,
    /// Archived (Kelviq's `DELETE`): gone from lists, history kept, the default plans'
    /// entitlements at the edge.
    pub archived: bool,
    pub archived_on: Option<String>,
}

/// What the document promises of an email address ([`check_email`] checks it).
pub const EMAIL: TextRules = TextRules {
    marker: "email-address",
    min_length: None,
    max_length: Some(EMAIL_MAX_LEN),
    pattern: Some(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"),
};
const EMAIL_MAX_LEN: usize = 254;

/// Keys a metadata object may have (and 8 KiB in all, which a schema cannot say).
pub const METADATA_MAX_KEYS: usize = 50;

pub fn check_email(email: &str) -> Result<(), Invalid> {
    let ok = email.len() <= EMAIL_MAX_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid("email", "not a valid email address"))
    }
}

pub fn check_metadata(metadata: &Value) -> Result<(), Invalid> {
    match metadata {
        Value::Object(map)
            if map.len() <= METADATA_MAX_KEYS && metadata.to_string().len() <= 8 * 1024 =>
        {
            Ok(())
        }
        Value::Object(_) => Err(invalid("metadata", "at most 50 keys and 8 KiB")),
        _ => Err(invalid("metadata", "must be a JSON object")),
    }
}

pub struct NewCustomer<'a> {
    pub customer_id: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub metadata: &'a Value,
    pub test_clock: Option<&'a str>,
    /// When the customer comes into being: now, or their test clock's time.
    pub created_at: i64,
}

impl DomainError for CustomerError {
    fn failure(&self) -> Failure<'_> {
        match self {
            CustomerError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            CustomerError::NotFound(_) => Failure::Kind(ErrorKind::NotFound),
            CustomerError::Exists(_) | CustomerError::Archived(_) => {
                Failure::Kind(ErrorKind::Conflict)
            }
            CustomerError::Db(error) => Failure::Database {
                context: "customers",
                error,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_metadata() {
        for (email, ok) in [
            ("john@example.com", true),
            ("john@localhost", false),
            ("@example.com", false),
            ("a b@example.com", false),
            ("a@b@example.com", false),
        ] {
            assert_eq!(check_email(email).is_ok(), ok, "{email}");
        }
        assert!(check_metadata(&serde_json::json!({"a": 1})).is_ok());
        assert!(check_metadata(&serde_json::json!([1])).is_err());
        let big: serde_json::Map<String, Value> =
            (0..51).map(|i| (i.to_string(), Value::Null)).collect();
        assert!(check_metadata(&Value::Object(big)).is_err());
    }
}

//! The one place where every domain's errors become an HTTP status and the error envelope.
//! Internal details (SQL errors and the like) are logged here and never sent to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tollgate_shared::{ErrorEnvelope, ErrorKind};

use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::checkout::CheckoutError;
use crate::customers::CustomerError;
use crate::subscriptions::SubscriptionError;

/// A request value that failed validation; `field` is named in the message so callers can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, context, "internal error");
        ApiError::new(ErrorKind::Internal, "Unexpected error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope::new(self.kind, self.message).to_json();
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(ErrorKind::BadRequest, e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal("database", &e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let kind = match &e {
            AuthError::Missing | AuthError::Invalid => ErrorKind::Unauthorized,
            AuthError::WrongKind(_) | AuthError::WrongMode => ErrorKind::Forbidden,
            AuthError::Db(db) => return ApiError::internal("auth", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let kind = match &e {
            CatalogError::Invalid(_) => ErrorKind::BadRequest,
            CatalogError::FeatureNotFound(_) | CatalogError::PlanNotFound(_) => ErrorKind::NotFound,
            CatalogError::Exists(_) => ErrorKind::Conflict,
            CatalogError::Db(db) => return ApiError::internal("catalog", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        let kind = match &e {
            CustomerError::Invalid(_) => ErrorKind::BadRequest,
            CustomerError::NotFound(_) => ErrorKind::NotFound,
            CustomerError::Exists(_) => ErrorKind::Conflict,
            CustomerError::Db(db) => return ApiError::internal("customers", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let e = match e {
            CheckoutError::Customer(c) => return c.into(),
            CheckoutError::Catalog(c) => return c.into(),
            other => other,
        };
        let kind = match &e {
            CheckoutError::Invalid(_) => ErrorKind::BadRequest,
            CheckoutError::NotFound(_) => ErrorKind::NotFound,
            CheckoutError::AlreadyCompleted(_) => ErrorKind::Conflict,
            CheckoutError::Declined(_) => ErrorKind::PaymentRequired,
            CheckoutError::TestModeOnly => ErrorKind::Forbidden,
            CheckoutError::Unavailable(_) => ErrorKind::Conflict,
            CheckoutError::Customer(_) | CheckoutError::Catalog(_) => ErrorKind::Internal,
            CheckoutError::Db(db) => return ApiError::internal("checkout", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        let kind = match &e {
            SubscriptionError::Invalid(_) => ErrorKind::BadRequest,
            SubscriptionError::NotFound(_) => ErrorKind::NotFound,
            SubscriptionError::NotChangeable { .. } => ErrorKind::Conflict,
            SubscriptionError::Payment(_) => ErrorKind::PaymentRequired,
            SubscriptionError::Db(db) => return ApiError::internal("subscriptions", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

//! [`ApiError`]: what any handler or unit of work fails with, rendered as the error envelope.
//!
//! The one map from errors to HTTP is here. Each domain's error enum says what kind of failure
//! each of its variants is ([`DomainError`], implemented beside the enum); the blanket
//! `From<impl DomainError>` below turns any of them into an `ApiError`, and [`ErrorKind`] gives
//! the status. Internal details (SQL errors and the like) are logged here and never sent to the
//! caller; a transient database error stays marked as such, so the writer retries its unit.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tollgate_shared::{ErrorEnvelope, ErrorKind};

use crate::platform::validate::Invalid;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The database asked for a retry (a lost deadlock, a busy lock): the writer runs the unit
    /// again in a later batch instead of failing the request.
    pub transient: bool,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            transient: false,
        }
    }

    /// A failure the caller cannot fix: logged with its detail, answered as a bare 500.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, context, "internal error");
        ApiError::new(ErrorKind::Internal, "Unexpected error")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn is_server_error(&self) -> bool {
        self.kind.status() >= 500
    }

    pub fn body(&self) -> Vec<u8> {
        ErrorEnvelope::new(self.kind, self.message.clone()).to_json()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
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
        ApiError::database("database", &e)
    }
}

impl ApiError {
    /// A database failure: a retry for a transient one (a lost deadlock, a busy lock), else a
    /// bare 500 with the detail logged under `context`.
    pub fn database(context: &str, e: &sqlx::Error) -> ApiError {
        let transient = crate::platform::db::is_transient(e);
        let mut out = if transient {
            tracing::warn!(error = %e, "database asked for a retry");
            ApiError::new(ErrorKind::Unavailable, "The database is busy; try again")
        } else {
            ApiError::internal(context, e)
        };
        out.transient = transient;
        out
    }
}

/// What a domain error is, as far as the API is concerned.
#[derive(Debug)]
pub enum Failure<'a> {
    /// A failure the caller can act on; the message is the error's `Display`.
    Kind(ErrorKind),
    /// The database failed underneath: logged under `context`, answered as a retry or a 500.
    Database {
        context: &'static str,
        error: &'a sqlx::Error,
    },
}

/// Implemented by every domain's error enum, beside its definition: which [`Failure`] each
/// variant is. Nested domain errors answer with their inner error's failure.
pub trait DomainError: std::fmt::Display {
    fn failure(&self) -> Failure<'_>;
}

impl<E: DomainError> From<E> for ApiError {
    fn from(e: E) -> Self {
        match e.failure() {
            Failure::Kind(kind) => ApiError::new(kind, e.to_string()),
            Failure::Database { context, error } => ApiError::database(context, error),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

//! [`ApiError`]: what any handler or unit of work fails with, rendered as the error envelope.
//! Domain errors become an `ApiError` in one place (`crate::error`); internal details (SQL
//! errors and the like) are logged there and never sent to the caller.

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
        let transient = crate::platform::db::is_transient(&e);
        let mut out = if transient {
            tracing::warn!(error = %e, "database asked for a retry");
            ApiError::new(ErrorKind::Unavailable, "The database is busy; try again")
        } else {
            ApiError::internal("database", &e)
        };
        out.transient = transient;
        out
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

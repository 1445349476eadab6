//! [`Reply`]: a response rendered to bytes. Writes render their answer inside the unit of work,
//! so the very bytes sent are the ones stored for an idempotent replay.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::platform::http::error::ApiError;

/// The header every committed write answer carries its change-log version in.
pub const VERSION_HEADER: &str = "tollgate-version";

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// What an idempotent replay answers instead of `body`, when the body carries a secret
    /// (an API key, a webhook signing secret) that must never be stored.
    pub stored: Option<Bytes>,
    /// Set on replays (the `Idempotent-Replayed: true` header).
    pub replayed: bool,
    /// The change-log version this write committed (the `Tollgate-Version` header): an edge
    /// that has applied it serves what the write left (read-your-writes, `minVersion`).
    pub version: Option<u64>,
}

impl Reply {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
        Reply {
            status,
            // Serializing our own view types cannot fail; an empty body would show it if it did.
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            stored: None,
            replayed: false,
            version: None,
        }
    }

    pub fn ok<T: Serialize>(value: &T) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    pub fn created<T: Serialize>(value: &T) -> Reply {
        Reply::json(StatusCode::CREATED, value)
    }

    pub fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: Bytes::new(),
            stored: None,
            replayed: false,
            version: None,
        }
    }

    /// Replays answer `redacted` (the same object without its secret) instead of this body.
    pub fn with_redacted<T: Serialize>(mut self, redacted: &T) -> Reply {
        self.stored = Some(Bytes::from(
            serde_json::to_vec(redacted).unwrap_or_default(),
        ));
        self
    }

    /// The body to keep for replays.
    pub fn body_to_store(&self) -> &Bytes {
        self.stored.as_ref().unwrap_or(&self.body)
    }

    pub fn from_error(e: &ApiError) -> Reply {
        Reply {
            status: e.status(),
            body: Bytes::from(e.body()),
            stored: None,
            replayed: false,
            version: None,
        }
    }

    pub fn replay(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body: Bytes::from(body),
            stored: None,
            replayed: true,
            version: None,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::from_error(&e)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body).into_response();
        if self.status != StatusCode::NO_CONTENT {
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if self.replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        if let Some(version) = self.version {
            resp.headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from(version));
        }
        resp
    }
}

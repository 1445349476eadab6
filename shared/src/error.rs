//! The error envelope of SPEC §4 and the 4geeks seed:
//! `{"error":{"code":404,"type":"not_found","message":"…"}}`.
//! Each plane maps its own domain errors onto an [`ErrorKind`] in exactly one place.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    PaymentRequired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::PaymentRequired => 402,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::PaymentRequired => "payment_required",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Unprocessable => "unprocessable_entity",
            ErrorKind::TooManyRequests => "rate_limited",
            ErrorKind::Internal => "server_error",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: u16,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code: kind.status(),
                kind: kind.type_name().to_owned(),
                message: message.into(),
            },
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of a number and two strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_the_seed() {
        let e = ErrorEnvelope::new(ErrorKind::NotFound, "Subscription not found");
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"error":{"code":404,"type":"not_found","message":"Subscription not found"}}"#
        );
    }
}

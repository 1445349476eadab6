//! The idempotency pre-check. Before a POST's handler runs: a stored answer for the same key
//! and request is replayed at once; the same key with another request is a 422. Otherwise the
//! request goes on carrying an [`IdemClaim`] (see [`Idem`]) for the writer, which stores the
//! answer in the same transaction as the write. Unauthenticated requests carry no claim.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tollgate_shared::ErrorKind;

use crate::api::state::AppState;
use crate::domain::idempotency::model::{HEADER, IdemClaim};
use crate::domain::idempotency::store;
use crate::domain::idempotency::store::Stored;
use crate::platform::http::error::ApiError;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
    else {
        return ApiError::new(
            ErrorKind::BadRequest,
            "Idempotency-Key: must be 1-255 visible ASCII characters",
        )
        .into_response();
    };
    let Some(scope) = state.auth.idempotency_scope(req.headers()).await else {
        // Not authenticated: the handler answers 401/403 and nothing is stored.
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(ErrorKind::PayloadTooLarge, "request body is too large")
                .into_response();
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().trim_end_matches('/').as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let claim = IdemClaim {
        scope,
        key,
        request_hash: hex(&hasher.finalize()),
        not_before: state.clock.unix() - state.config.idempotency_ttl_secs,
    };
    let stored = match state.db.read().await {
        Ok(mut conn) => store::lookup(&mut conn, &claim).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(Stored::Answer(mut reply)) => {
            // The first answer's write is committed; the newest committed version holds it.
            if reply.status.is_success() {
                reply.version = Some(state.sync.latest());
            }
            return reply.into_response();
        }
        Ok(Stored::Mismatch) => {
            return ApiError::new(
                ErrorKind::Unprocessable,
                "Idempotency-Key was already used with a different request; use a new key",
            )
            .into_response();
        }
        Ok(Stored::None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let mut req = Request::from_parts(parts, axum::body::Body::from(bytes));
    req.extensions_mut().insert(claim);
    next.run(req).await
}

/// The request's idempotency claim, if it sent a key (handlers pass it to the writer).
pub struct Idem(pub Option<IdemClaim>);

impl<S: Send + Sync> FromRequestParts<S> for Idem {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Idem(parts.extensions.get::<IdemClaim>().cloned()))
    }
}

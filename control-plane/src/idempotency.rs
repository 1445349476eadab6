//! `Idempotency-Key` on every POST (Stripe semantics): the first response is stored; a retry
//! with the same key and the same request replays it; the same key with a different request is
//! a 422; a retry while the first is still running is a 409. Keys are scoped to the secret key
//! that sent them (Bearer or Basic alike); unauthenticated requests store nothing. Server
//! errors are not stored, so a retry after a 5xx runs again.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tollgate_shared::ErrorKind;

use crate::app::{AppState, BODY_LIMIT};
use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";

/// How long a first request may hold its key before a retry may take it over.
const IN_FLIGHT_LEASE_SECS: i64 = 60;

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
    let Some(scope) = crate::auth::secret_key_id(&state, req.headers()).await else {
        // Not authenticated: the handler answers 401/403 and nothing is stored.
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, BODY_LIMIT).await {
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
    let request_hash = hex(&hasher.finalize());

    match claim(&state, &scope, &key, &request_hash).await {
        Ok(Claim::Mine) => {}
        Ok(Claim::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut resp = (status, body).into_response();
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return resp;
        }
        Ok(Claim::InFlight) => {
            return ApiError::new(
                ErrorKind::Conflict,
                "a request with this Idempotency-Key is still being processed",
            )
            .into_response();
        }
        Ok(Claim::Mismatch) => {
            return ApiError::new(
                ErrorKind::Unprocessable,
                "Idempotency-Key was already used with a different request; use a new key",
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    }

    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let outcome = if parts.status.is_server_error() {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = ? AND key = ?")
            .bind(&scope)
            .bind(&key)
            .execute(&state.db.pool)
            .await
    } else {
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, response = ? WHERE scope = ? AND key = ?",
        )
        .bind(i64::from(parts.status.as_u16()))
        .bind(body.to_vec())
        .bind(&scope)
        .bind(&key)
        .execute(&state.db.pool)
        .await
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, "could not record idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

enum Claim {
    Mine,
    Replay { status: u16, body: Vec<u8> },
    InFlight,
    Mismatch,
}

async fn claim(
    state: &AppState,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<Claim, ApiError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(state.clock.unix())
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Mine);
    }
    let row = sqlx::query(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = ? AND key = ?",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(&state.db.pool)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    match row.try_get::<Option<i64>, _>("status")? {
        None => {
            // A claim whose request died with its connection or process would block the key
            // forever; after a lease it may be taken over (the handler's own transaction
            // either committed, and a repeat is refused by its own rules, or it did not).
            let now = state.clock.unix();
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET created_at = ? WHERE scope = ? AND key = ? AND status IS NULL AND created_at < ?",
            )
            .bind(now)
            .bind(scope)
            .bind(key)
            .bind(now - IN_FLIGHT_LEASE_SECS)
            .execute(&state.db.pool)
            .await?
            .rows_affected();
            Ok(if taken == 1 {
                Claim::Mine
            } else {
                Claim::InFlight
            })
        }
        Some(status) => Ok(Claim::Replay {
            status: status as u16,
            body: row
                .try_get::<Option<Vec<u8>>, _>("response")?
                .unwrap_or_default(),
        }),
    }
}

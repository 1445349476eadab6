//! The JSON API's rate limits (`/api/`, `/v1/`): the client address's bucket, then the
//! credential's ([`crate::platform::http::rate_limit`]); past either, 429 with `Retry-After`.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use tollgate_shared::ErrorKind;

use crate::api::state::AppState;
use crate::platform::http::error::ApiError;
use crate::platform::http::rate_limit::{ClientAddr, credential_key};

fn too_many(wait: std::time::Duration, what: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    metrics::counter!("tollgate_rate_limited_total", "by" => what.to_owned()).increment(1);
    let mut resp = ApiError::new(
        ErrorKind::TooManyRequests,
        format!("too many requests from this {what}; retry after {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

/// The middleware: the address's bucket, then the credential's.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.rate_limits;
    let path = req.uri().path();
    if path.starts_with("/api/") || path.starts_with("/v1/") {
        if let (Some(l), Some(ClientAddr(addr))) =
            (&limits.per_ip, req.extensions().get::<ClientAddr>())
            && let Err(not_until) = l.check_key(&addr.ip())
        {
            // The limiter's own clock: making one per request calibrates a TSC clock (measured:
            // a quarter of the control plane's CPU at peak).
            return too_many(not_until.wait_time_from(l.clock().now()), "address");
        }
        if let (Some(l), Some(auth)) = (&limits.per_key, req.headers().get(AUTHORIZATION))
            && let Err(not_until) = l.check_key(&credential_key(auth))
        {
            return too_many(not_until.wait_time_from(l.clock().now()), "credential");
        }
    }
    next.run(req).await
}

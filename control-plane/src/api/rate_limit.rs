//! Token buckets per client address and per credential for the JSON API (`/api/`, `/v1/`),
//! answering 429 with `Retry-After` (issue 15). `governor`'s keyed limiters: a check is a
//! hash-map lookup and an atomic compare-and-swap, before any database work. Their maps hold
//! one entry per address or credential seen recently; [`RateLimits::forget_idle`], run every
//! second, drops the ones whose bucket is full again, so an attacker's made-up keys do not
//! pile up.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tollgate_shared::ErrorKind;

use crate::api::state::AppState;
use crate::platform::http::error::ApiError;

/// The client's address, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The limiters; `None` where the flag is 0 (off).
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<u64>>,
}

/// A bucket of `per_sec` tokens a second holding two seconds' worth; `None` for 0.
fn limiter<K: Hash + Eq + Clone>(per_sec: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(per_sec.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(per_ip: u32, per_key: u32) -> RateLimits {
        RateLimits {
            per_ip: limiter(per_ip),
            per_key: limiter(per_key),
        }
    }

    /// Drops the state of addresses and credentials whose bucket is full again.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// A 64-bit digest of the credential: the map keeps no secret, and a rotation is a new key.
fn credential_key(value: &HeaderValue) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.as_bytes().hash(&mut h);
    h.finish()
}

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
        let clock = DefaultClock::default();
        if let (Some(l), Some(ClientAddr(addr))) =
            (&limits.per_ip, req.extensions().get::<ClientAddr>())
            && let Err(not_until) = l.check_key(&addr.ip())
        {
            return too_many(not_until.wait_time_from(clock.now()), "address");
        }
        if let (Some(l), Some(auth)) = (&limits.per_key, req.headers().get(AUTHORIZATION))
            && let Err(not_until) = l.check_key(&credential_key(auth))
        {
            return too_many(not_until.wait_time_from(clock.now()), "credential");
        }
    }
    next.run(req).await
}

//! Token buckets per client address and per credential (issue 15), `governor`'s keyed
//! limiters: a check is a hash-map lookup and an atomic compare-and-swap. Their maps hold one
//! entry per address or credential seen recently; [`RateLimits::forget_idle`], run every
//! second, drops the ones whose bucket is full again, so made-up keys do not pile up. The
//! middleware that applies them is `api::rate_limit`.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderValue;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The client's address, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The limiters; `None` where the flag is 0 (off).
pub struct RateLimits {
    pub per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    pub per_key: Option<DefaultKeyedRateLimiter<u64>>,
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
pub fn credential_key(value: &HeaderValue) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.as_bytes().hash(&mut h);
    h.finish()
}

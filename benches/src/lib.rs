//! Fixtures for Tollgate's criterion benches (`benches/edge_lookup.rs`): a realistic
//! population of compiled entitlements, loaded into a real `tollgate_edge::Store` the way the
//! sync task loads a snapshot, plus the requests and baseline the benches compare.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tollgate_edge::store::{ApplyError, PendingSnapshot};
use tollgate_edge::{EdgeState, Store};
use tollgate_shared::entitlement::Limit;
use tollgate_shared::keys::{hash_hex, hash_key};
use tollgate_shared::sync::{EdgeKey, ModeDefaults, SnapshotBegin};
use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType, KeyKind, Mode};

/// The publishable key every bench request carries (test mode).
pub const KEY: &str = "pk_test_benchbenchbench0123456789";
pub const CUSTOMER_PREFIX: &str = "cus_";
/// Customers per chunk, as a snapshot stream would deliver them.
pub const CHUNK: usize = 1_000;
pub const VERSION: u64 = 1;

pub fn customer_id(i: u64) -> String {
    format!("{CUSTOMER_PREFIX}{i}")
}

fn boolean(id: &str, has_access: bool) -> Entitlement {
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Boolean,
        has_access,
        usage_limit: Limit::NotApplicable,
        current_usage: None,
        remaining: None,
        reset_at: None,
        hard_limit: None,
    }
}

fn meter(id: &str, limit: Limit, usage: i64, hard_limit: bool) -> Entitlement {
    let (has_access, remaining) = match limit {
        Limit::Max(max) => (usage < max, Some((max - usage).max(0))),
        _ => (true, None),
    };
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Meter,
        has_access,
        usage_limit: limit,
        current_usage: Some(usage),
        remaining,
        reset_at: Some("2026-12-01T00:00:00Z".into()),
        hard_limit: Some(hard_limit),
    }
}

fn customizable(id: &str, limit: Limit) -> Entitlement {
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Customizable,
        has_access: true,
        usage_limit: limit,
        current_usage: None,
        remaining: None,
        reset_at: None,
        hard_limit: None,
    }
}

/// Five features per customer, in identifier order: two BOOLEAN, two METER, one CUSTOMIZABLE.
pub fn entitlements_for(i: u64) -> Vec<Entitlement> {
    let usage = (i.wrapping_mul(7919) % 1_200) as i64;
    vec![
        meter("api-calls", Limit::Max(1_000), usage, true),
        boolean("export-data", true),
        boolean("sso", matches!(i % 3, 0)),
        meter("storage-gb", Limit::Unlimited, usage / 10, false),
        customizable("team-size", Limit::Max(5 + (i % 20) as i64)),
    ]
}

/// What a customer the edge has never heard of gets (the free plan).
pub fn default_entitlements() -> Vec<Entitlement> {
    vec![
        meter("api-calls", Limit::Max(100), 0, true),
        boolean("export-data", false),
        boolean("sso", false),
        meter("storage-gb", Limit::Max(1), 0, false),
        customizable("team-size", Limit::Max(1)),
    ]
}

pub fn customers(n: u64) -> Vec<CustomerEntitlements> {
    (0..n)
        .map(|i| CustomerEntitlements {
            mode: Mode::Test,
            customer_id: customer_id(i),
            entitlements: entitlements_for(i),
        })
        .collect()
}

pub fn snapshot_begin(customer_count: u64) -> SnapshotBegin {
    SnapshotBegin {
        version: VERSION,
        customer_count,
        keys: vec![EdgeKey {
            hash: hash_hex(&hash_key(KEY)),
            mode: Mode::Test,
            kind: KeyKind::Publishable,
        }],
        token_keys: vec![],
        defaults: vec![ModeDefaults {
            mode: Mode::Test,
            entitlements: default_entitlements(),
        }],
    }
}

/// Loads `customers` into `store` as one full snapshot, in `CHUNK`-sized frames.
pub fn load_snapshot(store: &Store, customers: &[CustomerEntitlements]) -> Result<(), ApplyError> {
    let mut pending = PendingSnapshot::new(snapshot_begin(customers.len() as u64));
    for chunk in customers.chunks(CHUNK) {
        pending.add(chunk)?;
    }
    store.finish_snapshot(pending, VERSION)
}

/// An edge state holding `n` customers, as after a completed sync.
pub fn edge_state(n: u64) -> Result<EdgeState, ApplyError> {
    let store = Store::default();
    load_snapshot(&store, &customers(n))?;
    Ok(EdgeState::new(Arc::new(store)))
}

/// `GET /api/v1/entitlements/?customerId={id}` with the bench key.
pub fn request(customer_id: &str) -> Request<()> {
    let mut req = Request::new(());
    if let Ok(uri) = format!("/api/v1/entitlements/?customerId={customer_id}").parse() {
        *req.uri_mut() = uri;
    }
    if let Ok(auth) = HeaderValue::from_str(&format!("Bearer {KEY}")) {
        req.headers_mut().insert(AUTHORIZATION, auth);
    }
    req
}

/// The baseline for the route benches: a plain `HashMap<String, Bytes>` of prepared bodies and
/// the cheapest response around one of them.
pub struct Baseline {
    bodies: HashMap<String, Bytes>,
}

impl Baseline {
    /// `n` customers, each mapped to (a shared copy of) a body of `body_len` bytes.
    pub fn new(n: u64, body_len: usize) -> Baseline {
        let body = Bytes::from(vec![b'x'; body_len]);
        Baseline {
            bodies: (0..n).map(|i| (customer_id(i), body.clone())).collect(),
        }
    }

    pub fn respond(&self, customer_id: &str) -> Response<Full<Bytes>> {
        let body = self.bodies.get(customer_id).cloned().unwrap_or_default();
        let mut resp = Response::new(Full::new(body));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;

    fn body_len(resp: Response<Full<Bytes>>) -> usize {
        let fut = resp.into_body().collect();
        // `Full` is ready immediately; poll it once without a runtime.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Ok(c)) => c.to_bytes().len(),
            _ => usize::MAX,
        }
    }

    #[test]
    fn known_and_unknown_customers_are_served() {
        let state = edge_state(10).expect("snapshot loads");
        let known = tollgate_edge::http::route(&state, &request(&customer_id(3)));
        assert_eq!(known.status(), StatusCode::OK);
        let unknown = tollgate_edge::http::route(&state, &request("nobody"));
        assert_eq!(unknown.status(), StatusCode::OK);
        let len = body_len(known);
        assert!(len > 300, "{len}");
        assert_eq!(
            body_len(Baseline::new(10, len).respond(&customer_id(3))),
            len
        );
    }
}

//! Prometheus metrics. Request counters are resolved to handles once, so counting a request is
//! one atomic add, not a registry lookup; gauges are refreshed when `/metrics` is scraped.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use metrics::{Counter, counter, gauge};

use crate::store::Store;

const STATUSES: [u16; 8] = [200, 304, 400, 401, 403, 404, 503, 0];

static REQUESTS: OnceLock<[Counter; 8]> = OnceLock::new();

/// Call after the recorder is installed; before that (benches, unit tests) counting is a no-op.
pub fn register() {
    let _ = REQUESTS.set(STATUSES.map(|s| {
        let label = if s == 0 {
            "other".to_owned()
        } else {
            s.to_string()
        };
        counter!("tollgate_edge_entitlement_requests_total", "status" => label)
    }));
}

#[inline]
pub fn request(status: u16) {
    if let Some(counters) = REQUESTS.get() {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        counters[i].increment(1);
    }
}

pub fn refresh(store: &Store) {
    let root = store.root();
    gauge!("tollgate_edge_sync_version").set(root.version as f64);
    gauge!("tollgate_edge_customers").set(root.customer_count() as f64);
    let status = &store.status;
    gauge!("tollgate_edge_sync_connected").set(if status.connected.load(Ordering::Relaxed) {
        1.0
    } else {
        0.0
    });
    gauge!("tollgate_edge_has_snapshot").set(if status.has_snapshot.load(Ordering::Relaxed) {
        1.0
    } else {
        0.0
    });
    gauge!("tollgate_edge_sync_staleness_seconds").set(status.staleness_secs().unwrap_or(-1.0));
    gauge!("tollgate_edge_sync_resyncs").set(status.resyncs.load(Ordering::Relaxed) as f64);
}

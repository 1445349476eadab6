//! Prometheus metrics. Gauges are refreshed when `/metrics` is scraped; so are the request
//! counters, which are counted off to the side: every thread adds to its own cache line of
//! plain atomics, and a scrape publishes the sums. A single shared counter would be one atomic
//! add per request on a cache line that every core writes — on a busy edge, the line bounces
//! between cores on every request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use metrics::{Counter, counter, gauge};

use crate::store::Store;

const STATUSES: [u16; 8] = [200, 304, 400, 401, 403, 404, 503, 0];

static REQUESTS: OnceLock<[Counter; 8]> = OnceLock::new();

/// Threads beyond this many share shards (still correct, just contended again).
const SHARDS: usize = 16;

/// One thread's request counts, one per entry of `STATUSES`: exactly one cache line.
#[repr(align(64))]
struct Shard([AtomicU64; STATUSES.len()]);

static COUNTS: [Shard; SHARDS] =
    [const { Shard([const { AtomicU64::new(0) }; STATUSES.len()]) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// Call after the recorder is installed; before that (benches, unit tests) counts are kept but
/// never published.
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
    let i = STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1);
    let shard = SHARD.with(|s| *s);
    COUNTS[shard].0[i].fetch_add(1, Ordering::Relaxed);
}

/// Requests counted so far with `status` (anything not in `STATUSES` counts as "other").
pub fn requests(status: u16) -> u64 {
    let i = STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1);
    COUNTS.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum()
}

/// A stream refused at the subscriber cap.
pub fn stream_refused() {
    counter!("tollgate_edge_stream_refusals_total").increment(1);
}

pub fn refresh(store: &Store) {
    if let Some(counters) = REQUESTS.get() {
        for (counter, status) in counters.iter().zip(STATUSES) {
            counter.absolute(requests(status));
        }
    }
    let root = store.root();
    gauge!("tollgate_edge_sync_version").set(root.version as f64);
    gauge!("tollgate_edge_streams").set(store.hub.len() as f64);
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
    for mode in crate::store::MODES {
        gauge!("tollgate_edge_customers_loaded", "mode" => mode.as_str())
            .set(root.counts[crate::store::slot(mode)] as f64);
    }
    gauge!("tollgate_edge_entitlement_data_bytes").set(root.data_bytes() as f64);
    gauge!("tollgate_edge_snapshot_load_seconds")
        .set(status.snapshot_load_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    gauge!("tollgate_edge_snapshot_bytes")
        .set(status.snapshot_bytes.load(Ordering::Relaxed) as f64);
    gauge!("tollgate_edge_snapshots_loaded")
        .set(status.snapshots_loaded.load(Ordering::Relaxed) as f64);
    gauge!("tollgate_edge_cache_age_seconds").set(status.cache_age_secs().unwrap_or(-1.0));
    gauge!("tollgate_edge_serving_from_cache").set(
        if status.source() == crate::store::Source::Cache {
            1.0
        } else {
            0.0
        },
    );
    gauge!("tollgate_edge_control_plane_index")
        .set(status.control_plane.load(Ordering::Relaxed) as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let before = requests(599);
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).for_each(|_| request(599))))
            .collect();
        for t in threads {
            t.join().expect("counting thread");
        }
        request(599);
        assert_eq!(requests(599) - before, 4001);
        assert_eq!(
            requests(0),
            requests(599),
            "unknown statuses count as other"
        );
    }
}

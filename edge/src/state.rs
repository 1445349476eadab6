//! What every request shares: the store, the metrics handle, and the bounds on the reads that
//! wait (with the slot such a read holds). A leaf under `http`, `ofrep`, `stream` and `wait`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::store::Store;

/// Bounds on the reads that wait (docs/operations.md, "Edges").
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Longest a read waits for its `minVersion` before answering stale.
    pub min_version_wait: Duration,
    /// Reads waiting for a `minVersion` at once (GET, OFREP, streams); more get 429.
    pub max_pending: usize,
    /// Largest OFREP request body.
    pub ofrep_body_limit: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            min_version_wait: Duration::from_millis(1_000),
            max_pending: 1_024,
            ofrep_body_limit: 16 * 1024,
        }
    }
}

pub struct EdgeState {
    pub store: Arc<Store>,
    pub metrics: Option<PrometheusHandle>,
    /// Past this many seconds without hearing from the control plane, `/readyz` says 503.
    pub max_staleness_secs: f64,
    pub reads: ReadLimits,
    /// Reads waiting now (see [`ReadLimits::max_pending`]).
    pending: AtomicUsize,
}

impl EdgeState {
    /// Default limits, no metrics.
    pub fn new(store: Arc<Store>) -> EdgeState {
        EdgeState {
            store,
            metrics: None,
            max_staleness_secs: 300.0,
            reads: ReadLimits::default(),
            pending: AtomicUsize::new(0),
        }
    }

    /// Reads waiting now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// A slot among [`ReadLimits::max_pending`], held while a read waits.
pub struct Pending(Arc<EdgeState>);

impl Pending {
    pub(crate) fn acquire(state: &Arc<EdgeState>) -> Option<Pending> {
        let max = state.reads.max_pending;
        state
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Pending(state.clone()))
    }

    pub fn state(&self) -> &Arc<EdgeState> {
        &self.0
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outcome of waiting for a `minVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// The version asked for.
    pub min: u64,
    /// Whether the edge had applied it when the read was answered.
    pub reached: bool,
}

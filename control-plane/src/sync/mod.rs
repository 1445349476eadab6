//! The control plane's side of edge sync (docs/sync.md).
//!
//! * [`changelog`] — the versioned log every entitlement-changing transaction appends to.
//! * [`stream`] — the long-lived HTTP response that feeds an edge: snapshot, then deltas.

pub mod changelog;
pub mod stream;

use tokio::sync::watch;

/// Wakes stream tasks when a transaction that appended to the change log has committed.
/// Carries the newest committed version; the log in the database stays the source of truth.
#[derive(Clone)]
pub struct SyncNotifier {
    tx: watch::Sender<u64>,
}

impl SyncNotifier {
    pub fn new(version: u64) -> Self {
        SyncNotifier {
            tx: watch::Sender::new(version),
        }
    }

    pub fn committed(&self, version: u64) {
        self.tx.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

//! Wakes stream tasks when a transaction that appended to the change log has committed.
//! Carries the newest committed version; the log in the database stays the source of truth.
//! A leaf: the writer tells it, sync streams (and the PostgreSQL listener) read it.

use tokio::sync::watch;

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

    pub fn latest(&self) -> u64 {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

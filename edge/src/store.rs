//! What the edge knows, arranged so a request never waits on a writer.
//!
//! One immutable [`Root`] is published through an `ArcSwap` (pingora's pattern): the accepted
//! keys, the token verification keys, the prepared default bodies and the customer maps travel
//! together, so a reader can never see keys from one snapshot and customers from another.
//! Deltas change single customers inside the lock-free `papaya` maps in place; a delta that
//! touches keys or defaults publishes a new root that shares the same customer maps.
//! There is exactly one writer, the sync task, so updates never contend with each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use tollgate_shared::keys::{KeyHash, parse_hash_hex};
use tollgate_shared::sync::{Change, Delta, EdgeKey, ModeDefaults, SnapshotBegin};
use tollgate_shared::token::decode_verifying_key;
use tollgate_shared::{CustomerEntitlements, KeyKind, Mode};

use crate::prepare::Prepared;

pub type CustomerMap = papaya::HashMap<Box<str>, Prepared>;

/// Index of a mode in the per-mode arrays below.
pub fn slot(mode: Mode) -> usize {
    match mode {
        Mode::Test => 0,
        Mode::Live => 1,
    }
}

#[derive(Debug, Default, Clone)]
pub struct Auth {
    pub keys: HashMap<KeyHash, (Mode, KeyKind)>,
    pub token_keys: Vec<VerifyingKey>,
}

pub struct Root {
    pub version: u64,
    pub auth: Arc<Auth>,
    pub defaults: [Arc<Prepared>; 2],
    pub customers: Arc<[CustomerMap; 2]>,
}

impl Root {
    fn empty() -> Root {
        let none = Arc::new(Prepared::array(&[]));
        Root {
            version: 0,
            auth: Arc::new(Auth::default()),
            defaults: [none.clone(), none],
            customers: Arc::new([CustomerMap::new(), CustomerMap::new()]),
        }
    }

    pub fn customer_count(&self) -> usize {
        self.customers.iter().map(|m| m.len()).sum()
    }
}

/// Sync health, read by `/readyz` and `/metrics`.
#[derive(Default)]
pub struct SyncStatus {
    pub has_snapshot: AtomicBool,
    pub connected: AtomicBool,
    /// Unix milliseconds of the last frame received (heartbeats count).
    pub last_frame_ms: AtomicU64,
    pub resyncs: AtomicU64,
}

impl SyncStatus {
    pub fn touch(&self) {
        self.last_frame_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Seconds since the control plane was last heard from; `None` before it ever was.
    pub fn staleness_secs(&self) -> Option<f64> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            last => Some(now_ms().saturating_sub(last) as f64 / 1000.0),
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("delta {got} does not follow version {have}")]
    Gap { have: u64, got: u64 },
    #[error("snapshot frame outside a snapshot")]
    StraySnapshotFrame,
    #[error("snapshot ended at {got}, began at {began}")]
    SnapshotMismatch { began: u64, got: u64 },
}

pub struct Store {
    root: ArcSwap<Root>,
    pub status: SyncStatus,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            root: ArcSwap::from_pointee(Root::empty()),
            status: SyncStatus::default(),
        }
    }
}

/// A snapshot being received; it becomes the root only when complete.
pub struct PendingSnapshot {
    begin: SnapshotBegin,
    customers: [CustomerMap; 2],
}

impl PendingSnapshot {
    pub fn new(begin: SnapshotBegin) -> Self {
        let capacity = begin.customer_count.min(50_000_000) as usize;
        PendingSnapshot {
            begin,
            customers: [
                CustomerMap::with_capacity(capacity),
                CustomerMap::with_capacity(capacity / 8),
            ],
        }
    }

    pub fn add(&self, customers: &[CustomerEntitlements]) {
        for c in customers {
            let prepared = Prepared::customer(&c.customer_id, &c.entitlements);
            self.customers[slot(c.mode)]
                .pin()
                .insert(c.customer_id.as_str().into(), prepared);
        }
    }

    pub fn received(&self) -> usize {
        self.customers.iter().map(|m| m.len()).sum()
    }
}

impl Store {
    /// The current root. Lock-free; hold it for the duration of one request only.
    #[inline]
    pub fn root(&self) -> arc_swap::Guard<Arc<Root>> {
        self.root.load()
    }

    pub fn version(&self) -> u64 {
        self.root.load().version
    }

    pub fn finish_snapshot(
        &self,
        pending: PendingSnapshot,
        end_version: u64,
    ) -> Result<(), ApplyError> {
        let began = pending.begin.version;
        if began != end_version {
            return Err(ApplyError::SnapshotMismatch {
                began,
                got: end_version,
            });
        }
        let mut auth = Auth::default();
        for key in &pending.begin.keys {
            add_key(&mut auth, key);
        }
        auth.token_keys = pending
            .begin
            .token_keys
            .iter()
            .filter_map(|k| decode_verifying_key(k))
            .collect();
        let mut defaults = self.root.load().defaults.clone();
        for d in &pending.begin.defaults {
            defaults[slot(d.mode)] = Arc::new(Prepared::array(&d.entitlements));
        }
        self.root.store(Arc::new(Root {
            version: began,
            auth: Arc::new(auth),
            defaults,
            customers: Arc::new(pending.customers),
        }));
        self.status.has_snapshot.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies the next delta; anything but `version + 1` is a gap and changes nothing.
    pub fn apply_delta(&self, delta: &Delta) -> Result<(), ApplyError> {
        let root = self.root.load_full();
        if delta.version != root.version + 1 {
            return Err(ApplyError::Gap {
                have: root.version,
                got: delta.version,
            });
        }
        let mut auth: Option<Auth> = None;
        let mut defaults = root.defaults.clone();
        for change in &delta.changes {
            match change {
                Change::Customer(c) => {
                    let prepared = Prepared::customer(&c.customer_id, &c.entitlements);
                    root.customers[slot(c.mode)]
                        .pin()
                        .insert(c.customer_id.as_str().into(), prepared);
                }
                Change::CustomerRemoved { mode, customer_id } => {
                    root.customers[slot(*mode)]
                        .pin()
                        .remove(customer_id.as_str());
                }
                Change::Defaults(ModeDefaults { mode, entitlements }) => {
                    defaults[slot(*mode)] = Arc::new(Prepared::array(entitlements));
                }
                Change::KeyAdded(key) => {
                    add_key(auth.get_or_insert_with(|| (*root.auth).clone()), key)
                }
                Change::KeyRevoked { hash } => {
                    if let Some(h) = parse_hash_hex(hash) {
                        auth.get_or_insert_with(|| (*root.auth).clone())
                            .keys
                            .remove(&h);
                    }
                }
            }
        }
        self.root.store(Arc::new(Root {
            version: delta.version,
            auth: auth.map(Arc::new).unwrap_or_else(|| root.auth.clone()),
            defaults,
            customers: root.customers.clone(),
        }));
        Ok(())
    }
}

fn add_key(auth: &mut Auth, key: &EdgeKey) {
    if let Some(h) = parse_hash_hex(&key.hash) {
        auth.keys.insert(h, (key.mode, key.kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::keys::{hash_hex, hash_key};

    fn begin(version: u64) -> SnapshotBegin {
        SnapshotBegin {
            version,
            customer_count: 1,
            keys: vec![EdgeKey {
                hash: hash_hex(&hash_key("pk_test_abcdefgh")),
                mode: Mode::Test,
                kind: KeyKind::Publishable,
            }],
            token_keys: vec![],
            defaults: vec![],
        }
    }

    fn customer(id: &str) -> CustomerEntitlements {
        CustomerEntitlements {
            mode: Mode::Test,
            customer_id: id.into(),
            entitlements: vec![],
        }
    }

    #[test]
    fn snapshot_then_ordered_deltas() {
        let store = Store::default();
        let pending = PendingSnapshot::new(begin(5));
        pending.add(&[customer("a")]);
        store.finish_snapshot(pending, 5).unwrap();
        assert_eq!(store.version(), 5);
        assert_eq!(store.root().customer_count(), 1);

        let gap = Delta {
            version: 7,
            changes: vec![],
        };
        assert_eq!(
            store.apply_delta(&gap),
            Err(ApplyError::Gap { have: 5, got: 7 })
        );

        let next = Delta {
            version: 6,
            changes: vec![
                Change::Customer(customer("b")),
                Change::KeyRevoked {
                    hash: hash_hex(&hash_key("pk_test_abcdefgh")),
                },
            ],
        };
        store.apply_delta(&next).unwrap();
        let root = store.root();
        assert_eq!(root.version, 6);
        assert_eq!(root.customer_count(), 2);
        assert!(root.auth.keys.is_empty());
    }

    #[test]
    fn mismatched_snapshot_end_is_refused() {
        let store = Store::default();
        let pending = PendingSnapshot::new(begin(5));
        assert!(store.finish_snapshot(pending, 6).is_err());
        assert!(!store.status.has_snapshot.load(Ordering::Relaxed));
    }
}

//! What the edge knows, arranged so a request never waits on a writer.
//!
//! One immutable [`Root`] is published through an `ArcSwap` (pingora's pattern): the accepted
//! keys, the token verification keys, the prepared default bodies and the customers travel
//! together, so a reader can never see keys from one snapshot and customers from another.
//! Customers live in compact layers ([`crate::customers`]): a snapshot's immutable base, built
//! off to the side and published whole at `snapshot_end`, and an overlay that deltas change in
//! place. Every delta publishes a new root (its version), sharing the same layers. There is
//! exactly one writer, the sync task, so updates never contend with each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use tollgate_shared::keys::{KeyHash, parse_hash_hex};
use tollgate_shared::sync::{Change, Delta, EdgeKey, ModeDefaults, SnapshotBegin};
use tollgate_shared::token::decode_verifying_key;
use tollgate_shared::{CustomerEntitlements, Entitlement, KeyKind, Mode};

use crate::customers::{
    Base, BaseBuilder, BuildError, ChunkBuilder, ChunkOut, Compact, Customers, IdHasher,
    LastChange, Overlay,
};
use crate::hub::{Hub, StreamLimits};
use crate::prepare::Prepared;
use crate::shape::{EntRef, Interner, LocalInterner, Shape};

pub use crate::modes::{MODES, slot};

#[derive(Debug, Default, Clone)]
pub struct Auth {
    pub keys: HashMap<KeyHash, (Mode, KeyKind)>,
    pub token_keys: Vec<VerifyingKey>,
    /// `token_keys` as received (base64url), for the warm-start cache.
    pub token_keys_raw: Vec<String>,
}

impl Auth {
    fn from_begin(begin: &SnapshotBegin) -> Auth {
        let mut auth = Auth::default();
        for key in &begin.keys {
            add_key(&mut auth, key);
        }
        auth.token_keys = begin
            .token_keys
            .iter()
            .filter_map(|k| decode_verifying_key(k))
            .collect();
        auth.token_keys_raw = begin.token_keys.clone();
        auth
    }

    /// The keys in wire form (hex hashes), for the warm-start cache.
    pub fn edge_keys(&self) -> Vec<EdgeKey> {
        let mut keys: Vec<EdgeKey> = self
            .keys
            .iter()
            .map(|(hash, (mode, kind))| EdgeKey {
                hash: tollgate_shared::keys::hash_hex(hash),
                mode: *mode,
                kind: *kind,
            })
            .collect();
        keys.sort_by(|a, b| a.hash.cmp(&b.hash));
        keys
    }
}

pub struct Root {
    pub version: u64,
    pub auth: Arc<Auth>,
    pub defaults: [Arc<Prepared>; 2],
    /// `defaults` as received, for the warm-start cache.
    pub default_entitlements: [Arc<[Entitlement]>; 2],
    /// `defaults` as a shape and its numbers, for OFREP.
    pub default_shapes: [Arc<Compact>; 2],
    /// No mode's defaults changed after these versions.
    pub defaults_version: [u64; 2],
    pub customers: Customers,
    /// Known customers per mode (removed ones not counted).
    pub counts: [usize; 2],
}

impl Root {
    fn empty() -> Root {
        let none = Arc::new(Prepared::array(&[]));
        let no_ents: Arc<[Entitlement]> = Arc::from(Vec::new());
        let no_shape = default_shape(&[]);
        Root {
            version: 0,
            auth: Arc::new(Auth::default()),
            defaults: [none.clone(), none],
            default_entitlements: [no_ents.clone(), no_ents],
            default_shapes: [no_shape.clone(), no_shape],
            defaults_version: [0, 0],
            customers: Customers::empty(),
            counts: [0, 0],
        }
    }

    /// Whether the customer's entitlements (a known customer's, or the defaults an unknown
    /// one gets) may have changed after `since`. Exact for customers changed by deltas since
    /// the last snapshot or compaction; for the rest, `true` whenever that snapshot or
    /// compaction is newer than `since`.
    pub fn changed_since(&self, mode: Mode, id: &str, since: u64) -> bool {
        self.changed_at(mode, id) > since
    }

    /// The version that last changed what the customer is served (or a version after it).
    /// Unchanged while the customer's entitlements are, so OFREP bulk answers can carry it
    /// without changing their `ETag`.
    pub fn changed_at(&self, mode: Mode, id: &str) -> u64 {
        let defaults = self.defaults_version[slot(mode)];
        let (LastChange::At { version, present } | LastChange::NotAfter { version, present }) =
            self.customers.last_change(mode, id);
        if present {
            version
        } else {
            version.max(defaults)
        }
    }

    pub fn customer_count(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Bytes of entitlement data held: records, tables, shapes, overlays.
    pub fn data_bytes(&self) -> usize {
        let c = &self.customers;
        c.base.bytes() + c.overlay.bytes() + c.frozen.as_ref().map_or(0, |f| f.bytes())
    }

    /// The `ModeDefaults` frames this root was built from.
    pub fn mode_defaults(&self) -> Vec<ModeDefaults> {
        MODES
            .iter()
            .map(|&mode| ModeDefaults {
                mode,
                entitlements: self.default_entitlements[slot(mode)].to_vec(),
            })
            .collect()
    }
}

/// Where the data being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Nothing,
    /// The warm-start cache file, not yet confirmed by a control plane.
    Cache,
    Stream,
}

/// Sync health, read by `/readyz` and `/metrics`.
#[derive(Default)]
pub struct SyncStatus {
    pub has_snapshot: AtomicBool,
    pub connected: AtomicBool,
    /// Unix milliseconds of the last frame received (heartbeats count), or, while serving from
    /// the warm-start cache, of when that file was written.
    pub last_frame_ms: AtomicU64,
    pub resyncs: AtomicU64,
    /// Set while the data being served came from the cache file and no control plane has
    /// spoken since.
    pub from_cache: AtomicBool,
    /// Unix milliseconds when the cache file being served, or last written, was written.
    pub cache_written_ms: AtomicU64,
    /// The last complete snapshot: seconds from its first frame to publishing it, ×1000, and
    /// bytes of its frames.
    pub snapshot_load_ms: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    pub snapshots_loaded: AtomicU64,
    /// Index (in the `--control-plane-url` list) of the control plane last streamed from.
    pub control_plane: AtomicU64,
}

impl SyncStatus {
    pub fn touch(&self) {
        self.last_frame_ms.store(now_ms(), Ordering::Relaxed);
        self.from_cache.store(false, Ordering::Relaxed);
    }

    /// Seconds since the control plane was last heard from (or, serving from the cache, since
    /// the file was written); `None` before either.
    pub fn staleness_secs(&self) -> Option<f64> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            last => Some(now_ms().saturating_sub(last) as f64 / 1000.0),
        }
    }

    /// The data now served came from a cache file written at `written_at_ms`: stale until a
    /// control plane speaks, and as old as the file.
    pub fn mark_cached(&self, written_at_ms: u64) {
        self.last_frame_ms.store(written_at_ms, Ordering::Relaxed);
        self.cache_written_ms
            .store(written_at_ms, Ordering::Relaxed);
        self.from_cache.store(true, Ordering::Relaxed);
    }

    /// Seconds since the cache file was written; `None` when there is none.
    pub fn cache_age_secs(&self) -> Option<f64> {
        match self.cache_written_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(now_ms().saturating_sub(at) as f64 / 1000.0),
        }
    }

    pub fn source(&self) -> Source {
        if !self.has_snapshot.load(Ordering::Acquire) {
            Source::Nothing
        } else if self.from_cache.load(Ordering::Relaxed) {
            Source::Cache
        } else {
            Source::Stream
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
    #[error(transparent)]
    Build(#[from] BuildError),
}

pub struct Store {
    root: ArcSwap<Root>,
    pub status: SyncStatus,
    /// The writer's shapes: those of the current base at their numbers, plus any deltas added.
    interner: Mutex<Arc<Interner>>,
    /// The event streams, told of every change after it is published.
    pub hub: Hub,
    /// The version of the root published last, for reads that wait for one (`minVersion`).
    versions: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StreamLimits::default())
    }
}

/// A mode's defaults as one shape and its numbers (OFREP renders unknown customers from it).
fn default_shape(entitlements: &[Entitlement]) -> Arc<Compact> {
    let interner = Interner::default();
    let refs: Vec<EntRef<'_>> = entitlements.iter().map(EntRef::from).collect();
    Arc::new(Compact::new(&refs, &mut LocalInterner::new(&interner)))
}

/// A snapshot being received; it becomes the root only when complete, and the old root serves
/// until then.
pub struct PendingSnapshot {
    begin: SnapshotBegin,
    builder: BaseBuilder,
    interner: Arc<Interner>,
}

impl PendingSnapshot {
    pub fn new(begin: SnapshotBegin) -> Self {
        let builder = BaseBuilder::new(usize::try_from(begin.customer_count).unwrap_or(usize::MAX));
        PendingSnapshot {
            begin,
            builder,
            interner: Arc::new(Interner::default()),
        }
    }

    /// A snapshot whose records already carry shape numbers of `interner` (the cache file's).
    pub fn with_interner(begin: SnapshotBegin, interner: Arc<Interner>) -> Self {
        PendingSnapshot {
            interner,
            ..PendingSnapshot::new(begin)
        }
    }

    pub fn version(&self) -> u64 {
        self.begin.version
    }

    pub fn expected(&self) -> u64 {
        self.begin.customer_count
    }

    /// The shapes this snapshot's chunks must be interned into.
    pub fn interner(&self) -> Arc<Interner> {
        self.interner.clone()
    }

    /// The id hasher this snapshot's chunks must use.
    pub fn hasher(&self) -> IdHasher {
        self.builder.hasher()
    }

    /// Adds parsed customers (deltas' types; the sync task's fast path hands in [`ChunkOut`]s
    /// built from the raw frame instead).
    pub fn add(&mut self, customers: &[CustomerEntitlements]) -> Result<(), BuildError> {
        let interner = self.interner.clone();
        let mut chunk = ChunkBuilder::new(
            LocalInterner::new(&interner),
            self.hasher(),
            customers.len() * 32,
        );
        let mut refs = Vec::new();
        for c in customers {
            refs.clear();
            refs.extend(c.entitlements.iter().map(EntRef::from));
            chunk.add(c.mode, &c.customer_id, &refs);
        }
        self.builder.add(chunk.finish())
    }

    /// Adds a chunk built on a worker, in stream order.
    pub fn add_chunk(&mut self, chunk: ChunkOut) -> Result<(), BuildError> {
        self.builder.add(chunk)
    }

    pub fn remove(&mut self, mode: Mode, id: &str) {
        self.builder.remove(mode, id);
    }

    pub fn received(&self) -> usize {
        self.builder.len()
    }

    /// Record bytes received so far.
    pub fn bytes(&self) -> usize {
        self.builder.bytes()
    }
}

impl Store {
    pub fn new(streams: StreamLimits) -> Store {
        Store {
            root: ArcSwap::from_pointee(Root::empty()),
            status: SyncStatus::default(),
            interner: Mutex::new(Arc::new(Interner::default())),
            hub: Hub::new(streams),
            versions: tokio::sync::watch::channel(0).0,
        }
    }

    /// Follows the published version (reads that wait for a `minVersion`).
    pub fn versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// The current root. Lock-free; hold it for the duration of one request only.
    #[inline]
    pub fn root(&self) -> arc_swap::Guard<Arc<Root>> {
        self.root.load()
    }

    pub fn version(&self) -> u64 {
        self.root.load().version
    }

    fn interner(&self) -> Arc<Interner> {
        self.interner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let auth = Auth::from_begin(&pending.begin);
        let old = self.root.load_full();
        let mut defaults = old.defaults.clone();
        let mut default_entitlements = old.default_entitlements.clone();
        let mut default_shapes = old.default_shapes.clone();
        for d in &pending.begin.defaults {
            defaults[slot(d.mode)] = Arc::new(Prepared::array(&d.entitlements));
            default_entitlements[slot(d.mode)] = Arc::from(d.entitlements.clone());
            default_shapes[slot(d.mode)] = default_shape(&d.entitlements);
        }
        let shapes = pending.interner.shapes();
        let base = pending.builder.finish(shapes);
        let counts = [base.len(Mode::Test), base.len(Mode::Live)];
        *self.interner.lock().unwrap_or_else(|p| p.into_inner()) = pending.interner;
        self.root.store(Arc::new(Root {
            version: began,
            auth: Arc::new(auth),
            defaults,
            default_entitlements,
            default_shapes,
            defaults_version: [began, began],
            customers: Customers {
                base: Arc::new(base),
                base_version: began,
                frozen: None,
                overlay: Arc::new(Overlay::default()),
            },
            counts,
        }));
        self.status.has_snapshot.store(true, Ordering::Release);
        // Published first, told after: a stream that registers in between reads the new root.
        self.hub.keys_changed();
        self.hub.changed_all(None, began);
        self.versions.send_replace(began);
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
        let interner = self.interner();
        let mut local = LocalInterner::new(&interner);
        let mut auth: Option<Auth> = None;
        let mut defaults = root.defaults.clone();
        let mut default_entitlements = root.default_entitlements.clone();
        let mut default_shapes = root.default_shapes.clone();
        let mut defaults_version = root.defaults_version;
        let mut counts = root.counts;
        let layers = &root.customers;
        let mut refs = Vec::new();
        for change in &delta.changes {
            match change {
                Change::Customer(c) => {
                    refs.clear();
                    refs.extend(c.entitlements.iter().map(EntRef::from));
                    let compact = Compact::new(&refs, &mut local);
                    if !layers.contains(c.mode, &c.customer_id) {
                        counts[slot(c.mode)] += 1;
                    }
                    layers.overlay.insert(
                        c.mode,
                        c.customer_id.as_str().into(),
                        Some(compact),
                        delta.version,
                    );
                }
                Change::CustomerRemoved { mode, customer_id } => {
                    if layers.contains(*mode, customer_id) {
                        counts[slot(*mode)] = counts[slot(*mode)].saturating_sub(1);
                        layers.overlay.insert(
                            *mode,
                            customer_id.as_str().into(),
                            None,
                            delta.version,
                        );
                    }
                }
                Change::Defaults(ModeDefaults { mode, entitlements }) => {
                    defaults[slot(*mode)] = Arc::new(Prepared::array(entitlements));
                    default_entitlements[slot(*mode)] = Arc::from(entitlements.clone());
                    default_shapes[slot(*mode)] = default_shape(entitlements);
                    defaults_version[slot(*mode)] = delta.version;
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
        let keys_changed = auth.is_some();
        self.root.store(Arc::new(Root {
            version: delta.version,
            auth: auth.map(Arc::new).unwrap_or_else(|| root.auth.clone()),
            defaults,
            default_entitlements,
            default_shapes,
            defaults_version,
            customers: root.customers.clone(),
            counts,
        }));
        // Published first, told after (see `finish_snapshot`). Never awaits a stream.
        self.tell(delta, keys_changed);
        self.versions.send_replace(delta.version);
        Ok(())
    }

    /// Signals the streams of every customer `delta` touched.
    fn tell(&self, delta: &Delta, keys_changed: bool) {
        if keys_changed {
            self.hub.keys_changed();
        }
        if self.hub.is_empty() {
            return;
        }
        for change in &delta.changes {
            match change {
                Change::Customer(c) => self.hub.changed(c.mode, &c.customer_id, delta.version),
                Change::CustomerRemoved { mode, customer_id } => {
                    self.hub.changed(*mode, customer_id, delta.version)
                }
                Change::Defaults(d) => self.hub.changed_all(Some(d.mode), delta.version),
                Change::KeyAdded(_) | Change::KeyRevoked { .. } => {}
            }
        }
    }

    /// Freezes the overlay for folding into a new base, when it has grown past a quarter of
    /// the base (and past a floor, so small edges never bother). Deltas keep going to a fresh
    /// overlay meanwhile; run the returned job off the request path, then hand its result to
    /// [`Store::finish_compaction`].
    pub fn start_compaction(&self) -> Option<Compaction> {
        let root = self.root.load_full();
        let layers = &root.customers;
        let base_len = layers.base.len(Mode::Test) + layers.base.len(Mode::Live);
        if layers.frozen.is_some() || layers.overlay.len() < (base_len / 4).max(COMPACT_FLOOR) {
            return None;
        }
        let frozen = layers.overlay.clone();
        self.root.store(Arc::new(Root {
            version: root.version,
            auth: root.auth.clone(),
            defaults: root.defaults.clone(),
            default_entitlements: root.default_entitlements.clone(),
            default_shapes: root.default_shapes.clone(),
            defaults_version: root.defaults_version,
            customers: Customers {
                base: layers.base.clone(),
                base_version: layers.base_version,
                frozen: Some(frozen.clone()),
                overlay: Arc::new(Overlay::default()),
            },
            counts: root.counts,
        }));
        Some(Compaction {
            base: layers.base.clone(),
            frozen,
            frozen_at: root.version,
            interner: self.interner(),
        })
    }

    /// Publishes a compaction's new base, unless a snapshot replaced the layers meanwhile.
    pub fn finish_compaction(&self, job: &Compaction, done: Result<Base, BuildError>) {
        let root = self.root.load_full();
        let layers = &root.customers;
        let current = layers
            .frozen
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &job.frozen));
        if !current {
            return;
        }
        let base = match done {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; keeping the overlay");
                // Put the frozen entries back in front: nothing newer may be lost, so only
                // those the live overlay does not have.
                for mode in MODES {
                    for (id, version, entry) in job.frozen.versioned_entries(mode) {
                        if !layers.overlay.contains(mode, &id) {
                            layers.overlay.insert(mode, id, entry, version);
                        }
                    }
                }
                self.publish_layers(&root, layers.base.clone(), layers.base_version);
                return;
            }
        };
        self.publish_layers(&root, Arc::new(base), job.frozen_at);
    }

    fn publish_layers(&self, root: &Root, base: Arc<Base>, base_version: u64) {
        self.root.store(Arc::new(Root {
            version: root.version,
            auth: root.auth.clone(),
            defaults: root.defaults.clone(),
            default_entitlements: root.default_entitlements.clone(),
            default_shapes: root.default_shapes.clone(),
            defaults_version: root.defaults_version,
            customers: Customers {
                base,
                base_version,
                frozen: None,
                overlay: root.customers.overlay.clone(),
            },
            counts: root.counts,
        }));
    }
}

/// Overlays smaller than this are never compacted.
const COMPACT_FLOOR: usize = 50_000;

/// Folding a frozen overlay into its base: the newer entries win, tombstones drop customers.
pub struct Compaction {
    base: Arc<Base>,
    frozen: Arc<Overlay>,
    /// The version when the overlay was frozen: nothing in the new base is newer.
    frozen_at: u64,
    interner: Arc<Interner>,
}

impl Compaction {
    /// The new base. CPU-bound: run it on a blocking thread.
    pub fn run(&self) -> Result<Base, BuildError> {
        let total = MODES
            .iter()
            .map(|&m| self.base.len(m) + self.frozen.entries(m).len())
            .sum();
        let mut builder = BaseBuilder::new(total);
        let mut chunk = ChunkBuilder::new(
            LocalInterner::new(&self.interner),
            builder.hasher(),
            crate::customers::SEGMENT_MAX,
        );
        // The base's shapes keep their numbers: the writer's interner began as the base's.
        let mut shapes = self.interner.shapes();
        let mut number: HashMap<*const Shape, u32> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (Arc::as_ptr(s), i as u32))
            .collect();
        for mode in MODES {
            for (id, shape, values) in self.base.iter(mode) {
                if !self.frozen.contains(mode, id) {
                    chunk.add_encoded(mode, id, shape, values);
                }
            }
            for (id, entry) in self.frozen.entries(mode) {
                if let Some(c) = entry {
                    let n = *number.entry(Arc::as_ptr(&c.shape)).or_insert_with(|| {
                        // Every delta's shape went through the interner; this is a safety net.
                        shapes.push(c.shape.clone());
                        (shapes.len() - 1) as u32
                    });
                    chunk.add_encoded(mode, &id, n, &c.values);
                }
            }
        }
        builder.add(chunk.finish())?;
        Ok(builder.finish(shapes))
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
    use tollgate_shared::FeatureType;
    use tollgate_shared::entitlement::Limit;
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

    fn metered(id: &str, usage: i64) -> CustomerEntitlements {
        CustomerEntitlements {
            mode: Mode::Test,
            customer_id: id.into(),
            entitlements: vec![Entitlement {
                feature_id: "api-calls".into(),
                feature_type: FeatureType::Meter,
                has_access: true,
                usage_limit: Limit::Max(10),
                current_usage: Some(usage),
                remaining: Some((10 - usage).max(0)),
                reset_at: Some("2026-12-01T00:00:00Z".into()),
                hard_limit: Some(true),
            }],
        }
    }

    fn usage(store: &Store, id: &str) -> Option<serde_json::Value> {
        store.root().customers.with(Mode::Test, id, |v| {
            v.map(|v| {
                let mut out = bytes::BytesMut::new();
                v.shape.render_array(v.values, &mut out);
                let arr: serde_json::Value = serde_json::from_slice(&out).unwrap();
                arr[0]["currentUsage"].clone()
            })
        })
    }

    #[test]
    fn snapshot_then_ordered_deltas() {
        let store = Store::default();
        let mut pending = PendingSnapshot::new(begin(5));
        pending.add(&[customer("a")]).unwrap();
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

    #[test]
    fn deltas_replace_and_remove_and_counts_follow() {
        let store = Store::default();
        let mut pending = PendingSnapshot::new(begin(1));
        pending
            .add(&[metered("a", 1), metered("b", 2), metered("c", 3)])
            .unwrap();
        store.finish_snapshot(pending, 1).unwrap();
        let delta = Delta {
            version: 2,
            changes: vec![
                Change::Customer(metered("a", 9)),
                Change::Customer(metered("d", 4)),
                Change::CustomerRemoved {
                    mode: Mode::Test,
                    customer_id: "b".into(),
                },
                Change::CustomerRemoved {
                    mode: Mode::Test,
                    customer_id: "never".into(),
                },
            ],
        };
        store.apply_delta(&delta).unwrap();
        assert_eq!(usage(&store, "a"), Some(9.into()));
        assert_eq!(usage(&store, "b"), None);
        assert_eq!(usage(&store, "c"), Some(3.into()));
        assert_eq!(usage(&store, "d"), Some(4.into()));
        assert_eq!(store.root().counts, [3, 0]);
    }

    #[test]
    fn compaction_folds_the_overlay_and_keeps_newer_deltas() {
        let store = Store::default();
        let mut pending = PendingSnapshot::new(begin(1));
        let first: Vec<_> = (0..100).map(|i| metered(&format!("c{i}"), 1)).collect();
        pending.add(&first).unwrap();
        store.finish_snapshot(pending, 1).unwrap();
        let mut changes: Vec<Change> = (0..COMPACT_FLOOR)
            .map(|i| Change::Customer(metered(&format!("n{i}"), 2)))
            .collect();
        changes.push(Change::CustomerRemoved {
            mode: Mode::Test,
            customer_id: "c0".into(),
        });
        changes.push(Change::Customer(metered("c1", 5)));
        store
            .apply_delta(&Delta {
                version: 2,
                changes,
            })
            .unwrap();
        let job = store
            .start_compaction()
            .expect("the overlay is large enough");
        // A delta while the compaction runs lands in the new overlay and must survive it.
        store
            .apply_delta(&Delta {
                version: 3,
                changes: vec![Change::Customer(metered("c1", 6))],
            })
            .unwrap();
        assert_eq!(usage(&store, "c1"), Some(6.into()));
        let done = job.run();
        store.finish_compaction(&job, done);
        let root = store.root();
        assert!(root.customers.frozen.is_none());
        assert_eq!(root.customers.overlay.len(), 1);
        assert_eq!(root.customers.base.len(Mode::Test), 99 + COMPACT_FLOOR);
        drop(root);
        assert_eq!(usage(&store, "c0"), None);
        assert_eq!(usage(&store, "c1"), Some(6.into()));
        assert_eq!(usage(&store, "c2"), Some(1.into()));
        assert_eq!(usage(&store, "n7"), Some(2.into()));
        assert_eq!(store.root().counts, [99 + COMPACT_FLOOR, 0]);
    }
}

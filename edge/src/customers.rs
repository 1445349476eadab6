//! The customers an edge knows, in a few dozen bytes each.
//!
//! * [`Base`] — what the last snapshot delivered, immutable once built: every customer is one
//!   *record* `[id length][id][shape number][numbers…]` (varints, see [`crate::shape`]) packed
//!   into a few large segments (32 MiB each, allocated whole so that malloc maps them from
//!   the OS and gives them back when a newer snapshot replaces them; only the bytes written
//!   are resident), and per mode a `hashbrown` table of 4-byte record
//!   references. No per-customer allocation, no pointer per customer.
//! * [`Overlay`] — customers changed by deltas since, in a lock-free `papaya` map that the one
//!   writer updates in place while requests read it. An entry is the customer's new shape and
//!   numbers, or a tombstone for a removed customer.
//! * [`Customers`] — the layers a root serves: overlay over (while a compaction runs) a frozen
//!   overlay over the base. A compaction folds the overlays into a new base off the request
//!   path ([`compact`]).
//!
//! A snapshot is built chunk by chunk on worker threads ([`ChunkBuilder`], one per
//! `snapshot_chunk` frame), and the chunks are put together in stream order ([`BaseBuilder`]),
//! so a customer sent twice ends as the later one, exactly as map inserts would.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;
use tollgate_shared::Mode;

use crate::codec::{get_varint, put_varint};
use crate::modes::slot;
use crate::shape::{EntRef, LocalInterner, Shape};

/// Bits of a record reference that address a byte inside its segment.
const OFFSET_BITS: u32 = 25;
/// Largest segment: records never straddle two.
pub const SEGMENT_MAX: usize = 1 << OFFSET_BITS;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
/// 128 segments of 32 MiB: 4 GiB of records, some 100 million customers.
const MAX_SEGMENTS: usize = 1 << (32 - OFFSET_BITS);

/// The hasher of customer ids: SipHash with per-table random keys, so ids chosen by outsiders
/// (customer ids often come from sign-up forms) cannot be made to collide.
pub type IdHasher = std::hash::RandomState;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("snapshot too large for one edge (more than {MAX_SEGMENTS} record segments)")]
    TooLarge,
    #[error("worker failed: {0}")]
    Worker(String),
}

/// A customer found in some layer: its shape and its numbers.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub shape: &'a Shape,
    pub values: &'a [u8],
}

/// The immutable customers of one snapshot (plus compactions since).
pub struct Base {
    segments: Vec<Box<[u8]>>,
    tables: [HashTable<u32>; 2],
    shapes: Vec<Arc<Shape>>,
    hasher: IdHasher,
}

fn record<S: AsRef<[u8]>>(segments: &[S], r: u32) -> &[u8] {
    let seg = (r >> OFFSET_BITS) as usize;
    let off = (r & OFFSET_MASK) as usize;
    segments
        .get(seg)
        .and_then(|s| s.as_ref().get(off..))
        .unwrap_or_default()
}

/// A record's id and what follows it.
fn split_id(rec: &[u8]) -> (&[u8], &[u8]) {
    match get_varint(rec) {
        Some((len, n)) if rec.len() >= n + len as usize => {
            let (id, rest) = rec[n..].split_at(len as usize);
            (id, rest)
        }
        _ => (&[], &[]),
    }
}

fn id_of<S: AsRef<[u8]>>(segments: &[S], r: u32) -> &[u8] {
    split_id(record(segments, r)).0
}

impl Base {
    pub fn empty() -> Base {
        Base {
            segments: Vec::new(),
            tables: [HashTable::new(), HashTable::new()],
            shapes: Vec::new(),
            hasher: IdHasher::new(),
        }
    }

    pub fn len(&self, mode: Mode) -> usize {
        self.tables[slot(mode)].len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(HashTable::is_empty)
    }

    pub fn shapes(&self) -> &[Arc<Shape>] {
        &self.shapes
    }

    /// Bytes held: records, tables and shapes.
    pub fn bytes(&self) -> usize {
        let records: usize = self.segments.iter().map(|s| s.len()).sum();
        // hashbrown keeps one control byte per bucket beside the 4-byte slot.
        let tables: usize = self.tables.iter().map(|t| t.capacity() * 8 / 7 * 5).sum();
        let shapes: usize = self.shapes.iter().map(|s| s.bytes()).sum();
        records + tables + shapes + self.segments.len() * 16
    }

    #[inline]
    pub fn get(&self, mode: Mode, id: &str) -> Option<View<'_>> {
        let hash = self.hasher.hash_one(id);
        let segments = &self.segments;
        let r = *self.tables[slot(mode)].find(hash, |&r| id_of(segments, r) == id.as_bytes())?;
        let (_, rest) = split_id(record(segments, r));
        let (shape, n) = get_varint(rest)?;
        Some(View {
            shape: self.shapes.get(shape as usize)?,
            values: &rest[n..],
        })
    }

    /// Every customer of `mode`: id, shape number, numbers.
    pub fn iter(&self, mode: Mode) -> impl Iterator<Item = (&str, u32, &[u8])> + '_ {
        self.tables[slot(mode)].iter().filter_map(move |&r| {
            let (id, rest) = split_id(record(&self.segments, r));
            let (shape, n) = get_varint(rest)?;
            let values = &rest[n..];
            let len = self.shapes.get(shape as usize)?.values_len(values)?;
            Some((std::str::from_utf8(id).ok()?, shape as u32, &values[..len]))
        })
    }
}

/// One chunk's records, built on a worker thread.
pub struct ChunkOut {
    segments: Vec<Vec<u8>>,
    /// `(mode slot, hash of the id, reference into this chunk's segments)`.
    entries: Vec<(u8, u64, u32)>,
}

impl ChunkOut {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encodes customers into records (one snapshot chunk's worth, or one cache file's).
pub struct ChunkBuilder<'i> {
    interner: LocalInterner<'i>,
    hasher: IdHasher,
    segments: Vec<Vec<u8>>,
    current: Vec<u8>,
    entries: Vec<(u8, u64, u32)>,
    scratch: Vec<u8>,
}

impl<'i> ChunkBuilder<'i> {
    /// `size_hint`: roughly how many record bytes to expect.
    pub fn new(interner: LocalInterner<'i>, hasher: IdHasher, size_hint: usize) -> Self {
        ChunkBuilder {
            interner,
            hasher,
            segments: Vec::new(),
            current: Vec::with_capacity(size_hint.min(SEGMENT_MAX)),
            entries: Vec::new(),
            scratch: Vec::with_capacity(64),
        }
    }

    pub fn add(&mut self, mode: Mode, id: &str, entitlements: &[EntRef<'_>]) {
        let (shape_id, shape) = self.interner.intern(entitlements);
        let mut rec = std::mem::take(&mut self.scratch);
        rec.clear();
        put_varint(&mut rec, id.len() as u64);
        rec.extend_from_slice(id.as_bytes());
        put_varint(&mut rec, u64::from(shape_id));
        shape.encode_values(entitlements, &mut rec);
        self.push(mode, id, &rec);
        self.scratch = rec;
    }

    /// Adds a customer whose numbers are already encoded, under shape number `shape` (valid in
    /// the shapes the base will be given).
    pub fn add_encoded(&mut self, mode: Mode, id: &str, shape: u32, values: &[u8]) {
        let mut rec = std::mem::take(&mut self.scratch);
        rec.clear();
        put_varint(&mut rec, id.len() as u64);
        rec.extend_from_slice(id.as_bytes());
        put_varint(&mut rec, u64::from(shape));
        rec.extend_from_slice(values);
        self.push(mode, id, &rec);
        self.scratch = rec;
    }

    fn push(&mut self, mode: Mode, id: &str, rec: &[u8]) {
        // A reference addresses where a record starts, so a record may run past the segment
        // limit only when it starts a segment of its own (thousands of meters would do it).
        if !self.current.is_empty() && self.current.len() + rec.len() > SEGMENT_MAX {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(SEGMENT_MAX / 4));
            self.segments.push(full);
        }
        let r = ((self.segments.len() as u32) << OFFSET_BITS) | self.current.len() as u32;
        self.current.extend_from_slice(rec);
        if self.current.len() > SEGMENT_MAX {
            let full = std::mem::take(&mut self.current);
            self.segments.push(full);
        }
        self.entries
            .push((slot(mode) as u8, self.hasher.hash_one(id), r));
    }

    pub fn finish(mut self) -> ChunkOut {
        if !self.current.is_empty() {
            self.segments.push(self.current);
        }
        ChunkOut {
            segments: self.segments,
            entries: self.entries,
        }
    }
}

/// Puts chunks together, in stream order, into a [`Base`]: each chunk's records are copied
/// into the current large segment (a few milliseconds per million customers), and the chunk's
/// own small buffers go back to malloc for the next chunks.
pub struct BaseBuilder {
    /// Large segments, reserved whole; only the last one still takes records.
    segments: Vec<Vec<u8>>,
    tables: [HashTable<u32>; 2],
    hasher: IdHasher,
    bytes: usize,
}

impl BaseBuilder {
    /// Room for `customers` in total, most of them (as on every real edge) in test or live.
    pub fn new(customers: usize) -> BaseBuilder {
        // Sized from the snapshot's own count, but a wrong count must not reserve gigabytes:
        // past this the tables grow as customers arrive.
        let customers = customers.min(20_000_000);
        BaseBuilder {
            segments: Vec::new(),
            tables: [
                HashTable::with_capacity(customers),
                HashTable::with_capacity(customers / 8),
            ],
            hasher: IdHasher::new(),
            bytes: 0,
        }
    }

    /// The hasher chunk builders must use.
    pub fn hasher(&self) -> IdHasher {
        self.hasher.clone()
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record bytes so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn add(&mut self, chunk: ChunkOut) -> Result<(), BuildError> {
        // Where each of the chunk's segments lands: (segment, offset of its first byte).
        let mut placed = Vec::with_capacity(chunk.segments.len());
        for local in chunk.segments {
            self.bytes += local.len();
            let fits = self
                .segments
                .last()
                .is_some_and(|s| s.len() + local.len() <= SEGMENT_MAX);
            if !fits {
                if self.segments.len() >= MAX_SEGMENTS {
                    return Err(BuildError::TooLarge);
                }
                if local.len() > SEGMENT_MAX {
                    // One customer larger than a segment: a segment of its own.
                    self.segments.push(local);
                    placed.push((self.segments.len() - 1, 0usize));
                    continue;
                }
                self.segments.push(Vec::with_capacity(SEGMENT_MAX));
            }
            let last = self.segments.len() - 1;
            let seg = &mut self.segments[last];
            placed.push((last, seg.len()));
            seg.extend_from_slice(&local);
        }
        let segments = &self.segments;
        let hasher = &self.hasher;
        for (mode, hash, local) in chunk.entries {
            let Some(&(seg, base)) = placed.get((local >> OFFSET_BITS) as usize) else {
                continue;
            };
            let r = ((seg as u32) << OFFSET_BITS) | (base as u32 + (local & OFFSET_MASK));
            let id = id_of(segments, r);
            let table = &mut self.tables[usize::from(mode) & 1];
            match table.entry(
                hash,
                |&x| id_of(segments, x) == id,
                |&x| hasher.hash_one(bytes_as_str(id_of(segments, x))),
            ) {
                TableEntry::Occupied(mut o) => *o.get_mut() = r,
                TableEntry::Vacant(v) => {
                    v.insert(r);
                }
            }
        }
        Ok(())
    }

    /// Removes a customer (a cache file's record of a removal).
    pub fn remove(&mut self, mode: Mode, id: &str) {
        let hash = self.hasher.hash_one(id);
        let segments = &self.segments;
        if let Ok(e) =
            self.tables[slot(mode)].find_entry(hash, |&x| id_of(segments, x) == id.as_bytes())
        {
            e.remove();
        }
    }

    /// The finished base; record shape numbers index `shapes`.
    pub fn finish(mut self, shapes: Vec<Arc<Shape>>) -> Base {
        for t in &mut self.tables {
            // A count in `snapshot_begin` far above the truth would waste table space.
            if t.capacity() > 4 * t.len() + 1_024 {
                let segments = &self.segments;
                let hasher = &self.hasher;
                t.shrink_to_fit(|&x| hasher.hash_one(bytes_as_str(id_of(segments, x))));
            }
        }
        Base {
            // Returns the reserved but unwritten tail (never resident anyway).
            segments: self
                .segments
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            tables: self.tables,
            shapes,
            hasher: self.hasher,
        }
    }
}

/// Ids are stored from `&str`s, so they are valid UTF-8; hashing must see them as `str`
/// (which hashes differently from `[u8]`).
fn bytes_as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// One customer outside the base: its shape and numbers.
#[derive(Clone)]
pub struct Compact {
    pub shape: Arc<Shape>,
    pub values: Box<[u8]>,
}

impl Compact {
    pub fn new(entitlements: &[EntRef<'_>], interner: &mut LocalInterner<'_>) -> Compact {
        let (_, shape) = interner.intern(entitlements);
        let mut values = Vec::new();
        shape.encode_values(entitlements, &mut values);
        Compact {
            shape: shape.clone(),
            values: values.into_boxed_slice(),
        }
    }

    pub fn view(&self) -> View<'_> {
        View {
            shape: &self.shape,
            values: &self.values,
        }
    }
}

/// An overlay entry: the customer as of the delta that last changed it (`None`: removed), and
/// that delta's version (event streams resume from it, `crate::stream`).
#[derive(Clone)]
struct Slot {
    version: u64,
    customer: Option<Compact>,
}

type OverlayMap = papaya::HashMap<Box<str>, Slot>;

/// Customers changed since the base was built: `None` marks a removed one.
#[derive(Default)]
pub struct Overlay {
    maps: [OverlayMap; 2],
    /// Entries, tombstones included, so that an empty overlay costs a lookup nothing.
    len: AtomicUsize,
}

impl Overlay {
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the customer as of the delta at `version` (`None`: removed).
    pub fn insert(&self, mode: Mode, id: Box<str>, entry: Option<Compact>, version: u64) {
        let slot_ = Slot {
            version,
            customer: entry,
        };
        if self.maps[slot(mode)].pin().insert(id, slot_).is_none() {
            self.len.fetch_add(1, Ordering::Release);
        }
    }

    /// The map of `mode`, pinned; `None` when the overlay is empty (the common case, which
    /// then costs a lookup one atomic load).
    #[inline]
    fn pinned(
        &self,
        mode: Mode,
    ) -> Option<
        papaya::HashMapRef<'_, Box<str>, Slot, std::hash::RandomState, papaya::LocalGuard<'_>>,
    > {
        (!self.is_empty()).then(|| self.maps[slot(mode)].pin())
    }

    pub fn contains(&self, mode: Mode, id: &str) -> bool {
        !self.is_empty() && self.maps[slot(mode)].pin().contains_key(id)
    }

    /// Every entry of `mode`, as `(id, entry)` clones (for compaction and the cache file).
    pub fn entries(&self, mode: Mode) -> Vec<(Box<str>, Option<Compact>)> {
        self.maps[slot(mode)]
            .pin()
            .iter()
            .map(|(k, v)| (k.clone(), v.customer.clone()))
            .collect()
    }

    /// [`Overlay::entries`] with each entry's version.
    pub fn versioned_entries(&self, mode: Mode) -> Vec<(Box<str>, u64, Option<Compact>)> {
        self.maps[slot(mode)]
            .pin()
            .iter()
            .map(|(k, v)| (k.clone(), v.version, v.customer.clone()))
            .collect()
    }

    /// The version that last changed the customer, and whether it is present (not removed),
    /// if the overlay has it.
    fn last_change(&self, mode: Mode, id: &str) -> Option<(u64, bool)> {
        let map = self.pinned(mode)?;
        map.get(id).map(|s| (s.version, s.customer.is_some()))
    }

    /// Rough bytes held: papaya allocates each entry, plus the id and the numbers.
    pub fn bytes(&self) -> usize {
        self.maps
            .iter()
            .map(|m| {
                m.pin()
                    .iter()
                    .map(|(k, v)| {
                        72 + k.len() + v.customer.as_ref().map_or(0, |c| c.values.len() + 16)
                    })
                    .sum::<usize>()
            })
            .sum()
    }
}

/// The layers a root serves, newest first: overlay, frozen overlay (while a compaction
/// folds it into a new base), base.
#[derive(Clone)]
pub struct Customers {
    pub base: Arc<Base>,
    /// No customer in `base` changed after this version (the snapshot's, or the version a
    /// compaction folded up to).
    pub base_version: u64,
    pub frozen: Option<Arc<Overlay>>,
    pub overlay: Arc<Overlay>,
}

/// When a customer last changed, as far as the layers know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastChange {
    /// A delta at exactly this version set it (`present`) or removed it.
    At { version: u64, present: bool },
    /// In the base (`present`) or unknown: not after this version.
    NotAfter { version: u64, present: bool },
}

impl Customers {
    pub fn empty() -> Customers {
        Customers {
            base: Arc::new(Base::empty()),
            base_version: 0,
            frozen: None,
            overlay: Arc::new(Overlay::default()),
        }
    }

    /// When the customer last changed (event streams resume from it).
    pub fn last_change(&self, mode: Mode, id: &str) -> LastChange {
        let overlays = std::iter::once(&self.overlay).chain(self.frozen.as_ref());
        for layer in overlays {
            if let Some((version, present)) = layer.last_change(mode, id) {
                return LastChange::At { version, present };
            }
        }
        LastChange::NotAfter {
            version: self.base_version,
            present: self.base.get(mode, id).is_some(),
        }
    }

    /// Runs `f` on the customer's current view (`None`: unknown or removed). Each layer's
    /// guard is held until `f` returns, so the view stays valid while a body is rendered.
    #[inline]
    pub fn with<R>(&self, mode: Mode, id: &str, f: impl FnOnce(Option<View<'_>>) -> R) -> R {
        let top = self.overlay.pinned(mode);
        if let Some(entry) = top.as_ref().and_then(|m| m.get(id)) {
            return f(entry.customer.as_ref().map(Compact::view));
        }
        let frozen = self.frozen.as_ref().and_then(|o| o.pinned(mode));
        if let Some(entry) = frozen.as_ref().and_then(|m| m.get(id)) {
            return f(entry.customer.as_ref().map(Compact::view));
        }
        f(self.base.get(mode, id))
    }

    /// Whether the customer is known (not unknown, not removed).
    pub fn contains(&self, mode: Mode, id: &str) -> bool {
        self.with(mode, id, |v| v.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{EntRef, Interner};
    use tollgate_shared::entitlement::Limit;
    use tollgate_shared::{Entitlement, FeatureType};

    fn ents(usage: i64) -> Vec<Entitlement> {
        vec![Entitlement {
            feature_id: "api-calls".into(),
            feature_type: FeatureType::Meter,
            has_access: true,
            usage_limit: Limit::Max(100),
            current_usage: Some(usage),
            remaining: Some((100 - usage).max(0)),
            reset_at: Some("2026-12-01T00:00:00Z".into()),
            hard_limit: Some(true),
        }]
    }

    fn body(v: View<'_>) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        v.shape.render_array(v.values, &mut out);
        out.to_vec()
    }

    #[test]
    fn chunks_build_a_base_and_later_duplicates_win() {
        let interner = Interner::default();
        let mut builder = BaseBuilder::new(10);
        let mut chunks = Vec::new();
        for (c, usage) in [(0, 1), (1, 2)] {
            let mut b = ChunkBuilder::new(LocalInterner::new(&interner), builder.hasher(), 64);
            for i in 0..1_000 {
                let e = ents(usage);
                let refs: Vec<EntRef<'_>> = e.iter().map(EntRef::from).collect();
                // Chunk 1 repeats customers 500..1000 of chunk 0 with other numbers.
                b.add(Mode::Test, &format!("c{}", i + 500 * c), &refs);
            }
            chunks.push(b.finish());
        }
        for c in chunks {
            builder.add(c).unwrap();
        }
        assert_eq!(builder.len(), 1_500);
        let base = builder.finish(interner.shapes());
        assert_eq!(base.len(Mode::Test), 1_500);
        assert_eq!(base.len(Mode::Live), 0);
        let early = base.get(Mode::Test, "c10").map(body).unwrap();
        let late = base.get(Mode::Test, "c700").map(body).unwrap();
        assert_eq!(early, serde_json::to_vec(&ents(1)).unwrap());
        assert_eq!(late, serde_json::to_vec(&ents(2)).unwrap());
        assert!(base.get(Mode::Test, "c1500").is_none());
        assert!(base.get(Mode::Live, "c10").is_none());
        assert_eq!(base.iter(Mode::Test).count(), 1_500);
    }

    #[test]
    fn layers_answer_newest_first() {
        let interner = Interner::default();
        let mut builder = BaseBuilder::new(2);
        let mut b = ChunkBuilder::new(LocalInterner::new(&interner), builder.hasher(), 64);
        for id in ["a", "b", "c"] {
            let e = ents(1);
            let refs: Vec<EntRef<'_>> = e.iter().map(EntRef::from).collect();
            b.add(Mode::Test, id, &refs);
        }
        builder.add(b.finish()).unwrap();
        let base = builder.finish(interner.shapes());
        let mut local = LocalInterner::new(&interner);
        let e = ents(7);
        let refs: Vec<EntRef<'_>> = e.iter().map(EntRef::from).collect();
        let frozen = Overlay::default();
        frozen.insert(
            Mode::Test,
            "a".into(),
            Some(Compact::new(&refs, &mut local)),
            3,
        );
        frozen.insert(Mode::Test, "b".into(), None, 4);
        let overlay = Overlay::default();
        overlay.insert(
            Mode::Test,
            "b".into(),
            Some(Compact::new(&refs, &mut local)),
            5,
        );
        overlay.insert(Mode::Test, "c".into(), None, 6);
        let layers = Customers {
            base: Arc::new(base),
            base_version: 2,
            frozen: Some(Arc::new(frozen)),
            overlay: Arc::new(overlay),
        };
        let seven = serde_json::to_vec(&ents(7)).unwrap();
        assert_eq!(
            layers.with(Mode::Test, "a", |v| v.map(body)),
            Some(seven.clone())
        );
        assert_eq!(layers.with(Mode::Test, "b", |v| v.map(body)), Some(seven));
        assert!(!layers.contains(Mode::Test, "c"));
        assert!(!layers.contains(Mode::Test, "d"));
        let at = |version, present| LastChange::At { version, present };
        assert_eq!(layers.last_change(Mode::Test, "a"), at(3, true));
        assert_eq!(layers.last_change(Mode::Test, "b"), at(5, true));
        assert_eq!(layers.last_change(Mode::Test, "c"), at(6, false));
        assert_eq!(
            layers.last_change(Mode::Test, "d"),
            LastChange::NotAfter {
                version: 2,
                present: false
            }
        );
    }
}

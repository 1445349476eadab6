//! Warm start: what the edge serves, kept on disk (`--cache-dir`), so an edge restarted while
//! the control plane is unreachable can serve at once and then resume the stream `since` the
//! file's version.
//!
//! One file, `edge-cache.bin`, replaced atomically: written to a temporary file in the same
//! directory, fsynced, renamed over the old one, and the directory fsynced. Layout:
//!
//! ```text
//! "TGEDGEC\n"                       magic
//! u32 LE + JSON                     header: {format, protocol, version, writtenAtMs, customers}
//! u32 LE + JSON                     snapshot_begin as on the wire: keys, tokenKeys, defaults
//! u32 LE + JSON                     shapes: [[FeatureShape, …], …] (crate::shape)
//! u64 LE + records                  [op][id len][id] then, for op 0/1, [shape][numbers…]
//! 16 bytes                          xxh3-128 of everything above, LE
//! ```
//!
//! `op` is the mode's slot (0 test, 1 live) for a customer, plus 2 for a removal. The records
//! are the in-memory encoding ([`crate::customers`]), so writing is a walk over the layers and
//! reading is a table build, both well under a second at a million customers. Every check (the
//! checksum first, then magic, format and protocol versions, every length) happens before
//! anything is published: a file that fails one is ignored whole, with a warning saying why.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tollgate_shared::Mode;
use tollgate_shared::sync::{PROTOCOL_VERSION, SnapshotBegin};

use crate::codec::{get_varint, put_varint};
use crate::customers::{ChunkBuilder, Compact, Overlay};
use crate::shape::{FeatureShape, Interner, LocalInterner, Shape};
use crate::store::{MODES, PendingSnapshot, Root, Store, now_ms, slot};

pub const FILE_NAME: &str = "edge-cache.bin";
const MAGIC: &[u8; 8] = b"TGEDGEC\n";
/// Bumped on any change to the layout above; other formats are ignored.
pub const FORMAT: u32 = 1;
const REMOVED: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache file at {0}")]
    Missing(PathBuf),
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: checksum mismatch (corrupt or truncated)")]
    Checksum(PathBuf),
    #[error("{0}: not an edge cache file")]
    Magic(PathBuf),
    #[error(
        "{path}: format {found} and sync protocol {protocol}, this edge reads format {FORMAT} and protocol {PROTOCOL_VERSION}"
    )]
    Version {
        path: PathBuf,
        found: u32,
        protocol: u32,
    },
    #[error("{path}: malformed ({what})")]
    Malformed { path: PathBuf, what: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: u32,
    pub protocol: u32,
    pub version: u64,
    pub written_at_ms: u64,
    pub customers: u64,
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Feeds everything written to the checksum.
struct Hashing<W: Write> {
    inner: W,
    hash: xxhash_rust::xxh3::Xxh3,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn section(out: &mut impl Write, json: &[u8]) -> std::io::Result<()> {
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(json)
}

/// What a write put on disk.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub version: u64,
    pub written_at_ms: u64,
    pub bytes: u64,
    pub customers: u64,
}

/// Writes `root` to `dir` atomically. Deltas may keep changing the overlay meanwhile (see
/// [`records`]): the file's version is the root's, and every customer in it is at that
/// version or newer, so resuming `since` that version and replaying converges.
pub fn write(dir: &Path, root: &Root) -> Result<Written, CacheError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let final_path = path_in(dir);
    let tmp = dir.join(format!("{FILE_NAME}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            written: 0,
        };
        let (shapes, records, customers) = records(root);
        let header = Header {
            format: FORMAT,
            protocol: PROTOCOL_VERSION,
            version: root.version,
            written_at_ms: now_ms(),
            customers,
        };
        let begin = SnapshotBegin {
            version: root.version,
            customer_count: customers,
            keys: root.auth.edge_keys(),
            token_keys: root.auth.token_keys_raw.clone(),
            defaults: root.mode_defaults(),
        };
        let shapes_json: Vec<&[FeatureShape]> = shapes.iter().map(|s| s.features()).collect();
        (|| -> std::io::Result<()> {
            out.write_all(MAGIC)?;
            section(&mut out, &to_json(&header))?;
            section(&mut out, &to_json(&begin))?;
            section(&mut out, &to_json(&shapes_json))?;
            out.write_all(&(records.len() as u64).to_le_bytes())?;
            out.write_all(&records)?;
            let sum = out.hash.digest128().to_le_bytes();
            out.inner.write_all(&sum)?;
            out.written += sum.len() as u64;
            out.flush()
        })()
        .map_err(io(&tmp))?;
        let bytes = out.written;
        let file = out.inner.into_inner().map_err(|e| CacheError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &final_path).map_err(io(&final_path))?;
        // The rename is durable once the directory is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(Written {
            version: header.version,
            written_at_ms: header.written_at_ms,
            bytes,
            customers,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own plain types into memory: cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The shapes and records of every layer of `root`, oldest layer first, so that a customer
/// changed while this runs appears again later, in its newer form (or as a removal), and a
/// reader applying records in order ends with the newer one.
fn records(root: &Root) -> (Vec<Arc<Shape>>, Vec<u8>, u64) {
    let layers = &root.customers;
    let mut shapes: Vec<Arc<Shape>> = layers.base.shapes().to_vec();
    let mut numbers: std::collections::HashMap<*const Shape, u32> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (Arc::as_ptr(s), i as u32))
        .collect();
    let mut out = Vec::with_capacity(root.customer_count() * 32);
    let mut count = 0u64;
    let newer_has = |layer: usize, mode: Mode, id: &str| -> bool {
        (layer < 1 && layers.frozen.as_ref().is_some_and(|f| f.contains(mode, id)))
            || (layer < 2 && layers.overlay.contains(mode, id))
    };
    for mode in MODES {
        for (id, shape, values) in layers.base.iter(mode) {
            if !newer_has(0, mode, id) {
                put_record(&mut out, slot(mode) as u8, id, Some((shape, values)));
                count += 1;
            }
        }
    }
    let overlays: Vec<(usize, &Overlay)> = layers
        .frozen
        .iter()
        .map(|f| (1, &**f))
        .chain(std::iter::once((2, &*layers.overlay)))
        .collect();
    for (layer, overlay) in overlays {
        for mode in MODES {
            for (id, entry) in overlay.entries(mode) {
                if newer_has(layer, mode, &id) {
                    continue;
                }
                match entry {
                    Some(Compact { shape, values }) => {
                        let n = *numbers.entry(Arc::as_ptr(&shape)).or_insert_with(|| {
                            shapes.push(shape.clone());
                            (shapes.len() - 1) as u32
                        });
                        put_record(&mut out, slot(mode) as u8, &id, Some((n, &values)));
                        count += 1;
                    }
                    None => put_record(&mut out, slot(mode) as u8 | REMOVED, &id, None),
                }
            }
        }
    }
    (shapes, out, count)
}

fn put_record(out: &mut Vec<u8>, op: u8, id: &str, body: Option<(u32, &[u8])>) {
    out.push(op);
    put_varint(out, id.len() as u64);
    out.extend_from_slice(id.as_bytes());
    if let Some((shape, values)) = body {
        put_varint(out, u64::from(shape));
        out.extend_from_slice(values);
    }
}

/// A cache file read and checked, ready to publish.
pub struct Loaded {
    pub header: Header,
    pub pending: PendingSnapshot,
}

/// Reads and checks `dir`'s cache file. Nothing is published here.
pub fn read(dir: &Path) -> Result<Loaded, CacheError> {
    let path = path_in(dir);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CacheError::Missing(path));
        }
        Err(source) => return Err(CacheError::Io { path, source }),
    };
    if data.len() < MAGIC.len() + 16 {
        return Err(CacheError::Checksum(path));
    }
    let (body, sum) = data.split_at(data.len() - 16);
    if xxhash_rust::xxh3::xxh3_128(body).to_le_bytes() != *sum {
        return Err(CacheError::Checksum(path));
    }
    let malformed = |what: &str| CacheError::Malformed {
        path: path.clone(),
        what: what.to_owned(),
    };
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(CacheError::Magic(path.clone()))?;
    let (header, rest) = json_section::<Header>(rest).ok_or_else(|| malformed("header"))?;
    if header.format != FORMAT || header.protocol != PROTOCOL_VERSION {
        return Err(CacheError::Version {
            path,
            found: header.format,
            protocol: header.protocol,
        });
    }
    let (begin, rest) =
        json_section::<SnapshotBegin>(rest).ok_or_else(|| malformed("keys and defaults"))?;
    let (shapes, rest) =
        json_section::<Vec<Vec<FeatureShape>>>(rest).ok_or_else(|| malformed("shapes"))?;
    let len_bytes: [u8; 8] = rest
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("records length"))?;
    let records = rest
        .get(8..)
        .filter(|r| r.len() as u64 == u64::from_le_bytes(len_bytes))
        .ok_or_else(|| malformed("records length"))?;
    if begin.version != header.version {
        return Err(malformed("versions disagree"));
    }
    let shapes: Vec<Arc<Shape>> = shapes
        .into_iter()
        .map(|f| Arc::new(Shape::new(f)))
        .collect();
    let interner = Arc::new(Interner::with_shapes(&shapes));
    let mut pending = PendingSnapshot::with_interner(begin, interner.clone());
    let hasher = pending.hasher();
    let mut chunk = ChunkBuilder::new(LocalInterner::new(&interner), hasher.clone(), records.len());
    let mut at = records;
    while let Some((&op, rest)) = at.split_first() {
        let (id_len, n) = get_varint(rest).ok_or_else(|| malformed("record"))?;
        let id = rest
            .get(n..n + id_len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| malformed("customer id"))?;
        let rest = &rest[n + id_len as usize..];
        let mode = if op & 1 == 0 { Mode::Test } else { Mode::Live };
        if op & REMOVED != 0 {
            // In order: what came before is added, then removed; what follows wins.
            let done = std::mem::replace(
                &mut chunk,
                ChunkBuilder::new(LocalInterner::new(&interner), hasher.clone(), 4_096),
            );
            pending
                .add_chunk(done.finish())
                .map_err(|e| malformed(&e.to_string()))?;
            pending.remove(mode, id);
            at = rest;
            continue;
        }
        let (shape, n) = get_varint(rest).ok_or_else(|| malformed("record shape"))?;
        let values = &rest[n..];
        let len = shapes
            .get(shape as usize)
            .and_then(|s| s.values_len(values))
            .ok_or_else(|| malformed("record numbers"))?;
        chunk.add_encoded(mode, id, shape as u32, &values[..len]);
        at = &values[len..];
    }
    pending
        .add_chunk(chunk.finish())
        .map_err(|e| malformed(&e.to_string()))?;
    Ok(Loaded { header, pending })
}

fn json_section<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Option<(T, &'a [u8])> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let json = b.get(4..4 + len)?;
    Some((serde_json::from_slice(json).ok()?, &b[4 + len..]))
}

/// Loads `dir`'s cache file into `store` if it is sound, and says what happened. The store
/// then serves it as stale data until a control plane speaks.
pub fn warm_start(store: &Store, dir: &Path) -> Result<Header, CacheError> {
    let Loaded { header, pending } = read(dir)?;
    store
        .finish_snapshot(pending, header.version)
        .map_err(|e| CacheError::Malformed {
            path: path_in(dir),
            what: e.to_string(),
        })?;
    store.status.mark_cached(header.written_at_ms);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::entitlement::Limit;
    use tollgate_shared::keys::{hash_hex, hash_key};
    use tollgate_shared::sync::{Change, Delta, EdgeKey, ModeDefaults};
    use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType, KeyKind};

    fn customer(id: &str, mode: Mode, usage: i64) -> CustomerEntitlements {
        CustomerEntitlements {
            mode,
            customer_id: id.into(),
            entitlements: vec![Entitlement {
                feature_id: "api-calls".into(),
                feature_type: FeatureType::Meter,
                has_access: usage < 10,
                usage_limit: Limit::Max(10),
                current_usage: Some(usage),
                remaining: Some((10 - usage).max(0)),
                reset_at: Some("2026-12-01T00:00:00Z".into()),
                hard_limit: Some(true),
            }],
        }
    }

    fn store() -> Store {
        let store = Store::default();
        let begin = SnapshotBegin {
            version: 7,
            customer_count: 3,
            keys: vec![EdgeKey {
                hash: hash_hex(&hash_key("pk_test_abcdefgh")),
                mode: Mode::Test,
                kind: KeyKind::Publishable,
            }],
            token_keys: vec!["AAAA".into()],
            defaults: vec![ModeDefaults {
                mode: Mode::Live,
                entitlements: customer("x", Mode::Live, 0).entitlements,
            }],
        };
        let mut pending = PendingSnapshot::new(begin);
        pending
            .add(&[
                customer("a", Mode::Test, 1),
                customer("b", Mode::Test, 2),
                customer("a", Mode::Live, 3),
            ])
            .unwrap();
        store.finish_snapshot(pending, 7).unwrap();
        store
            .apply_delta(&Delta {
                version: 8,
                changes: vec![
                    Change::Customer(customer("b", Mode::Test, 20)),
                    Change::Customer(customer("c", Mode::Test, 4)),
                    Change::CustomerRemoved {
                        mode: Mode::Live,
                        customer_id: "a".into(),
                    },
                ],
            })
            .unwrap();
        store
    }

    fn body(store: &Store, mode: Mode, id: &str) -> Option<Vec<u8>> {
        store.root().customers.with(mode, id, |v| {
            v.map(|v| {
                let mut out = bytes::BytesMut::new();
                v.shape.render_array(v.values, &mut out);
                out.to_vec()
            })
        })
    }

    #[test]
    fn round_trips_every_layer_keys_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let original = store();
        let written = write(dir.path(), &original.root()).unwrap();
        assert_eq!(written.version, 8);
        assert_eq!(written.customers, 3);
        let warm = Store::default();
        let header = warm_start(&warm, dir.path()).unwrap();
        assert_eq!(header.version, 8);
        let (a, b) = (original.root(), warm.root());
        assert_eq!(b.version, 8);
        assert_eq!(b.counts, a.counts);
        assert_eq!(b.auth.keys, a.auth.keys);
        assert_eq!(b.auth.token_keys_raw, vec!["AAAA".to_owned()]);
        assert_eq!(b.defaults[1].body(), a.defaults[1].body());
        for (mode, id) in [
            (Mode::Test, "a"),
            (Mode::Test, "b"),
            (Mode::Test, "c"),
            (Mode::Live, "a"),
            (Mode::Test, "zz"),
        ] {
            assert_eq!(body(&warm, mode, id), body(&original, mode, id), "{id}");
        }
        assert!(
            warm.status
                .from_cache
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    #[test]
    fn damaged_files_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(matches!(read(dir.path()), Err(CacheError::Missing(_))));
        write(dir.path(), &store().root()).unwrap();
        let good = std::fs::read(&path).unwrap();

        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(read(dir.path()), Err(CacheError::Checksum(_))));

        std::fs::write(&path, &good[..good.len() - 40]).unwrap();
        assert!(matches!(read(dir.path()), Err(CacheError::Checksum(_))));

        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(read(dir.path()), Err(CacheError::Checksum(_))));

        // Another format version, correctly checksummed: refused for its version.
        let mut other = good[..good.len() - 16].to_vec();
        let text = String::from_utf8_lossy(&other).into_owned();
        let at = text.find("\"format\":1").unwrap() + "\"format\":".len();
        other[at] = b'9';
        let sum = xxhash_rust::xxh3::xxh3_128(&other).to_le_bytes();
        other.extend_from_slice(&sum);
        std::fs::write(&path, &other).unwrap();
        assert!(matches!(read(dir.path()), Err(CacheError::Version { .. })));

        let fresh = Store::default();
        assert!(warm_start(&fresh, dir.path()).is_err());
        assert!(
            !fresh
                .status
                .has_snapshot
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

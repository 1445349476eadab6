//! Turning one `snapshot_chunk` line into records, on a worker thread, without an allocation
//! per field: strings are borrowed from the line (only ones with escapes are copied), each
//! customer is read into a reused scratch list of borrowed entitlements, interned and encoded
//! at once, and nothing of the parse outlives the line.
//!
//! serde_json streams through the line; simd-json ([`parse_chunk_simd_json`]) parses ~35 %
//! faster but builds a tape of every token first — about 4× the line's size, allocated per
//! chunk — and glibc's malloc kept ~40 MB of those pages resident after a load whatever the
//! snapshot's size (measured with `loadtest edge-scale`, see BENCHMARKS.md). Memory per
//! customer is the harder target, so serde_json it is.
//!
//! Only lines in exactly the form the control plane writes take this path (the prefix below,
//! then the customers array, then `}}}`); anything else — reordered keys, extra fields in the
//! frame, another protocol — goes through the general frame decoder on the sync task, which
//! reads every valid protocol-1 stream, just more slowly.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tollgate_shared::Mode;

use crate::customers::{ChunkBuilder, ChunkOut, IdHasher};
use crate::shape::{CowStr, EntRef, Interner, LocalInterner};

/// How the control plane begins every `snapshot_chunk` line (`shared::sync::Frame`'s field
/// order, compact JSON).
pub const CHUNK_PREFIX: &[u8] =
    br#"{"protocol":1,"frame":{"type":"snapshot_chunk","data":{"customers":"#;
const CHUNK_SUFFIX: &[u8] = b"}}}";

/// The byte range of the customers array when `line` is a chunk in the control plane's form.
pub fn chunk_array(line: &[u8]) -> Option<Range<usize>> {
    let end = line.len()
        - line
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    let body = line.get(..end)?;
    (body.starts_with(CHUNK_PREFIX)
        && body.ends_with(CHUNK_SUFFIX)
        && end >= CHUNK_PREFIX.len() + CHUNK_SUFFIX.len())
    .then(|| CHUNK_PREFIX.len()..end - CHUNK_SUFFIX.len())
}

/// The threads that parse snapshot chunks: one per core, for the life of the sync task.
///
/// A fixed pool rather than tokio's blocking pool, which starts a new thread whenever its
/// others are busy: on a loaded machine a snapshot then ran on five or six threads, each with
/// its own malloc arena, and the arenas kept ~50 MB of freed parse buffers resident after the
/// load (measured with `loadtest edge-scale` at 100,000 customers: 82–103 bytes per customer
/// instead of 34).
pub struct Workers {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Workers {
    pub fn new(threads: usize) -> Workers {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snapshot-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is only held while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        Workers {
            jobs: (started > 0).then_some(tx),
        }
    }

    /// Runs `f` on a worker (on the caller's thread if no worker could be started).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match &self.jobs {
            Some(jobs) => {
                if let Err(e) = jobs.send(job) {
                    (e.0)();
                }
            }
            None => job(),
        }
        rx
    }
}

thread_local! {
    /// simd-json's scratch space, kept per worker thread between chunks.
    static BUFFERS: RefCell<simd_json::Buffers> = RefCell::new(simd_json::Buffers::default());
}

/// [`parse_chunk`] with simd-json, in place (kept for the comparison bench).
pub fn parse_chunk_simd_json(
    line: &mut [u8],
    array: Range<usize>,
    interner: &Interner,
    hasher: IdHasher,
) -> Result<ChunkOut, String> {
    let input = line
        .get_mut(array)
        .ok_or_else(|| "chunk out of range".to_owned())?;
    let mut builder = ChunkBuilder::new(LocalInterner::new(interner), hasher, input.len() / 12);
    BUFFERS.with(|b| {
        let mut buffers = b.borrow_mut();
        let mut de = simd_json::Deserializer::from_slice_with_buffers(input, &mut buffers)
            .map_err(|e| e.to_string())?;
        Customers(&mut builder)
            .deserialize(&mut de)
            .map_err(|e| e.to_string())
    })?;
    Ok(builder.finish())
}

/// Parses the customers array `line[array]` into records.
pub fn parse_chunk(
    line: &[u8],
    array: Range<usize>,
    interner: &Interner,
    hasher: IdHasher,
) -> Result<ChunkOut, String> {
    let input = line
        .get(array)
        .ok_or_else(|| "chunk out of range".to_owned())?;
    let mut builder = ChunkBuilder::new(LocalInterner::new(interner), hasher, input.len() / 12);
    let mut de = serde_json::Deserializer::from_slice(input);
    Customers(&mut builder)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(builder.finish())
}

/// `[customer, …]`, each one added to the builder as soon as it is read.
struct Customers<'b, 'i>(&'b mut ChunkBuilder<'i>);

impl<'de> DeserializeSeed<'de> for Customers<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Customers<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of customers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut scratch: Vec<EntRef<'de>> = Vec::with_capacity(8);
        while let Some(customer) = seq.next_element_seed(Customer {
            scratch: &mut scratch,
        })? {
            let (mode, id) = customer;
            self.0.add(mode, &id, &scratch);
        }
        Ok(())
    }
}

/// `{"mode":…,"customerId":…,"entitlements":[…]}`; the entitlements land in `scratch`.
struct Customer<'s, 'de> {
    scratch: &'s mut Vec<EntRef<'de>>,
}

impl<'de> DeserializeSeed<'de> for Customer<'_, 'de> {
    type Value = (Mode, std::borrow::Cow<'de, str>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Customer<'_, 'de> {
    type Value = (Mode, std::borrow::Cow<'de, str>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a customer's entitlements")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut mode = None;
        let mut id = None;
        let mut entitlements = false;
        self.scratch.clear();
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            match &*key.0 {
                "mode" => mode = Some(map.next_value::<Mode>()?),
                "customerId" => id = Some(map.next_value::<CowStr<'de>>()?.0),
                "entitlements" => {
                    map.next_value_seed(Entitlements(self.scratch))?;
                    entitlements = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !entitlements {
            return Err(A::Error::missing_field("entitlements"));
        }
        Ok((
            mode.ok_or_else(|| A::Error::missing_field("mode"))?,
            id.ok_or_else(|| A::Error::missing_field("customerId"))?,
        ))
    }
}

struct Entitlements<'s, 'de>(&'s mut Vec<EntRef<'de>>);

impl<'de> DeserializeSeed<'de> for Entitlements<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entitlements<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of entitlements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<EntRef<'de>>()? {
            self.0.push(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customers::BaseBuilder;
    use tollgate_shared::entitlement::Limit;
    use tollgate_shared::sync::{Frame, FrameBody};
    use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType};

    fn customer(id: &str, usage: i64) -> CustomerEntitlements {
        CustomerEntitlements {
            mode: if usage % 2 == 0 {
                Mode::Test
            } else {
                Mode::Live
            },
            customer_id: id.into(),
            entitlements: vec![
                Entitlement {
                    feature_id: "api-calls".into(),
                    feature_type: FeatureType::Meter,
                    has_access: true,
                    usage_limit: Limit::Max(100),
                    current_usage: Some(usage),
                    remaining: Some((100 - usage).max(0)),
                    reset_at: Some("2026-12-01T00:00:00Z".into()),
                    hard_limit: Some(true),
                },
                Entitlement {
                    feature_id: "s\"so".into(),
                    feature_type: FeatureType::Boolean,
                    has_access: false,
                    usage_limit: Limit::NotApplicable,
                    current_usage: None,
                    remaining: None,
                    reset_at: None,
                    hard_limit: None,
                },
            ],
        }
    }

    #[test]
    fn the_control_planes_chunk_lines_take_the_fast_path_and_read_back_exactly() {
        let customers: Vec<_> = (0..50)
            .map(|i| customer(&format!("cus_{i}\"\\\u{e9}"), i))
            .collect();
        let line = Frame::new(FrameBody::SnapshotChunk {
            customers: customers.clone(),
        })
        .to_line();
        let range = chunk_array(&line).expect("the control plane's form");
        let interner = Interner::default();
        let mut builder = BaseBuilder::new(100);
        let out = parse_chunk(&line, range.clone(), &interner, builder.hasher()).unwrap();
        assert_eq!(out.len(), 50);
        builder.add(out).unwrap();
        // The simd-json path reads the same records (into the same builder: same ids win).
        let mut copy = line.clone();
        let out = parse_chunk_simd_json(&mut copy, range, &interner, builder.hasher()).unwrap();
        builder.add(out).unwrap();
        assert_eq!(builder.len(), 50);
        let base = builder.finish(interner.shapes());
        for c in &customers {
            let view = base.get(c.mode, &c.customer_id).expect("loaded");
            let mut body = bytes::BytesMut::new();
            view.shape.render_array(view.values, &mut body);
            assert_eq!(&body[..], serde_json::to_vec(&c.entitlements).unwrap());
        }
        // Two modes, one shape per has-access state: a handful of shapes for 50 customers.
        assert!(interner.shapes().len() <= 4, "{}", interner.shapes().len());
    }

    #[test]
    #[ignore = "timing, run by hand: cargo test --release -p tollgate-edge parse_speed -- --ignored --nocapture"]
    fn parse_speed() {
        let customers: Vec<_> = (0..2_000)
            .map(|i| customer(&format!("cus_{i}"), i % 120))
            .collect();
        let line = Frame::new(FrameBody::SnapshotChunk { customers }).to_line();
        let range = chunk_array(&line).unwrap();
        let interner = Interner::default();
        let hasher = IdHasher::new();
        for round in 0..3 {
            let t = std::time::Instant::now();
            for _ in 0..100 {
                let mut l = line.clone();
                parse_chunk_simd_json(&mut l, range.clone(), &interner, hasher.clone()).unwrap();
            }
            let simd = t.elapsed();
            let t = std::time::Instant::now();
            for _ in 0..100 {
                let l = line.clone();
                parse_chunk(&l, range.clone(), &interner, hasher.clone()).unwrap();
            }
            let sj = t.elapsed();
            let mb = line.len() as f64 * 100.0 / 1e6;
            println!(
                "round {round}: simd-json {:.0} MB/s, serde_json {:.0} MB/s",
                mb / simd.as_secs_f64(),
                mb / sj.as_secs_f64()
            );
        }
    }

    #[test]
    fn other_forms_are_left_to_the_general_decoder() {
        for line in [
            &br#"{"frame":{"type":"snapshot_chunk","data":{"customers":[]}},"protocol":1}"#[..],
            br#"{"protocol":2,"frame":{"type":"snapshot_chunk","data":{"customers":[]}}}"#,
            br#"{"protocol":1,"frame":{"type":"delta","data":{"version":1,"changes":[]}}}"#,
            br#"{"protocol":1,"frame":{"type":"snapshot_chunk","data":{"customers":"#,
        ] {
            assert!(
                chunk_array(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            chunk_array(b"{\"protocol\":1,\"frame\":{\"type\":\"snapshot_chunk\",\"data\":{\"customers\":[]}}}\r\n"),
            Some(CHUNK_PREFIX.len()..CHUNK_PREFIX.len() + 2)
        );
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let interner = Interner::default();
        for body in [
            &b"[{\"mode\":\"test\",\"customerId\":\"a\"}]"[..],
            b"[{\"mode\":\"nope\",\"customerId\":\"a\",\"entitlements\":[]}]",
            b"[{\"mode\":\"test\",\"customerId\":\"a\",\"entitlements\":[{}]}]",
            b"[1,2",
        ] {
            let line = body.to_vec();
            let len = line.len();
            assert!(
                parse_chunk(&line, 0..len, &interner, IdHasher::new()).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

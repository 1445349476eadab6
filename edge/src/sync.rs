//! The edge's side of the sync protocol (docs/sync.md): dial a control plane, load the
//! snapshot off to the side, swap it in whole, apply deltas in order, and on any gap, error or
//! silence move to the next control plane and resume `since` the last version — serving the
//! last good data all the while.
//!
//! A snapshot is loaded on every core: the sync task splits the stream into lines and hands
//! each `snapshot_chunk` to a blocking worker ([`crate::load`]), at most a few in flight so
//! memory stays bounded; it adds the finished chunks to the pending snapshot in stream order
//! and publishes it once, at `snapshot_end`. Deltas are applied on the sync task itself, in
//! order, while requests keep being served.
//!
//! The same task, being the store's only writer, also finishes overlay compactions and starts
//! the warm-start cache writes (both run on blocking threads).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tollgate_shared::sync::{Frame, FrameBody, PROTOCOL_VERSION, STREAM_PATH};
use tracing::{Instrument, info, info_span, warn};

use crate::customers::{Base, BuildError, ChunkOut, IdHasher};
use crate::shape::Interner;
use crate::store::{ApplyError, Compaction, PendingSnapshot, Store};

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Control planes to stream from, in order of preference; a failed or dropped stream moves
    /// to the next one (they share versions, so the edge resumes where it was).
    pub control_plane_urls: Vec<String>,
    pub sync_key: String,
    /// Reconnect if no frame (heartbeats included) arrives for this long.
    pub idle_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Where to keep the warm-start cache, and how often to rewrite it after deltas.
    pub cache: Option<CacheConfig>,
    /// A sync line (one frame) longer than this ends the stream: a broken or hostile control
    /// plane cannot make the edge buffer without end.
    pub max_frame_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("control plane unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("control plane refused the sync key (HTTP {0})")]
    Refused(u16),
    #[error("no frame for {0:?}")]
    Idle(Duration),
    #[error("stream ended")]
    Ended,
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("a frame passed {0} bytes (--max-sync-frame-bytes)")]
    FrameTooLarge(usize),
    #[error("protocol version {0}, this edge speaks {PROTOCOL_VERSION}")]
    Protocol(u32),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl From<BuildError> for SyncError {
    fn from(e: BuildError) -> Self {
        SyncError::Apply(e.into())
    }
}

/// Builds the HTTP client the sync task dials with: `TCP_NODELAY`, and, for `https://`
/// control planes, the system roots plus `extra_ca` (PEM) when given.
pub fn client(extra_ca: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder().tcp_nodelay(true);
    if let Some(pem) = extra_ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build()
}

pub async fn run(store: Arc<Store>, config: SyncConfig) {
    match client(None) {
        Ok(c) => run_with(store, config, c).await,
        Err(e) => warn!(error = %e, "cannot build HTTP client; sync disabled"),
    }
}

/// [`run`] with a client of the caller's making (custom CA, test settings).
pub async fn run_with(store: Arc<Store>, config: SyncConfig, client: reqwest::Client) {
    if config.control_plane_urls.is_empty() {
        warn!("no control-plane URL; sync disabled");
        return;
    }
    let mut writer = Writer::new(store, config);
    let mut backoff = writer.config.backoff_min;
    let mut index = 0usize;
    let mut failed_in_a_row = 0usize;
    loop {
        let urls = &writer.config.control_plane_urls;
        let url = urls[index % urls.len()].clone();
        let since = writer
            .store
            .status
            .has_snapshot
            .load(Ordering::Acquire)
            .then(|| writer.store.version());
        writer
            .store
            .status
            .control_plane
            .store((index % urls.len()) as u64, Ordering::Relaxed);
        let span = info_span!("sync", control_plane = %url, since = ?since);
        let (progressed, error) = match stream(&client, &mut writer, &url, since)
            .instrument(span)
            .await
        {
            Ok(progressed) => (progressed, SyncError::Ended),
            Err((progressed, e)) => (progressed, e),
        };
        if matches!(error, SyncError::Apply(ApplyError::Gap { .. })) {
            writer.store.status.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        writer
            .store
            .status
            .connected
            .store(false, Ordering::Relaxed);
        let count = writer.config.control_plane_urls.len();
        index = (index + 1) % count;
        if progressed {
            backoff = writer.config.backoff_min;
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
        }
        // Try every control plane once before backing off: another may be fine.
        let pause = if failed_in_a_row > 0 && failed_in_a_row.is_multiple_of(count) {
            let p = backoff;
            backoff = (backoff * 2).min(writer.config.backoff_max);
            p
        } else {
            writer.config.backoff_min
        };
        warn!(
            control_plane = %url,
            error = %error,
            next = %writer.config.control_plane_urls[index],
            retry_in = ?pause,
            "sync stream lost; serving last-known data"
        );
        writer.housekeeping().await;
        tokio::time::sleep(jitter(pause)).await;
    }
}

type CompactionJob = JoinHandle<Result<Base, BuildError>>;
/// A parsed chunk and the line buffer it came in, to be reused.
type Parsed = Result<(ChunkOut, Vec<u8>), String>;
type ChunkJob = tokio::sync::oneshot::Receiver<Parsed>;

/// The store's one writer: the snapshot being loaded, and the background jobs it owns.
struct Writer {
    store: Arc<Store>,
    config: SyncConfig,
    compaction: Option<(Arc<Compaction>, CompactionJob)>,
    cache_job: Option<JoinHandle<()>>,
    cache_version: u64,
    cache_at: Instant,
    /// Line buffers handed back by the workers, reused for the next lines.
    spare: Vec<Vec<u8>>,
    workers: crate::load::Workers,
}

/// A snapshot arriving.
struct Loading {
    pending: PendingSnapshot,
    interner: Arc<Interner>,
    hasher: IdHasher,
    started: Instant,
    bytes: u64,
    in_flight: VecDeque<ChunkJob>,
    logged: usize,
}

/// Chunks in flight: one per worker plus the one queued behind them, so every core stays busy
/// while the sync task reads the next line. More only held more raw input (measured: twice as
/// many made a 1M-customer load no faster and its peak memory higher).
fn max_in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

impl Writer {
    fn new(store: Arc<Store>, config: SyncConfig) -> Writer {
        let cache_version = store.version();
        Writer {
            store,
            config,
            compaction: None,
            cache_job: None,
            cache_version,
            cache_at: Instant::now(),
            spare: Vec::new(),
            workers: crate::load::Workers::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        }
    }

    fn buffer(&mut self, hint: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(hint),
        }
    }

    fn recycle(&mut self, line: Vec<u8>) {
        // A couple suffice: a buffer comes back for every line that goes out.
        if self.spare.len() < 2 {
            self.spare.push(line);
        }
    }

    /// Adds a finished chunk to the loading snapshot, and recycles its line buffer.
    fn add_chunk(
        &mut self,
        loading: &mut Loading,
        done: Result<Parsed, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), SyncError> {
        let (chunk, line) = done
            .map_err(|e| SyncError::Decode(format!("chunk worker failed: {e}")))?
            .map_err(SyncError::Decode)?;
        self.recycle(line);
        loading.pending.add_chunk(chunk)?;
        let received = loading.pending.received();
        // Progress for operators loading large snapshots.
        if received / 100_000 != loading.logged / 100_000 {
            info!(
                received,
                expected = loading.pending.expected(),
                megabytes = loading.bytes / 1_000_000,
                elapsed_ms = loading.started.elapsed().as_millis() as u64,
                "snapshot loading"
            );
        }
        loading.logged = received;
        Ok(())
    }

    async fn drain(&mut self, loading: &mut Loading, keep: usize) -> Result<(), SyncError> {
        while loading.in_flight.len() > keep {
            if let Some(job) = loading.in_flight.pop_front() {
                let done = job.await;
                self.add_chunk(loading, done)?;
            }
        }
        Ok(())
    }

    /// Handles one complete line of the stream.
    async fn line(
        &mut self,
        mut line: Vec<u8>,
        loading: &mut Option<Loading>,
    ) -> Result<(), SyncError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            self.recycle(line);
            return Ok(());
        }
        if let Some(l) = loading.as_mut() {
            l.bytes += line.len() as u64 + 1;
            if let Some(array) = crate::load::chunk_array(&line) {
                self.drain(l, max_in_flight() - 1).await?;
                let interner = l.interner.clone();
                let hasher = l.hasher.clone();
                l.in_flight.push_back(self.workers.run(move || {
                    let chunk = crate::load::parse_chunk(&line, array, &interner, hasher)?;
                    Ok((chunk, line))
                }));
                return Ok(());
            }
        }
        let frame: Frame = simd_json::serde::from_slice(&mut line)
            .map_err(|e| SyncError::Decode(e.to_string()))?;
        if frame.protocol != PROTOCOL_VERSION {
            return Err(SyncError::Protocol(frame.protocol));
        }
        let bytes = line.len() as u64 + 1;
        self.recycle(line);
        self.frame(frame.body, bytes, loading).await
    }

    async fn frame(
        &mut self,
        frame: FrameBody,
        bytes: u64,
        loading: &mut Option<Loading>,
    ) -> Result<(), SyncError> {
        match frame {
            FrameBody::SnapshotBegin(begin) => {
                info!(
                    version = begin.version,
                    customers = begin.customer_count,
                    "snapshot starting; serving the current data until it is complete"
                );
                let pending = PendingSnapshot::new(begin);
                *loading = Some(Loading {
                    interner: pending.interner(),
                    hasher: pending.hasher(),
                    pending,
                    started: Instant::now(),
                    bytes,
                    in_flight: VecDeque::new(),
                    logged: 0,
                });
            }
            FrameBody::SnapshotChunk { customers } => {
                // A chunk in another form than the control plane's own: same result, slower.
                let l = loading.as_mut().ok_or(ApplyError::StraySnapshotFrame)?;
                self.drain(l, 0).await?;
                l.pending.add(&customers)?;
            }
            FrameBody::SnapshotEnd { version } => {
                let mut l = loading.take().ok_or(ApplyError::StraySnapshotFrame)?;
                self.drain(&mut l, 0).await?;
                let customers = l.pending.received();
                let record_bytes = l.pending.bytes();
                // The old compaction works on layers this snapshot replaces.
                if let Some((_, job)) = self.compaction.take() {
                    job.abort();
                }
                self.store.finish_snapshot(l.pending, version)?;
                // Line buffers sized for chunks are not needed for deltas.
                self.spare = Vec::new();
                let elapsed = l.started.elapsed();
                let status = &self.store.status;
                status
                    .snapshot_load_ms
                    .store(elapsed.as_millis() as u64, Ordering::Relaxed);
                status.snapshot_bytes.store(l.bytes, Ordering::Relaxed);
                status.snapshots_loaded.fetch_add(1, Ordering::Relaxed);
                info!(
                    version,
                    customers,
                    stream_megabytes = l.bytes / 1_000_000,
                    record_megabytes = record_bytes / 1_000_000,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "snapshot loaded"
                );
                self.write_cache(true);
            }
            FrameBody::Delta(delta) => {
                if loading.is_some() {
                    return Err(ApplyError::StraySnapshotFrame.into());
                }
                self.store.apply_delta(&delta)?;
            }
            FrameBody::Heartbeat { .. } => {}
        }
        Ok(())
    }

    /// Between frames: finish or start a compaction, write the cache when due.
    async fn housekeeping(&mut self) {
        if let Some((job, handle)) = self.compaction.take() {
            if handle.is_finished() {
                let done = handle
                    .await
                    .unwrap_or_else(|e| Err(BuildError::Worker(e.to_string())));
                self.store.finish_compaction(&job, done);
            } else {
                self.compaction = Some((job, handle));
            }
        }
        if self.compaction.is_none()
            && let Some(job) = self.store.start_compaction()
        {
            let job = Arc::new(job);
            let running = job.clone();
            info!("compacting the delta overlay into the base");
            self.compaction = Some((job, tokio::task::spawn_blocking(move || running.run())));
        }
        self.write_cache(false);
    }

    /// Starts a cache write after a snapshot (`now`), or when the interval has passed and
    /// deltas have arrived since the last one. One write at a time.
    fn write_cache(&mut self, now: bool) {
        let Some(cache) = &self.config.cache else {
            return;
        };
        if self.cache_job.as_ref().is_some_and(|j| !j.is_finished()) {
            return;
        }
        let root = self.store.root().clone();
        let due = now
            || (root.version != self.cache_version && self.cache_at.elapsed() >= cache.interval);
        if !due || !self.store.status.has_snapshot.load(Ordering::Acquire) {
            return;
        }
        self.cache_version = root.version;
        self.cache_at = Instant::now();
        let dir = cache.dir.clone();
        let store = self.store.clone();
        self.cache_job = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            match crate::cache::write(&dir, &root) {
                Ok(w) => {
                    store
                        .status
                        .cache_written_ms
                        .store(w.written_at_ms, Ordering::Relaxed);
                    info!(
                        version = w.version,
                        customers = w.customers,
                        megabytes = w.bytes / 1_000_000,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "cache file written"
                    );
                }
                Err(e) => warn!(error = %e, "cache file not written"),
            }
        }));
    }
}

/// One connection. Returns whether it got anywhere (so backoff can reset) with any error.
async fn stream(
    client: &reqwest::Client,
    writer: &mut Writer,
    base_url: &str,
    since: Option<u64>,
) -> Result<bool, (bool, SyncError)> {
    let mut url = format!("{}{STREAM_PATH}", base_url.trim_end_matches('/'));
    if let Some(v) = since {
        url.push_str(&format!("?since={v}"));
    }
    let resp = client
        .get(&url)
        .bearer_auth(&writer.config.sync_key)
        .send()
        .await
        .map_err(|e| (false, e.into()))?;
    if !resp.status().is_success() {
        return Err((false, SyncError::Refused(resp.status().as_u16())));
    }
    let status = &writer.store.status;
    status.connected.store(true, Ordering::Relaxed);
    status.touch();
    let mut body = resp.bytes_stream();
    let mut line: Vec<u8> = writer.buffer(1 << 16);
    let mut loading: Option<Loading> = None;
    let mut progressed = false;
    let mut last_line;
    loop {
        let chunk = match tokio::time::timeout(writer.config.idle_timeout, body.next()).await {
            Err(_) => return Err((progressed, SyncError::Idle(writer.config.idle_timeout))),
            Ok(None) => return Err((progressed, SyncError::Ended)),
            Ok(Some(Err(e))) => return Err((progressed, e.into())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        writer.store.status.touch();
        let mut rest = &chunk[..];
        let max = writer.config.max_frame_bytes;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if line.len() + nl > max {
                return Err((progressed, SyncError::FrameTooLarge(max)));
            }
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            last_line = line.len();
            let next = writer.buffer(last_line + last_line / 8);
            let complete = std::mem::replace(&mut line, next);
            writer
                .line(complete, &mut loading)
                .await
                .map_err(|e| (progressed, e))?;
            progressed = true;
        }
        if line.len() + rest.len() > max {
            return Err((progressed, SyncError::FrameTooLarge(max)));
        }
        line.extend_from_slice(rest);
        if loading.is_none() {
            if line.is_empty() && line.capacity() > 1 << 16 {
                line = Vec::with_capacity(1 << 12);
            }
            writer.housekeeping().await;
        }
    }
}

fn jitter(d: Duration) -> Duration {
    // Spread reconnects of many edges over ±25% so a control-plane restart is not a stampede.
    let nanos = crate::store::now_ms().wrapping_mul(2_654_435_761) % 500;
    d.mul_f64(0.75 + nanos as f64 / 1000.0)
}

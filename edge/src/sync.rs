//! The edge's side of the sync protocol (docs/sync.md): dial the control plane, load the
//! snapshot off to the side, swap it in whole, apply deltas in order, and on any gap, error or
//! silence reconnect with backoff — serving the last good data all the while.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tollgate_shared::sync::{Frame, FrameBody, PROTOCOL_VERSION, STREAM_PATH};
use tracing::{Instrument, info, info_span, warn};

use crate::store::{ApplyError, PendingSnapshot, Store};

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub control_plane_url: String,
    pub sync_key: String,
    /// Reconnect if no frame (heartbeats included) arrives for this long.
    pub idle_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
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
    #[error("protocol version {0}, this edge speaks {PROTOCOL_VERSION}")]
    Protocol(u32),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

pub async fn run(store: Arc<Store>, config: SyncConfig) {
    let client = match reqwest::Client::builder().tcp_nodelay(true).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build HTTP client; sync disabled");
            return;
        }
    };
    let mut backoff = config.backoff_min;
    loop {
        let since = store
            .status
            .has_snapshot
            .load(Ordering::Acquire)
            .then(|| store.version());
        let span = info_span!("sync", since = ?since);
        let progressed = match stream(&client, &store, &config, since)
            .instrument(span)
            .await
        {
            Ok(progressed) => progressed,
            Err((progressed, e)) => {
                if matches!(e, SyncError::Apply(ApplyError::Gap { .. })) {
                    store.status.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                warn!(error = %e, retry_in = ?backoff, "sync stream lost; serving last-known data");
                progressed
            }
        };
        store.status.connected.store(false, Ordering::Relaxed);
        if progressed {
            backoff = config.backoff_min;
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

/// One connection. Returns whether it got anywhere (so backoff can reset) with any error.
async fn stream(
    client: &reqwest::Client,
    store: &Store,
    config: &SyncConfig,
    since: Option<u64>,
) -> Result<bool, (bool, SyncError)> {
    let mut url = format!(
        "{}{STREAM_PATH}",
        config.control_plane_url.trim_end_matches('/')
    );
    if let Some(v) = since {
        url.push_str(&format!("?since={v}"));
    }
    let resp = client
        .get(&url)
        .bearer_auth(&config.sync_key)
        .send()
        .await
        .map_err(|e| (false, e.into()))?;
    if !resp.status().is_success() {
        return Err((false, SyncError::Refused(resp.status().as_u16())));
    }
    store.status.connected.store(true, Ordering::Relaxed);
    store.status.touch();
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut pending: Option<(PendingSnapshot, Instant)> = None;
    let mut progressed = false;
    loop {
        let chunk = match tokio::time::timeout(config.idle_timeout, body.next()).await {
            Err(_) => return Err((progressed, SyncError::Idle(config.idle_timeout))),
            Ok(None) => return Err((progressed, SyncError::Ended)),
            Ok(Some(Err(e))) => return Err((progressed, e.into())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        store.status.touch();
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &mut buf[start..start + nl];
            start += nl + 1;
            if line.is_empty() {
                continue;
            }
            let frame: Frame = simd_json::serde::from_slice(line)
                .map_err(|e| (progressed, SyncError::Decode(e.to_string())))?;
            if frame.protocol != PROTOCOL_VERSION {
                return Err((progressed, SyncError::Protocol(frame.protocol)));
            }
            apply(store, frame.body, &mut pending).map_err(|e| (progressed, e))?;
            progressed = true;
        }
        buf.drain(..start);
    }
}

fn apply(
    store: &Store,
    frame: FrameBody,
    pending: &mut Option<(PendingSnapshot, Instant)>,
) -> Result<(), SyncError> {
    match frame {
        FrameBody::SnapshotBegin(begin) => {
            info!(
                version = begin.version,
                customers = begin.customer_count,
                "snapshot starting"
            );
            *pending = Some((PendingSnapshot::new(begin), Instant::now()));
        }
        FrameBody::SnapshotChunk { customers } => {
            let (snapshot, _) = pending.as_ref().ok_or(ApplyError::StraySnapshotFrame)?;
            let before = snapshot.received();
            snapshot.add(&customers);
            // Progress for operators loading large snapshots.
            if (before / 100_000) != (snapshot.received() / 100_000) {
                info!(received = snapshot.received(), "snapshot loading");
            }
        }
        FrameBody::SnapshotEnd { version } => {
            let (snapshot, started) = pending.take().ok_or(ApplyError::StraySnapshotFrame)?;
            let customers = snapshot.received();
            store.finish_snapshot(snapshot, version)?;
            info!(
                version,
                customers,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot loaded"
            );
        }
        FrameBody::Delta(delta) => {
            if pending.is_some() {
                return Err(ApplyError::StraySnapshotFrame.into());
            }
            store.apply_delta(&delta)?;
        }
        FrameBody::Heartbeat { .. } => {}
    }
    Ok(())
}

fn jitter(d: Duration) -> Duration {
    // Spread reconnects of many edges over ±25% so a control-plane restart is not a stampede.
    let nanos = crate::store::now_ms().wrapping_mul(2_654_435_761) % 500;
    d.mul_f64(0.75 + nanos as f64 / 1000.0)
}

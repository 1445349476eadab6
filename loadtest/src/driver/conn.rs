//! One connection's side of a run: a single exchange, reconnecting, and its counters.

use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;

use crate::target::{Sender, Target};

const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

pub struct ConnStats {
    pub latency: Histogram<u64>,
    /// Open-loop only: how late sends on idle connections were (see `open`).
    pub lag: Histogram<u64>,
    pub ok: u64,
    pub http_errors: u64,
    pub io_errors: u64,
    pub timeouts: u64,
    pub missed: u64,
    pub body_bytes: u64,
}

impl ConnStats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(ConnStats {
            latency: super::histogram()?,
            lag: super::histogram()?,
            ok: 0,
            http_errors: 0,
            io_errors: 0,
            timeouts: 0,
            missed: 0,
            body_bytes: 0,
        })
    }

    pub fn merge(&mut self, other: &ConnStats) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("merging histograms")?;
        self.lag.add(&other.lag).context("merging histograms")?;
        self.ok += other.ok;
        self.http_errors += other.http_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.missed += other.missed;
        self.body_bytes += other.body_bytes;
        Ok(())
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub enum Outcome {
    Response { success: bool, bytes: usize },
    Io,
    Timeout,
}

/// Sends request `seq` and reads the whole response body.
pub async fn exchange(
    sender: &mut Sender,
    target: &Target,
    seq: u64,
    timeout: Duration,
) -> Outcome {
    let work = async {
        sender.ready().await?;
        let resp = sender.send_request(target.request(seq)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body.len()))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((status, bytes))) => Outcome::Response {
            success: status.is_success() || status == hyper::StatusCode::NOT_MODIFIED,
            bytes,
        },
        Ok(Err(_)) => Outcome::Io,
        Err(_) => Outcome::Timeout,
    }
}

/// Returns an open connection, reconnecting if needed; `None` (after a short pause, counted as
/// an I/O error) when connecting failed.
pub async fn ensure<'a>(
    conn: &'a mut Option<Sender>,
    target: &Target,
    timeout: Duration,
    stats: &mut ConnStats,
) -> Option<&'a mut Sender> {
    if conn.as_ref().is_some_and(|s| s.is_closed()) {
        *conn = None;
    }
    if conn.is_none() {
        match target.connect(timeout).await {
            Ok(s) => *conn = Some(s),
            Err(_) => {
                stats.io_errors += 1;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                return None;
            }
        }
    }
    conn.as_mut()
}

/// Records one finished exchange; drops the connection when its state is unknown.
pub fn settle(
    stats: &mut ConnStats,
    conn: &mut Option<Sender>,
    outcome: Outcome,
    latency: Duration,
) {
    match outcome {
        Outcome::Response { success, bytes } => {
            stats.latency.saturating_record(micros(latency));
            stats.body_bytes += bytes as u64;
            if success {
                stats.ok += 1;
            } else {
                stats.http_errors += 1;
            }
        }
        Outcome::Io => {
            stats.io_errors += 1;
            *conn = None;
        }
        Outcome::Timeout => {
            stats.timeouts += 1;
            *conn = None;
        }
    }
}

//! One connection's side of a run: a single exchange, reconnecting, and its counters.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::StatusCode;

use crate::target::{Sender, Tally, Target};

const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// How much of the first failed response's body a run keeps, for the report.
const ERROR_SNIPPET_CHARS: usize = 200;

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
    /// Responses by the target's [`Tally`] (empty with `Tally::Nothing`).
    pub tally: BTreeMap<String, u64>,
    /// Status and start of the first non-success response's body.
    pub first_error: Option<String>,
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
            tally: BTreeMap::new(),
            first_error: None,
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
        for (k, v) in &other.tally {
            *self.tally.entry(k.clone()).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub enum Outcome {
    Response { status: StatusCode, body: Bytes },
    Io,
    Timeout,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        match self {
            Outcome::Response { status, .. } => success(*status),
            Outcome::Io | Outcome::Timeout => false,
        }
    }
}

fn success(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::NOT_MODIFIED
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
        anyhow::Ok((status, body))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((status, body))) => Outcome::Response { status, body },
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

/// The [`Tally`] label of one response, if the target counts any.
fn label(tally: Tally, status: StatusCode, body: &[u8]) -> Option<String> {
    match tally {
        Tally::Nothing => None,
        Tally::Field(field) if status.is_success() => Some(
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get(field)?.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {} without {field}", status.as_u16())),
        ),
        Tally::Status | Tally::Field(_) => Some(format!("HTTP {}", status.as_u16())),
    }
}

/// Records one finished exchange; drops the connection when its state is unknown.
pub fn settle(
    stats: &mut ConnStats,
    conn: &mut Option<Sender>,
    tally: Tally,
    outcome: Outcome,
    latency: Duration,
) {
    match outcome {
        Outcome::Response { status, body } => {
            stats.latency.saturating_record(micros(latency));
            stats.body_bytes += body.len() as u64;
            if success(status) {
                stats.ok += 1;
            } else {
                stats.http_errors += 1;
                if stats.first_error.is_none() {
                    let snippet: String = String::from_utf8_lossy(&body)
                        .chars()
                        .take(ERROR_SNIPPET_CHARS)
                        .collect();
                    stats.first_error = Some(format!("HTTP {}: {snippet}", status.as_u16()));
                }
            }
            if let Some(l) = label(tally, status, &body) {
                *stats.tally.entry(l).or_default() += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_responses() {
        let ok = StatusCode::OK;
        let body = br#"{"action":"upgraded","x":1}"#;
        assert_eq!(label(Tally::Nothing, ok, body), None);
        assert_eq!(label(Tally::Status, ok, body).as_deref(), Some("HTTP 200"));
        assert_eq!(
            label(Tally::Field("action"), ok, body).as_deref(),
            Some("upgraded")
        );
        assert_eq!(
            label(Tally::Field("action"), StatusCode::PAYMENT_REQUIRED, body).as_deref(),
            Some("HTTP 402")
        );
        assert_eq!(
            label(Tally::Field("action"), ok, b"not json").as_deref(),
            Some("HTTP 200 without action")
        );
    }
}

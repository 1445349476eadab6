//! The delivery worker: claims due deliveries (one unit of work), sends them, and records the
//! outcomes (another unit), backing off exponentially (base × 2^(attempt−1), at most an hour)
//! until a 2xx or the last attempt. Delivery is at least once: a crash after the POST and before
//! the record re-sends once the claim's lease runs out; receivers deduplicate on `webhook-id`,
//! which stays the same across retries.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tracing::{Instrument, info_span, warn};

use super::model::sign;
use super::store::{self, Attempt, Claimed};
use crate::clock::SharedClock;
use crate::http::error::ApiError;
use crate::write::Writer;

/// Attempts before a delivery is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 8;
/// Deliveries claimed per pass.
const BATCH: i64 = 32;
/// Deliveries sent at once.
const CONCURRENCY: usize = 8;
/// A claim lasts this long; a worker that dies holding it only delays the delivery.
const LEASE_SECS: i64 = 60;
/// One delivery may take this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What the worker needs: a narrow handle, not the whole app state.
#[derive(Clone)]
pub struct Deliverer {
    pub writer: Writer,
    pub clock: SharedClock,
    pub retry_base: Duration,
    pub wake: Arc<Notify>,
}

struct Outcome {
    id: String,
    attempts: i64,
    result: Result<u16, (Option<u16>, String)>,
}

impl Deliverer {
    pub async fn run_forever(self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot build the webhook HTTP client; webhooks will not be delivered");
                return;
            }
        };
        loop {
            match self.deliver_due(&client).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "webhook delivery pass failed; will retry"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// Sends up to one batch of due deliveries; returns how many it tried.
    pub async fn deliver_due(&self, client: &reqwest::Client) -> Result<usize, ApiError> {
        let now = self.clock.unix();
        let due = self
            .writer
            .run("claim_webhook_deliveries", async move |uow| {
                Ok(store::claim_due(uow, now, LEASE_SECS, BATCH).await?)
            })
            .await?;
        let count = due.len();
        if count == 0 {
            return Ok(0);
        }
        let outcomes: Vec<Outcome> = futures_util::stream::iter(due)
            .map(|d| {
                let span = info_span!("webhook_delivery", delivery = %d.id, event = %d.event_id);
                self.send_one(client, d).instrument(span)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let base = self.retry_base.as_secs_f64();
        let finished_at = self.clock.unix();
        self.writer
            .run("record_webhook_deliveries", async move |uow| {
                for o in &outcomes {
                    let attempts = o.attempts + 1;
                    let attempt = match &o.result {
                        Ok(code) => {
                            metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => "succeeded")
                                .increment(1);
                            Attempt {
                                id: &o.id,
                                attempts,
                                status: "succeeded",
                                code: Some(i64::from(*code)),
                                error: None,
                                next_attempt_at: finished_at,
                                at: finished_at,
                            }
                        }
                        Err((code, error)) => {
                            let give_up = attempts >= MAX_ATTEMPTS;
                            metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => if give_up { "failed" } else { "retry" })
                                .increment(1);
                            let delay = (base * 2f64.powi((attempts - 1) as i32))
                                .min(3_600.0)
                                .ceil() as i64;
                            Attempt {
                                id: &o.id,
                                attempts,
                                status: if give_up { "failed" } else { "pending" },
                                code: code.map(i64::from),
                                error: Some(error.as_str()),
                                next_attempt_at: finished_at + delay.max(1),
                                at: finished_at,
                            }
                        }
                    };
                    store::record_attempt(uow, attempt).await?;
                }
                Ok(())
            })
            .await?;
        Ok(count)
    }

    async fn send_one(&self, client: &reqwest::Client, d: Claimed) -> Outcome {
        let sent_at = self.clock.unix();
        let body = d.payload.into_bytes();
        let result = match sign(&d.secret, &d.event_id, sent_at, &body) {
            None => Err((None, "endpoint secret is unreadable".to_owned())),
            Some(signature) => {
                let resp = client
                    .post(&d.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &d.event_id)
                    .header("webhook-timestamp", sent_at.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                    Ok(r) => Err((
                        Some(r.status().as_u16()),
                        format!("HTTP {}", r.status().as_u16()),
                    )),
                    Err(e) => Err((None, e.to_string().chars().take(500).collect())),
                }
            }
        };
        Outcome {
            id: d.id,
            attempts: d.attempts,
            result,
        }
    }
}

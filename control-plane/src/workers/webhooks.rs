//! The delivery worker. Deliveries are queued per endpoint: each endpoint has at most
//! [`PER_ENDPOINT`] requests in flight and each claim takes the endpoints round-robin, so one
//! slow or failing endpoint (a test-mode one, say) cannot hold the slots every other endpoint
//! needs. A slot is refilled as soon as its request ends, not when a whole batch has.
//!
//! Each claim is one unit of work with a lease ([`LEASE_SECS`]): on any replica, no other worker
//! takes a claimed delivery until the lease runs out, and a worker that dies holding it only
//! delays it. Each outcome is recorded in a unit of its own, backing off exponentially
//! (base × 2^(attempt−1), at most an hour) until a 2xx or the last attempt. Delivery is at least
//! once: a crash after the POST and before the record re-sends once the lease runs out; receivers
//! deduplicate on `webhook-id`, which stays the same across retries.
//!
//! **Circuit breaker.** After `--webhook-breaker-failures` consecutive failed attempts an
//! endpoint's circuit opens: nothing more is sent to it (new events still queue, and expire after
//! [`crate::domain::webhooks::store::PENDING_MAX_AGE_SECS`]) until it is re-enabled through the API. The API shows
//! `circuitOpen`, and `tollgate_webhook_circuit_open_endpoints` counts them.
//!
//! Requests never follow redirects, go only to addresses [`crate::platform::egress`] allows (unless
//! `--allow-private-webhook-urls`), and their failures are recorded as short fixed phrases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, info_span, warn};

use crate::domain::webhooks::store;
use crate::domain::webhooks::store::{Attempt, Claimed};
use crate::platform::clock::SharedClock;
use crate::platform::egress as guard;
use crate::platform::http::error::ApiError;
use crate::write::Writer;

/// Attempts before a delivery is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 8;
/// Requests in flight at once, across endpoints.
const CONCURRENCY: usize = 16;
/// Requests in flight at once to one endpoint.
const PER_ENDPOINT: usize = 2;
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
    /// `--allow-private-webhook-urls`.
    pub allow_private: bool,
    /// `--webhook-breaker-failures`.
    pub breaker_failures: u32,
}

struct Outcome {
    id: String,
    endpoint_id: String,
    attempts: i64,
    result: Result<u16, (Option<u16>, String)>,
}

impl Deliverer {
    fn client(&self) -> reqwest::Result<reqwest::Client> {
        // `no_proxy`: reqwest otherwise honours HTTP(S)_PROXY and ALL_PROXY, and through a
        // proxy the guarded resolver would check only the proxy's own name (issue 15).
        let builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(PER_ENDPOINT);
        if self.allow_private {
            builder.build()
        } else {
            builder
                .dns_resolver(Arc::new(guard::GuardedResolver))
                .build()
        }
    }

    pub async fn run_forever(self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot build the webhook HTTP client; webhooks will not be delivered");
                return;
            }
        };
        let mut in_flight: JoinSet<Outcome> = JoinSet::new();
        let mut per_endpoint: HashMap<String, usize> = HashMap::new();
        loop {
            // Endpoints with nothing in flight may get PER_ENDPOINT deliveries; one with some
            // in flight only what its slots have free (claimed separately, per free count), so
            // no endpoint ever has more than PER_ENDPOINT requests in flight.
            let mut rounds: Vec<(Vec<String>, Option<Vec<String>>, usize)> =
                vec![(per_endpoint.keys().cloned().collect(), None, PER_ENDPOINT)];
            for taken in 1..PER_ENDPOINT {
                let partial: Vec<String> = per_endpoint
                    .iter()
                    .filter(|(_, n)| **n == taken)
                    .map(|(id, _)| id.clone())
                    .collect();
                if !partial.is_empty() {
                    rounds.push((Vec::new(), Some(partial), PER_ENDPOINT - taken));
                }
            }
            for (skip, only, per) in rounds {
                let free = CONCURRENCY.saturating_sub(in_flight.len());
                if free == 0 {
                    break;
                }
                match self.claim(free, skip, only, per).await {
                    Ok(claimed) => {
                        for d in claimed {
                            *per_endpoint.entry(d.endpoint_id.clone()).or_default() += 1;
                            let span = info_span!("webhook_delivery", delivery = %d.id, event = %d.event_id);
                            let (client, clock) = (client.clone(), self.clock.clone());
                            in_flight.spawn(
                                send_one(client, clock, self.allow_private, d).instrument(span),
                            );
                        }
                    }
                    Err(e) => warn!(error = %e, "claiming webhook deliveries failed; will retry"),
                }
            }
            let finished = tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => done.ok(),
                () = self.wake.notified() => None,
                () = tokio::time::sleep(tick) => None,
                stop = shutdown.wait_for(|s| *s) => {
                    drop(stop);
                    return;
                }
            };
            if let Some(outcome) = finished {
                if let Some(n) = per_endpoint.get_mut(&outcome.endpoint_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        per_endpoint.remove(&outcome.endpoint_id);
                    }
                }
                if let Err(e) = self.record(outcome).await {
                    warn!(error = %e, "recording a webhook outcome failed; the lease will expire and it is re-sent");
                }
            }
            if in_flight.is_empty() {
                // Self-healing should a send task ever panic (its slot could not be returned).
                per_endpoint.clear();
            }
        }
    }

    async fn claim(
        &self,
        limit: usize,
        skip: Vec<String>,
        only: Option<Vec<String>>,
        per_endpoint: usize,
    ) -> Result<Vec<Claimed>, ApiError> {
        let now = self.clock.unix();
        self.writer
            .run("claim_webhook_deliveries", async move |uow| {
                Ok(store::claim_due(
                    uow,
                    store::ClaimLimits {
                        now,
                        lease: LEASE_SECS,
                        limit: limit as i64,
                        per_endpoint: per_endpoint as i64,
                        skip_endpoints: &skip,
                        only_endpoints: only.as_deref(),
                    },
                )
                .await?)
            })
            .await
    }

    async fn record(&self, o: Outcome) -> Result<(), ApiError> {
        let base = self.retry_base.as_secs_f64();
        let finished_at = self.clock.unix();
        let threshold = i64::from(self.breaker_failures.max(1));
        let o_endpoint = o.endpoint_id.clone();
        let opened = self
            .writer
            .run("record_webhook_delivery", async move |uow| {
                let attempts = o.attempts + 1;
                let attempt = match &o.result {
                    Ok(code) => Attempt {
                        id: &o.id,
                        attempts,
                        status: "succeeded",
                        code: Some(i64::from(*code)),
                        error: None,
                        next_attempt_at: finished_at,
                        at: finished_at,
                    },
                    Err((code, error)) => {
                        let give_up = attempts >= MAX_ATTEMPTS;
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
                let outcome: &'static str = match attempt.status {
                    "succeeded" => "succeeded",
                    "failed" => "failed",
                    _ => "retry",
                };
                store::record_attempt(uow, attempt).await?;
                let opened = store::endpoint_outcome(
                    uow,
                    &o.endpoint_id,
                    o.result.is_ok(),
                    threshold,
                    finished_at,
                )
                .await?;
                Ok((outcome, opened))
            })
            .await?;
        let (outcome, opened) = opened;
        let endpoint = &o_endpoint;
        metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => outcome).increment(1);
        if opened {
            metrics::counter!("tollgate_webhook_circuits_opened_total").increment(1);
            warn!(%endpoint, "webhook endpoint's circuit opened after repeated failures; re-enable it through the API");
        }
        Ok(())
    }
}

async fn send_one(
    client: reqwest::Client,
    clock: SharedClock,
    allow_private: bool,
    d: Claimed,
) -> Outcome {
    let sent_at = clock.unix();
    let body = d.payload.into_bytes();
    let result = match (
        d.scheme.sign(&d.secret, &d.event_id, sent_at, &body),
        url::Url::parse(&d.url),
    ) {
        (None, _) => Err((None, "endpoint secret is unreadable".to_owned())),
        (_, Err(_)) => Err((None, "invalid URL".to_owned())),
        // IP-literal URLs never reach the resolver: check them here.
        (Some(_), Ok(url)) if !allow_private && guard::check_literal(&url).is_err() => {
            Err((None, "address not allowed".to_owned()))
        }
        (Some(signature), Ok(url)) => {
            let resp = client
                .post(url)
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
                Err(e) => Err((None, guard::summarize(&e).to_owned())),
            }
        }
    };
    Outcome {
        id: d.id,
        endpoint_id: d.endpoint_id,
        attempts: d.attempts,
        result,
    }
}

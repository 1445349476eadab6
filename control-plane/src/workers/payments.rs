//! The payments worker: charges payment intents outside the writer, then settles them.
//!
//! Woken after every commit that wrote an intent (and every second), it claims up to
//! [`CLAIM_BATCH`] `processing` intents in one unit of work, each with a lease of
//! `--payment-lease-secs` (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so replicas never claim the same
//! one). It calls the processor for each, at most [`CONCURRENCY`] at once and each within
//! [`CALL_TIMEOUT`], with the intent's id as the idempotency key, and submits one settle unit
//! per outcome (`workflows::settle`).
//!
//! **Crash safety.** A worker that dies after its claim (before the processor call, or after
//! it and before the settle) only delays the intent: once the lease runs out another claim
//! takes it, and because its attempt count is above one it first asks the processor what
//! became of the charge with that idempotency key (`retrieve`), settling with that answer, and
//! charges only if the processor has none. The processor's idempotency key makes a repeated
//! charge call answer the first one's result, so nothing is charged twice.
//!
//! A processor that cannot be reached leaves the intent claimed; it is tried again when the
//! lease runs out. Intents waiting for a customer's authentication past their expiry are
//! canceled here too.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tracing::{Instrument, info_span, warn};

use crate::domain::payments::model::{ChargeOutcome, Decline, Intent, Purpose};
use crate::domain::payments::store as intents;
use crate::domain::refunds::store as refunds;
use crate::payments::{ChargeRequest, Processors};
use crate::platform::clock::SharedClock;
use crate::workflows::settle;
use crate::write::Writer;

/// Intents one claim takes.
pub const CLAIM_BATCH: i64 = 64;
/// A claim's intents (and refunds) are asked for at once, so their settles reach the writer
/// together and commit in one batch; a network processor caps its own calls in flight
/// (Stripe: [`crate::payments::stripe::STRIPE_CONCURRENCY`]).
pub const CONCURRENCY: usize = CLAIM_BATCH as usize;
/// One processor call may take at most this long, and never more than two thirds of the
/// lease (`--payment-lease-secs`, 45 s by default), so a call ends well before another
/// worker may take its intent up again.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct PaymentsWorker {
    pub writer: Writer,
    pub clock: SharedClock,
    pub processors: Processors,
    pub wake: Arc<Notify>,
    /// Told after each round that settled something (doors waiting for a payment re-read).
    pub settled: Arc<Notify>,
    pub retry_days: Arc<[u32]>,
    /// `--payment-lease-secs`.
    pub lease_secs: i64,
    /// `--failpoint` (debug builds only).
    pub failpoint: Option<String>,
}

impl PaymentsWorker {
    pub async fn run_forever(self, tick: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            // Drain what is claimable, then sleep until woken.
            loop {
                match self.round().await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        warn!(error = %e, "payments: a round failed");
                        break;
                    }
                }
            }
            if let Err(e) = self.expire_actions().await {
                warn!(error = %e, "payments: expiring authentications failed");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One claim and its charges; answers how many intents it took.
    pub async fn round(&self) -> Result<usize, crate::platform::http::error::ApiError> {
        let lease = self.lease_secs;
        let claimed = self
            .writer
            .run("payments claim", async move |uow| {
                let now = uow.now();
                Ok(intents::claim(uow, now, lease, CLAIM_BATCH).await?)
            })
            .await?;
        let refunds = self
            .writer
            .run("refunds claim", async move |uow| {
                let now = uow.now();
                Ok(refunds::claim_pending(uow, now, lease, CLAIM_BATCH).await?)
            })
            .await?;
        let n = claimed.len() + refunds.len();
        futures_util::stream::iter(refunds)
            .for_each_concurrent(CONCURRENCY, |refund| {
                let span = info_span!("refund", refund = %refund.id);
                async move { self.refund(refund).await }.instrument(span)
            })
            .await;
        futures_util::stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |intent| {
                let span = info_span!("payment", intent = %intent.id, attempt = intent.attempts);
                async move { self.one(intent).await }.instrument(span)
            })
            .await;
        if n > 0 {
            self.settled.notify_waiters();
        }
        Ok(n)
    }

    async fn one(&self, intent: Intent) {
        let limit = CALL_TIMEOUT.min(Duration::from_secs((self.lease_secs * 2 / 3).max(1) as u64));
        let outcome = match tokio::time::timeout(limit, self.ask(&intent)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                warn!(error = %e, "payments: the processor could not be asked; retried after the lease");
                return;
            }
            Err(_) => {
                warn!("payments: the processor call timed out; retried after the lease");
                return;
            }
        };
        metrics::counter!("tollgate_payment_outcomes_total", "outcome" => outcome_label(&outcome))
            .increment(1);
        if cfg!(debug_assertions) && self.failpoint.as_deref() == Some("payments-after-charge") {
            // The crash test's fault: the processor has answered, nothing is settled.
            warn!("failpoint payments-after-charge: aborting");
            std::process::abort();
        }
        let id = intent.id.clone();
        let retry_days = self.retry_days.clone();
        let settled = self
            .writer
            .run_for(
                Some(&intent.customer_id),
                "payment settle",
                async move |uow| settle::settle(uow, &id, &outcome, &retry_days).await,
            )
            .await;
        if let Err(e) = settled {
            // The lease runs out and the next claim asks the processor again (`retrieve`).
            warn!(error = %e, "payments: settling failed");
        }
    }

    /// Asks the processor for a refund (the refund's id is the idempotency key) and records
    /// its answer. Unreachable: tried again once the lease runs out.
    async fn refund(&self, refund: refunds::Pending) {
        let processor = self.processors.for_mode(refund.mode);
        let limit = CALL_TIMEOUT.min(Duration::from_secs((self.lease_secs * 2 / 3).max(1) as u64));
        let asked = tokio::time::timeout(
            limit,
            processor.refund(&refund.charge_ref, refund.amount_minor, &refund.id),
        )
        .await;
        let result = match asked {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                warn!(error = %e, "payments: the processor could not be asked for a refund");
                return;
            }
            Err(_) => {
                warn!("payments: the refund call timed out");
                return;
            }
        };
        let id = refund.id.clone();
        let settled = self
            .writer
            .run("refund settle", async move |uow| {
                let result = match &result {
                    Ok(reference) => Ok(reference.as_deref()),
                    Err(reason) => Err(reason.as_str()),
                };
                Ok(refunds::settle(uow, &id, result).await?)
            })
            .await;
        if let Err(e) = settled {
            warn!(error = %e, "payments: recording a refund failed");
        }
    }

    /// What the processor says for this intent: an earlier attempt's result if it has one,
    /// else the result of charging (or, after authentication, confirming) now.
    async fn ask(&self, intent: &Intent) -> Result<ChargeOutcome, crate::payments::ProcessorError> {
        let processor = self.processors.for_mode(intent.mode);
        if let Some(reference) = &intent.processor_ref {
            // Back from the customer's authentication.
            return processor.confirm(&intent.id, reference).await;
        }
        let req = ChargeRequest {
            idempotency_key: &intent.id,
            mode: intent.mode,
            customer_id: &intent.customer_id,
            payment_method: intent.payment_method.as_deref(),
            amount_minor: intent.amount_minor,
            currency: intent.currency,
            // Only a checkout's first charge is made with the person there, entering the card.
            off_session: !matches!(
                intent.purpose,
                Purpose::Start {
                    checkout_session: Some(_),
                    ..
                }
            ),
        };
        if intent.attempts > 1
            && let Some(earlier) = processor.retrieve(req).await?
        {
            return Ok(earlier);
        }
        processor.charge(req).await
    }

    /// Cancels intents whose authentication window has passed.
    async fn expire_actions(&self) -> Result<(), crate::platform::http::error::ApiError> {
        let retry_days = self.retry_days.clone();
        let expired = self
            .writer
            .run("payments expire", async move |uow| {
                let now = uow.now();
                let due = intents::expired_actions(uow.conn(), now, CLAIM_BATCH).await?;
                let mut n = 0;
                for (id, _mode) in due {
                    let outcome = crate::payments::declined(Decline::Expired);
                    if settle::settle(uow, &id, &outcome, &retry_days).await? {
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await?;
        if expired > 0 {
            self.settled.notify_waiters();
        }
        Ok(())
    }
}

fn outcome_label(o: &ChargeOutcome) -> &'static str {
    match o {
        ChargeOutcome::Succeeded { .. } => "succeeded",
        ChargeOutcome::RequiresAction { .. } => "requires_action",
        ChargeOutcome::Failed { .. } => "failed",
    }
}

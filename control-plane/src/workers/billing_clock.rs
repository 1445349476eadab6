//! The billing clock's worker: renewals, scheduled changes, trial ends, dunning, meter windows
//! rolling over, and checkout sessions expiring, each due item in a unit of work of its own.
//!
//! The same [`BillingClock::run_due`] serves the real-time loop (customers without a test
//! clock, at the injected clock's "now") and test clocks (their customers, up to the clock's
//! frozen time). Every replica runs the loop: an item is claimed by locking its customer with
//! `FOR UPDATE SKIP LOCKED`, then re-read and re-checked, so no renewal, charge or dunning step
//! happens twice, and one held by a replica that died is picked up by the next pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tollgate_shared::Mode;
use tracing::{Instrument, info_span, warn};

use crate::domain::subscriptions::renewal as clock;

use crate::domain::catalog::store::resolve_price;
use crate::domain::checkout::model::SessionStatus;
use crate::domain::checkout::store as checkout;
use crate::domain::customers::store as customers;
use crate::domain::entitlements::store as entitlements;
use crate::domain::invoices::model::Draft;
use crate::domain::invoices::store as invoices;
use crate::domain::payments::model::Payment;
use crate::domain::subscriptions::model::{Status, Subscription};
use crate::domain::subscriptions::renewal::{AfterRetry, Due, PeriodEnd};
use crate::domain::subscriptions::store as subscriptions;
use crate::domain::subscriptions::store::{Renewal, Scope};
use crate::platform::clock::SharedClock;
use crate::platform::db::uow::Subject;
use crate::platform::db::{Db, Uow};
use crate::platform::http::error::ApiError;
use crate::workflows::collect;
use crate::workflows::subscribe as apply;
use crate::write::Writer;

/// Bounds one pass; advancing a daily subscription by decades still fits.
const MAX_STEPS: usize = 100_000;
/// Due items read per look.
const LOOK_AHEAD: i64 = 64;

/// What the billing clock needs: a narrow handle, not the whole app state.
#[derive(Clone)]
pub struct BillingClock {
    pub writer: Writer,
    pub db: Db,
    pub clock: SharedClock,
    /// Days after a failed renewal on which the charge is retried.
    pub retry_days: Arc<[u32]>,
    /// How long a checkout session can be paid.
    pub checkout_ttl_secs: i64,
}

#[derive(Debug)]
enum Item {
    Subscription {
        mode: Mode,
        id: String,
        at: i64,
    },
    Entitlements {
        mode: Mode,
        customer_id: String,
        at: i64,
    },
    /// An open checkout session whose time is up.
    CheckoutExpiry {
        mode: Mode,
        session_id: String,
        customer_id: String,
        at: i64,
    },
}

impl Item {
    fn at(&self) -> i64 {
        match self {
            Item::Subscription { at, .. }
            | Item::Entitlements { at, .. }
            | Item::CheckoutExpiry { at, .. } => *at,
        }
    }

    fn key(&self) -> String {
        match self {
            Item::Subscription { id, .. } => format!("s:{id}"),
            Item::Entitlements {
                customer_id, mode, ..
            } => format!("e:{mode}:{customer_id}"),
            Item::CheckoutExpiry { session_id, .. } => format!("c:{session_id}"),
        }
    }
}

/// What one pass of the billing clock did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    pub steps: usize,
    /// Items that failed; they are logged, counted in metrics, and retried on the next pass.
    pub failed: usize,
}

impl BillingClock {
    /// The soonest due item not in `skip`.
    async fn next(
        &self,
        scope: Scope<'_>,
        until: i64,
        skip: &[String],
    ) -> Result<Option<Item>, ApiError> {
        let mut conn = self.db.read().await?;
        let clock = match scope {
            Scope::RealTime => None,
            Scope::TestClock(id) => Some(id),
        };
        let subs =
            subscriptions::due(&mut conn, scope, until, LOOK_AHEAD + skip.len() as i64).await?;
        let ents =
            entitlements::due(&mut conn, clock, until, LOOK_AHEAD + skip.len() as i64).await?;
        let expiries = checkout::due_expiries(
            &mut conn,
            clock,
            self.checkout_ttl_secs,
            until,
            LOOK_AHEAD + skip.len() as i64,
        )
        .await?;
        let subs = subs
            .into_iter()
            .map(|(mode, id, at)| Item::Subscription { mode, id, at });
        let ents = ents
            .into_iter()
            .map(|(mode, customer_id, at)| Item::Entitlements {
                mode,
                customer_id,
                at,
            });
        let expiries = expiries
            .into_iter()
            .map(|(mode, session_id, customer_id, at)| Item::CheckoutExpiry {
                mode,
                session_id,
                customer_id,
                at,
            });
        // Subscriptions first on a tie: a renewal recompiles entitlements anyway.
        Ok(subs
            .chain(ents)
            .chain(expiries)
            .filter(|i| !skip.contains(&i.key()))
            .min_by_key(|i| (i.at(), matches!(i, Item::Entitlements { .. }))))
    }

    /// Runs everything due at or before `until` in `scope`, oldest first.
    pub async fn run_due(&self, scope: Scope<'_>, until: i64) -> Result<Run, ApiError> {
        let mut run = Run::default();
        let mut skip: Vec<String> = Vec::new();
        while let Some(item) = self.next(scope, until, &skip).await? {
            let span = info_span!("billing_step", ?item);
            let outcome = self.step(&item).instrument(span).await;
            match outcome {
                Ok(true) => {
                    run.steps += 1;
                    metrics::counter!("tollgate_billing_steps_total").increment(1);
                }
                Ok(false) => skip.push(item.key()),
                Err(e) => {
                    tracing::error!(error = %e, ?item, "billing step failed; skipping it until the next pass");
                    run.failed += 1;
                    metrics::counter!("tollgate_billing_step_failures_total").increment(1);
                    skip.push(item.key());
                }
            }
            if run.steps + run.failed >= MAX_STEPS {
                warn!(
                    ?run,
                    "billing clock pass hit its step limit; the rest waits for the next pass"
                );
                break;
            }
        }
        Ok(run)
    }

    /// One item in one unit of work. `Ok(false)`: nothing to do (done already, or claimed by
    /// another replica).
    async fn step(&self, item: &Item) -> Result<bool, ApiError> {
        match item {
            Item::Subscription { mode, id, at } => {
                let (mode, id, at) = (*mode, id.clone(), *at);
                let retry_days = self.retry_days.clone();
                self.writer
                    .run("billing_step", async move |uow| {
                        subscription_step(uow, mode, &id, at, &retry_days).await
                    })
                    .await
            }
            Item::Entitlements {
                mode,
                customer_id,
                at,
            } => {
                let (mode, customer_id, at) = (*mode, customer_id.clone(), *at);
                let key = customer_id.clone();
                self.writer
                    .run_for(Some(&key), "meter_rollover", async move |uow| {
                        if !customers::try_lock(uow, mode, &customer_id).await? {
                            return Ok(false);
                        }
                        let stored = entitlements::stored(uow.conn(), mode, &customer_id).await?;
                        if stored.and_then(|s| s.next_change_at).is_none_or(|n| n > at) {
                            return Ok(false);
                        }
                        uow.touch(mode, &customer_id);
                        Ok(true)
                    })
                    .await
            }
            Item::CheckoutExpiry {
                mode,
                session_id,
                customer_id,
                at,
            } => {
                let (mode, session_id, customer_id, at) =
                    (*mode, session_id.clone(), customer_id.clone(), *at);
                let ttl = self.checkout_ttl_secs;
                let key = customer_id.clone();
                self.writer
                    .run_for(Some(&key), "checkout_expiry", async move |uow| {
                        expire_checkout(uow, mode, &session_id, &customer_id, at, ttl).await
                    })
                    .await
            }
        }
    }

    /// The background loop for customers on real time.
    pub async fn run_forever(self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.run_due(Scope::RealTime, self.clock.unix()).await {
                warn!(error = %e, "billing clock pass failed; will retry");
            }
        }
    }
}

/// Expires an open checkout session whose time is up, and ends the pending (`incomplete`)
/// subscription it was opened for. Returns whether anything changed.
async fn expire_checkout(
    uow: &mut Uow,
    mode: Mode,
    session_id: &str,
    customer_id: &str,
    at: i64,
    ttl: i64,
) -> Result<bool, ApiError> {
    if !customers::try_lock(uow, mode, customer_id).await? {
        return Ok(false);
    }
    // Re-read under the lock: it may have been paid meanwhile.
    let Some(session) = checkout::load(uow.conn(), session_id).await? else {
        return Ok(false);
    };
    if session.status != SessionStatus::Open || !session.is_expired(at, ttl) {
        return Ok(false);
    }
    checkout::mark_expired(uow, session_id).await?;
    if let Some(pending) = &session.subscription_id
        && let Some(sub) = subscriptions::get(uow.conn(), mode, pending).await?
        && sub.status == Status::Incomplete
    {
        apply::end_now(uow, &sub, at).await?;
    }
    Ok(true)
}

/// One due event of one subscription. Returns whether anything changed.
async fn subscription_step(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    at: i64,
    retry_days: &[u32],
) -> Result<bool, ApiError> {
    let Some(peek) = subscriptions::get(uow.conn(), mode, id).await? else {
        return Ok(false);
    };
    if !customers::try_lock(uow, mode, &peek.customer_id).await? {
        return Ok(false);
    }
    // Re-read under the lock: what was due may have been done meanwhile.
    let Some(sub) = subscriptions::get(uow.conn(), mode, id).await? else {
        return Ok(false);
    };
    match clock::due(&sub, at) {
        Due::Nothing => return Ok(false),
        Due::CancelDate => apply::end_now(uow, &sub, at).await?,
        Due::Retry { invoice } => {
            let payment = collect::retry(uow, at, mode, &invoice).await?;
            match clock::after_retry(&sub, payment == Payment::Paid, retry_days) {
                AfterRetry::Recovered => {
                    subscriptions::recovered(uow, &sub, at).await?;
                    uow.emit(
                        mode,
                        "subscription.updated",
                        Subject::Subscription(sub.id.clone()),
                        at,
                    );
                }
                AfterRetry::RetryAt { attempts, at: next } => {
                    subscriptions::retry_later(uow, &sub, attempts, next, at).await?;
                }
                AfterRetry::GiveUp => {
                    invoices::set_status(uow, &invoice, "uncollectible").await?;
                    apply::end_now(uow, &sub, at).await?;
                }
            }
        }
        Due::PeriodEnd => period_end(uow, &sub, at, retry_days).await?,
    }
    Ok(true)
}

/// A period boundary: cancel, or end the trial, or apply the scheduled change; then charge the
/// next period. A failed charge keeps access (`past_due`) and starts dunning.
async fn period_end(
    uow: &mut Uow,
    sub: &Subscription,
    at: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let mode = sub.mode;
    let has_card = customers::card_on_file(uow.conn(), mode, &sub.customer_id)
        .await?
        .is_some();
    let trial_ending = match clock::period_end(sub, has_card) {
        PeriodEnd::End { uncollectible } => {
            if let Some(invoice) = uncollectible {
                invoices::set_status(uow, &invoice, "uncollectible").await?;
            }
            apply::end_now(uow, sub, at).await?;
            return Ok(());
        }
        PeriodEnd::Renew { trial_ending } => trial_ending,
    };
    let scheduled = match &sub.scheduled_plan {
        Some(plan) => {
            match resolve_price(uow.conn(), mode, plan, sub.scheduled_period.as_deref()).await {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(error = %e, %plan, "scheduled plan no longer exists; renewing the current one");
                    None
                }
            }
        }
        None => None,
    };
    let next = clock::renewal(sub, at, trial_ending, scheduled.as_ref());
    let created = collect::create_and_collect(
        uow,
        at,
        Draft {
            mode,
            customer_id: &sub.customer_id,
            subscription_id: Some(&sub.id),
            currency: &next.currency,
            reason: next.reason,
            lines: vec![next.line.clone()],
        },
    )
    .await?;
    let paid = created.payment == Payment::Paid;
    let after = clock::after_charge(paid, trial_ending, at, retry_days);
    subscriptions::renew(
        uow,
        sub,
        Renewal {
            status: after.status,
            plan: &next.plan,
            period: next.period,
            amount: next.amount,
            currency: &next.currency,
            quantity: next.quantity,
            period_start: at,
            period_end: next.period_end,
            anchor: next.anchor,
            index: next.index,
            dunning_invoice: (!paid).then_some(created.id.as_str()),
            dunning_started_at: (!paid).then_some(at),
            next_retry_at: after.next_retry_at,
        },
        at,
    )
    .await?;
    if let Some(p) = &scheduled {
        // The scheduled change took effect: the license key follows the new plan.
        apply::sync_license(uow, mode, &sub.customer_id, &sub.id, p, at).await?;
    }
    uow.emit(mode, after.event, Subject::Subscription(sub.id.clone()), at);
    if after.give_up {
        // No retries configured: the failure is final.
        invoices::set_status(uow, &created.id, "uncollectible").await?;
        if let Some(renewed) = subscriptions::get(uow.conn(), mode, &sub.id).await? {
            apply::end_now(uow, &renewed, at).await?;
        }
    }
    Ok(())
}

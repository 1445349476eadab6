//! The billing clock's units of work: what one due item does, once the worker has found it.
//! Each re-reads its subject under the customer's lock (`SKIP LOCKED`: another replica may hold
//! it) and asks the pure rules in `domain::subscriptions::renewal` what to do.

use tollgate_shared::Mode;
use tracing::warn;

use crate::domain::catalog::store::resolve_price;
use crate::domain::checkout::model::SessionStatus;
use crate::domain::checkout::store as checkout;
use crate::domain::customers::store as customers;
use crate::domain::entitlements::store as entitlements;
use crate::domain::invoices::model::Draft;
use crate::domain::invoices::store as invoices;
use crate::domain::payments::model::{Payment, Purpose};
use crate::domain::payments::store as intents;
use crate::domain::subscriptions::model::{Status, Subscription};
use crate::domain::subscriptions::renewal::{self as clock, AfterRetry, Due, PeriodEnd};
use crate::domain::subscriptions::store::{self as subscriptions, Renewal};
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::http::error::ApiError;
use crate::workflows::collect;
use crate::workflows::subscribe as apply;

/// A customer's meter window rolled over (or another self-change time came): recompile them.
/// Returns whether anything was due.
pub async fn roll_over_meters(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    at: i64,
) -> Result<bool, ApiError> {
    if !customers::try_lock(uow, mode, customer_id).await? {
        return Ok(false);
    }
    // A renewal waiting for its charge moves the period (and this time) once it settles.
    if intents::customer_charging(uow.conn(), mode, customer_id).await? {
        return Ok(false);
    }
    let stored = entitlements::stored(uow.conn(), mode, customer_id).await?;
    if stored.and_then(|s| s.next_change_at).is_none_or(|n| n > at) {
        return Ok(false);
    }
    uow.touch(mode, customer_id);
    Ok(true)
}

/// Expires an open checkout session whose time is up, and ends the pending (`incomplete`)
/// subscription it was opened for. Returns whether anything changed.
pub async fn expire_checkout(
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

/// One due event of one subscription (a cancellation date, a dunning retry, a period end).
/// Returns whether anything changed.
pub async fn due_step(
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
    // One step at a time: the next waits until the previous step's charge has settled.
    if intents::charging(uow.conn(), mode, id).await? {
        return Ok(false);
    }
    match clock::due(&sub, at) {
        Due::Nothing => return Ok(false),
        Due::CancelDate => apply::end_now(uow, &sub, at).await?,
        Due::Retry { invoice } => {
            let purpose = Purpose::Retry {
                subscription: sub.id.clone(),
            };
            let paid = match collect::retry(uow, at, mode, &invoice, purpose).await? {
                Payment::Paid => true,
                Payment::Failed(_) => false,
                Payment::Pending(_) => {
                    // The settle decides what comes next.
                    subscriptions::pause_retries(uow, &sub, at).await?;
                    return Ok(true);
                }
            };
            after_retry(uow, &sub, &invoice, paid, at, retry_days).await?;
        }
        Due::PeriodEnd => period_end(uow, &sub, at, retry_days).await?,
    }
    Ok(true)
}

/// Where a dunning retry leaves the subscription: recovered, retried later, or ended.
pub async fn after_retry(
    uow: &mut Uow,
    sub: &Subscription,
    invoice: &str,
    paid: bool,
    at: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let mode = sub.mode;
    match clock::after_retry(sub, paid, retry_days) {
        AfterRetry::Recovered => {
            subscriptions::recovered(uow, sub, at).await?;
            uow.emit(
                mode,
                EventKind::SubscriptionUpdated,
                Subject::Subscription(sub.id.clone()),
                at,
            );
        }
        AfterRetry::RetryAt { attempts, at: next } => {
            subscriptions::retry_later(uow, sub, attempts, next, at).await?;
        }
        AfterRetry::GiveUp => {
            invoices::set_status(uow, invoice, "uncollectible").await?;
            apply::end_now(uow, sub, at).await?;
        }
    }
    Ok(())
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
            currency: next.currency,
            reason: next.reason,
            lines: vec![next.line.clone()],
        },
        Purpose::Renewal {
            subscription: sub.id.clone(),
            trial_ending,
        },
    )
    .await?;
    // A pending charge renews the period now, as a paid one does; if it fails, the settle
    // starts dunning then (`after_renewal_charge`).
    let paid = !matches!(created.payment, Payment::Failed(_));
    let pending = matches!(created.payment, Payment::Pending(_));
    let after = clock::after_charge(paid, trial_ending, at, retry_days);
    subscriptions::renew(
        uow,
        sub,
        Renewal {
            status: after.status,
            plan: &next.plan,
            period: next.period,
            amount: next.amount,
            currency: next.currency,
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
    if !pending {
        uow.emit(mode, after.event, Subject::Subscription(sub.id.clone()), at);
    }
    if after.give_up {
        // No retries configured: the failure is final.
        invoices::set_status(uow, &created.id, "uncollectible").await?;
        if let Some(renewed) = subscriptions::get(uow.conn(), mode, &sub.id).await? {
            apply::end_now(uow, &renewed, at).await?;
        }
    }
    Ok(())
}

/// A renewal's pending charge settled: `paid` → the renewal's event; declined → `past_due` and
/// dunning from now, or the end when no retry is configured.
pub async fn after_renewal_charge(
    uow: &mut Uow,
    sub: &Subscription,
    invoice: &str,
    paid: bool,
    trial_ending: bool,
    at: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let after = clock::after_charge(paid, trial_ending, at, retry_days);
    if !paid {
        subscriptions::start_dunning(uow, sub, invoice, after.next_retry_at, at).await?;
    }
    uow.emit(
        sub.mode,
        after.event,
        Subject::Subscription(sub.id.clone()),
        at,
    );
    if after.give_up {
        invoices::set_status(uow, invoice, "uncollectible").await?;
        if let Some(now) = subscriptions::get(uow.conn(), sub.mode, &sub.id).await? {
            apply::end_now(uow, &now, at).await?;
        }
    }
    Ok(())
}

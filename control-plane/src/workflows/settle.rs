//! Settling a payment intent: what the processor said, applied in one unit of work. The
//! payments worker runs it after the processor call (`workers::payments`); the hosted
//! authentication page runs it when a person gives up. Settling is idempotent: an intent that
//! is no longer open is left alone, so a replayed outcome (a second worker, a provider webhook
//! after the worker) changes nothing.

use tracing::warn;

use crate::domain::catalog::store::resolve_price;
use crate::domain::checkout::store as checkout;
use crate::domain::customers::store as customers;
use crate::domain::invoices::store as invoices;
use crate::domain::payments::model::{ChargeOutcome, Decline, Intent, IntentStatus, Purpose};
use crate::domain::payments::store as intents;
use crate::domain::payments::store::StatusChange;
use crate::domain::subscriptions::model::Status;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::http::error::ApiError;
use crate::workflows::checkout::mark_complete;
use crate::workflows::renew;
use crate::workflows::subscribe as apply;

/// How long a customer has to authenticate a payment (Stripe's 3-D Secure window is about a
/// day), in the customer's time.
pub const ACTION_TTL_SECS: i64 = 23 * 3_600;

/// Applies `outcome` to intent `id`. Returns whether anything changed.
pub async fn settle(
    uow: &mut Uow,
    id: &str,
    outcome: &ChargeOutcome,
    retry_days: &[u32],
) -> Result<bool, ApiError> {
    let Some(peek) = intents::find(uow.conn(), id).await? else {
        return Ok(false);
    };
    customers::lock(uow, peek.mode, &peek.customer_id).await?;
    // Re-read under the lock: another worker (or replica) may have settled it meanwhile.
    let Some(intent) = intents::find(uow.conn(), id).await? else {
        return Ok(false);
    };
    if !intent.status.is_open() {
        return Ok(false);
    }
    let now = customers::now_of(uow, intent.mode, &intent.customer_id).await?;
    match outcome {
        ChargeOutcome::Succeeded { reference } => {
            succeeded(uow, &intent, reference.as_deref(), now, retry_days).await?
        }
        ChargeOutcome::RequiresAction { reference } => {
            if intent.status == IntentStatus::RequiresAction {
                return Ok(false);
            }
            requires_action(uow, &intent, reference.as_deref(), now, retry_days).await?
        }
        ChargeOutcome::Failed {
            reference,
            decline,
            message,
        } => {
            failed(
                uow,
                &intent,
                reference.as_deref(),
                *decline,
                message,
                now,
                retry_days,
            )
            .await?
        }
    }
    Ok(true)
}

fn payment_event(uow: &mut Uow, intent: &Intent, kind: EventKind, now: i64) {
    uow.emit(
        intent.mode,
        kind,
        Subject::Data(serde_json::json!({
            "id": intent.id,
            "customerId": intent.customer_id,
            "invoiceId": intent.invoice_id,
            "subscriptionId": intent.subscription_id,
            "amountUnits": intent.amount_minor,
            "currency": intent.currency,
        })),
        now,
    );
}

async fn succeeded(
    uow: &mut Uow,
    intent: &Intent,
    reference: Option<&str>,
    now: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let mode = intent.mode;
    intents::set_status(
        uow,
        &intent.id,
        IntentStatus::Succeeded,
        StatusChange {
            reference,
            at: now,
            ..StatusChange::default()
        },
    )
    .await?;
    let credit = invoices::due(uow.conn(), mode, &intent.invoice_id)
        .await?
        .map_or(0, |d| d.credit_applied);
    invoices::mark_paid(uow, &intent.invoice_id, credit, now).await?;
    uow.emit(
        mode,
        EventKind::InvoicePaid,
        Subject::Invoice(intent.invoice_id.clone()),
        now,
    );
    payment_event(uow, intent, EventKind::PaymentSucceeded, now);
    match &intent.purpose {
        Purpose::Start {
            subscription,
            checkout_session,
        } => {
            let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await? else {
                return Ok(());
            };
            if sub.status != Status::Incomplete {
                warn!(intent = %intent.id, subscription = %sub.id, status = sub.status.as_str(),
                      "a first payment succeeded for a subscription that is no longer waiting for it");
                return Ok(());
            }
            subscriptions::activate_paid(uow, &sub, now).await?;
            if let Ok(price) =
                resolve_price(uow.conn(), mode, &sub.plan, Some(sub.period.as_str())).await
            {
                apply::sync_license(uow, mode, &sub.customer_id, &sub.id, &price, now).await?;
            }
            uow.emit(
                mode,
                EventKind::SubscriptionActivated,
                Subject::Subscription(sub.id.clone()),
                now,
            );
            if let Some(session) = checkout_session
                && let Some(session) = checkout::load(uow.conn(), session).await?
            {
                mark_complete(uow, &session, &sub.id, now).await?;
            }
        }
        Purpose::Update {
            subscription,
            plan,
            period,
            quantity,
            cycle,
        } => {
            let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await? else {
                return Ok(());
            };
            let target = resolve_price(uow.conn(), mode, plan, Some(period))
                .await
                .map_err(|e| ApiError::internal("settling an upgrade", &e))?;
            subscriptions::change_now(uow, &sub, &target, *quantity, apply::cycle_of(*cycle), now)
                .await?;
            apply::sync_license(uow, mode, &sub.customer_id, &sub.id, &target, now).await?;
            uow.emit(
                mode,
                EventKind::SubscriptionUpdated,
                Subject::Subscription(sub.id.clone()),
                now,
            );
        }
        Purpose::Renewal {
            subscription,
            trial_ending,
        } => {
            let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await? else {
                return Ok(());
            };
            if sub.status == Status::PastDue {
                // Authenticated after dunning had started: recovered.
                renew::after_retry(uow, &sub, &intent.invoice_id, true, now, retry_days).await?;
            } else {
                renew::after_renewal_charge(
                    uow,
                    &sub,
                    &intent.invoice_id,
                    true,
                    *trial_ending,
                    now,
                    retry_days,
                )
                .await?;
            }
        }
        Purpose::Retry { subscription } => {
            if let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await?
                && sub.status == Status::PastDue
            {
                renew::after_retry(uow, &sub, &intent.invoice_id, true, now, retry_days).await?;
            }
        }
        Purpose::Invoice => {}
    }
    Ok(())
}

async fn requires_action(
    uow: &mut Uow,
    intent: &Intent,
    reference: Option<&str>,
    now: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    intents::set_status(
        uow,
        &intent.id,
        IntentStatus::RequiresAction,
        StatusChange {
            reference,
            expires_at: Some(now + ACTION_TTL_SECS),
            at: now,
            ..StatusChange::default()
        },
    )
    .await?;
    payment_event(uow, intent, EventKind::PaymentRequiresAction, now);
    // Nobody is there to authenticate a renewal: it counts as a failed charge for dunning,
    // and still succeeds if the customer authenticates later.
    dunning_after_failure(uow, intent, now, retry_days).await
}

#[allow(clippy::too_many_arguments)]
async fn failed(
    uow: &mut Uow,
    intent: &Intent,
    reference: Option<&str>,
    decline: Decline,
    message: &str,
    now: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let mode = intent.mode;
    let status = match decline {
        Decline::Expired => IntentStatus::Canceled,
        _ => IntentStatus::Failed,
    };
    let was_waiting_for_action = intent.status == IntentStatus::RequiresAction;
    intents::set_status(
        uow,
        &intent.id,
        status,
        StatusChange {
            reference,
            error: Some(message),
            decline_code: Some(decline.code()),
            at: now,
            ..StatusChange::default()
        },
    )
    .await?;
    payment_event(uow, intent, EventKind::PaymentFailed, now);
    uow.emit(
        mode,
        EventKind::InvoicePaymentFailed,
        Subject::Invoice(intent.invoice_id.clone()),
        now,
    );
    match &intent.purpose {
        Purpose::Start {
            subscription,
            checkout_session,
        } => {
            void_invoice(uow, intent).await?;
            // A checkout's subscription stays `incomplete`: the person may try another card
            // until the session expires. Any other one ends, having granted nothing.
            if checkout_session.is_none()
                && let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await?
                && sub.status == Status::Incomplete
            {
                subscriptions::expire_incomplete(uow, &sub, now).await?;
            }
        }
        Purpose::Update { .. } => void_invoice(uow, intent).await?,
        Purpose::Renewal { .. } | Purpose::Retry { .. } => {
            // A renewal waiting for authentication already counted as failed for dunning.
            if !was_waiting_for_action {
                dunning_after_failure(uow, intent, now, retry_days).await?;
            }
        }
        Purpose::Invoice => {}
    }
    Ok(())
}

/// A renewal's or retry's charge did not go through: today's dunning rules.
async fn dunning_after_failure(
    uow: &mut Uow,
    intent: &Intent,
    now: i64,
    retry_days: &[u32],
) -> Result<(), ApiError> {
    let mode = intent.mode;
    match &intent.purpose {
        Purpose::Renewal {
            subscription,
            trial_ending,
        } => {
            if let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await?
                && sub.status.is_granting()
                && sub.status != Status::PastDue
            {
                renew::after_renewal_charge(
                    uow,
                    &sub,
                    &intent.invoice_id,
                    false,
                    *trial_ending,
                    now,
                    retry_days,
                )
                .await?;
            }
        }
        Purpose::Retry { subscription } => {
            if let Some(sub) = subscriptions::get(uow.conn(), mode, subscription).await?
                && sub.status == Status::PastDue
            {
                renew::after_retry(uow, &sub, &intent.invoice_id, false, now, retry_days).await?;
            }
        }
        Purpose::Start { .. } | Purpose::Update { .. } | Purpose::Invoice => {}
    }
    Ok(())
}

/// What an intent paid for will not happen: its invoice is void, and the credit it held goes
/// back to the customer.
async fn void_invoice(uow: &mut Uow, intent: &Intent) -> Result<(), ApiError> {
    let mode = intent.mode;
    if let Some(due) = invoices::due(uow.conn(), mode, &intent.invoice_id).await?
        && due.status == "open"
    {
        if due.credit_applied > 0 {
            customers::add_balance(
                uow,
                mode,
                &due.customer_id,
                due.currency,
                due.credit_applied,
            )
            .await?;
            invoices::set_credit_applied(uow, &intent.invoice_id, 0).await?;
        }
        invoices::set_status(uow, &intent.invoice_id, "void").await?;
    }
    Ok(())
}

//! Cancelling and resuming a subscription, for every door: Kelviq's `cancel` and `resume`,
//! 4geeks' `DELETE`, the portal. What happens is decided once, by
//! `lifecycle::decide_cancel` and `lifecycle::decide_resume`.

use tollgate_shared::Mode;

use crate::domain::customers::store as customers;
use crate::domain::subscriptions::lifecycle::{self, CancelAt, Cancellation};
use crate::domain::subscriptions::model::{Subscription, SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::store;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::workflows::subscribe::{end_now, lock_subscription};
use crate::workflows::views;

/// Cancels the subscription `id` as `when` asks, in its customer's time. Answers the
/// subscription as it is left.
pub async fn cancel(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    when: CancelAt,
) -> Result<SubscriptionView, SubscriptionError> {
    let sub = lock_subscription(uow, mode, id).await?;
    // "Now" is the customer's: a test-clock customer's dates are checked against it.
    let now = customers::now_of(uow, mode, &sub.customer_id).await?;
    let cancellation = lifecycle::decide_cancel(&sub, when, now)?;
    carry_out(uow, &sub, cancellation, now).await?;
    views::subscription(uow, mode, id).await
}

/// Carries out a decided cancellation of `sub` (its customer locked by the caller).
pub async fn carry_out(
    uow: &mut Uow,
    sub: &Subscription,
    cancellation: Cancellation,
    now: i64,
) -> Result<(), SubscriptionError> {
    match cancellation {
        Cancellation::EndNow => end_now(uow, sub, now).await?,
        Cancellation::Later { at } => {
            store::cancel_later(uow, sub, at, now).await?;
            uow.emit(
                sub.mode,
                EventKind::SubscriptionUpdated,
                Subject::Subscription(sub.id.clone()),
                now,
            );
        }
    }
    Ok(())
}

/// Clears the subscription's scheduled cancellation or plan change. Answers the subscription as
/// it is left.
pub async fn resume(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<SubscriptionView, SubscriptionError> {
    let sub = lock_subscription(uow, mode, id).await?;
    lifecycle::decide_resume(&sub)?;
    let now = uow.now();
    store::clear_pending(uow, &sub, now).await?;
    uow.emit(
        mode,
        EventKind::SubscriptionUpdated,
        Subject::Subscription(sub.id.clone()),
        now,
    );
    views::subscription(uow, mode, id).await
}

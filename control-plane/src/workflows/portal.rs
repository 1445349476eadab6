//! What the portal's forms do, each inside one unit of work. Plan changes, cancellations and
//! resumptions are PayKit's `subscribe()` asked on the customer's behalf: the same decision
//! (`subscriptions::lifecycle::decide`) and the same application (`workflows::subscribe`) as
//! every other door, so an upgrade is charged now with the same proration, a downgrade or a
//! cancellation waits for the period's end, and choosing the current plan again resumes.

use crate::domain::catalog::store as catalog;
use crate::domain::catalog::store::resolve_price;
use crate::domain::customers::store as customers;
use crate::domain::portal::model::{Notice, PortalError, PortalSession, PriceChoice};
use crate::domain::subscriptions::lifecycle::{self, Action, CancelAt, ChangeRequest};
use crate::domain::subscriptions::model::{Subscription, SubscriptionError};
use crate::domain::subscriptions::preview::UpdateAsk;
use crate::domain::subscriptions::store as subscriptions;
use crate::payments::EnteredCard;
use crate::payments::test_cards as payments;
use crate::platform::db::Uow;
use crate::workflows::cancel;
use crate::workflows::subscribe as apply;
use crate::workflows::subscribe::Urls;
use crate::workflows::update;

/// A portal form, validated.
#[derive(Debug, Clone)]
pub enum PortalAction {
    /// Switch to another price of the subscription's group. `expected` is what the preview the
    /// customer confirmed said the card would be charged now, in minor units.
    Switch {
        subscription: String,
        choice: PriceChoice,
        expected: i64,
    },
    Cancel {
        subscription: String,
    },
    Resume {
        subscription: String,
    },
    ReplaceCard {
        card: EnteredCard,
    },
}

/// The subscription `id` if it is a granting one of the session's customer (else
/// [`PortalError::NotYours`]: another customer's subscription is no different from none),
/// with the customer locked for the rest of the unit.
async fn owned(
    uow: &mut Uow,
    session: &PortalSession,
    id: &str,
) -> Result<Subscription, PortalError> {
    let mode = session.mode;
    customers::lock(uow, mode, &session.customer_id).await?;
    let sub = subscriptions::get(uow.conn(), mode, id)
        .await?
        .filter(|s| s.customer_id == session.customer_id)
        .ok_or(PortalError::NotYours)?;
    if !sub.status.is_granting() {
        return Err(SubscriptionError::NotChangeable {
            status: sub.status,
            action: "changing it",
        }
        .into());
    }
    Ok(sub)
}

fn notice_of(action: Action) -> Notice {
    match action {
        Action::Upgraded | Action::QuantityChanged | Action::Created | Action::TrialChanged => {
            Notice::Upgraded
        }
        Action::DowngradeScheduled => Notice::Scheduled,
        Action::CancelScheduled => Notice::CancelScheduled,
        Action::Resumed => Notice::Resumed,
        Action::NoOp | Action::DefaultPlan | Action::CheckoutRequired => Notice::Unchanged,
    }
}

/// Carries out `action` for the session's customer. Runs inside a unit of work: an error (a
/// declined card, a stale preview) rolls everything back.
pub async fn run(
    uow: &mut Uow,
    session: &PortalSession,
    action: &PortalAction,
) -> Result<Notice, PortalError> {
    let mode = session.mode;
    match action {
        PortalAction::Switch {
            subscription,
            choice,
            expected,
        } => {
            let sub = owned(uow, session, subscription).await?;
            let ask = UpdateAsk::to(choice.plan.clone(), choice.period.as_str());
            // What the customer saw must still be what happens: the same preview, under the
            // customer's lock, against what they confirmed.
            let real_now = uow.now();
            let seen = update::preview_update(uow.conn(), mode, &sub.id, &ask, real_now).await?;
            if seen.charged_now_minor != *expected {
                return Err(PortalError::Stale(
                    "The price of this change is not what was shown any more. Nothing was \
                     changed; please review it again."
                        .into(),
                ));
            }
            let change = update::request_for(uow.conn(), &sub, &ask).await?;
            let now = customers::now_of(uow, mode, &sub.customer_id).await?;
            let applied = apply::change(
                uow,
                mode,
                &sub.customer_id,
                change,
                &Urls::default(),
                None,
                now,
            )
            .await?;
            Ok(notice_of(applied.action))
        }
        PortalAction::Cancel { subscription } => {
            let sub = owned(uow, session, subscription).await?;
            if sub.period_end.is_none() {
                // A one-time purchase has no period to end; it is not the portal's to take back.
                return Err(SubscriptionError::NotChangeable {
                    status: sub.status,
                    action: "canceling a one-time purchase",
                }
                .into());
            }
            let now = customers::now_of(uow, mode, &sub.customer_id).await?;
            let free = catalog::default_plans(uow.conn(), mode)
                .await?
                .into_iter()
                .find(|(_, group)| *group == sub.group);
            match free {
                // PayKit: subscribing to the group's free plan is the cancellation path.
                Some((plan, _)) => {
                    let target = resolve_price(uow.conn(), mode, &plan, Some(sub.period.as_str()))
                        .await
                        .map_err(SubscriptionError::from)?;
                    let applied = apply::change(
                        uow,
                        mode,
                        &sub.customer_id,
                        ChangeRequest::to(target),
                        &Urls::default(),
                        None,
                        now,
                    )
                    .await?;
                    Ok(notice_of(applied.action))
                }
                // A group without a free plan: cancel at period end as Kelviq's
                // `CURRENT_PERIOD_ENDS` does.
                None => {
                    let cancellation = lifecycle::decide_cancel(&sub, CancelAt::PeriodEnd, now)?;
                    cancel::carry_out(uow, &sub, cancellation, now).await?;
                    Ok(Notice::CancelScheduled)
                }
            }
        }
        PortalAction::Resume { subscription } => {
            let sub = owned(uow, session, subscription).await?;
            // PayKit: re-subscribing to the current plan clears what is pending.
            let target = resolve_price(uow.conn(), mode, &sub.plan, Some(sub.period.as_str()))
                .await
                .map_err(SubscriptionError::from)?;
            let now = customers::now_of(uow, mode, &sub.customer_id).await?;
            let applied = apply::change(
                uow,
                mode,
                &sub.customer_id,
                ChangeRequest {
                    quantity: Some(sub.quantity),
                    ..ChangeRequest::to(target)
                },
                &Urls::default(),
                None,
                now,
            )
            .await?;
            Ok(notice_of(applied.action))
        }
        PortalAction::ReplaceCard { card } => {
            let (brand, last4, reference) = card.on_file(|c| payments::verify_card(mode, c))?;
            customers::lock(uow, mode, &session.customer_id).await?;
            let now = customers::now_of(uow, mode, &session.customer_id).await?;
            customers::detach_cards(uow, mode, &session.customer_id).await?;
            customers::attach_card(
                uow,
                mode,
                &session.customer_id,
                &brand,
                &last4,
                &reference,
                now,
            )
            .await?;
            Ok(Notice::CardReplaced)
        }
    }
}

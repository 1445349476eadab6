//! Direct starts: a subscription or a one-time purchase started and charged now on the card on
//! file, with no checkout (Kelviq's `subscriptions/create/` and `charges/`). Both go through the
//! one decision, after checking under the customer's lock that the group is free and a card is
//! on file.

use tollgate_shared::Mode;

use crate::domain::catalog::store::resolve_price;
use crate::domain::customers::model::CustomerError;
use crate::domain::customers::store as customers;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::invoices::store as invoices;
use crate::domain::subscriptions::lifecycle::{Action, ChangeRequest};
use crate::domain::subscriptions::model::{SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::preview::FeatureQuantity;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::db::Uow;
use crate::platform::money::Currency;
use crate::platform::period::ChargePeriod;
use crate::platform::validate::{Quantity, invalid};
use crate::workflows::subscribe::{self, Urls};
use crate::workflows::update::quantity_of;
use crate::workflows::views;

/// A one-time purchase, made.
#[derive(Debug)]
pub struct Charged {
    pub purchase: SubscriptionView,
    pub invoice_id: String,
    pub invoice: Option<InvoiceView>,
}

/// Starts `plan` at `period` for an existing customer, charged now on their card. `features`
/// quantities, if any, set the quantity.
pub async fn create_subscription(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    plan: &str,
    period: &str,
    quantity: Option<i64>,
    features: &[FeatureQuantity],
) -> Result<SubscriptionView, SubscriptionError> {
    active_customer(uow, mode, customer_id).await?;
    let target = resolve_price(uow.conn(), mode, plan, Some(period)).await?;
    if target.is_default {
        return Err(invalid(
            "planIdentifier",
            "the group's free default plan needs no subscription",
        )
        .into());
    }
    lock_for_direct_start(uow, mode, customer_id, &target.group).await?;
    let quantity = quantity_of(uow.conn(), mode, &target.plan, features, quantity).await?;
    let (id, _) = start(
        uow,
        mode,
        customer_id,
        ChangeRequest {
            quantity,
            ..ChangeRequest::to(target)
        },
    )
    .await?;
    views::subscription(uow, mode, &id).await
}

/// Buys `plan`'s ONE_TIME price now (or `custom`, an amount in minor units and its currency).
pub async fn charge(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    plan: &str,
    custom: Option<(i64, Currency)>,
    features: &[FeatureQuantity],
) -> Result<Charged, SubscriptionError> {
    active_customer(uow, mode, customer_id).await?;
    let mut target = resolve_price(uow.conn(), mode, plan, Some("ONE_TIME")).await?;
    if target.is_default || target.charge_period != ChargePeriod::OneTime {
        return Err(invalid("planIdentifier", "the plan has no ONE_TIME price").into());
    }
    if let Some((amount, currency)) = custom {
        target.amount_minor = amount;
        target.currency = currency;
    }
    lock_for_direct_start(uow, mode, customer_id, &target.group).await?;
    let quantity = match quantity_of(uow.conn(), mode, &target.plan, features, None).await? {
        Some(q) if !features.is_empty() => Some(Quantity::parse("features", q)?.get()),
        other => other,
    };
    let (id, invoice_id) = start(
        uow,
        mode,
        customer_id,
        ChangeRequest {
            quantity,
            // A charge is paid now: the plan's trial does not apply.
            trial_days: Some(0),
            ..ChangeRequest::to(target)
        },
    )
    .await?;
    let Some(invoice_id) = invoice_id else {
        return Err(SubscriptionError::NoCard(customer_id.to_owned()));
    };
    let invoice = invoices::view(uow.conn(), mode, &invoice_id).await?;
    Ok(Charged {
        purchase: views::subscription(uow, mode, &id).await?,
        invoice_id,
        invoice,
    })
}

/// A direct start needs an existing, unarchived customer.
async fn active_customer(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
) -> Result<(), SubscriptionError> {
    let customer = customers::get(uow.conn(), mode, customer_id).await?;
    if customer.archived {
        return Err(CustomerError::Archived(customer_id.to_owned()).into());
    }
    Ok(())
}

/// What a direct start checks under the customer's lock: no subscription in the target's group
/// yet (409) and a card on file (402).
async fn lock_for_direct_start(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<(), SubscriptionError> {
    customers::lock(uow, mode, customer_id).await?;
    if let Some(current) =
        subscriptions::current_in_group(uow.conn(), mode, customer_id, group).await?
    {
        return Err(SubscriptionError::AlreadySubscribed {
            id: current.id,
            group: group.to_owned(),
        });
    }
    if customers::card_on_file(uow.conn(), mode, customer_id)
        .await?
        .is_none()
    {
        return Err(SubscriptionError::NoCard(customer_id.to_owned()));
    }
    Ok(())
}

/// Runs the decision for a direct start in the customer's time; it must start now. Answers the
/// subscription's id and its first invoice's.
async fn start(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    req: ChangeRequest,
) -> Result<(String, Option<String>), SubscriptionError> {
    let now = customers::now_of(uow, mode, customer_id).await?;
    let applied =
        subscribe::change(uow, mode, customer_id, req, &Urls::default(), None, now).await?;
    match (applied.action, applied.subscription_id) {
        (Action::Created, Some(id)) => Ok((id, applied.invoice_id)),
        _ => Err(SubscriptionError::NoCard(customer_id.to_owned())),
    }
}

//! Changing a subscription in place (Kelviq's `update`) and previewing the change without making
//! it (`update/preview/`, the portal's proration preview): both turn the caller's ask into the
//! same [`ChangeRequest`] ([`request_for`]) and ask the same decision, so the preview shows the
//! invoice the update makes.

use tollgate_shared::Mode;

use crate::domain::catalog::model::CatalogError;
use crate::domain::catalog::store as catalog;
use crate::domain::catalog::store::resolve_price;
use crate::domain::customers::store as customers;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::invoices::store as invoices;
use crate::domain::subscriptions::lifecycle::ChangeRequest;
use crate::domain::subscriptions::model::{Subscription, SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::preview::{
    Context, FeatureQuantity, UpdateAsk, UpdatePreview, feature_quantity, preview,
};
use crate::domain::subscriptions::store;
use crate::platform::db::Uow;
use crate::platform::db::sql::Conn;
use crate::platform::validate::{Quantity, invalid};
use crate::workflows::subscribe::{self, Applied, Urls, lock_subscription};
use crate::workflows::views;

/// What an update did, and the subscription and invoice as it left them.
#[derive(Debug)]
pub struct Updated {
    pub applied: Applied,
    pub subscription: SubscriptionView,
    pub invoice: Option<InvoiceView>,
}

/// Changes the subscription `id` as `ask` says (plan, period, quantity, trial end), in its
/// customer's time, through the one decision.
pub async fn update(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    ask: &UpdateAsk,
) -> Result<Updated, SubscriptionError> {
    let sub = lock_subscription(uow, mode, id).await?;
    changeable(&sub)?;
    let change = request_for(uow.conn(), &sub, ask).await?;
    let now = customers::now_of(uow, mode, &sub.customer_id).await?;
    let applied = subscribe::change(
        uow,
        mode,
        &sub.customer_id,
        change,
        &Urls::default(),
        None,
        now,
    )
    .await?;
    let subscription = views::subscription(uow, mode, id).await?;
    let invoice = match &applied.invoice_id {
        Some(i) => invoices::view(uow.conn(), mode, i).await?,
        None => None,
    };
    Ok(Updated {
        applied,
        subscription,
        invoice,
    })
}

/// Only a granting subscription changes plan.
fn changeable(sub: &Subscription) -> Result<(), SubscriptionError> {
    if !sub.status.is_granting() {
        return Err(SubscriptionError::NotChangeable {
            status: sub.status,
            action: "changing its plan",
        });
    }
    Ok(())
}

/// The change `ask` means for `sub`: the target price resolved in the subscription's mode and
/// checked to be in its group, the feature quantities folded into the quantity. The real update
/// and the preview both decide on what this returns.
pub async fn request_for(
    conn: &mut Conn,
    sub: &Subscription,
    ask: &UpdateAsk,
) -> Result<ChangeRequest, SubscriptionError> {
    let target = resolve_price(
        conn,
        sub.mode,
        &ask.plan_identifier,
        Some(&ask.charge_period),
    )
    .await
    .map_err(SubscriptionError::from)?;
    if target.group != sub.group {
        return Err(invalid(
            "planIdentifier",
            format!(
                "plan '{}' is in group '{}', this subscription is in group '{}'",
                target.plan, target.group, sub.group
            ),
        )
        .into());
    }
    let quantity = quantity_of(conn, sub.mode, &target.plan, &ask.features, ask.quantity).await?;
    let quantity = Quantity::parse_opt("quantity", quantity)?.map(Quantity::get);
    Ok(ChangeRequest {
        quantity,
        proration: ask.proration,
        trial_end: ask.trial_end,
        ..ChangeRequest::to(target)
    })
}

/// The quantity a change asks for: `quantity` itself, or what its `features` quantities set on
/// `plan` (every direct start and change reads them this one way). A feature the catalog does
/// not have is a missing object (404), like a missing plan.
pub async fn quantity_of(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
    asked: &[FeatureQuantity],
    quantity: Option<i64>,
) -> Result<Option<i64>, SubscriptionError> {
    if asked.is_empty() {
        return Ok(quantity);
    }
    let features = catalog::features(conn, mode).await?;
    if let Some(unknown) = asked
        .iter()
        .find(|f| !features.iter().any(|d| d.identifier == f.identifier))
    {
        return Err(SubscriptionError::Catalog(CatalogError::FeatureNotFound(
            unknown.identifier.clone(),
        )));
    }
    let grants = catalog::grants(conn, mode, plan).await?;
    let granted: Vec<&str> = grants
        .iter()
        .filter(|g| g.has_access)
        .map(|g| g.feature_id.as_str())
        .collect();
    Ok(Some(feature_quantity(
        asked, quantity, &features, &granted,
    )?))
}

/// Reads the subscription `id`, the customer's time, pending lines, credit and scheduled
/// price, and previews `ask` on it. Nothing is written: a read connection will do.
pub async fn preview_update(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
    ask: &UpdateAsk,
    real_now: i64,
) -> Result<UpdatePreview, SubscriptionError> {
    let sub = store::get(conn, mode, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))?;
    changeable(&sub)?;
    let req = request_for(conn, &sub, ask).await?;
    let now = customers::now_for(conn, mode, &sub.customer_id, real_now).await?;
    let scheduled = match &sub.scheduled_plan {
        Some(plan) if !sub.cancel_at_period_end => {
            resolve_price(conn, mode, plan, sub.scheduled_period.as_deref())
                .await
                .ok()
        }
        _ => None,
    };
    let ctx = Context {
        pending_lines: invoices::pending_lines(conn, mode, id).await?,
        balance_minor: customers::balance(conn, mode, &sub.customer_id, req.target.currency)
            .await?,
        scheduled,
    };
    Ok(preview(&sub, &req, &ctx, now)?)
}

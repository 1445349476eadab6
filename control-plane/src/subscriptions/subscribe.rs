//! `POST /api/v1/subscribe/`: PayKit's unified `subscribe()`. New subscriptions, upgrades,
//! downgrades, cancel-to-free, resume and no-ops all go through [`super::lifecycle::change`].

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lifecycle::{self, Action, Proration, Request};
use super::{SubscriptionError, SubscriptionView};
use crate::app::AppState;
use crate::auth::Caller;
use crate::billing::customer_now;
use crate::billing::invoices::{self, InvoiceView};
use crate::catalog::store::resolve_price;
use crate::checkout::routes::check_redirect;
use crate::customers::{self, NewCustomer, check_customer_id};
use crate::error::{ApiResult, invalid};
use crate::extract::ApiJson;
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    customer_id: String,
    /// Alias: `planId`.
    #[serde(default, alias = "planId")]
    plan_identifier: Option<String>,
    /// May be left out when the plan has exactly one price.
    #[serde(default)]
    charge_period: Option<String>,
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    success_url: Option<String>,
    #[serde(default)]
    cancel_url: Option<String>,
    #[serde(default)]
    force_checkout: bool,
    #[serde(default)]
    proration_behavior: Option<String>,
    #[serde(default)]
    trial_days: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeResponse {
    /// Set when the customer must pay on the hosted checkout first.
    payment_url: Option<String>,
    /// Present when a charge (or credit) was made now.
    invoice: Option<InvoiceView>,
    /// Reserved for 3-D Secure style steps; always null with the test provider.
    #[schema(value_type = Option<Object>)]
    required_action: Option<Value>,
    /// The subscription acted on; null when the free/default plan simply applies.
    subscription: Option<SubscriptionView>,
    /// What happened: `created`, `checkout_required`, `upgraded`, `downgrade_scheduled`,
    /// `cancel_scheduled`, `resumed`, `quantity_changed`, `no_op`, `default_plan`.
    #[schema(value_type = String)]
    action: Action,
}

/// Subscribe, upgrade, downgrade, cancel to free or resume, in one call (PayKit's `subscribe()`).
///
/// The behaviour table is in docs/billing.md. `paymentUrl` is set when the customer must pay on
/// the hosted checkout first; `invoice` when a charge or credit was made now.
#[utoipa::path(
    post,
    path = "/api/v1/subscribe",
    tag = "subscriptions",
    operation_id = "subscribe",
    request_body = SubscribeRequest,
    responses(
        (status = 200, description = "What happened, and the subscription it happened to", body = SubscribeResponse),
        (status = 400, description = "A field is invalid (unknown plan or period, bad URL…)", body = ErrorEnvelope),
        (status = 402, description = "The card on file was declined; nothing changed", body = ErrorEnvelope),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SubscribeRequest>,
) -> ApiResult<Json<SubscribeResponse>> {
    check_customer_id(&req.customer_id)?;
    let plan = req
        .plan_identifier
        .as_deref()
        .ok_or_else(|| invalid("planIdentifier", "required (alias planId)"))?;
    if let Some(url) = &req.success_url {
        check_redirect("successUrl", url, &state.config.redirect_hosts)?;
    }
    if let Some(url) = &req.cancel_url {
        check_redirect("cancelUrl", url, &state.config.redirect_hosts)?;
    }
    if req.quantity.is_some_and(|q| !(1..=10_000).contains(&q)) {
        return Err(invalid("quantity", "must be between 1 and 10000").into());
    }
    if req.trial_days.is_some_and(|d| d > 730) {
        return Err(invalid("trialDays", "must be between 0 and 730").into());
    }
    let proration = Proration::parse(req.proration_behavior.as_deref()).ok_or_else(|| {
        invalid(
            "prorationBehavior",
            "must be one of IMMEDIATE_CHARGE, PRORATE_NEXT_INVOICE, NO_PRORATION",
        )
    })?;
    let mode = caller.mode;
    let real_now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let target = resolve_price(tx.conn(), mode, plan, req.charge_period.as_deref())
        .await
        .map_err(SubscriptionError::from)?;
    if customers::find(tx.conn(), mode, &req.customer_id)
        .await?
        .is_none()
    {
        let empty = Value::Object(Default::default());
        customers::insert(
            &mut tx,
            mode,
            real_now,
            NewCustomer {
                customer_id: &req.customer_id,
                name: None,
                email: None,
                metadata: &empty,
                test_clock: None,
            },
        )
        .await?;
    }
    let now = customer_now(tx.conn(), mode, &req.customer_id, real_now).await?;
    let outcome = lifecycle::change(
        &mut tx,
        now,
        Request {
            mode,
            customer_id: &req.customer_id,
            target,
            quantity: req.quantity,
            force_checkout: req.force_checkout,
            success_url: req.success_url.as_deref(),
            cancel_url: req.cancel_url.as_deref(),
            proration,
            trial_days: req.trial_days,
        },
    )
    .await?;
    let subscription = match &outcome.subscription_id {
        Some(id) => Some(super::get(tx.conn(), mode, id).await?),
        None => None,
    };
    let invoice = match &outcome.invoice_id {
        Some(id) => invoices::view(tx.conn(), mode, id).await?,
        None => None,
    };
    state.commit(tx).await?;
    Ok(Json(SubscribeResponse {
        payment_url: outcome
            .checkout_session
            .map(|s| crate::checkout::checkout_url(&state.config.public_url, &s)),
        invoice,
        required_action: None,
        subscription,
        action: outcome.action,
    }))
}

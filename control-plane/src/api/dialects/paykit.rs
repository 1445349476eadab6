//! `POST /api/v1/subscribe/`: PayKit's unified `subscribe()`. New subscriptions, upgrades,
//! downgrades, cancel-to-free, resume and no-ops all go through the one decision
//! (`subscriptions::lifecycle`) and its application.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::idempotency::Idem;
use crate::api::settlement::{self, Waiting};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::checkout::model::checkout_url;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::subscriptions::lifecycle::{Action, Proration};
use crate::domain::subscriptions::model::SubscriptionView;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, Quantity, RedirectUrl, TrialDays, invalid};
use crate::workflows::subscribe::{self, Ask, Urls};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The customer (1-255 characters, created if new).
    #[schema(example = "user-123", format = "external-id")]
    customer_id: String,
    /// The plan to move to (required; alias `planId`).
    #[serde(default, alias = "planId")]
    #[schema(example = "pro", format = "identifier")]
    plan_identifier: Option<String>,
    /// May be left out when the plan has exactly one price.
    #[serde(default)]
    #[schema(example = "MONTHLY", format = "charge-period")]
    charge_period: Option<String>,
    /// Seats, 1-10000 (default 1, or the current quantity).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    /// Required when the customer must pay on the hosted checkout (no card on file).
    #[serde(default)]
    #[schema(example = "https://app.example.com/welcome", format = "http-url")]
    success_url: Option<String>,
    #[serde(default)]
    #[schema(format = "http-url")]
    cancel_url: Option<String>,
    #[serde(default)]
    force_checkout: bool,
    /// `IMMEDIATE_CHARGE` (default), `PRORATE_NEXT_INVOICE` or `NO_PRORATION`.
    #[serde(default)]
    #[schema(format = "proration")]
    proration_behavior: Option<String>,
    /// 0-730; overrides the plan's trial for a new subscription.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 730)]
    trial_days: Option<i64>,
}

impl CrossFieldRules for SubscribeRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // `planId` is accepted as an alias.
        vec![
            ("/required", json!(["customerId", "planIdentifier"])),
            ("/properties/planIdentifier/type", json!("string")),
        ]
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeResponse {
    /// Set when the customer must pay on the hosted checkout first.
    payment_url: Option<String>,
    /// Present when a charge (or credit) was made now.
    invoice: Option<InvoiceView>,
    /// `{"type": "redirect_to_url", "url": …}` when the card needs the customer to authenticate
    /// (3-D Secure) on the hosted page at `url`; the subscription stays `incomplete` until then.
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
    Idem(claim): Idem,
    ApiJson(req): ApiJson<SubscribeRequest>,
) -> Result<Reply, ApiError> {
    let customer_id = CustomerId::parse("customerId", &req.customer_id)?;
    let plan = req
        .plan_identifier
        .clone()
        .ok_or_else(|| invalid("planIdentifier", "required (alias planId)"))?;
    let hosts = &state.config.redirect_hosts;
    let urls = Urls {
        success: RedirectUrl::parse_opt("successUrl", req.success_url.as_deref(), hosts)?,
        cancel: RedirectUrl::parse_opt("cancelUrl", req.cancel_url.as_deref(), hosts)?,
    };
    let quantity = Quantity::parse_opt("quantity", req.quantity)?.map(Quantity::get);
    let trial_days = TrialDays::parse_opt("trialDays", req.trial_days)?.map(TrialDays::get);
    let proration = Proration::parse(req.proration_behavior.as_deref()).ok_or_else(|| {
        invalid(
            "prorationBehavior",
            format!("must be one of {}", Proration::NAMES.join(", ")),
        )
    })?;
    let ask = Ask {
        plan,
        period: req.charge_period.clone(),
        quantity,
        trial_days,
        force_checkout: req.force_checkout,
        proration,
    };
    let mode = caller.mode;
    let public_url = state.config.public_url.clone();
    let key = customer_id.as_str().to_owned();
    let waiting = Waiting::default();
    let noted = waiting.clone();
    let first = state
        .writer
        .reply_for(Some(&key), claim.clone(), "subscribe", async move |uow| {
            let done = subscribe::subscribe(uow, mode, customer_id.as_str(), &ask, &urls).await?;
            noted.note(uow);
            let (applied, subscription, invoice) = (done.applied, done.subscription, done.invoice);
            Ok(Reply::ok(&SubscribeResponse {
                payment_url: applied
                    .checkout_session
                    .as_deref()
                    .map(|s| checkout_url(&public_url, s)),
                invoice,
                required_action: None,
                subscription,
                action: applied.action,
            }))
        })
        .await;
    Ok(settlement::settle_then_views(&state, mode, claim, first, &waiting).await)
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(subscribe))
}

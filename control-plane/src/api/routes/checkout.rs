//! `POST /api/v1/checkout/` (every Kelviq parameter) and the test-mode completion helper.

use std::net::IpAddr;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::Mode;

use crate::workflows::checkout as completion;

use crate::api::idempotency::Idem;
use crate::api::settlement::{self, Waiting};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::checkout::model::{CheckoutError, checkout_url};
use crate::domain::customers::model::check_email;
use crate::domain::payments::model::IntentStatus;
use crate::domain::subscriptions::model::SubscriptionView;
use crate::domain::subscriptions::store as subscriptions;
use crate::payments::EnteredCard;
use crate::payments::test_cards::TestCard;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::{ApiJson, ApiPath};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, Invalid, Quantity, RedirectUrl, TrialDays, invalid};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A checkout session (Kelviq's parameters). One of `customerId` and `email` is required; a
/// customer that does not exist yet is created. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCheckout {
    /// The plan's identifier.
    #[schema(example = "pro", format = "identifier")]
    plan_identifier: String,
    /// One of the plan's price periods.
    #[schema(example = "MONTHLY", format = "charge-period")]
    charge_period: String,
    /// Where the hosted page sends the payer after paying: an absolute http(s) URL without
    /// credentials or control characters (`{CHECKOUT_SESSION_ID}` is filled in).
    #[schema(example = "https://app.example.com/welcome", format = "http-url")]
    success_url: String,
    /// The customer (created if new). One of `customerId` and `email` is required.
    #[serde(default)]
    #[schema(example = "user-123", format = "external-id")]
    customer_id: Option<String>,
    /// The payer's email: finds (or creates) the customer when `customerId` is absent.
    #[serde(default)]
    #[schema(example = "ada@example.com", format = "email-address")]
    email: Option<String>,
    /// An absolute http(s) URL the page links back to.
    #[serde(default)]
    #[schema(format = "http-url")]
    cancel_url: Option<String>,
    /// Seats (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    /// Overrides the plan's trial.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 730)]
    trial_days: Option<i64>,
    #[serde(default)]
    #[schema(format = "external-id")]
    offering_id: Option<String>,
    #[serde(default)]
    #[schema(format = "external-id")]
    pricing_table_id: Option<String>,
    /// The payer's IPv4 or IPv6 address.
    #[serde(default)]
    ip_address: Option<String>,
}

impl CrossFieldRules for CreateCheckout {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "",
                json!({"anyOf": [
                    {"required": ["customerId"], "properties": {"customerId": {"type": "string"}}},
                    {"required": ["email"], "properties": {"email": {"type": "string"}}}
                ]}),
            ),
            (
                "/properties/ipAddress",
                json!({"anyOf": [
                    {"type": "string", "format": "ipv4"},
                    {"type": "string", "format": "ipv6"},
                    {"type": "null"}
                ]}),
            ),
        ]
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutCreated {
    checkout_url: String,
    checkout_session_id: String,
}

fn check_optional_id(field: &str, v: &Option<String>) -> Result<(), Invalid> {
    match v {
        Some(s) if s.is_empty() || s.chars().count() > 255 || s.chars().any(char::is_control) => {
            Err(invalid(
                field,
                "must be 1-255 characters without control characters",
            ))
        }
        _ => Ok(()),
    }
}

/// Create a checkout session.
///
/// Answers the URL of the hosted checkout page, where the payer enters a card.
#[utoipa::path(
    post,
    path = "/api/v1/checkout",
    tag = "checkout",
    operation_id = "createCheckoutSession",
    request_body = CreateCheckout,
    responses(
        (status = 201, description = "The session was opened", body = CheckoutCreated),
        (status = 400, description = "A field is invalid, or the plan has no such price", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateCheckout>,
) -> Result<Reply, ApiError> {
    let hosts = &state.config.redirect_hosts;
    let success_url = RedirectUrl::parse("successUrl", &req.success_url, hosts)?;
    let cancel_url = RedirectUrl::parse_opt("cancelUrl", req.cancel_url.as_deref(), hosts)?;
    let quantity = Quantity::parse_opt("quantity", req.quantity)?.map_or(1, Quantity::get);
    let trial_days = TrialDays::parse_opt("trialDays", req.trial_days)?;
    check_optional_id("offeringId", &req.offering_id)?;
    check_optional_id("pricingTableId", &req.pricing_table_id)?;
    if let Some(ip) = &req.ip_address {
        ip.parse::<IpAddr>()
            .map_err(|_| invalid("ipAddress", "must be an IPv4 or IPv6 address"))?;
    }
    let customer_id = req
        .customer_id
        .as_deref()
        .map(|id| CustomerId::parse("customerId", id))
        .transpose()?;
    if let Some(email) = &req.email {
        check_email(email)?;
    }
    if customer_id.is_none() && req.email.is_none() {
        return Err(invalid("customerId", "either customerId or email is required").into());
    }
    let mode = caller.mode;
    let public_url = state.config.public_url.clone();
    Ok(state
        .writer
        .reply(claim, "create_checkout", async move |uow| {
            let open = completion::Open {
                customer_id: customer_id.as_ref().map(CustomerId::as_str),
                email: req.email.as_deref(),
                plan: &req.plan_identifier,
                period: &req.charge_period,
                quantity,
                trial_days: trial_days.map(TrialDays::get),
                success_url: &success_url,
                cancel_url: cancel_url.as_ref(),
                offering_id: req.offering_id.as_deref(),
                pricing_table_id: req.pricing_table_id.as_deref(),
                ip_address: req.ip_address.as_deref(),
            };
            let session_id = completion::open(uow, mode, &open).await?;
            Ok(Reply::created(&CheckoutCreated {
                checkout_url: checkout_url(&public_url, &session_id),
                checkout_session_id: session_id,
            }))
        })
        .await)
}

/// How to pay a session. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    /// `pm_card_visa` (default, pays), `pm_card_chargeDeclined` or
    /// `pm_card_chargeCustomerFail` (declined).
    #[serde(default)]
    #[schema(format = "test-payment-method")]
    payment_method: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteResponse {
    checkout_session_id: String,
    status: &'static str,
    redirect_url: String,
    subscription: SubscriptionView,
}

/// Complete a checkout session (test mode).
///
/// Test mode only: pays a session as the hosted page would, with a test payment method.
#[utoipa::path(
    post,
    path = "/api/v1/checkout/{session_id}/complete",
    tag = "checkout",
    operation_id = "completeCheckoutSession",
    params(("session_id" = String, Path, description = "The checkout session id (`cs_test_…`)")),
    request_body(content = CompleteRequest, description = "Every field is optional; an empty body reads as `{}`"),
    responses(
        (status = 200, description = "Paid; the subscription has started", body = CompleteResponse),
        (status = 400, description = "Unknown `paymentMethod`", body = ErrorEnvelope),
        (status = 402, description = "The test card was declined", body = ErrorEnvelope),
        (status = 403, description = "A live-mode key: completion is for test mode only", body = ErrorEnvelope),
        (status = 404, description = "No such checkout session", body = ErrorEnvelope),
        (status = 409, description = "The session is already complete, or expired (`--checkout-ttl-secs`), or can no longer be paid", body = ErrorEnvelope),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiPath(session_id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Reply, ApiError> {
    if caller.mode != Mode::Test {
        return Err(CheckoutError::TestModeOnly.into());
    }
    let token = req.payment_method.as_deref().unwrap_or("pm_card_visa");
    let card = TestCard::from_token(token).ok_or_else(|| {
        invalid(
            "paymentMethod",
            "use pm_card_visa, pm_card_chargeDeclined, pm_card_chargeCustomerFail, \
             pm_card_authenticationRequired or pm_card_visa_chargeDeclinedInsufficientFunds",
        )
    })?;
    let mode = caller.mode;
    let ttl = state.config.checkout_ttl_secs;
    let waiting = Waiting::default();
    let noted = waiting.clone();
    let first = state
        .writer
        .reply(claim.clone(), "complete_checkout", async move |uow| {
            let done =
                completion::complete(uow, mode, &session_id, &EnteredCard::Test(Some(card)), ttl)
                    .await?;
            noted.note(uow);
            let subscription = subscriptions::view(uow.conn(), mode, &done.subscription_id)
                .await?
                .ok_or_else(|| CheckoutError::NotFound(session_id.clone()))?;
            Ok(Reply::ok(&CompleteResponse {
                checkout_session_id: session_id.clone(),
                status: "complete",
                redirect_url: done.session.success_redirect(),
                subscription,
            }))
        })
        .await;
    let public_url = state.config.public_url.clone();
    Ok(settlement::settle_then(
        &state,
        mode,
        claim,
        first,
        &waiting,
        async move |uow, intent, body| {
            let mut body = settlement::patch_views(uow, intent, body, &public_url).await?;
            if intent.status == IntentStatus::RequiresAction {
                // Paid once the customer authenticates on the hosted page.
                body["status"] = json!("requires_action");
                body["nextActionUrl"] = json!(settlement::action_url(&public_url, &intent.id));
            }
            Ok(Reply::ok(&body))
        },
    )
    .await)
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(complete))
}

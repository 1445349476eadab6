//! `POST /api/v1/checkout/` (every Kelviq parameter) and the test-mode completion helper.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_shared::Mode;

use super::payments::TestCard;
use super::{CheckoutError, success_redirect};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog::store::resolve_price;
use crate::customers::{self, NewCustomer, check_customer_id, check_email};
use crate::error::{ApiResult, Invalid, invalid};
use crate::extract::{ApiJson, ApiPath};
use crate::openapi::ErrorEnvelope;
use crate::subscriptions::{self, SubscriptionView};

/// A checkout session (Kelviq's parameters). One of `customerId` and `email` is required; a
/// customer that does not exist yet is created. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCheckout {
    plan_identifier: String,
    /// One of the plan's price periods, e.g. `MONTHLY`.
    charge_period: String,
    /// Where the hosted page sends the payer after paying: an absolute http(s) URL.
    success_url: String,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// An absolute http(s) URL the page links back to.
    #[serde(default)]
    cancel_url: Option<String>,
    /// 1-10000 (default 1).
    #[serde(default)]
    quantity: Option<i64>,
    /// 0-730; overrides the plan's trial.
    #[serde(default)]
    trial_days: Option<i64>,
    #[serde(default)]
    offering_id: Option<String>,
    #[serde(default)]
    pricing_table_id: Option<String>,
    /// The payer's IPv4 or IPv6 address.
    #[serde(default)]
    ip_address: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutCreated {
    checkout_url: String,
    checkout_session_id: String,
}

/// Redirect targets must be absolute http(s) URLs, on an allowed host when a list is set.
pub fn check_redirect(field: &str, url: &str, allowed_hosts: &[String]) -> Result<(), Invalid> {
    let parsed = url::Url::parse(url)
        .map_err(|_| invalid(field, "must be an absolute http or https URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(field, "must be an absolute http or https URL"));
    }
    if !allowed_hosts.is_empty()
        && !parsed
            .host_str()
            .is_some_and(|h| allowed_hosts.iter().any(|a| a == h))
    {
        return Err(invalid(field, "host is not in the allowed redirect hosts"));
    }
    Ok(())
}

fn check_optional_id(field: &str, v: &Option<String>) -> Result<(), Invalid> {
    match v {
        Some(s) if s.is_empty() || s.len() > 255 => Err(invalid(field, "must be 1-255 characters")),
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
    ApiJson(req): ApiJson<CreateCheckout>,
) -> ApiResult<(StatusCode, Json<CheckoutCreated>)> {
    check_redirect("successUrl", &req.success_url, &state.config.redirect_hosts)?;
    if let Some(cancel) = &req.cancel_url {
        check_redirect("cancelUrl", cancel, &state.config.redirect_hosts)?;
    }
    let quantity = req.quantity.unwrap_or(1);
    if !(1..=10_000).contains(&quantity) {
        return Err(invalid("quantity", "must be between 1 and 10000").into());
    }
    if req.trial_days.is_some_and(|d| !(0..=730).contains(&d)) {
        return Err(invalid("trialDays", "must be between 0 and 730").into());
    }
    check_optional_id("offeringId", &req.offering_id)?;
    check_optional_id("pricingTableId", &req.pricing_table_id)?;
    if let Some(ip) = &req.ip_address {
        ip.parse::<IpAddr>()
            .map_err(|_| invalid("ipAddress", "must be an IPv4 or IPv6 address"))?;
    }
    if let Some(id) = &req.customer_id {
        check_customer_id(id)?;
    }
    if let Some(email) = &req.email {
        check_email(email)?;
    }
    if req.customer_id.is_none() && req.email.is_none() {
        return Err(invalid("customerId", "either customerId or email is required").into());
    }

    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let price = resolve_price(
        tx.conn(),
        caller.mode,
        &req.plan_identifier,
        Some(&req.charge_period),
    )
    .await
    .map_err(CheckoutError::from)?;
    if price.is_default {
        return Err(invalid("planIdentifier", "the free default plan needs no checkout").into());
    }
    // Auto-create the customer from `customerId`, or find/create one by `email`.
    let existing = match (&req.customer_id, &req.email) {
        (Some(id), _) => customers::find(tx.conn(), caller.mode, id).await?,
        (None, Some(email)) => customers::find_by_email(tx.conn(), caller.mode, email).await?,
        (None, None) => None,
    };
    let customer_id = match existing {
        Some(c) => c.customer_id,
        None => {
            let id = req
                .customer_id
                .clone()
                .unwrap_or_else(|| format!("cus_{}", uuid::Uuid::new_v4().simple()));
            let empty = Value::Object(Default::default());
            customers::insert(
                &mut tx,
                caller.mode,
                now,
                NewCustomer {
                    customer_id: &id,
                    name: None,
                    email: req.email.as_deref(),
                    metadata: &empty,
                    test_clock: None,
                },
            )
            .await?;
            id
        }
    };
    super::ensure_free_group(&mut tx, caller.mode, &customer_id, &price.group).await?;
    let session_id = format!("cs_{}_{}", caller.mode, uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO checkout_sessions (id, mode, customer_id, plan_identifier, charge_period, quantity, trial_days,
           success_url, cancel_url, offering_id, pricing_table_id, ip_address, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
    )
    .bind(&session_id)
    .bind(caller.mode.as_str())
    .bind(&customer_id)
    .bind(&req.plan_identifier)
    .bind(&req.charge_period)
    .bind(quantity)
    .bind(req.trial_days)
    .bind(&req.success_url)
    .bind(&req.cancel_url)
    .bind(&req.offering_id)
    .bind(&req.pricing_table_id)
    .bind(&req.ip_address)
    .bind(now)
    .execute(tx.conn())
    .await?;
    state.commit(tx).await?;
    let checkout_url = format!("{}/checkout/{session_id}/", state.config.public_url);
    Ok((
        StatusCode::CREATED,
        Json(CheckoutCreated {
            checkout_url,
            checkout_session_id: session_id,
        }),
    ))
}

/// How to pay a session. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    /// `pm_card_visa` (default, pays), `pm_card_chargeDeclined` or
    /// `pm_card_chargeCustomerFail` (declined).
    #[serde(default)]
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
        (status = 409, description = "The session is already complete", body = ErrorEnvelope),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(session_id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Json<CompleteResponse>> {
    if caller.mode != Mode::Test {
        return Err(CheckoutError::TestModeOnly.into());
    }
    let token = req.payment_method.as_deref().unwrap_or("pm_card_visa");
    let card = TestCard::from_token(token).ok_or_else(|| {
        invalid(
            "paymentMethod",
            "use pm_card_visa, pm_card_chargeDeclined or pm_card_chargeCustomerFail",
        )
    })?;
    let done = super::complete(&state, caller.mode, &session_id, Some(card)).await?;
    let mut conn = state.db.pool.acquire().await?;
    let subscription = subscriptions::get(&mut conn, caller.mode, &done.subscription_id).await?;
    Ok(Json(CompleteResponse {
        checkout_session_id: session_id,
        status: "complete",
        redirect_url: success_redirect(&done.session),
        subscription,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_must_be_absolute_http() {
        assert!(check_redirect("successUrl", "https://app.example.com/ok", &[]).is_ok());
        assert!(check_redirect("successUrl", "/relative", &[]).is_err());
        assert!(check_redirect("successUrl", "javascript:alert(1)", &[]).is_err());
        assert!(check_redirect("successUrl", "ftp://x.example.com/", &[]).is_err());
        let allowed = vec!["app.example.com".to_owned()];
        assert!(check_redirect("successUrl", "https://evil.example.net/", &allowed).is_err());
        assert!(check_redirect("successUrl", "https://app.example.com/", &allowed).is_ok());
    }
}

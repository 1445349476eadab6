//! `POST /api/v1/charges/`: Kelviq's one-off charge — a ONE_TIME plan bought now on the card on
//! file (at its price, or at a custom amount), through the same decision as every other door.
//! It yields a paid invoice (reason `subscription_create`) and a ONE_TIME subscription granting the plan,
//! or a 402 when there is no card or it is declined (then nothing changes).

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::dialects::kelviq::changes::{FeatureQuantityRequest, feature_quantities};
use crate::api::idempotency::Idem;
use crate::api::settlement::{Waiting, settle_then};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::invoices::store as invoices;
use crate::domain::refunds::model::minor_of;
use crate::domain::subscriptions::model::SubscriptionView;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::money::{Currency, MAX_AMOUNT_MINOR};
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, check_len, invalid};
use crate::workflows::{direct, views};
use serde_json::json;

/// Kelviq's charge body. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeRequest {
    /// A plan with a ONE_TIME price.
    #[schema(example = "sso-lifetime", format = "identifier")]
    plan_identifier: String,
    /// `ONE_TIME`.
    #[schema(pattern = "^ONE_TIME$")]
    charge_period: String,
    /// An existing customer with a card on file.
    #[schema(example = "user-789", format = "external-id")]
    customer_id: String,
    /// Quantities of the plan's CUSTOMIZABLE features; they set the quantity bought.
    #[serde(default)]
    #[schema(max_items = 64)]
    features: Option<Vec<FeatureQuantityRequest>>,
    /// With `customAmount`: its currency (ISO 4217).
    #[serde(default)]
    #[schema(example = "usd", format = "currency")]
    currency_code: Option<String>,
    /// Charge this (major unit, a number) instead of the plan's price; needs `currencyCode`.
    #[serde(default)]
    #[schema(minimum = 0.01, maximum = 10000000000.0, multiple_of = 0.01)]
    custom_amount: Option<f64>,
    /// `INCLUSIVE` or `EXCLUSIVE`; accepted and ignored (Tollgate computes no tax).
    #[serde(default)]
    #[schema(pattern = "^(INCLUSIVE|EXCLUSIVE)$")]
    tax_behavior: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(max_length = 64)]
    ip_address: Option<String>,
}

impl CrossFieldRules for ChargeRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // A custom amount comes with its currency, and only with it (null reads as absent).
        vec![
            ("/properties/customAmount/type", json!("number")),
            ("/properties/currencyCode/type", json!("string")),
            (
                "/dependentRequired",
                json!({"customAmount": ["currencyCode"], "currencyCode": ["customAmount"]}),
            ),
        ]
    }
}

/// Kelviq's `CreateChargeResponse` (the purchase, shaped as a subscription) with the paid
/// invoice beside it; `orderId` is what a refund takes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeResponse {
    #[serde(flatten)]
    purchase: SubscriptionView,
    /// The paid invoice's id.
    order_id: String,
    invoice: Option<InvoiceView>,
}

/// Charge a customer's card on file once.
///
/// Buys a ONE_TIME plan now (for life, like a checkout would), at its price or at
/// `customAmount`. A customer who already owns a plan of that group gets a 409.
#[utoipa::path(
    post,
    path = "/api/v1/charges",
    tag = "invoices",
    operation_id = "createCharge",
    request_body = ChargeRequest,
    responses(
        (status = 201, description = "The purchase and its paid invoice", body = ChargeResponse),
        (status = 400, description = "A field is invalid, or the plan has no ONE_TIME price", body = ErrorEnvelope),
        (status = 402, description = "No card on file, or the card was declined; nothing changed", body = ErrorEnvelope),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
        (status = 409, description = "The customer already has a plan in the group, or is archived", body = ErrorEnvelope),
    )
)]
pub async fn create_charge(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<ChargeRequest>,
) -> Result<Reply, ApiError> {
    let customer_id = CustomerId::parse("customerId", &req.customer_id)?.into_string();
    check_len("planIdentifier", Some(&req.plan_identifier), 64)?;
    check_len("ipAddress", req.ip_address.as_deref(), 64)?;
    if req.charge_period != "ONE_TIME" {
        return Err(invalid("chargePeriod", "a charge is ONE_TIME").into());
    }
    if let Some(t) = req.tax_behavior.as_deref()
        && t != "INCLUSIVE"
        && t != "EXCLUSIVE"
    {
        return Err(invalid("taxBehavior", "must be INCLUSIVE or EXCLUSIVE").into());
    }
    let custom = match (req.custom_amount, req.currency_code.as_deref()) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid("customAmount", "required with currencyCode").into());
        }
        (Some(_), None) => {
            return Err(invalid("currencyCode", "required with customAmount").into());
        }
        (Some(amount), Some(code)) => {
            let currency = Currency::parse(code)
                .ok_or_else(|| invalid("currencyCode", "must be a 3-letter ISO 4217 code"))?;
            let minor = minor_of("customAmount", amount, currency)?;
            if minor > MAX_AMOUNT_MINOR {
                return Err(invalid("customAmount", "is too large").into());
            }
            Some((minor, currency))
        }
    };
    let asked = feature_quantities(req.features)?;
    let mode = caller.mode;
    let key = customer_id.clone();
    let waiting = Waiting::default();
    let noted = waiting.clone();
    let first = state
        .writer
        .reply_for(
            Some(&key),
            claim.clone(),
            "create_charge",
            async move |uow| {
                let charged = direct::charge(
                    uow,
                    mode,
                    &customer_id,
                    &req.plan_identifier,
                    custom,
                    &asked,
                )
                .await?;
                noted.note(uow);
                Ok(Reply::created(&ChargeResponse {
                    purchase: charged.purchase,
                    order_id: charged.invoice_id,
                    invoice: charged.invoice,
                }))
            },
        )
        .await;
    Ok(settle_then(
        &state,
        mode,
        claim,
        first,
        &waiting,
        async move |uow, intent, _| {
            let id = intent.subscription_id.clone().unwrap_or_default();
            Ok(Reply::created(&ChargeResponse {
                purchase: views::subscription(uow, intent.mode, &id).await?,
                order_id: intent.invoice_id.clone(),
                invoice: invoices::view(uow.conn(), intent.mode, &intent.invoice_id).await?,
            }))
        },
    )
    .await)
}

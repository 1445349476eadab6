//! `POST /api/v1/subscriptions/create/`: Kelviq's direct create, started and charged now on the
//! customer's card on file, through the same decision as every other door.

use axum::extract::State;
use serde::Deserialize;

use crate::api::dialects::kelviq::changes::{FeatureQuantityRequest, feature_quantities};
use crate::api::idempotency::Idem;
use crate::api::settlement::{Waiting, settle_then};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::subscriptions::model::SubscriptionView;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::{CustomerId, Quantity, RedirectUrl, check_len};
use crate::workflows::{direct, views};

/// Kelviq's create body. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateSubscriptionRequest)]
pub struct CreateRequest {
    #[schema(example = "pro", format = "identifier")]
    plan_identifier: String,
    /// One of the plan's price periods.
    #[schema(example = "MONTHLY", format = "charge-period")]
    charge_period: String,
    /// An existing customer with a card on file.
    #[schema(example = "user-456", format = "external-id")]
    customer_id: String,
    /// Validated when given, otherwise unused: a direct create never redirects.
    #[serde(default)]
    #[schema(format = "http-url")]
    success_url: Option<String>,
    /// Quantities of the plan's CUSTOMIZABLE features; they set the subscription's quantity.
    #[serde(default)]
    #[schema(max_items = 64)]
    features: Option<Vec<FeatureQuantityRequest>>,
    /// 1-10000 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(max_length = 64)]
    ip_address: Option<String>,
}

/// Create a subscription directly.
///
/// Starts the plan now on the customer's card on file and charges the first period (or starts
/// the plan's trial). A customer without a card gets a 402 (use checkout); one who already has
/// a subscription in the plan's group gets a 409 (use update).
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/create",
    tag = "subscriptions",
    operation_id = "createSubscription",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "The subscription, started", body = SubscriptionView),
        (status = 400, description = "A field is invalid, or the plan is the free default", body = ErrorEnvelope),
        (status = 402, description = "No card on file, or the card was declined; nothing changed", body = ErrorEnvelope),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
        (status = 409, description = "The customer already has a subscription in the group, or is archived", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<Reply, ApiError> {
    let customer_id = CustomerId::parse("customerId", &req.customer_id)?.into_string();
    check_len("planIdentifier", Some(&req.plan_identifier), 64)?;
    check_len("chargePeriod", Some(&req.charge_period), 32)?;
    check_len("ipAddress", req.ip_address.as_deref(), 64)?;
    RedirectUrl::parse_opt(
        "successUrl",
        req.success_url.as_deref(),
        &state.config.redirect_hosts,
    )?;
    let quantity = Quantity::parse_opt("quantity", req.quantity)?.map(Quantity::get);
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
            "create_subscription",
            async move |uow| {
                let subscription = direct::create_subscription(
                    uow,
                    mode,
                    &customer_id,
                    &req.plan_identifier,
                    &req.charge_period,
                    quantity,
                    &asked,
                )
                .await?;
                noted.note(uow);
                Ok(Reply::created(&subscription))
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
            Ok(Reply::created(
                &views::subscription(uow, intent.mode, &id).await?,
            ))
        },
    )
    .await)
}

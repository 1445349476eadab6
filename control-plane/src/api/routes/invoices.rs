//! `/api/v1/invoices/`, `/api/v1/customers/{customerId}/payment-methods/` and Kelviq's
//! `/api/v1/payment-methods/` list.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::{ErrorKind, Mode};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::customers::store as customers;
use crate::domain::idempotency::model::IdemClaim;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::invoices::store::{list_ids, view};
use crate::domain::payments::model::Decline;
use crate::payments::SavedMethod;
use crate::payments::test_cards::TEST_CARD_BRAND;
use crate::payments::test_cards::TestCard;
use crate::platform::clock::rfc3339;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::invalid;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's invoices.
    #[serde(alias = "customerId")]
    #[param(max_length = 255)]
    customer_id: Option<String>,
    /// Only this subscription's invoices.
    #[serde(alias = "subscriptionId")]
    #[param(max_length = 255)]
    subscription_id: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// Newest first.
/// List invoices, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/invoices",
    tag = "invoices",
    operation_id = "listInvoices",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of invoices", body = Paginated<InvoiceView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<InvoiceView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (ids, count) = list_ids(
        &mut conn,
        caller.mode,
        q.customer_id.as_deref(),
        q.subscription_id.as_deref(),
        page.limit(),
        page.offset(),
    )
    .await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = view(&mut conn, caller.mode, &id).await? {
            items.push(v);
        }
    }
    let base = list_url(
        &state.config.public_url,
        "/api/v1/invoices/",
        &[
            ("customer_id", q.customer_id.as_deref()),
            ("subscription_id", q.subscription_id.as_deref()),
        ],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Get an invoice.
#[utoipa::path(
    get,
    path = "/api/v1/invoices/{id}",
    tag = "invoices",
    operation_id = "getInvoice",
    params(("id" = String, Path, description = "The invoice id (`in_…`)")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceView),
        (status = 404, description = "No such invoice", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<InvoiceView>> {
    let mut conn = state.db.read().await?;
    view(&mut conn, caller.mode, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("invoice '{id}' not found")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachRequest {
    /// `pm_card_visa`, `pm_card_chargeDeclined` or `pm_card_chargeCustomerFail`.
    #[schema(example = "pm_card_visa", format = "test-payment-method")]
    token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodView {
    id: String,
    customer_id: String,
    brand: String,
    last4: String,
}

/// Test mode: puts a test card on file. `pm_card_chargeDeclined` is refused as Stripe refuses
/// it; `pm_card_chargeCustomerFail` attaches and then fails every charge.
/// Put a test card on file (test mode).
#[utoipa::path(
    post,
    path = "/api/v1/customers/{customer_id}/payment-methods",
    tag = "customers",
    operation_id = "attachPaymentMethod",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    request_body = AttachRequest,
    responses(
        (status = 201, description = "The card on file", body = PaymentMethodView),
        (status = 400, description = "Unknown token", body = ErrorEnvelope),
        (status = 402, description = "`pm_card_chargeDeclined` is declined", body = ErrorEnvelope),
        (status = 403, description = "Live mode has no payment provider", body = ErrorEnvelope),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn attach_payment_method(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<AttachRequest>,
) -> Result<Reply, ApiError> {
    if let Some(stripe) = state.payments.processors.stripe(caller.mode) {
        return attach_at_stripe(&state, caller.mode, claim, customer_id, &req.token, stripe).await;
    }
    if caller.mode != Mode::Test {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "live payment methods need Stripe, and it is not configured (--stripe-live-secret-key)",
        ));
    }
    let card = TestCard::from_token(&req.token).ok_or_else(|| {
        invalid(
            "token",
            "use pm_card_visa, pm_card_chargeDeclined or pm_card_chargeCustomerFail",
        )
    })?;
    if card == TestCard::Declined {
        return Err(ApiError::new(
            ErrorKind::PaymentRequired,
            Decline::CardDeclined.to_string(),
        ));
    }
    let saved = SavedMethod {
        reference: card.behaviour().to_owned(),
        brand: TEST_CARD_BRAND.to_owned(),
        last4: card.last4().to_owned(),
    };
    Ok(put_on_file(&state, caller.mode, claim, customer_id, saved).await)
}

/// The unit that puts a card the processor accepted on file, answered 201 (and stored for
/// an idempotent replay under `claim`).
async fn put_on_file(
    state: &AppState,
    mode: Mode,
    claim: Option<IdemClaim>,
    customer_id: String,
    saved: SavedMethod,
) -> Reply {
    let key = customer_id.clone();
    state
        .writer
        .reply_for(
            Some(&key),
            claim,
            "attach_payment_method",
            async move |uow| {
                customers::get(uow.conn(), mode, &customer_id).await?;
                let now = uow.now();
                let id = customers::attach_card(
                    uow,
                    mode,
                    &customer_id,
                    &saved.brand,
                    &saved.last4,
                    &saved.reference,
                    now,
                )
                .await?;
                Ok(Reply::created(&PaymentMethodView {
                    id,
                    customer_id: customer_id.clone(),
                    brand: saved.brand.clone(),
                    last4: saved.last4.clone(),
                }))
            },
        )
        .await
}

/// A mode with Stripe: attaches the Stripe PaymentMethod `token` (made by Stripe.js or Stripe's
/// API) to the customer's Stripe customer (made on first use), as Stripe's own attach does;
/// it becomes the card charges use.
async fn attach_at_stripe(
    state: &AppState,
    mode: Mode,
    claim: Option<IdemClaim>,
    customer_id: String,
    token: &str,
    stripe: &std::sync::Arc<crate::payments::stripe::StripeProcessor>,
) -> Result<Reply, ApiError> {
    use crate::payments::PaymentProcessor;
    if !token.starts_with("pm_")
        || token.len() > 255
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid("token", "a Stripe PaymentMethod id (pm_…)").into());
    }
    let existing = {
        let mut conn = state.db.read().await?;
        customers::get(&mut conn, mode, &customer_id).await?;
        customers::card_on_file(&mut conn, mode, &customer_id).await?
    };
    let unavailable = |e: crate::payments::ProcessorError| {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("Stripe could not be reached: {e}"),
        )
    };
    let stripe_customer = stripe
        .customer_for(&customer_id, existing.as_deref())
        .await
        .map_err(unavailable)?;
    let saved = stripe
        .save_payment_method(&stripe_customer, token)
        .await
        .map_err(unavailable)?
        .map_err(|d| ApiError::new(ErrorKind::PaymentRequired, d.to_string()))?;
    Ok(put_on_file(state, mode, claim, customer_id, saved).await)
}

/// Removes every card on file (later charges then fail with "no payment method").
/// Remove every card on file.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{customer_id}/payment-methods",
    tag = "customers",
    operation_id = "detachPaymentMethods",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn detach_payment_methods(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
) -> Reply {
    let mode = caller.mode;
    state
        .writer
        .reply(None, "detach_payment_methods", async move |uow| {
            customers::get(uow.conn(), mode, &customer_id).await?;
            customers::detach_cards(uow, mode, &customer_id).await?;
            Ok(Reply::no_content())
        })
        .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CardsQuery {
    /// Only this customer's cards.
    #[serde(alias = "customerId")]
    #[param(format = "external-id")]
    customer_id: Option<String>,
    /// Only the cards of customers with exactly this email.
    #[serde(alias = "customerEmail")]
    #[param(max_length = 254)]
    customer_email: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// Kelviq's `PaymentMethodCustomer`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardCustomer {
    customer_id: String,
    name: Option<String>,
    email: Option<String>,
    /// Tollgate keeps no billing address: always null.
    billing_address: Option<serde_json::Value>,
}

/// Kelviq's `PaymentMethodResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedCard {
    /// A small integer, unique per server.
    id: i64,
    customer: CardCustomer,
    /// Always `card`.
    method_type: &'static str,
    /// `{brand, last4}`.
    #[schema(value_type = Object)]
    method_data: serde_json::Value,
    /// The newest card of its customer, which charges use.
    is_default: bool,
    /// Always `succeeded`: a test card that fails to attach is never saved.
    status: &'static str,
    #[schema(format = DateTime)]
    created_on: String,
    #[schema(format = DateTime)]
    modified_on: String,
}

/// List saved payment methods.
///
/// Kelviq's `payment_methods.list`: cards on file, newest first, of one customer
/// (`customer_id` or `customer_email`) or of all customers of the key's mode.
#[utoipa::path(
    get,
    path = "/api/v1/payment-methods",
    tag = "customers",
    operation_id = "listPaymentMethods",
    params(CardsQuery),
    responses(
        (status = 200, description = "One page of saved cards", body = Paginated<SavedCard>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list_payment_methods(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CardsQuery>,
) -> ApiResult<Json<Paginated<SavedCard>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (cards, count) = customers::cards(
        &mut conn,
        caller.mode,
        q.customer_id.as_deref(),
        q.customer_email.as_deref(),
        page.limit(),
        page.offset(),
    )
    .await?;
    let items = cards
        .into_iter()
        .map(|c| SavedCard {
            id: c.number,
            customer: CardCustomer {
                customer_id: c.customer_id,
                name: c.name,
                email: c.email,
                billing_address: None,
            },
            method_type: "card",
            method_data: serde_json::json!({"brand": c.brand, "last4": c.last4}),
            is_default: c.is_default,
            status: "succeeded",
            created_on: rfc3339(c.created_at),
            modified_on: rfc3339(c.created_at),
        })
        .collect();
    let base = list_url(
        &state.config.public_url,
        "/api/v1/payment-methods/",
        &[
            ("customer_id", q.customer_id.as_deref()),
            ("customer_email", q.customer_email.as_deref()),
        ],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_payment_methods))
        .routes(routes!(attach_payment_method, detach_payment_methods))
}

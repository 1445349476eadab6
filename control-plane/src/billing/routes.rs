//! `/api/v1/invoices/` and `/api/v1/customers/{customerId}/payment-methods/`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_shared::{ErrorKind, Mode};

use super::invoices::{InvoiceView, view};
use crate::app::AppState;
use crate::auth::Caller;
use crate::checkout::payments::{Decline, TestCard};
use crate::customers;
use crate::error::{ApiError, ApiResult, invalid};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    #[serde(alias = "customerId")]
    customer_id: Option<String>,
    #[serde(alias = "subscriptionId")]
    subscription_id: Option<String>,
    page: Option<u32>,
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
    let filter =
        "mode = ?1 AND (?2 IS NULL OR customer_id = ?2) AND (?3 IS NULL OR subscription_id = ?3)";
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM invoices WHERE {filter}"))
        .bind(caller.mode.as_str())
        .bind(&q.customer_id)
        .bind(&q.subscription_id)
        .fetch_one(&state.db.pool)
        .await?;
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM invoices WHERE {filter} ORDER BY created_at DESC, rowid DESC LIMIT ?4 OFFSET ?5"
    ))
    .bind(caller.mode.as_str())
    .bind(&q.customer_id)
    .bind(&q.subscription_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&state.db.pool)
    .await?;
    let mut conn = state.db.pool.acquire().await?;
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
    let mut conn = state.db.pool.acquire().await?;
    view(&mut conn, caller.mode, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("invoice '{id}' not found")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachRequest {
    /// `pm_card_visa`, `pm_card_chargeDeclined` or `pm_card_chargeCustomerFail`.
    token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodView {
    id: String,
    customer_id: String,
    brand: &'static str,
    last4: &'static str,
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
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<AttachRequest>,
) -> ApiResult<(StatusCode, Json<PaymentMethodView>)> {
    if caller.mode != Mode::Test {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "live payment methods need a payment provider; none is configured",
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
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    customers::get(tx.conn(), caller.mode, &customer_id).await?;
    let id = format!("pm_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO payment_methods (id, mode, customer_id, brand, last4, behaviour, created_at) VALUES (?, ?, ?, 'visa', ?, ?, ?)",
    )
    .bind(&id)
    .bind(caller.mode.as_str())
    .bind(&customer_id)
    .bind(card.last4())
    .bind(card.behaviour())
    .bind(now)
    .execute(tx.conn())
    .await?;
    state.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(PaymentMethodView {
            id,
            customer_id,
            brand: "visa",
            last4: card.last4(),
        }),
    ))
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
) -> ApiResult<StatusCode> {
    let mut tx = state.db.write().await?;
    customers::get(tx.conn(), caller.mode, &customer_id).await?;
    sqlx::query("DELETE FROM payment_methods WHERE mode = ? AND customer_id = ?")
        .bind(caller.mode.as_str())
        .bind(&customer_id)
        .execute(tx.conn())
        .await?;
    state.commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

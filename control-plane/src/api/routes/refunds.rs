//! `/api/v1/refunds/` (create, list, retrieve) and `/api/v1/transaction/` in Kelviq's shapes.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::idempotency::Idem;
use crate::api::settlement;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::invoices::store as invoices;
use crate::domain::invoices::store::Paid;
use crate::domain::payments::store as intents;
use crate::domain::refunds::model::{REASONS, Refund, RefundError, RefundView, currency_symbol};
use crate::domain::refunds::store;
use crate::domain::refunds::store::Filter;
use crate::platform::clock::rfc3339;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::money::{Currency, major_f64};
use crate::platform::validate::{check_len, invalid, time_bound_opt};
use crate::workflows::refund::{self as refunds, RefundAsk};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Kelviq's refund body. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    /// A paid invoice (`in_…`), or a one-off charge's id (its paid invoice).
    #[schema(min_length = 1, max_length = 64)]
    order_id: String,
    /// How much, in minor units; leave out both amounts to refund everything left.
    #[serde(default)]
    #[schema(minimum = 1)]
    amount_units: Option<i64>,
    /// How much, in the major unit (a number); must agree with `amountUnits` if both are given.
    #[serde(default)]
    #[schema(minimum = 0.01, maximum = 10000000000.0, multiple_of = 0.01)]
    amount: Option<f64>,
    /// `DUPLICATE`, `FRAUDULENT`, `REQUESTED_BY_CUSTOMER` or `OTHER`.
    #[serde(default)]
    #[schema(pattern = "^(DUPLICATE|FRAUDULENT|REQUESTED_BY_CUSTOMER|OTHER)$")]
    reason: Option<String>,
    /// Kept with the refund, never shown to the customer; at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    internal_note: Option<String>,
}

/// Refund a paid invoice or charge.
///
/// Full (no amount) or partial; several partial refunds may follow each other until the
/// invoice's total is refunded. The money goes back to the card; a credit note (an invoice of
/// reason `credit_note` with one negative line) records it, and `refund.created` is sent.
#[utoipa::path(
    post,
    path = "/api/v1/refunds",
    tag = "refunds",
    operation_id = "createRefund",
    request_body = RefundRequest,
    responses(
        (status = 201, description = "The refund", body = RefundView),
        (status = 400, description = "A field is invalid, the amount exceeds what is left, or the order is not a paid invoice", body = ErrorEnvelope),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 409, description = "Everything has been refunded already", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<RefundRequest>,
) -> Result<Reply, ApiError> {
    if req.order_id.trim().is_empty() {
        return Err(invalid("orderId", "must not be empty").into());
    }
    check_len("orderId", Some(&req.order_id), 64)?;
    check_len("internalNote", req.internal_note.as_deref(), 500)?;
    if let Some(r) = req.reason.as_deref()
        && !REASONS.contains(&r)
    {
        return Err(invalid("reason", format!("must be one of {}", REASONS.join(", "))).into());
    }
    let mode = caller.mode;
    let first = state
        .writer
        .reply(claim.clone(), "create_refund", async move |uow| {
            let ask = RefundAsk {
                order_id: &req.order_id,
                amount_units: req.amount_units,
                amount: req.amount,
                reason: req.reason.as_deref(),
                internal_note: req.internal_note.as_deref(),
            };
            Ok(Reply::created(&refunds::refund(uow, mode, &ask).await?))
        })
        .await;
    // A refund the processor (Stripe) must make is `PENDING` until the payments worker has
    // asked for it: wait for that (bounded, as a charge's door does), then answer it as it is.
    let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap_or_default();
    let (Some(id), true) = (
        body["id"].as_str().map(str::to_owned),
        first.status.is_success() && !first.replayed && body["status"] == "PENDING",
    ) else {
        return Ok(first);
    };
    settlement::wait_for_refund(&state, mode, &id).await?;
    let version = first.version;
    let mut reply = state
        .writer
        .run("refund answer", async move |uow| {
            let refund = store::get(uow.conn(), mode, &id)
                .await?
                .ok_or(RefundError::NotFound(id.clone()))?;
            let reply = Reply::created(&refunds::view(uow.conn(), &refund).await?);
            if let Some(claim) = &claim {
                crate::domain::idempotency::store::complete(uow.conn(), claim, &reply).await?;
            }
            Ok(reply)
        })
        .await?;
    reply.version = version;
    Ok(reply)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An id to match exactly: the refund's (or transaction's), its invoice's or its customer's.
    #[param(max_length = 255)]
    search: Option<String>,
    /// Refunds: `SUCCEEDED`, `PENDING` (waiting for the processor) or `FAILED`. Transactions:
    /// `success`, `failure` or `pending`.
    #[param(pattern = r"^(SUCCEEDED|PENDING|FAILED|success|failure|pending)$")]
    status: Option<String>,
    /// Created on or after this date (`YYYY-MM-DD`, UTC) or time (RFC 3339).
    #[param(format = "date-or-time")]
    start_date: Option<String>,
    /// Created on or before this date (the whole day counts) or time.
    #[param(format = "date-or-time")]
    end_date: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// List refunds, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/refunds",
    tag = "refunds",
    operation_id = "listRefunds",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of refunds", body = Paginated<RefundView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<RefundView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    const STATUSES: [&str; 5] = ["PENDING", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELED"];
    if let Some(s) = q.status.as_deref()
        && !STATUSES.contains(&s)
    {
        return Err(invalid("status", format!("must be one of {}", STATUSES.join(", "))).into());
    }
    let filter = Filter {
        search: q.search.as_deref(),
        status: q.status.as_deref(),
        from: time_bound_opt("start_date", q.start_date.as_deref(), true)?,
        to: time_bound_opt("end_date", q.end_date.as_deref(), false)?,
    };
    let mut conn = state.db.read().await?;
    let (rows, count) =
        store::list(&mut conn, caller.mode, filter, page.limit(), page.offset()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(refunds::view(&mut conn, r).await?);
    }
    let base = list_url(
        &state.config.public_url,
        "/api/v1/refunds/",
        &[
            ("search", q.search.as_deref()),
            ("status", q.status.as_deref()),
            ("start_date", q.start_date.as_deref()),
            ("end_date", q.end_date.as_deref()),
        ],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Get a refund.
#[utoipa::path(
    get,
    path = "/api/v1/refunds/{id}",
    tag = "refunds",
    operation_id = "getRefund",
    params(("id" = String, Path, description = "The refund id (`re_…`)")),
    responses(
        (status = 200, description = "The refund", body = RefundView),
        (status = 404, description = "No such refund", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RefundView>> {
    let mut conn = state.db.read().await?;
    let refund = store::get(&mut conn, caller.mode, &id)
        .await?
        .ok_or(RefundError::NotFound(id))?;
    Ok(Json(refunds::view(&mut conn, &refund).await?))
}

/// Kelviq's `TransactionResponse`: a payment (`CHARGE`) or a refund (`REFUND`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionView {
    /// The invoice id of a payment, the refund id of a refund.
    id: String,
    #[schema(value_type = Object)]
    order: serde_json::Value,
    #[schema(format = DateTime)]
    created_on: String,
    #[schema(value_type = String)]
    currency: Currency,
    currency_symbol: String,
    /// In the major unit, a number (positive for both kinds).
    amount_total: f64,
    amount_total_units: i64,
    /// Tollgate takes no fee and collects no tax: 0.
    mor_fee: f64,
    #[schema(value_type = Vec<Object>)]
    mor_fee_breakdown: Vec<serde_json::Value>,
    collected_tax: f64,
    /// What reaches the merchant: the amount (negative for a refund).
    net_payout: f64,
    /// `success` or `failure` (a declined charge).
    status: &'static str,
    /// `CHARGE` or `REFUND`.
    transaction_type: &'static str,
    payment_method_type: &'static str,
    #[schema(format = DateTime)]
    available_on: Option<String>,
    is_settled: bool,
    payment_method_name: Option<String>,
    last4: Option<String>,
    /// The processor's id: the charge's PaymentIntent (`pi_…` at Stripe, `ch_test_…` with the
    /// test processor) or the refund (`re_…`); null when none was made.
    processor_reference: Option<String>,
}

fn payment(i: &Paid, processor_reference: Option<String>) -> TransactionView {
    let paid = i.status == "paid";
    let amount = major_f64(i.total, i.currency);
    TransactionView {
        id: i.id.clone(),
        order: json!({"id": i.id, "customerId": i.customer_id, "subscriptionId": i.subscription_id, "reason": i.reason}),
        created_on: rfc3339(i.paid_at.unwrap_or(i.created_at)),
        currency: i.currency,
        currency_symbol: currency_symbol(i.currency),
        amount_total: amount,
        amount_total_units: i.total,
        mor_fee: 0.0,
        mor_fee_breakdown: Vec::new(),
        collected_tax: 0.0,
        net_payout: if paid { amount } else { 0.0 },
        status: if paid { "success" } else { "failure" },
        transaction_type: "CHARGE",
        payment_method_type: "card",
        available_on: i.paid_at.map(rfc3339),
        is_settled: paid,
        payment_method_name: None,
        last4: None,
        processor_reference,
    }
}

fn refund_transaction(r: &Refund) -> TransactionView {
    let amount = major_f64(r.amount_minor, r.currency);
    TransactionView {
        id: r.id.clone(),
        order: json!({"id": r.invoice_id, "customerId": r.customer_id, "creditNoteId": r.credit_note_id}),
        created_on: rfc3339(r.created_at),
        currency: r.currency,
        currency_symbol: currency_symbol(r.currency),
        amount_total: amount,
        amount_total_units: r.amount_minor,
        mor_fee: 0.0,
        mor_fee_breakdown: Vec::new(),
        collected_tax: 0.0,
        net_payout: -amount,
        status: match r.status.as_str() {
            "PENDING" => "pending",
            "FAILED" => "failure",
            _ => "success",
        },
        transaction_type: "REFUND",
        payment_method_type: "card",
        available_on: Some(rfc3339(r.created_at)),
        is_settled: r.status == "SUCCEEDED",
        payment_method_name: None,
        last4: None,
        processor_reference: r.processor_ref.clone(),
    }
}

/// List transactions: every payment and every refund, newest first.
///
/// Payments are the invoices that charged something (paid: `success`; declined: `failure`);
/// refunds are `REFUND` transactions (`pending` while the processor has not made them yet).
#[utoipa::path(
    get,
    path = "/api/v1/transaction",
    tag = "refunds",
    operation_id = "listTransactions",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of transactions", body = Paginated<TransactionView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<TransactionView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let (payments_status, refunds_status) = match q.status.as_deref() {
        None => (None, None),
        Some("success") => (Some("paid"), Some("SUCCEEDED")),
        Some("failure") => (Some("failed"), Some("FAILED")),
        Some("pending") => (Some("pending"), Some("PENDING")),
        Some(other) => {
            return Err(invalid(
                "status",
                format!("'{other}' is not one of success, failure, pending"),
            )
            .into());
        }
    };
    let from = time_bound_opt("start_date", q.start_date.as_deref(), true)?;
    let to = time_bound_opt("end_date", q.end_date.as_deref(), false)?;
    // Both sources newest first, enough of each for this page; merged, then the page cut.
    let want = page.offset() + page.limit();
    let mut conn = state.db.read().await?;
    let (payments, paid_count) = if payments_status == Some("pending") {
        (Vec::new(), 0)
    } else {
        invoices::payments(
            &mut conn,
            caller.mode,
            payments_status,
            q.search.as_deref(),
            (from, to),
            want,
        )
        .await?
    };
    let (refunds, refund_count) = store::list(
        &mut conn,
        caller.mode,
        Filter {
            search: q.search.as_deref(),
            status: refunds_status,
            from,
            to,
        },
        want,
        0,
    )
    .await?;
    let mut charges = Vec::with_capacity(payments.len());
    for p in &payments {
        let reference = intents::paid_invoice(&mut conn, caller.mode, &p.id)
            .await?
            .and_then(|i| i.processor_ref);
        charges.push((p.created_at, p.id.clone(), payment(p, reference)));
    }
    let mut merged: Vec<(i64, String, TransactionView)> = charges
        .into_iter()
        .chain(
            refunds
                .iter()
                .map(|r| (r.created_at, r.id.clone(), refund_transaction(r))),
        )
        .collect();
    merged.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let items = merged
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(0))
        .take(usize::try_from(page.limit()).unwrap_or(0))
        .map(|(_, _, t)| t)
        .collect();
    let base = list_url(
        &state.config.public_url,
        "/api/v1/transaction/",
        &[
            ("search", q.search.as_deref()),
            ("status", q.status.as_deref()),
            ("start_date", q.start_date.as_deref()),
            ("end_date", q.end_date.as_deref()),
        ],
    );
    Ok(Json(Paginated::new(
        items,
        paid_count + refund_count,
        page,
        &base,
    )))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(transactions))
}

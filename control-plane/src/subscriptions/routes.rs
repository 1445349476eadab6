//! `/api/v1/subscriptions/…` in Kelviq's shapes. Plan changes here switch at once; the full
//! upgrade/downgrade rules (proration, period-end scheduling) belong to the lifecycle service.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::lifecycle;
use super::{ListFilter, STATUSES, SubscriptionError, SubscriptionView, current, is_granting};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog::store::resolve_price;
use crate::entitlements;
use crate::error::{ApiResult, invalid};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's subscriptions.
    customer_id: Option<String>,
    /// The same as `customer_id`.
    #[serde(rename = "customerId")]
    customer_id_camel: Option<String>,
    /// `incomplete`, `trialing`, `active`, `past_due` or `canceled`.
    status: Option<String>,
    /// Only subscriptions to this plan identifier.
    plan: Option<String>,
    /// 1-based page number (default 1).
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    page_size: Option<u32>,
}

/// List subscriptions.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "subscriptions",
    operation_id = "listSubscriptions",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of subscriptions", body = Paginated<SubscriptionView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<SubscriptionView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    if let Some(s) = q.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(invalid(
            "status",
            format!("'{s}' is not one of {}", STATUSES.join(", ")),
        )
        .into());
    }
    let customer_id = q.customer_id.or(q.customer_id_camel);
    let filter = ListFilter {
        customer_id: customer_id.as_deref(),
        status: q.status.as_deref(),
        plan: q.plan.as_deref(),
    };
    let mut conn = state.db.pool.acquire().await?;
    let (items, count) =
        super::list(&mut conn, caller.mode, &filter, page.limit(), page.offset()).await?;
    let base = list_url(
        &state.config.public_url,
        "/api/v1/subscriptions/",
        &[
            ("customer_id", filter.customer_id),
            ("status", filter.status),
            ("plan", filter.plan),
        ],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Get a subscription.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "getSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(super::get(&mut conn, caller.mode, &id).await?))
}

/// The plan to switch to. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    /// A plan of the subscription's group.
    plan_identifier: String,
    /// One of the plan's price periods, e.g. `MONTHLY`.
    charge_period: String,
    /// 1-10000; unchanged when left out.
    #[serde(default)]
    quantity: Option<i64>,
    /// `IMMEDIATE_CHARGE`, `PRORATE_NEXT_INVOICE` or `NO_PRORATION`.
    #[serde(default)]
    proration_behavior: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResponse {
    subscription_id: String,
    subscription: SubscriptionView,
    /// The prorated invoice, when the change was charged (or credited) now.
    invoice: Option<crate::billing::invoices::InvoiceView>,
    /// `upgraded`, `downgrade_scheduled`, `cancel_scheduled`, `resumed`, `quantity_changed` or `no_op`.
    #[schema(value_type = String)]
    action: lifecycle::Action,
}

pub const PRORATION_BEHAVIORS: [&str; 3] =
    ["IMMEDIATE_CHARGE", "PRORATE_NEXT_INVOICE", "NO_PRORATION"];

/// Change a subscription's plan.
///
/// PayKit's rules: an upgrade (a higher price, or the same plan on a longer period) switches
/// now with a prorated invoice; a downgrade is scheduled for the period's end; the current plan
/// resumes a pending change, and a new quantity updates in place.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/update",
    tag = "subscriptions",
    operation_id = "updateSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The changed subscription", body = UpdateResponse),
        (status = 400, description = "A field is invalid, or the plan is in another group", body = ErrorEnvelope),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription's status does not allow a change", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> ApiResult<Json<UpdateResponse>> {
    let proration =
        lifecycle::Proration::parse(req.proration_behavior.as_deref()).ok_or_else(|| {
            invalid(
                "prorationBehavior",
                format!("must be one of {}", PRORATION_BEHAVIORS.join(", ")),
            )
        })?;
    if req.quantity.is_some_and(|q| !(1..=10_000).contains(&q)) {
        return Err(invalid("quantity", "must be between 1 and 10000").into());
    }
    let mut tx = state.db.write().await?;
    let (status, customer_id, group) = current(&mut tx, caller.mode, &id).await?;
    if !is_granting(&status) {
        return Err(SubscriptionError::NotChangeable {
            status,
            action: "changing its plan",
        }
        .into());
    }
    let target = resolve_price(
        tx.conn(),
        caller.mode,
        &req.plan_identifier,
        Some(&req.charge_period),
    )
    .await
    .map_err(SubscriptionError::from)?;
    if target.group != group {
        return Err(invalid(
            "planIdentifier",
            format!(
                "plan '{}' is in group '{}', this subscription is in group '{group}'",
                target.plan, target.group
            ),
        )
        .into());
    }
    let now =
        crate::billing::customer_now(tx.conn(), caller.mode, &customer_id, state.clock.unix())
            .await?;
    let outcome = lifecycle::change(
        &mut tx,
        now,
        lifecycle::Request {
            mode: caller.mode,
            customer_id: &customer_id,
            target,
            quantity: req.quantity,
            force_checkout: false,
            success_url: None,
            cancel_url: None,
            proration,
            trial_days: None,
        },
    )
    .await?;
    let subscription = super::get(tx.conn(), caller.mode, &id).await?;
    let invoice = match &outcome.invoice_id {
        Some(i) => crate::billing::invoices::view(tx.conn(), caller.mode, i).await?,
        None => None,
    };
    state.commit(tx).await?;
    Ok(Json(UpdateResponse {
        subscription_id: id,
        subscription,
        invoice,
        action: outcome.action,
    }))
}

/// Resume takes no fields; the body, if any, must still be a JSON object.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResumeRequest {}

/// When to cancel. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    /// `CURRENT_PERIOD_ENDS` (default), `IMMEDIATE` or `SPECIFIC_DATE`.
    #[serde(default)]
    cancellation_type: Option<String>,
    /// With `SPECIFIC_DATE`: an RFC 3339 time or a `YYYY-MM-DD` date in the future.
    #[serde(default)]
    cancellation_date: Option<String>,
}

fn parse_when(field: &str, text: &str) -> Result<i64, crate::error::Invalid> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.with_timezone(&Utc).timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
        .ok_or_else(|| invalid(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Cancel a subscription.
///
/// `cancellationType`: `CURRENT_PERIOD_ENDS` (default) keeps access until the period ends,
/// `IMMEDIATE` ends it now, `SPECIFIC_DATE` ends it at `cancellationDate`.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/cancel",
    tag = "subscriptions",
    operation_id = "cancelSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    request_body(content = CancelRequest, description = "Every field is optional; an empty body reads as `{}`"),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription has already ended", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<Json<SubscriptionView>> {
    let now = state.clock.unix();
    let kind = req
        .cancellation_type
        .as_deref()
        .unwrap_or("CURRENT_PERIOD_ENDS");
    if let (Some(text), false) = (req.cancellation_date.as_deref(), kind == "SPECIFIC_DATE") {
        parse_when("cancellationDate", text)?;
    }
    let specific = match kind {
        "IMMEDIATE" | "CURRENT_PERIOD_ENDS" => None,
        "SPECIFIC_DATE" => {
            let text = req.cancellation_date.as_deref().ok_or_else(|| {
                invalid(
                    "cancellationDate",
                    "required when cancellationType is SPECIFIC_DATE",
                )
            })?;
            Some(parse_when("cancellationDate", text)?)
        }
        other => {
            return Err(invalid(
                "cancellationType",
                format!("'{other}' is not one of IMMEDIATE, CURRENT_PERIOD_ENDS, SPECIFIC_DATE"),
            )
            .into());
        }
    };
    let mut tx = state.db.write().await?;
    let (status, customer_id, _) = current(&mut tx, caller.mode, &id).await?;
    if !is_granting(&status) && status != "incomplete" {
        return Err(SubscriptionError::NotChangeable {
            status,
            action: "canceling",
        }
        .into());
    }
    // An unpaid subscription has no period to run out: canceling it ends it now, and its
    // checkout can no longer be paid.
    // "Now" is the customer's: a test-clock customer's dates are checked against the clock.
    let now = crate::billing::customer_now(tx.conn(), caller.mode, &customer_id, now).await?;
    if specific.is_some_and(|at| at <= now) {
        return Err(invalid("cancellationDate", "must be in the future").into());
    }
    let one_time: bool = sqlx::query_scalar(
        "SELECT current_period_end IS NULL FROM subscriptions WHERE mode = ? AND id = ?",
    )
    .bind(caller.mode.as_str())
    .bind(&id)
    .fetch_one(tx.conn())
    .await?;
    // A ONE_TIME purchase has no period end to wait for: "at period end" means now.
    if kind == "IMMEDIATE" || status == "incomplete" || (one_time && specific.is_none()) {
        super::end_now(&mut tx, caller.mode, &id, now).await?;
    } else {
        let sql = match specific {
            Some(_) => {
                "UPDATE subscriptions SET cancel_at = ?4, canceled_at = ?1, modified_at = ?1 WHERE mode = ?2 AND id = ?3"
            }
            None => {
                "UPDATE subscriptions SET cancel_at_period_end = 1, canceled_at = ?1, modified_at = ?1 WHERE mode = ?2 AND id = ?3"
            }
        };
        sqlx::query(sql)
            .bind(now)
            .bind(caller.mode.as_str())
            .bind(&id)
            .bind(specific)
            .execute(tx.conn())
            .await?;
        crate::webhooks::emit_subscription(&mut tx, caller.mode, now, "subscription.updated", &id)
            .await?;
    }
    entitlements::recompile(&mut tx, now, caller.mode, &[customer_id]).await?;
    let view = super::get(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

/// Resume a subscription.
///
/// Clears a scheduled cancellation or plan change.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/resume",
    tag = "subscriptions",
    operation_id = "resumeSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription has already ended", body = ErrorEnvelope),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(_resume): ApiJson<ResumeRequest>,
) -> ApiResult<Json<SubscriptionView>> {
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let (status, _, _) = current(&mut tx, caller.mode, &id).await?;
    if !is_granting(&status) {
        return Err(SubscriptionError::NotChangeable {
            status,
            action: "resuming",
        }
        .into());
    }
    sqlx::query(
        "UPDATE subscriptions SET cancel_at_period_end = 0, cancel_at = NULL, canceled_at = NULL,
           scheduled_plan = NULL, scheduled_period = NULL, modified_at = ? WHERE mode = ? AND id = ?",
    )
    .bind(now)
    .bind(caller.mode.as_str())
    .bind(&id)
    .execute(tx.conn())
    .await?;
    crate::webhooks::emit_subscription(&mut tx, caller.mode, now, "subscription.updated", &id)
        .await?;
    let view = super::get(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

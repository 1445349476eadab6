//! `/api/v1/subscriptions/…` in Kelviq's shapes. Plan changes here switch at once; the full
//! upgrade/downgrade rules (proration, period-end scheduling) belong to the lifecycle service.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{ListFilter, STATUSES, SubscriptionError, SubscriptionView, current, is_granting};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog::store::resolve_price;
use crate::entitlements;
use crate::error::{ApiResult, invalid};
use crate::extract::{ApiJson, ApiQuery, Page, Paginated, list_url};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    customer_id: Option<String>,
    #[serde(rename = "customerId")]
    customer_id_camel: Option<String>,
    status: Option<String>,
    plan: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

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

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(super::get(&mut conn, caller.mode, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    plan_identifier: String,
    charge_period: String,
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    proration_behavior: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResponse {
    subscription_id: String,
    subscription: SubscriptionView,
}

pub const PRORATION_BEHAVIORS: [&str; 3] =
    ["IMMEDIATE_CHARGE", "PRORATE_NEXT_INVOICE", "NO_PRORATION"];

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> ApiResult<Json<UpdateResponse>> {
    if let Some(b) = req
        .proration_behavior
        .as_deref()
        .filter(|b| !PRORATION_BEHAVIORS.contains(b))
    {
        return Err(invalid(
            "prorationBehavior",
            format!("'{b}' is not one of {}", PRORATION_BEHAVIORS.join(", ")),
        )
        .into());
    }
    if req.quantity.is_some_and(|q| !(1..=10_000).contains(&q)) {
        return Err(invalid("quantity", "must be between 1 and 10000").into());
    }
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let (status, customer_id, group) = current(&mut tx, caller.mode, &id).await?;
    if !is_granting(&status) {
        return Err(SubscriptionError::NotChangeable {
            status,
            action: "changing its plan",
        }
        .into());
    }
    let price = resolve_price(
        tx.conn(),
        caller.mode,
        &req.plan_identifier,
        Some(&req.charge_period),
    )
    .await
    .map_err(SubscriptionError::from)?;
    if price.group != group {
        return Err(invalid(
            "planIdentifier",
            format!(
                "plan '{}' is in group '{}', this subscription is in group '{group}'",
                price.plan, price.group
            ),
        )
        .into());
    }
    let period_end = price.charge_period.first_period_end(now);
    sqlx::query(
        "UPDATE subscriptions SET plan_identifier = ?, charge_period = ?, amount_minor = ?, currency = ?,
           quantity = COALESCE(?, quantity),
           current_period_start = CASE WHEN charge_period = ? THEN current_period_start ELSE ? END,
           current_period_end = CASE WHEN charge_period = ? THEN current_period_end ELSE ? END,
           scheduled_plan = NULL, scheduled_period = NULL, modified_at = ?
         WHERE mode = ? AND id = ?",
    )
    .bind(&price.plan)
    .bind(price.charge_period.as_str())
    .bind(price.amount_minor)
    .bind(&price.currency)
    .bind(req.quantity)
    .bind(price.charge_period.as_str())
    .bind(now)
    .bind(price.charge_period.as_str())
    .bind(period_end)
    .bind(now)
    .bind(caller.mode.as_str())
    .bind(&id)
    .execute(tx.conn())
    .await?;
    entitlements::recompile(&mut tx, now, caller.mode, &[customer_id]).await?;
    let subscription = super::get(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(UpdateResponse {
        subscription_id: id,
        subscription,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    #[serde(default)]
    cancellation_type: Option<String>,
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

/// `cancellationType`: `CURRENT_PERIOD_ENDS` (default) keeps access until the period ends,
/// `IMMEDIATE` ends it now, `SPECIFIC_DATE` ends it at `cancellationDate`.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<Json<SubscriptionView>> {
    let now = state.clock.unix();
    let kind = req
        .cancellation_type
        .as_deref()
        .unwrap_or("CURRENT_PERIOD_ENDS");
    let specific = match kind {
        "IMMEDIATE" | "CURRENT_PERIOD_ENDS" => None,
        "SPECIFIC_DATE" => {
            let text = req.cancellation_date.as_deref().ok_or_else(|| {
                invalid(
                    "cancellationDate",
                    "required when cancellationType is SPECIFIC_DATE",
                )
            })?;
            let at = parse_when("cancellationDate", text)?;
            if at <= now {
                return Err(invalid("cancellationDate", "must be in the future").into());
            }
            Some(at)
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
    let sql = match (kind, specific) {
        ("IMMEDIATE", _) => {
            "UPDATE subscriptions SET status = 'canceled', canceled_at = ?1, ended_at = ?1, modified_at = ?1 WHERE mode = ?2 AND id = ?3"
        }
        (_, Some(_)) => {
            "UPDATE subscriptions SET cancel_at = ?4, canceled_at = ?1, modified_at = ?1 WHERE mode = ?2 AND id = ?3"
        }
        _ => {
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
    entitlements::recompile(&mut tx, now, caller.mode, &[customer_id]).await?;
    let view = super::get(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

/// Clears a scheduled cancellation or plan change.
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
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
    let view = super::get(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

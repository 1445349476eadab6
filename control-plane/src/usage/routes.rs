//! Usage reporting. Each report recompiles the customer's entitlements in the same
//! transaction, so `currentUsage`/`remaining`/`hasAccess` reach the edges as a delta.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::{Entitlement, ErrorKind, FeatureType, Mode};

use super::{Report, record};
use crate::app::AppState;
use crate::auth::Caller;
use crate::entitlements;
use crate::error::{ApiError, ApiResult, invalid};
use crate::extract::ApiJson;
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRequest {
    customer_id: String,
    feature_id: String,
    /// Added to the current window's usage (may be negative; usage never drops below 0).
    #[serde(default)]
    quantity: Option<i64>,
    /// Replaces the current window's usage.
    #[serde(default)]
    set: Option<i64>,
}

/// Kelviq's `POST /api/v1/report/usage/` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqUsageRequest {
    value: i64,
    customer_id: String,
    feature_id: String,
    /// `DELTA` (default) or `SET`.
    #[serde(default)]
    behaviour: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterState {
    customer_id: String,
    feature_id: String,
    has_access: bool,
    #[schema(value_type = Option<i64>)]
    usage_limit: serde_json::Value,
    current_usage: i64,
    remaining: Option<i64>,
    reset_at: Option<String>,
}

/// Report usage of a METER feature: a delta (`quantity`) or an absolute value (`set`).
#[utoipa::path(
    post,
    path = "/api/v1/usage",
    tag = "usage",
    operation_id = "reportUsage",
    request_body = UsageRequest,
    responses(
        (status = 200, description = "The meter's state after the report", body = MeterState),
        (status = 400, description = "Not a METER feature, or neither/both of quantity and set", body = ErrorEnvelope),
        (status = 404, description = "Unknown customer or feature", body = ErrorEnvelope),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<UsageRequest>,
) -> ApiResult<Json<MeterState>> {
    let report = match (req.quantity, req.set) {
        (Some(q), None) => Report::Delta(q),
        (None, Some(s)) if s >= 0 => Report::Set(s),
        (None, Some(_)) => return Err(invalid("set", "must be 0 or more").into()),
        _ => {
            return Err(
                invalid("quantity", "give exactly one of quantity (a delta) or set").into(),
            );
        }
    };
    let field = if matches!(report, Report::Set(_)) {
        "set"
    } else {
        "quantity"
    };
    apply(
        &state,
        caller.mode,
        &req.customer_id,
        &req.feature_id,
        report,
        field,
    )
    .await
    .map(Json)
}

/// Kelviq's usage call: `behaviour` `DELTA` (default) or `SET`.
#[utoipa::path(
    post,
    path = "/api/v1/report/usage",
    tag = "usage",
    operation_id = "reportUsageKelviq",
    request_body = KelviqUsageRequest,
    responses(
        (status = 200, description = "The meter's state after the report", body = MeterState),
        (status = 400, description = "A field is invalid, or not a METER feature", body = ErrorEnvelope),
        (status = 404, description = "Unknown customer or feature", body = ErrorEnvelope),
    )
)]
pub async fn report_kelviq(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<KelviqUsageRequest>,
) -> ApiResult<Json<MeterState>> {
    let report = match req.behaviour.as_deref() {
        None | Some("DELTA") => Report::Delta(req.value),
        Some("SET") if req.value >= 0 => Report::Set(req.value),
        Some("SET") => return Err(invalid("value", "must be 0 or more with SET").into()),
        Some(other) => {
            return Err(invalid("behaviour", format!("'{other}' is not one of SET, DELTA")).into());
        }
    };
    if req.resource_id.as_ref().is_some_and(|r| r.len() > 255) {
        return Err(invalid("resourceId", "at most 255 characters").into());
    }
    apply(
        &state,
        caller.mode,
        &req.customer_id,
        &req.feature_id,
        report,
        "value",
    )
    .await
    .map(Json)
}

async fn apply(
    state: &AppState,
    mode: Mode,
    customer_id: &str,
    feature_id: &str,
    report: Report,
    field: &str,
) -> ApiResult<MeterState> {
    crate::customers::check_customer_id(customer_id)?;
    let too_large = match report {
        Report::Delta(d) => d.unsigned_abs() > super::MAX_REPORT as u64,
        Report::Set(v) => v > super::MAX_REPORT,
    };
    if too_large {
        return Err(invalid(field, format!("at most {} per report", super::MAX_REPORT)).into());
    }
    let real_now = state.clock.unix();
    // Reads that cannot change under us (customers are never deleted, a feature's type never
    // changes) happen before taking the write lock, so the serialized part stays short.
    let mut conn = state.db.pool.acquire().await?;
    let customer: (i64, Option<i64>) = sqlx::query_as(
        "SELECT c.created_at, t.frozen_time FROM customers c LEFT JOIN test_clocks t ON t.id = c.test_clock
         WHERE c.mode = ? AND c.customer_id = ?",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| crate::customers::CustomerError::NotFound(customer_id.to_owned()))?;
    let feature = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT type, reset_period FROM features WHERE mode = ? AND identifier = ?",
    )
    .bind(mode.as_str())
    .bind(feature_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("feature '{feature_id}' not found"),
        )
    })?;
    drop(conn);
    if FeatureType::parse(&feature.0) != Some(FeatureType::Meter) {
        return Err(invalid(
            "featureId",
            format!(
                "'{feature_id}' is a {} feature; usage is reported for METER features",
                feature.0
            ),
        )
        .into());
    }
    let (created, now) = (customer.0, customer.1.unwrap_or(real_now));
    let mut tx = state.db.write().await?;
    let billing = super::billing_windows(tx.conn(), mode, customer_id)
        .await?
        .remove(feature_id);
    let win = super::window_from(created, feature.1.as_deref(), billing, now);
    record(tx.conn(), mode, customer_id, feature_id, win, report).await?;
    let compiled = entitlements::recompile(&mut tx, real_now, mode, &[customer_id.to_owned()])
        .await?
        .pop()
        .unwrap_or_default();
    state.commit(tx).await?;
    metrics::counter!("tollgate_usage_reports_total").increment(1);
    let e: Entitlement = compiled
        .into_iter()
        .find(|e| e.feature_id == feature_id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("feature '{feature_id}' not found"),
            )
        })?;
    Ok(MeterState {
        customer_id: customer_id.to_owned(),
        feature_id: feature_id.to_owned(),
        has_access: e.has_access,
        usage_limit: serde_json::to_value(e.usage_limit).unwrap_or(serde_json::Value::Null),
        current_usage: e.current_usage.unwrap_or(0),
        remaining: e.remaining,
        reset_at: e.reset_at,
    })
}

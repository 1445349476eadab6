//! `report/usage/` and `report/event/`.

use axum::extract::State;
use serde::Deserialize;

use crate::auth::model::Caller;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::reply::Reply;
use crate::http::schema::ErrorEnvelope;
use crate::idempotency::middleware::Idem;
use crate::state::AppState;
use crate::usage::routes::{MeterState, submit};
use crate::usage::store::Report;
use crate::validate::invalid;

/// Kelviq's `POST /api/v1/report/usage/` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqUsageRequest {
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    value: i64,
    #[schema(min_length = 1, max_length = 255)]
    customer_id: String,
    #[schema(min_length = 1, max_length = 64)]
    feature_id: String,
    /// `DELTA` (default) or `SET`.
    #[serde(default)]
    behaviour: Option<String>,
    #[serde(default)]
    #[schema(max_length = 255)]
    resource_id: Option<String>,
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
pub async fn report_usage(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<KelviqUsageRequest>,
) -> Result<Reply, ApiError> {
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
    submit(
        &state,
        claim,
        caller.mode,
        (req.customer_id, req.feature_id),
        (report, "value"),
        |customer, meter, _| Reply::ok(&MeterState::new(customer, meter)),
    )
    .await
}

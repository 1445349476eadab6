//! `POST /api/v1/usage/`. Each report patches the customer's compiled meter in the same
//! transaction, so `currentUsage`/`remaining`/`hasAccess` reach the edges as a delta.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::{Entitlement, Mode};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::idempotency::model::IdemClaim;
use crate::domain::usage::store::{MAX_REPORT, Report};
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, invalid};
use crate::workflows::usage as report;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRequest {
    /// The customer (1-255 characters).
    #[schema(example = "user-123", format = "external-id")]
    customer_id: String,
    /// A METER feature.
    #[schema(example = "api-calls", format = "identifier")]
    feature_id: String,
    /// Added to the current window's usage (may be negative; usage never drops below 0).
    /// Exactly one of `quantity` and `set`.
    #[serde(default)]
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    quantity: Option<i64>,
    /// Replaces the current window's usage.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    set: Option<i64>,
}

impl CrossFieldRules for UsageRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // Exactly one of a delta and an absolute value (null reads as absent).
        vec![(
            "/oneOf",
            json!([
                {"required": ["quantity"], "properties": {"quantity": {"type": "integer"}}},
                {"required": ["set"], "properties": {"set": {"type": "integer"}}}
            ]),
        )]
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterState {
    pub customer_id: String,
    pub feature_id: String,
    pub has_access: bool,
    #[schema(value_type = Option<i64>)]
    pub usage_limit: serde_json::Value,
    pub current_usage: i64,
    pub remaining: Option<i64>,
    pub reset_at: Option<String>,
}

impl MeterState {
    pub fn new(customer_id: &str, e: &Entitlement) -> MeterState {
        MeterState {
            customer_id: customer_id.to_owned(),
            feature_id: e.feature_id.clone(),
            has_access: e.has_access,
            usage_limit: serde_json::to_value(e.usage_limit).unwrap_or(serde_json::Value::Null),
            current_usage: e.current_usage.unwrap_or(0),
            remaining: e.remaining,
            reset_at: e.reset_at.clone(),
        }
    }
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
    Idem(claim): Idem,
    ApiJson(req): ApiJson<UsageRequest>,
) -> Result<Reply, ApiError> {
    let (report, field) = match (req.quantity, req.set) {
        (Some(q), None) => (Report::Delta(q), "quantity"),
        (None, Some(s)) if s >= 0 => (Report::Set(s), "set"),
        (None, Some(_)) => return Err(invalid("set", "must be 0 or more").into()),
        _ => {
            return Err(
                invalid("quantity", "give exactly one of quantity (a delta) or set").into(),
            );
        }
    };
    submit(
        &state,
        claim,
        caller.mode,
        (req.customer_id, req.feature_id),
        (report, field),
        |customer, meter, _, _| Reply::ok(&MeterState::new(customer, meter)),
    )
    .await
}

/// How a dialect answers a recorded report: from the customer, the meter as it now stands,
/// the report, and the unit's time.
pub trait Render: Fn(&str, &Entitlement, Report, i64) -> Reply + Send + 'static {}
impl<F: Fn(&str, &Entitlement, Report, i64) -> Reply + Send + 'static> Render for F {}

/// Validates and records one report, answering with `render`. `field` names the request
/// field that carried the amount, for errors.
pub async fn submit(
    state: &AppState,
    claim: Option<IdemClaim>,
    mode: Mode,
    (customer_id, feature_id): (String, String),
    (report, field): (Report, &'static str),
    render: impl Render,
) -> Result<Reply, ApiError> {
    CustomerId::parse("customerId", &customer_id)?;
    let too_large = match report {
        Report::Delta(d) => d.unsigned_abs() > MAX_REPORT as u64,
        Report::Set(v) => v > MAX_REPORT,
    };
    if too_large {
        return Err(invalid(field, format!("at most {MAX_REPORT} per report")).into());
    }
    let key = customer_id.clone();
    let reply = state
        .writer
        .reply_for(Some(&key), claim, "report_usage", async move |uow| {
            let meter = report::record(uow, mode, &customer_id, &feature_id, report).await?;
            Ok(render(&customer_id, &meter, report, uow.now()))
        })
        .await;
    if reply.status.is_success() {
        metrics::counter!("tollgate_usage_reports_total").increment(1);
    }
    Ok(reply)
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

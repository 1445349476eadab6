//! `cancel` (`IMMEDIATE`, `CURRENT_PERIOD_ENDS`, `SPECIFIC_DATE`) and `resume`.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::dialects::kelviq::parse_when;
use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::subscriptions::lifecycle::CancelAt;
use crate::domain::subscriptions::model::SubscriptionView;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::{ApiJson, ApiPath};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{Invalid, invalid};
use crate::workflows::cancel as cancellation;
use serde_json::json;

/// Resume takes no fields; the body, if any, must still be a JSON object.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResumeRequest {}

/// When to cancel. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    /// `CURRENT_PERIOD_ENDS` (default), `IMMEDIATE` or `SPECIFIC_DATE`.
    #[serde(default)]
    #[schema(pattern = r"^(CURRENT_PERIOD_ENDS|IMMEDIATE|SPECIFIC_DATE)$")]
    cancellation_type: Option<String>,
    /// With `SPECIFIC_DATE` (and only then): an RFC 3339 time or a `YYYY-MM-DD` date in the
    /// future.
    #[serde(default)]
    #[schema(
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][01][0-9]:[0-5][0-9]))?$"
    )]
    cancellation_date: Option<String>,
}

impl CrossFieldRules for CancelRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // SPECIFIC_DATE needs its date.
        vec![
            (
                "/if",
                json!({"properties": {"cancellationType": {"const": "SPECIFIC_DATE"}},
                       "required": ["cancellationType"]}),
            ),
            (
                "/then",
                json!({"required": ["cancellationDate"],
                       "properties": {"cancellationDate": {"type": "string"}}}),
            ),
        ]
    }
}

fn cancel_at(req: &CancelRequest) -> Result<CancelAt, Invalid> {
    let kind = req
        .cancellation_type
        .as_deref()
        .unwrap_or("CURRENT_PERIOD_ENDS");
    match kind {
        "IMMEDIATE" | "CURRENT_PERIOD_ENDS" => {
            if let Some(text) = req.cancellation_date.as_deref() {
                parse_when("cancellationDate", text)?;
            }
            Ok(if kind == "IMMEDIATE" {
                CancelAt::Now
            } else {
                CancelAt::PeriodEnd
            })
        }
        "SPECIFIC_DATE" => {
            let text = req.cancellation_date.as_deref().ok_or_else(|| {
                invalid(
                    "cancellationDate",
                    "required when cancellationType is SPECIFIC_DATE",
                )
            })?;
            Ok(CancelAt::Date(parse_when("cancellationDate", text)?))
        }
        other => Err(invalid(
            "cancellationType",
            format!("'{other}' is not one of IMMEDIATE, CURRENT_PERIOD_ENDS, SPECIFIC_DATE"),
        )),
    }
}

/// Kelviq's cancel answer (`message`) with the subscription's fields beside it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    /// What happened, for people.
    message: String,
    #[serde(flatten)]
    subscription: SubscriptionView,
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
        (status = 200, description = "The subscription", body = CancelResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription has already ended", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> Result<Reply, ApiError> {
    let when = cancel_at(&req)?;
    let mode = caller.mode;
    Ok(state
        .writer
        .reply(claim, "cancel_subscription", async move |uow| {
            let subscription = cancellation::cancel(uow, mode, &id, when).await?;
            Ok(Reply::ok(&CancelResponse {
                message: match subscription.end_date.as_deref() {
                    Some(end) if subscription.status != "canceled" => {
                        format!("Subscription will be canceled on {end}.")
                    }
                    _ => "Subscription canceled.".to_owned(),
                },
                subscription,
            }))
        })
        .await)
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
    request_body(content = ResumeRequest, description = "No fields; an empty body reads as `{}`"),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription has already ended", body = ErrorEnvelope),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiPath(id): ApiPath<String>,
    ApiJson(_resume): ApiJson<ResumeRequest>,
) -> Result<Reply, ApiError> {
    let mode = caller.mode;
    Ok(state
        .writer
        .reply(claim, "resume_subscription", async move |uow| {
            Ok(Reply::ok(&cancellation::resume(uow, mode, &id).await?))
        })
        .await)
}

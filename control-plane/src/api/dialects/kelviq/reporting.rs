//! `report/usage/` and `report/event/`.

use axum::extract::State;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_shared::{ErrorKind, Mode};

use crate::api::idempotency::Idem;
use crate::api::routes::usage::{MeterState, submit};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::customers::model::METADATA_MAX_KEYS;
use crate::domain::customers::model::check_metadata;
use crate::domain::usage::model::{NewEvent, Recorded};
use crate::domain::usage::store::Report;
use crate::platform::clock::kelviq_time;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, Invalid, check_len, invalid};
use crate::workflows::usage as usage_workflow;
use serde_json::json;

/// Kelviq's `POST /api/v1/report/usage/` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqUsageRequest {
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    value: i64,
    #[schema(example = "user-123", format = "external-id")]
    customer_id: String,
    #[schema(example = "api-calls", format = "identifier")]
    feature_id: String,
    /// `DELTA` (default) or `SET`.
    #[serde(default)]
    #[schema(pattern = r"^(DELTA|SET)$")]
    behaviour: Option<String>,
    #[serde(default)]
    #[schema(max_length = 255)]
    resource_id: Option<String>,
}

/// The organization Kelviq's responses name: a Tollgate server is one organization per mode.
fn org_id(mode: Mode) -> String {
    format!("tollgate_{}", mode.as_str())
}

/// Kelviq's `ReportUsageResponse` fields plus the meter as it now stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqUsageResponse {
    value: i64,
    customer_id: String,
    feature_id: String,
    /// `SET` or `DELTA`, as applied.
    behaviour: &'static str,
    resource_id: Option<String>,
    /// `tollgate_test` or `tollgate_live`.
    org_id: String,
    /// Always `$usage.reported`.
    event_name: &'static str,
    /// The request's `Idempotency-Key`, or one made for it.
    idempotency_key: String,
    /// When the report was recorded, `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
    timestamp: String,
    #[serde(flatten)]
    meter: MeterState,
}

/// Kelviq's usage call: `behaviour` `DELTA` (default) or `SET`.
#[utoipa::path(
    post,
    path = "/api/v1/report/usage",
    tag = "usage",
    operation_id = "reportUsageKelviq",
    request_body = KelviqUsageRequest,
    responses(
        (status = 200, description = "The report as recorded, and the meter's state after it", body = KelviqUsageResponse),
        (status = 400, description = "A field is invalid, or not a METER feature", body = ErrorEnvelope),
        (status = 404, description = "Unknown (or archived) customer, or unknown feature", body = ErrorEnvelope),
    )
)]
pub async fn report_usage(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<KelviqUsageRequest>,
) -> Result<Reply, ApiError> {
    let (report, behaviour) = match req
        .behaviour
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("DELTA") => (Report::Delta(req.value), "DELTA"),
        Some("SET") if req.value >= 0 => (Report::Set(req.value), "SET"),
        Some("SET") => return Err(invalid("value", "must be 0 or more with SET").into()),
        Some(other) => {
            return Err(invalid("behaviour", format!("'{other}' is not one of SET, DELTA")).into());
        }
    };
    check_len("resourceId", req.resource_id.as_deref(), 255)?;
    check_len("featureId", Some(&req.feature_id), 64)?;
    let idempotency_key = claim
        .as_ref()
        .map(|c| c.key.clone())
        .unwrap_or_else(crate::platform::ids::uuid);
    let mode = caller.mode;
    let (value, resource_id) = (req.value, req.resource_id.clone());
    submit(
        &state,
        claim,
        mode,
        (req.customer_id, req.feature_id),
        (report, "value"),
        move |customer, meter, _, now| {
            Reply::ok(&KelviqUsageResponse {
                value,
                customer_id: customer.to_owned(),
                feature_id: meter.feature_id.clone(),
                behaviour,
                resource_id: resource_id.clone(),
                org_id: org_id(mode),
                event_name: "$usage.reported",
                idempotency_key: idempotency_key.clone(),
                timestamp: kelviq_time(now),
                meter: MeterState::new(customer, meter),
            })
        },
    )
    .await
}

/// Kelviq's `POST /api/v1/report/event/` body. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqEventRequest {
    #[schema(example = "user-123", format = "external-id")]
    customer_id: String,
    /// Meters whose `eventName` is this count the event.
    #[schema(min_length = 1, max_length = 255)]
    event_name: String,
    /// The event's identity: a second report with the same key is answered again, counted once.
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: String,
    /// When the event happened: `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), or RFC 3339. Stored as sent.
    #[schema(
        example = "2026-11-30 12:00:00.000000",
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])( ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?|T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][01][0-9]:[0-5][0-9]))$"
    )]
    timestamp: String,
    #[serde(default)]
    #[schema(max_length = 255)]
    resource_id: Option<String>,
    /// A JSON object of at most 50 keys and 8 KiB, stored as sent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    properties: Option<Value>,
}

impl CrossFieldRules for KelviqEventRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![(
            "/properties/properties/maxProperties",
            json!(METADATA_MAX_KEYS),
        )]
    }
}

/// Kelviq's `ReportEventResponse` fields plus the meters the event moved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KelviqEventResponse {
    customer_id: String,
    event_name: String,
    idempotency_key: String,
    timestamp: String,
    resource_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    properties: Option<Value>,
    org_id: String,
    /// True when this key was reported before: the event was not counted again.
    duplicate: bool,
    /// The METER features counting this event, as they now stand (empty for a duplicate).
    meters: Vec<MeterState>,
}

fn check_timestamp(text: &str) -> Result<(), Invalid> {
    let ok = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || chrono::DateTime::parse_from_rfc3339(text).is_ok();
    if ok && text.len() <= 64 {
        Ok(())
    } else {
        Err(invalid(
            "timestamp",
            "must be 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) or an RFC 3339 time",
        ))
    }
}

/// Report an event.
///
/// Stored once per `idempotencyKey`: the same event again answers `duplicate: true` and counts
/// nothing; the same key with another event is a 409. Every METER feature whose `eventName`
/// is this event's counts it as one unit of usage (event-based metering), which reaches the
/// edges like any usage report.
#[utoipa::path(
    post,
    path = "/api/v1/report/event",
    tag = "usage",
    operation_id = "reportEvent",
    request_body = KelviqEventRequest,
    responses(
        (status = 200, description = "The event as stored, and the meters it moved", body = KelviqEventResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "Unknown (or archived) customer", body = ErrorEnvelope),
        (status = 409, description = "The idempotency key was used for another event", body = ErrorEnvelope),
    )
)]
pub async fn report_event(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<KelviqEventRequest>,
) -> Result<Reply, ApiError> {
    CustomerId::parse("customerId", &req.customer_id)?;
    for (field, value) in [
        ("eventName", &req.event_name),
        ("idempotencyKey", &req.idempotency_key),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(field, "must not be empty").into());
        }
        check_len(field, Some(value), 255)?;
    }
    check_timestamp(&req.timestamp)?;
    check_len("resourceId", req.resource_id.as_deref(), 255)?;
    if let Some(p) = &req.properties {
        check_metadata(p).map_err(|e| invalid("properties", e.message))?;
    }
    let mode = caller.mode;
    let key = req.customer_id.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), claim, "report_event", async move |uow| {
            let event = NewEvent {
                customer_id: &req.customer_id,
                event_name: &req.event_name,
                idempotency_key: &req.idempotency_key,
                timestamp: &req.timestamp,
                resource_id: req.resource_id.as_deref(),
                properties: req.properties.as_ref(),
            };
            let (duplicate, moved) = match usage_workflow::record_event(uow, mode, &event).await? {
                Recorded::New(moved) => (false, moved),
                Recorded::Duplicate => (true, Vec::new()),
                Recorded::Conflict => {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        format!(
                            "idempotencyKey '{}' was already used for another event",
                            req.idempotency_key
                        ),
                    ));
                }
            };
            Ok(Reply::ok(&KelviqEventResponse {
                customer_id: req.customer_id.clone(),
                event_name: req.event_name.clone(),
                idempotency_key: req.idempotency_key.clone(),
                timestamp: req.timestamp.clone(),
                resource_id: req.resource_id.clone(),
                properties: req.properties.clone(),
                org_id: org_id(mode),
                duplicate,
                meters: moved
                    .iter()
                    .map(|m| MeterState::new(&req.customer_id, m))
                    .collect(),
            }))
        })
        .await)
}

//! `POST /api/v1/license/activate/`, `deactivate/` and `validate/` in Kelviq's shapes.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_shared::Mode;

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::catalog::store as catalog;
use crate::domain::customers::model::METADATA_MAX_KEYS;
use crate::domain::customers::model::check_metadata;
use crate::domain::customers::store as customers;
use crate::domain::licenses::model::{
    License, LicenseCustomer, LicenseDetails, LicenseError, LicensePlan, LicensePlanProduct,
    unusable,
};
use crate::domain::licenses::store;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::clock::rfc3339;
use crate::platform::db::sql::Conn;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{check_len, invalid};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everything Kelviq's `LicenseDetails` shows about a license.
async fn details(conn: &mut Conn, l: &License) -> Result<LicenseDetails, sqlx::Error> {
    let usage = store::active_count(conn, &l.id).await?;
    let customer = customers::find(conn, l.mode, &l.customer_id).await?;
    let subscription = subscriptions::view(conn, l.mode, &l.subscription_id).await?;
    let sub = subscriptions::get(conn, l.mode, &l.subscription_id).await?;
    let plan_name = catalog::plan_name(conn, l.mode, &l.plan).await?;
    let expires_on = sub
        .as_ref()
        .and_then(|s| match (s.cancel_at, s.cancel_at_period_end) {
            (Some(at), _) => Some(at),
            (None, true) => s.period_end,
            (None, false) => s.ended_at,
        });
    let group = sub.as_ref().map(|s| s.group.clone());
    Ok(LicenseDetails {
        id: l.id.clone(),
        license_key: l.key.clone(),
        activated_on: l.activated_at.map(rfc3339),
        expires_on: expires_on.map(rfc3339),
        activation_usage: usage,
        activation_limit: l.activation_limit,
        enabled: unusable(l, sub.as_ref().map(|s| s.status)).is_none(),
        customer: customer.map(|c| LicenseCustomer {
            customer_id: c.customer_id,
            name: c.name,
            email: c.email,
        }),
        plan: Some(LicensePlan {
            identifier: l.plan.clone(),
            name: Some(plan_name),
            product: group.map(|g| LicensePlanProduct {
                id: g.clone(),
                identifier: g.clone(),
                name: g,
            }),
        }),
        subscription,
    })
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.trim().is_empty() {
        return Err(invalid("licenseKey", "must not be empty").into());
    }
    check_len("licenseKey", Some(key), 64)?;
    Ok(())
}

/// Kelviq's activation body. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivateRequest {
    #[schema(min_length = 1, max_length = 64)]
    license_key: String,
    /// When given, the key must belong to this customer.
    #[serde(default)]
    #[schema(max_length = 255)]
    customer_id: Option<String>,
    /// A name for the machine or seat, at most 255 characters.
    #[serde(default)]
    #[schema(max_length = 255)]
    instance_name: Option<String>,
    /// A JSON object of at most 50 keys and 8 KiB, returned by `validate`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

impl CrossFieldRules for ActivateRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![(
            "/properties/metadata/maxProperties",
            json!(METADATA_MAX_KEYS),
        )]
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivateResponse {
    instance_id: String,
    #[schema(format = DateTime)]
    activated_at: String,
    #[schema(format = DateTime)]
    expires_on: Option<String>,
    license: LicenseDetails,
}

/// Activate a license key.
///
/// Adds an active instance; refused with 409 when the key's activations are all in use, or the
/// key is disabled or its subscription has ended.
#[utoipa::path(
    post,
    path = "/api/v1/license/activate",
    tag = "licenses",
    operation_id = "activateLicense",
    request_body = ActivateRequest,
    responses(
        (status = 201, description = "The new instance", body = ActivateResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "No such license key (for this customer)", body = ErrorEnvelope),
        (status = 409, description = "The activation limit is reached, or the key cannot be used", body = ErrorEnvelope),
    )
)]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> Result<Reply, ApiError> {
    check_key(&req.license_key)?;
    check_len("customerId", req.customer_id.as_deref(), 255)?;
    check_len("instanceName", req.instance_name.as_deref(), 255)?;
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    let mode = caller.mode;
    let key = req.license_key.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), claim, "license_activate", async move |uow| {
            let license = store::by_key_locked(uow, mode, &req.license_key)
                .await?
                .filter(|l| req.customer_id.as_ref().is_none_or(|c| *c == l.customer_id))
                .ok_or(LicenseError::NotFound)?;
            let status = subscriptions::get(uow.conn(), mode, &license.subscription_id)
                .await?
                .map(|s| s.status);
            if let Some(code) = unusable(&license, status) {
                return Err(LicenseError::NotUsable(code).into());
            }
            if store::active_count(uow.conn(), &license.id).await? >= license.activation_limit {
                return Err(LicenseError::LimitReached {
                    limit: license.activation_limit,
                }
                .into());
            }
            let now = customers::now_of(uow, mode, &license.customer_id).await?;
            let instance = store::activate(
                uow,
                &license,
                req.instance_name.as_deref(),
                req.metadata.as_ref(),
                now,
            )
            .await?;
            let license = store::by_key(uow.conn(), mode, &req.license_key)
                .await?
                .ok_or(LicenseError::NotFound)?;
            let details = details(uow.conn(), &license).await?;
            Ok(Reply::created(&ActivateResponse {
                instance_id: instance,
                activated_at: rfc3339(now),
                expires_on: details.expires_on.clone(),
                license: details,
            }))
        })
        .await)
}

/// Kelviq's deactivation body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeactivateRequest {
    #[schema(min_length = 1, max_length = 64)]
    license_key: String,
    /// An instance id from `activate`.
    #[schema(min_length = 1, max_length = 64)]
    instance_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeactivateResponse {
    message: String,
    #[schema(format = DateTime)]
    deactivated_at: String,
}

/// Deactivate a license instance, freeing one activation.
#[utoipa::path(
    post,
    path = "/api/v1/license/deactivate",
    tag = "licenses",
    operation_id = "deactivateLicense",
    request_body = DeactivateRequest,
    responses(
        (status = 200, description = "The instance is deactivated", body = DeactivateResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "No such key, or no such active instance of it", body = ErrorEnvelope),
    )
)]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<DeactivateRequest>,
) -> Result<Reply, ApiError> {
    check_key(&req.license_key)?;
    check_len("instanceId", Some(&req.instance_id), 64)?;
    let mode = caller.mode;
    let key = req.license_key.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), claim, "license_deactivate", async move |uow| {
            let license = store::by_key_locked(uow, mode, &req.license_key)
                .await?
                .ok_or(LicenseError::NotFound)?;
            let now = customers::now_of(uow, mode, &license.customer_id).await?;
            if !store::deactivate(uow, &license.id, &req.instance_id, now).await? {
                return Err(LicenseError::InstanceNotFound(req.instance_id.clone()).into());
            }
            Ok(Reply::ok(&DeactivateResponse {
                message: "License instance deactivated successfully.".to_owned(),
                deactivated_at: rfc3339(now),
            }))
        })
        .await)
}

/// Kelviq's validation body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateRequest {
    #[schema(min_length = 1, max_length = 64)]
    license_key: String,
    /// When given, the instance must be an active one of this key.
    #[serde(default)]
    #[schema(max_length = 64)]
    instance_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    valid: bool,
    /// `VALID`, `NOT_FOUND`, `DISABLED`, `EXPIRED` or `INSTANCE_NOT_FOUND`.
    code: &'static str,
    detail: String,
    /// The instance's activation metadata, when an `instanceId` was given.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    license: Option<LicenseDetails>,
}

/// Validate a license key.
///
/// Always 200 for a well-formed request: `valid` says whether the key (and instance) can be
/// used now, `code` why not. An unknown key is `NOT_FOUND`, not a 404, so a client can treat
/// every answer alike.
#[utoipa::path(
    post,
    path = "/api/v1/license/validate",
    tag = "licenses",
    operation_id = "validateLicense",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "Whether the key is valid", body = ValidateResponse),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<ValidateResponse>, ApiError> {
    check_key(&req.license_key)?;
    check_len("instanceId", req.instance_id.as_deref(), 64)?;
    let mut conn = state.db.read().await?;
    Ok(Json(
        validate_key(
            &mut conn,
            caller.mode,
            &req.license_key,
            req.instance_id.as_deref(),
        )
        .await?,
    ))
}

async fn validate_key(
    conn: &mut Conn,
    mode: Mode,
    key: &str,
    instance: Option<&str>,
) -> Result<ValidateResponse, sqlx::Error> {
    let Some(license) = store::by_key(conn, mode, key).await? else {
        return Ok(ValidateResponse {
            valid: false,
            code: "NOT_FOUND",
            detail: "No such license key.".to_owned(),
            metadata: None,
            license: None,
        });
    };
    let status = subscriptions::get(conn, mode, &license.subscription_id)
        .await?
        .map(|s| s.status);
    let details = details(conn, &license).await?;
    if let Some(code) = unusable(&license, status) {
        return Ok(ValidateResponse {
            valid: false,
            code,
            detail: match code {
                "DISABLED" => "The license key is disabled.".to_owned(),
                _ => "The license's subscription has ended.".to_owned(),
            },
            metadata: None,
            license: Some(details),
        });
    }
    let mut metadata = None;
    if let Some(instance) = instance {
        if !store::instance_active(conn, &license.id, instance).await? {
            return Ok(ValidateResponse {
                valid: false,
                code: "INSTANCE_NOT_FOUND",
                detail: format!("No active instance '{instance}' of this license."),
                metadata: None,
                license: Some(details),
            });
        }
        metadata = store::instance_metadata(conn, &license.id, instance).await?;
    }
    Ok(ValidateResponse {
        valid: true,
        code: "VALID",
        detail: "The license key is valid.".to_owned(),
        metadata,
        license: Some(details),
    })
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(validate))
}

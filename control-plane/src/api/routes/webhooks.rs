//! `/api/v1/webhook-endpoints/`: create (the signing secret is shown once), list, delete, and
//! each endpoint's deliveries.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::ErrorKind;

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::webhooks::model::{Scheme, new_secret};
use crate::domain::webhooks::store;
use crate::domain::webhooks::store::{DeliveryRow, EndpointRow, NewEndpoint};
use crate::platform::clock::rfc3339;
use crate::platform::egress as guard;
use crate::platform::events::EventKind;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::invalid;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateEndpoint {
    /// Absolute http(s) URL that receives `POST`s, without credentials; it must resolve to
    /// public addresses (see docs/webhooks.md).
    #[schema(format = "http-url")]
    url: String,
    /// Event types to receive (see the tag's description), or `["*"]` for all.
    #[schema(min_items = 1, max_items = 50)]
    events: Vec<String>,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: Option<String>,
    /// How deliveries are signed: `standard` (default; Standard Webhooks, base64 HMAC keyed
    /// with the secret's base64 part decoded) or `kelviq` (hex HMAC keyed with the whole
    /// secret's UTF-8 bytes, what Kelviq's SDKs' `validate_event` checks). docs/webhooks.md.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(standard|kelviq)$")]
    signature_scheme: Option<String>,
}

impl CrossFieldRules for CreateEndpoint {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        {
            let mut events: Vec<&str> = EventKind::ALL.map(EventKind::as_str).to_vec();
            events.push("*");
            vec![("/properties/events/items", json!({"enum": events}))]
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    id: String,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    /// `standard` or `kelviq`.
    signature_scheme: &'static str,
    created_at: String,
    /// Failed delivery attempts in a row (a success resets it).
    consecutive_failures: i64,
    /// The circuit breaker stopped deliveries to this endpoint after repeated failures; they
    /// resume once it is re-enabled (`PATCH` with `{"enabled": true}`).
    circuit_open: bool,
    /// When the circuit opened.
    circuit_opened_at: Option<String>,
    /// Only in the response that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    created_at: String,
}

/// Create a webhook endpoint.
#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints",
    tag = "webhooks",
    operation_id = "createWebhookEndpoint",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint, with its signing secret (shown once)", body = EndpointView),
        (status = 400, description = "Bad URL (not http(s), or resolving to a loopback, private, link-local, multicast or reserved address) or unknown event type", body = ErrorEnvelope),
        (status = 409, description = "The mode already has as many endpoints as allowed (`--max-webhook-endpoints`)", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateEndpoint>,
) -> Result<Reply, ApiError> {
    let parsed = url::Url::parse(&req.url)
        .map_err(|_| invalid("url", "must be an absolute http or https URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || req.url.len() > 2048
    {
        return Err(invalid("url", "must be an absolute http or https URL").into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("url", "must not carry credentials").into());
    }
    if !state.config.allow_private_webhook_urls {
        guard::check_url(&parsed).await?;
    }
    if req.events.is_empty() || req.events.len() > 50 {
        return Err(invalid("events", "list 1-50 event types, or [\"*\"]").into());
    }
    if let Some(unknown) = req
        .events
        .iter()
        .find(|e| *e != "*" && EventKind::parse(e).is_none())
    {
        return Err(invalid(
            "events",
            format!(
                "unknown event type '{unknown}'; known: {}",
                EventKind::ALL.map(EventKind::as_str).join(", ")
            ),
        )
        .into());
    }
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(invalid("description", "at most 500 characters").into());
    }
    let scheme = match req.signature_scheme.as_deref() {
        None => Scheme::Standard,
        Some(s) => Scheme::parse(s).ok_or_else(|| {
            invalid(
                "signatureScheme",
                format!("must be one of {}", Scheme::NAMES.join(", ")),
            )
        })?,
    };
    let mode = caller.mode;
    let cap = state.config.max_webhook_endpoints;
    Ok(state
        .writer
        .reply(claim, "create_webhook_endpoint", async move |uow| {
            // Counted inside the unit of work, so simultaneous creates cannot overshoot.
            if store::count_endpoints(uow.conn(), mode).await? >= cap as i64 {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "this mode already has {cap} webhook endpoints, the most allowed; delete one first"
                    ),
                ));
            }
            let secret = new_secret();
            let row = store::insert_endpoint(
                uow,
                NewEndpoint {
                    mode,
                    url: &req.url,
                    events: &req.events,
                    secret: &secret,
                    description: req.description.as_deref(),
                    scheme,
                },
            )
            .await?;
            let view = EndpointView::from(row);
            let shown = EndpointView {
                secret: Some(secret),
                ..view.clone()
            };
            Ok(Reply::created(&shown).with_redacted(&view))
        })
        .await)
}

impl From<EndpointRow> for EndpointView {
    fn from(r: EndpointRow) -> Self {
        EndpointView {
            id: r.id,
            url: r.url,
            events: r.events,
            description: r.description,
            signature_scheme: r.scheme.as_str(),
            created_at: rfc3339(r.created_at),
            consecutive_failures: r.consecutive_failures,
            circuit_open: r.circuit_opened_at.is_some(),
            circuit_opened_at: r.circuit_opened_at.map(rfc3339),
            secret: None,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// List webhook endpoints (secrets are not shown again).
#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints",
    tag = "webhooks",
    operation_id = "listWebhookEndpoints",
    params(ListQuery),
    responses((status = 200, description = "One page of endpoints", body = Paginated<EndpointView>))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<EndpointView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (rows, count) =
        store::list_endpoints(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let items = rows.into_iter().map(EndpointView::from).collect();
    let base = list_url(&state.config.public_url, "/api/v1/webhook-endpoints/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

async fn check_endpoint(state: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    let mut conn = state.db.read().await?;
    if store::endpoint_exists(&mut conn, caller.mode, id).await? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("webhook endpoint '{id}' not found"),
    )
}

/// Delete a webhook endpoint; its pending deliveries are dropped.
#[utoipa::path(
    delete,
    path = "/api/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    operation_id = "deleteWebhookEndpoint",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Reply {
    let mode = caller.mode;
    state
        .writer
        .reply(None, "delete_webhook_endpoint", async move |uow| {
            if store::disable_endpoint(uow, mode, &id).await? {
                Ok(Reply::no_content())
            } else {
                Err(not_found(&id))
            }
        })
        .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// `true` closes an open circuit: deliveries resume and the failure count starts again.
    enabled: bool,
}

/// Re-enable an endpoint whose circuit breaker opened.
#[utoipa::path(
    patch,
    path = "/api/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    operation_id = "updateWebhookEndpoint",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 400, description = "Bad body", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<UpdateEndpoint>,
) -> Reply {
    let mode = caller.mode;
    state
        .writer
        .reply(claim, "update_webhook_endpoint", async move |uow| {
            let row = if req.enabled {
                store::close_circuit(uow, mode, &id).await?
            } else {
                store::endpoint(uow.conn(), mode, &id).await?
            };
            match row {
                Some(row) => Ok(Reply::ok(&EndpointView::from(row))),
                None => Err(not_found(&id)),
            }
        })
        .await
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)"), ListQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = Paginated<DeliveryView>),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<DeliveryView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    check_endpoint(&state, &caller, &id).await?;
    let mut conn = state.db.read().await?;
    let (rows, count) = store::deliveries(&mut conn, &id, page.limit(), page.offset()).await?;
    let items = rows.into_iter().map(DeliveryView::from).collect();
    let base = list_url(
        &state.config.public_url,
        &format!("/api/v1/webhook-endpoints/{id}/deliveries/"),
        &[],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        DeliveryView {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            next_attempt_at: (r.status == "pending").then(|| rfc3339(r.next_attempt_at)),
            status: r.status,
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            delivered_at: r.delivered_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
        }
    }
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(delete, update))
        .routes(routes!(deliveries))
}

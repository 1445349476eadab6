//! `/api/v1/webhook-endpoints/`: create (the signing secret is shown once), list, delete, and
//! each endpoint's deliveries.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tollgate_shared::ErrorKind;

use super::{EVENT_TYPES, new_secret};
use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, invalid};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateEndpoint {
    /// Absolute http(s) URL that receives `POST`s.
    url: String,
    /// Event types to receive (see the tag's description), or `["*"]` for all.
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    id: String,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    created_at: String,
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
        (status = 400, description = "Bad URL or unknown event type", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    let parsed = url::Url::parse(&req.url)
        .map_err(|_| invalid("url", "must be an absolute http or https URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || req.url.len() > 2048
    {
        return Err(invalid("url", "must be an absolute http or https URL").into());
    }
    if req.events.is_empty() || req.events.len() > 50 {
        return Err(invalid("events", "list 1-50 event types, or [\"*\"]").into());
    }
    if let Some(unknown) = req
        .events
        .iter()
        .find(|e| *e != "*" && !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(invalid(
            "events",
            format!(
                "unknown event type '{unknown}'; known: {}",
                EVENT_TYPES.join(", ")
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
    let id = format!("we_{}", uuid::Uuid::new_v4().simple());
    let secret = new_secret();
    let now = state.clock.unix();
    let events = serde_json::to_string(&req.events).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, mode, url, events, secret, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(caller.mode.as_str())
    .bind(&req.url)
    .bind(&events)
    .bind(&secret)
    .bind(&req.description)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView {
            id,
            url: req.url,
            events: req.events,
            description: req.description,
            created_at: rfc3339(now),
            secret: Some(secret),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    page: Option<u32>,
    page_size: Option<u32>,
}

fn endpoint_view(r: &sqlx::sqlite::SqliteRow) -> Result<EndpointView, sqlx::Error> {
    Ok(EndpointView {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        events: serde_json::from_str(r.try_get::<&str, _>("events")?).unwrap_or_default(),
        description: r.try_get("description")?,
        created_at: rfc3339(r.try_get("created_at")?),
        secret: None,
    })
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
    let filter = "mode = ? AND disabled_at IS NULL";
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE {filter}"
    ))
    .bind(caller.mode.as_str())
    .fetch_one(&state.db.pool)
    .await?;
    let rows = sqlx::query(&format!(
        "SELECT id, url, events, description, created_at FROM webhook_endpoints WHERE {filter}
         ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
    ))
    .bind(caller.mode.as_str())
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&state.db.pool)
    .await?;
    let items = rows
        .iter()
        .map(endpoint_view)
        .collect::<Result<Vec<_>, _>>()?;
    let base = list_url(&state.config.public_url, "/api/v1/webhook-endpoints/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

async fn check_endpoint(state: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    let found = sqlx::query(
        "SELECT 1 FROM webhook_endpoints WHERE id = ? AND mode = ? AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(caller.mode.as_str())
    .fetch_optional(&state.db.pool)
    .await?;
    found.map(|_| ()).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("webhook endpoint '{id}' not found"),
        )
    })
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
) -> ApiResult<StatusCode> {
    check_endpoint(&state, &caller, &id).await?;
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    sqlx::query("UPDATE webhook_endpoints SET disabled_at = ? WHERE id = ?")
        .bind(now)
        .bind(&id)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted' WHERE endpoint_id = ? AND status = 'pending'")
        .bind(&id)
        .execute(tx.conn())
        .await?;
    state.commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ?")
            .bind(&id)
            .fetch_one(&state.db.pool)
            .await?;
    let rows = sqlx::query(
        "SELECT d.id, d.event_id, ev.type, d.status, d.attempts, d.last_status_code, d.last_error, d.next_attempt_at,
                d.delivered_at, d.created_at
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = ? ORDER BY d.created_at DESC, d.rowid DESC LIMIT ? OFFSET ?",
    )
    .bind(&id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&state.db.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(DeliveryView {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("type")?,
                next_attempt_at: (status == "pending")
                    .then(|| r.try_get::<i64, _>("next_attempt_at").map(rfc3339))
                    .transpose()?,
                status,
                attempts: r.try_get("attempts")?,
                last_status_code: r.try_get("last_status_code")?,
                last_error: r.try_get("last_error")?,
                delivered_at: r.try_get::<Option<i64>, _>("delivered_at")?.map(rfc3339),
                created_at: rfc3339(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let base = list_url(
        &state.config.public_url,
        &format!("/api/v1/webhook-endpoints/{id}/deliveries/"),
        &[],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

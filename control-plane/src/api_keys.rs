//! `/api/v1/api-keys/`: create (the key is shown once), list, revoke. A secret key manages the
//! keys of its own mode; edge sync keys see both modes, so only a live secret key makes them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tollgate_shared::keys;
use tollgate_shared::sync::Change;
use tollgate_shared::{KeyKind, Mode};

use crate::app::AppState;
use crate::auth::{AuthError, Caller, insert_key};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, invalid};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::openapi::ErrorEnvelope;
use crate::sync::changelog;

/// A new key. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKey {
    /// `secret`, `publishable` or `edge_sync` (live secret keys only).
    kind: String,
    /// A label, at most 200 characters.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    id: String,
    kind: String,
    mode: Option<String>,
    prefix: String,
    name: Option<String>,
    created_at: String,
    revoked_at: Option<String>,
    /// Only in the response that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Create an API key.
///
/// The key is in this response only; it is stored hashed.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "createApiKey",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, with `key` set", body = KeyView),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 403, description = "Edge sync keys need a live-mode secret key", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let kind = KeyKind::parse(&req.kind)
        .ok_or_else(|| invalid("kind", "must be one of secret, publishable, edge_sync"))?;
    if req.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(invalid("name", "at most 200 characters").into());
    }
    let mode = match kind {
        KeyKind::EdgeSync if caller.mode != Mode::Live => return Err(AuthError::WrongMode.into()),
        KeyKind::EdgeSync => None,
        _ => Some(caller.mode),
    };
    let key = keys::generate(kind, caller.mode);
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let made = insert_key(&mut tx, now, kind, mode, &key, req.name.as_deref()).await?;
    state.commit(tx).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView {
            id: made.id,
            kind: kind.as_str().to_owned(),
            mode: mode.map(|m| m.as_str().to_owned()),
            prefix: key.chars().take(12).collect(),
            name: req.name,
            created_at: rfc3339(made.created_at),
            revoked_at: None,
            key: Some(made.key),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number (default 1).
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    page_size: Option<u32>,
}

fn view(r: &sqlx::sqlite::SqliteRow) -> Result<KeyView, sqlx::Error> {
    Ok(KeyView {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        mode: r.try_get("mode")?,
        prefix: r.try_get("prefix")?,
        name: r.try_get("name")?,
        created_at: rfc3339(r.try_get("created_at")?),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(rfc3339),
        key: None,
    })
}

/// The caller's mode's keys, plus edge sync keys for live callers.
const VISIBLE: &str = "(mode = ?1 OR (mode IS NULL AND ?1 = 'live'))";

/// List API keys.
///
/// The keys of the caller's mode, and edge sync keys for live-mode callers; never the keys
/// themselves.
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "listApiKeys",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of keys, newest first", body = Paginated<KeyView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<KeyView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM api_keys WHERE {VISIBLE}"))
        .bind(caller.mode.as_str())
        .fetch_one(&state.db.pool)
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT id, kind, mode, prefix, name, created_at, revoked_at FROM api_keys WHERE {VISIBLE}
         ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
    ))
    .bind(caller.mode.as_str())
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&state.db.pool)
    .await?;
    let items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let base = list_url(&state.config.public_url, "/api/v1/api-keys/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Revoke an API key.
///
/// Revokes a key at once here and, through the change log, at every edge. Revoking a revoked
/// key changes nothing.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revokeApiKey",
    params(("id" = String, Path, description = "The key's id (`key_…`)")),
    responses(
        (status = 200, description = "The revoked key", body = KeyView),
        (status = 400, description = "A key cannot revoke itself", body = ErrorEnvelope),
        (status = 404, description = "No such key", body = ErrorEnvelope),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KeyView>> {
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let row = sqlx::query(&format!(
        "SELECT id, kind, mode, prefix, name, created_at, revoked_at, hash FROM api_keys WHERE id = ?2 AND {VISIBLE}"
    ))
    .bind(caller.mode.as_str())
    .bind(&id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| ApiError::new(tollgate_shared::ErrorKind::NotFound, format!("API key '{id}' not found")))?;
    if id == caller.key_id {
        return Err(invalid("id", "a key cannot revoke itself; use another secret key").into());
    }
    let already: Option<i64> = row.try_get("revoked_at")?;
    if already.is_none() {
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
            .bind(now)
            .bind(&id)
            .execute(tx.conn())
            .await?;
        let hash: String = row.try_get("hash")?;
        changelog::append(&mut tx, now, vec![Change::KeyRevoked { hash }]).await?;
    }
    let mut v = view(&row)?;
    v.revoked_at = Some(rfc3339(already.unwrap_or(now)));
    state.commit(tx).await?;
    Ok(Json(v))
}

//! `/api/v1/api-keys/`: create (the key is shown once), list, revoke. A secret key manages the
//! keys of its own mode; edge sync keys see both modes, so only a live secret key makes them.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tollgate_shared::keys;
use tollgate_shared::{ErrorKind, KeyKind, Mode};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::{AuthError, Caller};
use crate::domain::auth::store;
use crate::domain::auth::store::KeyRow;
use crate::platform::clock::rfc3339;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::{check_len, invalid};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A new key. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKey {
    /// `secret`, `publishable` or `edge_sync` (live secret keys only).
    #[schema(pattern = "^(secret|publishable|edge_sync)$")]
    kind: String,
    /// A label, at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    id: String,
    kind: String,
    mode: Option<String>,
    prefix: String,
    name: Option<String>,
    created_at: String,
    revoked_at: Option<String>,
    /// Only in the response that created the key; never stored, never replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<KeyRow> for KeyView {
    fn from(r: KeyRow) -> Self {
        KeyView {
            id: r.id,
            kind: r.kind,
            mode: r.mode,
            prefix: r.prefix,
            name: r.name,
            created_at: rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(rfc3339),
            key: None,
        }
    }
}

/// Create an API key.
///
/// The key is in this response only; it is stored hashed. A retry with the same
/// `Idempotency-Key` answers the key's record without the key.
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
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateKey>,
) -> Result<Reply, ApiError> {
    let kind = KeyKind::parse(&req.kind)
        .ok_or_else(|| invalid("kind", "must be one of secret, publishable, edge_sync"))?;
    check_len("name", req.name.as_deref(), 200)?;
    let mode = match kind {
        KeyKind::EdgeSync if caller.mode != Mode::Live => return Err(AuthError::WrongMode.into()),
        KeyKind::EdgeSync => None,
        _ => Some(caller.mode),
    };
    let caller_mode = caller.mode;
    Ok(state
        .writer
        .reply(claim, "create_api_key", async move |uow| {
            let key = keys::generate(kind, caller_mode);
            let made = store::insert(uow, kind, mode, &key, req.name.as_deref()).await?;
            let view = KeyView {
                id: made.id,
                kind: kind.as_str().to_owned(),
                mode: mode.map(|m| m.as_str().to_owned()),
                prefix: key.chars().take(12).collect(),
                name: req.name.clone(),
                created_at: rfc3339(made.created_at),
                revoked_at: None,
                key: None,
            };
            let shown = KeyView {
                key: Some(made.key),
                ..view.clone()
            };
            Ok(Reply::created(&shown).with_redacted(&view))
        })
        .await)
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
    let mut conn = state.db.read().await?;
    let (rows, count) = store::list(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let items = rows.into_iter().map(KeyView::from).collect();
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
) -> Reply {
    if id == caller.key_id {
        return ApiError::from(invalid(
            "id",
            "a key cannot revoke itself; use another secret key",
        ))
        .into();
    }
    let mode = caller.mode;
    state
        .writer
        .reply(None, "revoke_api_key", async move |uow| {
            let row = store::get_visible(uow.conn(), mode, &id)
                .await?
                .ok_or_else(|| {
                    ApiError::new(ErrorKind::NotFound, format!("API key '{id}' not found"))
                })?;
            let already = row.revoked_at;
            if already.is_none() {
                store::revoke(uow, &row.id, &row.hash).await?;
            }
            let mut view = KeyView::from(row);
            view.revoked_at = Some(rfc3339(already.unwrap_or(uow.now())));
            Ok(Reply::ok(&view))
        })
        .await
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

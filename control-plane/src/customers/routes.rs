//! `/api/v1/customers/`: create (201), get, list, update, and customer tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_shared::token::{TokenClaims, mint};

use super::{
    CustomerError, CustomerView, NewCustomer, check_customer_id, check_email, check_metadata,
};
use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiResult, invalid};
use crate::extract::{ApiJson, ApiQuery, Page, Paginated, list_url};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCustomer {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<CreateCustomer>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    let customer_id = input
        .customer_id
        .unwrap_or_else(|| format!("cus_{}", uuid::Uuid::new_v4().simple()));
    check_customer_id(&customer_id)?;
    if let Some(email) = &input.email {
        check_email(email)?;
    }
    if input.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(invalid("name", "at most 200 characters").into());
    }
    let metadata = input.metadata.unwrap_or(Value::Object(Default::default()));
    check_metadata(&metadata)?;
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let view = super::insert(
        &mut tx,
        caller.mode,
        now,
        NewCustomer {
            customer_id: &customer_id,
            name: input.name.as_deref(),
            email: input.email.as_deref(),
            metadata: &metadata,
        },
    )
    .await?;
    state.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(
        super::get(&mut conn, caller.mode, &customer_id).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    email: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<CustomerView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.pool.acquire().await?;
    let (items, count) = super::list(
        &mut conn,
        caller.mode,
        q.email.as_deref(),
        page.limit(),
        page.offset(),
    )
    .await?;
    let base = list_url(
        &state.config.public_url,
        "/api/v1/customers/",
        &[("email", q.email.as_deref())],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCustomer {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Partial update: fields left out keep their value; `metadata` is replaced whole.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
    ApiJson(input): ApiJson<UpdateCustomer>,
) -> ApiResult<Json<CustomerView>> {
    if let Some(email) = &input.email {
        check_email(email)?;
    }
    if input.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(invalid("name", "at most 200 characters").into());
    }
    if let Some(m) = &input.metadata {
        check_metadata(m)?;
    }
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let current = super::get(tx.conn(), caller.mode, &customer_id).await?;
    sqlx::query("UPDATE customers SET name = ?, email = ?, metadata = ?, modified_at = ? WHERE mode = ? AND customer_id = ?")
        .bind(input.name.or(current.name))
        .bind(input.email.or(current.email))
        .bind(input.metadata.unwrap_or(current.metadata).to_string())
        .bind(now)
        .bind(caller.mode.as_str())
        .bind(&customer_id)
        .execute(tx.conn())
        .await
        .map_err(CustomerError::from)?;
    let view = super::get(tx.conn(), caller.mode, &customer_id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    #[serde(default)]
    ttl_seconds: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    token: String,
    customer_id: String,
    expires_at: String,
}

/// A short-lived token that reads this one customer's entitlements at the edge.
pub async fn mint_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
    ApiJson(input): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let ttl = input.ttl_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&ttl) {
        return Err(invalid("ttlSeconds", "must be between 60 and 86400").into());
    }
    let mut conn = state.db.pool.acquire().await?;
    super::get(&mut conn, caller.mode, &customer_id).await?;
    let expires = state.clock.unix() + i64::from(ttl);
    let token = mint(
        &state.token_key,
        &TokenClaims {
            m: caller.mode,
            c: customer_id.clone(),
            e: expires,
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            customer_id,
            expires_at: rfc3339(expires),
        }),
    ))
}

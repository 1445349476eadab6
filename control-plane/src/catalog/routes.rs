//! `/api/v1/features/` and `/api/v1/plans/`. Every write recompiles the mode's customers in
//! the same transaction, so grants changed here reach the edges like any other change.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::model::{FeatureInput, FeatureView, PlanInput, PlanView};
use super::store::{self, OnExisting};
use crate::app::AppState;
use crate::auth::Caller;
use crate::entitlements;
use crate::error::{ApiResult, invalid};
use crate::extract::{ApiJson, ApiQuery, Page, Paginated, list_url};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page: Option<u32>,
    page_size: Option<u32>,
}

pub async fn create_feature(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<FeatureInput>,
) -> ApiResult<(StatusCode, Json<FeatureView>)> {
    let def = input.validate()?;
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    store::write_feature(&mut tx, caller.mode, &def, now, OnExisting::Fail).await?;
    entitlements::recompile_mode(&mut tx, now, caller.mode).await?;
    let view = store::feature_view(tx.conn(), caller.mode, &def.identifier).await?;
    state.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get_feature(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FeatureView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(
        store::feature_view(&mut conn, caller.mode, &id).await?,
    ))
}

pub async fn list_features(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<FeatureView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.pool.acquire().await?;
    let (items, count) =
        store::list_features(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let base = list_url(&state.config.public_url, "/api/v1/features/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

pub async fn create_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<PlanInput>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let def = input.validate()?;
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    store::write_plan(&mut tx, caller.mode, &def, now, OnExisting::Fail).await?;
    entitlements::recompile_mode(&mut tx, now, caller.mode).await?;
    let view = store::plan_view(tx.conn(), caller.mode, &def.identifier).await?;
    state.commit(tx).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Replaces a plan's definition (prices keep their ids per charge period).
pub async fn replace_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PlanInput>,
) -> ApiResult<Json<PlanView>> {
    if input.identifier != id {
        return Err(invalid(
            "identifier",
            format!("must match the plan in the path ('{id}')"),
        )
        .into());
    }
    let def = input.validate()?;
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    if store::plan_def(tx.conn(), caller.mode, &id)
        .await?
        .is_none()
    {
        return Err(super::CatalogError::PlanNotFound(id).into());
    }
    if store::write_plan(&mut tx, caller.mode, &def, now, OnExisting::Replace).await? {
        entitlements::recompile_mode(&mut tx, now, caller.mode).await?;
    }
    let view = store::plan_view(tx.conn(), caller.mode, &id).await?;
    state.commit(tx).await?;
    Ok(Json(view))
}

pub async fn get_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PlanView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(store::plan_view(&mut conn, caller.mode, &id).await?))
}

pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<PlanView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.pool.acquire().await?;
    let (items, count) =
        store::list_plans(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let base = list_url(&state.config.public_url, "/api/v1/plans/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

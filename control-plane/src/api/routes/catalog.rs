//! `/api/v1/features/` and `/api/v1/plans/`. A write records which customers it affects; the
//! unit of work recompiles them in the same transaction, so grants changed here reach the edges
//! like any other change.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::catalog::model::{CatalogError, FeatureInput, FeatureView, PlanInput, PlanView};
use crate::domain::catalog::store;
use crate::domain::catalog::store::OnExisting;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::invalid;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Create a feature.
#[utoipa::path(
    post,
    path = "/api/v1/features",
    tag = "catalog",
    operation_id = "createFeature",
    request_body = FeatureInput,
    responses(
        (status = 201, description = "The feature was created", body = FeatureView),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 409, description = "A feature with this identifier exists", body = ErrorEnvelope),
    )
)]
pub async fn create_feature(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(input): ApiJson<FeatureInput>,
) -> Result<Reply, ApiError> {
    let def = input.validate()?;
    let mode = caller.mode;
    let reply = state
        .writer
        .reply(claim, "create_feature", async move |uow| {
            store::write_feature(uow, mode, &def, OnExisting::Fail).await?;
            let view = store::feature_view(uow.conn(), mode, &def.identifier).await?;
            Ok(Reply::created(&view))
        })
        .await;
    // Its customers are recompiled in chunks by workers::recompile; start now.
    state.recompile_wake.notify_one();
    Ok(reply)
}

/// Get a feature.
#[utoipa::path(
    get,
    path = "/api/v1/features/{identifier}",
    tag = "catalog",
    operation_id = "getFeature",
    params(("identifier" = String, Path, description = "The feature's identifier")),
    responses(
        (status = 200, description = "The feature", body = FeatureView),
        (status = 404, description = "No such feature", body = ErrorEnvelope),
    )
)]
pub async fn get_feature(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FeatureView>> {
    let mut conn = state.db.read().await?;
    Ok(Json(
        store::feature_view(&mut conn, caller.mode, &id).await?,
    ))
}

/// List features.
#[utoipa::path(
    get,
    path = "/api/v1/features",
    tag = "catalog",
    operation_id = "listFeatures",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of features", body = Paginated<FeatureView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list_features(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<FeatureView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (items, count) =
        store::list_features(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let base = list_url(&state.config.public_url, "/api/v1/features/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Create a plan.
#[utoipa::path(
    post,
    path = "/api/v1/plans",
    tag = "catalog",
    operation_id = "createPlan",
    request_body = PlanInput,
    responses(
        (status = 201, description = "The plan was created", body = PlanView),
        (status = 400, description = "A field is invalid, or a granted feature does not exist", body = ErrorEnvelope),
        (status = 409, description = "A plan with this identifier exists, or the group already has a default plan", body = ErrorEnvelope),
    )
)]
pub async fn create_plan(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<Reply, ApiError> {
    let def = input.validate()?;
    let mode = caller.mode;
    let reply = state
        .writer
        .reply(claim, "create_plan", async move |uow| {
            store::write_plan(uow, mode, &def, OnExisting::Fail).await?;
            let view = store::plan_view(uow.conn(), mode, &def.identifier).await?;
            Ok(Reply::created(&view))
        })
        .await;
    // Its customers are recompiled in chunks by workers::recompile; start now.
    state.recompile_wake.notify_one();
    Ok(reply)
}

/// Replace a plan.
///
/// Replaces a plan's definition (prices keep their ids per charge period).
#[utoipa::path(
    put,
    path = "/api/v1/plans/{identifier}",
    tag = "catalog",
    operation_id = "replacePlan",
    params(("identifier" = String, Path, description = "The plan's identifier")),
    request_body(content = PlanInput, description = "The whole new definition. The identifier is the path's; a body `identifier`, if sent, must match it"),
    responses(
        (status = 200, description = "The plan as stored", body = PlanView),
        (status = 400, description = "A field is invalid, or a granted feature does not exist", body = ErrorEnvelope),
        (status = 404, description = "No such plan", body = ErrorEnvelope),
        (status = 409, description = "The group already has another default plan", body = ErrorEnvelope),
    )
)]
pub async fn replace_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut input): ApiJson<PlanInput>,
) -> Result<Reply, ApiError> {
    if input.identifier.is_empty() {
        input.identifier = id.clone();
    }
    if input.identifier != id {
        return Err(invalid(
            "identifier",
            format!("must match the plan in the path ('{id}')"),
        )
        .into());
    }
    let def = input.validate()?;
    let mode = caller.mode;
    let reply = state
        .writer
        .reply(None, "replace_plan", async move |uow| {
            let Some(existing) = store::plan_def(uow.conn(), mode, &id).await? else {
                return Err(CatalogError::PlanNotFound(id.clone()).into());
            };
            // Subscriptions carry their plan's group; moving a plan under them would split
            // them from it.
            if existing.group != def.group || existing.is_default != def.is_default {
                let subscribed = subscriptions::count_live_on_plan(uow.conn(), mode, &id).await?;
                if subscribed > 0 {
                    return Err(CatalogError::Exists(format!(
                        "plan '{id}' has {subscribed} subscription(s); its group and isDefault cannot change"
                    ))
                    .into());
                }
            }
            store::write_plan(uow, mode, &def, OnExisting::Replace).await?;
            let view = store::plan_view(uow.conn(), mode, &id).await?;
            Ok(Reply::ok(&view))
        })
        .await;
    // Its customers are recompiled in chunks by workers::recompile; start now.
    state.recompile_wake.notify_one();
    Ok(reply)
}

/// Get a plan.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{identifier}",
    tag = "catalog",
    operation_id = "getPlan",
    params(("identifier" = String, Path, description = "The plan's identifier")),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 404, description = "No such plan", body = ErrorEnvelope),
    )
)]
pub async fn get_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PlanView>> {
    let mut conn = state.db.read().await?;
    Ok(Json(store::plan_view(&mut conn, caller.mode, &id).await?))
}

/// List plans.
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    tag = "catalog",
    operation_id = "listPlans",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of plans", body = Paginated<PlanView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<PlanView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (items, count) =
        store::list_plans(&mut conn, caller.mode, page.limit(), page.offset()).await?;
    let base = list_url(&state.config.public_url, "/api/v1/plans/", &[]);
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_feature, list_features))
        .routes(routes!(get_feature))
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan, replace_plan))
}

//! `GET /api/v1/subscriptions/…` in Kelviq's shapes.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::model::{Status, SubscriptionError, SubscriptionView};
use super::store::{self, ListFilter};
use crate::auth::model::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::http::schema::ErrorEnvelope;
use crate::state::AppState;
use crate::validate::invalid;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's subscriptions.
    customer_id: Option<String>,
    /// The same as `customer_id`.
    #[serde(rename = "customerId")]
    customer_id_camel: Option<String>,
    /// `incomplete`, `trialing`, `active`, `past_due` or `canceled`.
    status: Option<String>,
    /// Only subscriptions to this plan identifier.
    plan: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// List subscriptions.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "subscriptions",
    operation_id = "listSubscriptions",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of subscriptions", body = Paginated<SubscriptionView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<SubscriptionView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            invalid("status", format!("'{s}' is not one of {}", all.join(", ")))
        })?),
    };
    let customer_id = q.customer_id.or(q.customer_id_camel);
    let filter = ListFilter {
        customer_id: customer_id.as_deref(),
        status,
        plan: q.plan.as_deref(),
    };
    let mut conn = state.db.read().await?;
    let (items, count) =
        store::list(&mut conn, caller.mode, &filter, page.limit(), page.offset()).await?;
    let base = list_url(
        &state.config.public_url,
        "/api/v1/subscriptions/",
        &[
            ("customer_id", filter.customer_id),
            ("status", q.status.as_deref()),
            ("plan", filter.plan),
        ],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Get a subscription.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "getSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let mut conn = state.db.read().await?;
    Ok(Json(
        store::view(&mut conn, caller.mode, &id)
            .await?
            .ok_or(SubscriptionError::NotFound(id))?,
    ))
}

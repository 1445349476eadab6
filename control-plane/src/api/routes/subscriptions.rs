//! `GET /api/v1/subscriptions/…` in Kelviq's shapes.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::subscriptions::model::{Status, SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::store;
use crate::domain::subscriptions::store::ListFilter;
use crate::platform::http::error::ApiResult;
use crate::platform::http::extract::{ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::{invalid, time_bound_opt};
use crate::workflows::views as read;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's subscriptions.
    #[param(format = "external-id")]
    customer_id: Option<String>,
    /// The same as `customer_id`.
    #[serde(rename = "customerId")]
    #[param(format = "external-id")]
    customer_id_camel: Option<String>,
    /// `incomplete`, `trialing`, `active`, `past_due` or `canceled`.
    #[param(pattern = r"^(incomplete|trialing|active|past_due|canceled|incomplete_expired)$")]
    status: Option<String>,
    /// Only subscriptions to this plan identifier.
    #[param(max_length = 64)]
    plan: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Started on or after this date (`YYYY-MM-DD`, UTC) or time (RFC 3339).
    #[param(format = "date-or-time")]
    start_date_after: Option<String>,
    /// Started on or before this date (the whole day counts) or time.
    #[param(format = "date-or-time")]
    start_date_before: Option<String>,
    /// Last changed on or after this date or time.
    #[param(format = "date-or-time")]
    modified_on_after: Option<String>,
    /// Last changed on or before this date (the whole day counts) or time.
    #[param(format = "date-or-time")]
    modified_on_before: Option<String>,
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
        started_from: time_bound_opt("start_date_after", q.start_date_after.as_deref(), true)?,
        started_to: time_bound_opt("start_date_before", q.start_date_before.as_deref(), false)?,
        modified_from: time_bound_opt("modified_on_after", q.modified_on_after.as_deref(), true)?,
        modified_to: time_bound_opt("modified_on_before", q.modified_on_before.as_deref(), false)?,
    };
    let mut conn = state.db.read().await?;
    let (items, count) =
        store::list(&mut conn, caller.mode, &filter, page.limit(), page.offset()).await?;
    let now = state.clock.unix();
    let mut complete = Vec::with_capacity(items.len());
    for item in items {
        complete.push(read::complete(&mut conn, caller.mode, item, now).await?);
    }
    let items = complete;
    let base = list_url(
        &state.config.public_url,
        "/api/v1/subscriptions/",
        &[
            ("customer_id", filter.customer_id),
            ("status", q.status.as_deref()),
            ("plan", filter.plan),
            ("start_date_after", q.start_date_after.as_deref()),
            ("start_date_before", q.start_date_before.as_deref()),
            ("modified_on_after", q.modified_on_after.as_deref()),
            ("modified_on_before", q.modified_on_before.as_deref()),
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
        read::full(&mut conn, caller.mode, &id, state.clock.unix())
            .await?
            .ok_or(SubscriptionError::NotFound(id))?,
    ))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}

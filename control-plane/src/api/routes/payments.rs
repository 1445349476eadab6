//! `/api/v1/payments/`: payment intents, one per charge attempt (docs/payments.md).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::settlement::action_url;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::payments::model::IntentView;
use crate::domain::payments::store;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::check_len;
use tollgate_shared::ErrorKind;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's payment intents.
    #[serde(alias = "customerId")]
    #[param(max_length = 255)]
    customer_id: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// List payment intents, newest first.
///
/// Each charge Tollgate asks of the processor is a payment intent: its amount, the invoice it
/// pays, its status (`processing`, `requires_action`, `succeeded`, `failed`, `canceled`), the
/// processor's reference, its attempts and its last error.
#[utoipa::path(
    get,
    path = "/api/v1/payments",
    tag = "payments",
    operation_id = "listPayments",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of payment intents", body = Paginated<IntentView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<IntentView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    check_len("customer_id", q.customer_id.as_deref(), 255)?;
    let mut conn = state.db.read().await?;
    let (rows, count) = store::list_for_customer(
        &mut conn,
        caller.mode,
        q.customer_id.as_deref(),
        page.limit(),
        page.offset(),
    )
    .await?;
    let public_url = &state.config.public_url;
    let items = rows
        .iter()
        .map(|i| IntentView::new(i, Some(action_url(public_url, &i.id))))
        .collect();
    let base = list_url(
        public_url,
        "/api/v1/payments/",
        &[("customer_id", q.customer_id.as_deref())],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Get a payment intent.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{id}",
    tag = "payments",
    operation_id = "getPayment",
    params(("id" = String, Path, description = "The payment intent id (`pi_…`)")),
    responses(
        (status = 200, description = "The payment intent", body = IntentView),
        (status = 404, description = "No such payment intent", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<IntentView>> {
    let mut conn = state.db.read().await?;
    let intent = store::get(&mut conn, caller.mode, &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("payment intent '{id}' not found"),
            )
        })?;
    Ok(Json(IntentView::new(
        &intent,
        Some(action_url(&state.config.public_url, &intent.id)),
    )))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}

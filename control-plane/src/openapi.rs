//! The OpenAPI document, generated from the code's request and response types.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate control plane",
        description = "Subscription billing with an entitlements edge. See docs/."
    ),
    components(schemas(
        crate::customers::CustomerView,
        crate::catalog::model::FeatureView,
        crate::catalog::model::PlanView,
        crate::catalog::model::PriceView,
        crate::catalog::model::GrantView,
        crate::subscriptions::SubscriptionView,
        crate::subscriptions::PlanRef,
        crate::subscriptions::ScheduledChange,
    ))
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

//! Health, readiness, Prometheus metrics, and the envelope for routes and methods that do not
//! exist.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tollgate_shared::ErrorKind;

use crate::api::state::AppState;
use crate::platform::http::error::ApiError;
use crate::platform::http::schema::{ErrorEnvelope, Readiness};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    security(()),
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain", example = "ok\n"))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer", body = ErrorEnvelope),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ping = async {
        let mut conn = state.db.read().await?;
        crate::platform::db::sql::query("SELECT 1")
            .execute(&mut conn)
            .await
    };
    match ping.await {
        Ok(_) => axum::Json(serde_json::json!({"ready": true})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            ApiError::new(ErrorKind::Unavailable, "database not reachable").into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 404, description = "Metrics are not enabled in this process", body = ErrorEnvelope),
    )
)]
pub async fn metrics() -> Response {
    match crate::platform::observe::render_metrics() {
        Some(text) => text.into_response(),
        None => ApiError::new(ErrorKind::NotFound, "metrics are not enabled").into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// The operations routes: liveness, readiness, metrics.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

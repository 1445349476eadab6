//! Health, readiness, Prometheus metrics, request tracking, and the envelope for routes and
//! methods that do not exist.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tollgate_shared::ErrorKind;
use tracing::Instrument;

use crate::api::state::AppState;
use crate::platform::http::error::ApiError;
use crate::platform::http::schema::{ErrorEnvelope, Readiness};

/// One span and one set of metrics per request, labelled by the matched route (not the raw
/// URI, which would explode label cardinality and leak ids into logs).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method()).to_owned();
    let span = tracing::info_span!("request", %method, %route, status = tracing::field::Empty);
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("tollgate_http_requests_total", &labels).increment(1);
    metrics::histogram!("tollgate_http_request_duration_seconds", &labels[..2]).record(elapsed);
    if status >= 500 {
        tracing::error!(parent: &span, status, "request failed");
    } else {
        tracing::debug!(parent: &span, status, elapsed_ms = elapsed * 1000.0, "request");
    }
    resp
}

/// Methods outside the standard set are counted as `other`, so made-up methods cannot grow the
/// label set.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

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

static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the process-wide recorder once; later calls (more apps in one test process) reuse it.
pub fn install_metrics() {
    PROMETHEUS.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    });
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
    match PROMETHEUS.get() {
        Some(h) => h.render().into_response(),
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

/// Domain gauges an operator wants, refreshed every few seconds: webhook backlog, the newest
/// change-log version, the write queue.
pub async fn gauges(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        metrics::gauge!("tollgate_sync_version").set(state.sync.latest() as f64);
        metrics::gauge!("tollgate_write_queue_units").set(state.writer.queue_depth() as f64);
        if let Ok(mut conn) = state.db.read().await
            && let Ok(n) = crate::domain::webhooks::store::backlog(&mut conn).await
        {
            metrics::gauge!("tollgate_webhook_backlog").set(n as f64);
        }
        if let Ok(mut conn) = state.db.read().await
            && let Ok(n) = crate::domain::webhooks::store::open_circuits(&mut conn).await
        {
            metrics::gauge!("tollgate_webhook_circuit_open_endpoints").set(n as f64);
        }
        if let Ok(mut conn) = state.db.read().await
            && let Ok(n) = crate::domain::recompiles::store::pending(&mut conn).await
        {
            metrics::gauge!("tollgate_catalog_recompiles_pending").set(n as f64);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

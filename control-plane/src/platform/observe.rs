//! Request tracing and Prometheus metrics plumbing: one span and one set of metrics per request
//! (labelled by route, method and status only), and the process-wide recorder.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

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

/// The metrics in Prometheus' text format, or `None` when no recorder is installed.
pub fn render_metrics() -> Option<String> {
    PROMETHEUS.get().map(|h| h.render())
}

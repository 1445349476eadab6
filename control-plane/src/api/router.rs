//! The one list of routes. Every area's `routes()` declares its handlers once with
//! utoipa-axum's `routes!`, which takes the path and the method from the handler's
//! `#[utoipa::path]`: the router that serves them and the OpenAPI document that describes them
//! are two views of these lists, so they cannot drift apart.
//!
//! Three groups, by what wraps them:
//! * `json_api` — `/api/v1/…` and 4geeks' `/v1/…`, behind the idempotency middleware;
//! * `hosted_pages` — checkout and portal pages and their assets, with the pages' security
//!   headers on every answer;
//! * `operations` — the sync stream, health, readiness, metrics and `/openapi.json`.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::openapi::{self, ApiDoc};
use crate::api::state::AppState;
use crate::api::{dialects, idempotency, pages, routes as area};
use crate::platform::http::hosted;
use crate::platform::observe;

fn json_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(area::customers::routes())
        .merge(area::catalog::routes())
        .merge(area::checkout::routes())
        .merge(area::subscriptions::routes())
        .merge(dialects::kelviq::routes())
        .merge(dialects::paykit::routes())
        .merge(area::portal::routes())
        .merge(area::licenses::routes())
        .merge(area::invoices::routes())
        .merge(area::refunds::routes())
        .merge(area::payments::routes())
        .merge(area::stripe_webhooks::routes())
        .merge(area::test_clocks::routes())
        .merge(area::usage::routes())
        .merge(area::webhooks::routes())
        .merge(dialects::fourgeeks::routes())
        .merge(area::api_keys::routes())
}

fn hosted_pages() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(pages::checkout::routes())
        .merge(pages::portal::routes())
        .merge(pages::authenticate::routes())
        .merge(pages::assets::routes())
}

fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(area::sync::routes())
        .merge(area::ops::routes())
        .routes(routes!(serve))
}

/// What `--admin-listen` serves: metrics and readiness (and liveness), nothing else.
pub fn admin_router(state: AppState) -> Router {
    let (ops, _) = OpenApiRouter::new()
        .merge(area::ops::routes())
        .split_for_parts();
    ops.fallback(area::ops::not_found)
        .method_not_allowed_fallback(area::ops::method_not_allowed)
        .with_state(state)
}

/// With `--admin-listen`, the public listener answers `/metrics` and `/readyz` 404: they are
/// on the admin address only.
async fn admin_paths_elsewhere(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path().trim_end_matches('/');
    if state.config.admin_listen.is_some() && (path == "/metrics" || path == "/readyz") {
        return area::ops::not_found().await.into_response();
    }
    next.run(req).await
}

/// The control plane's router: the three groups with their layers, and the envelope for
/// unknown routes and methods.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let (api, _) = json_api().split_for_parts();
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        idempotency::middleware,
    ));
    let (hosted, _) = hosted_pages().split_for_parts();
    let hosted = hosted.layer(axum::middleware::from_fn(hosted::security_headers));
    let (ops, _) = operations().split_for_parts();
    let ops = ops.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        admin_paths_elsewhere,
    ));
    let api = api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::api::rate_limit::middleware,
    ));
    Router::new()
        .merge(api)
        .merge(hosted)
        .merge(ops)
        .fallback(area::ops::not_found)
        .method_not_allowed_fallback(area::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// The control plane's OpenAPI document as served and published (`docs/openapi.json`): the
/// operations of every route above, plus the edge's reads.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    for group in [json_api(), hosted_pages(), operations()] {
        doc.merge(group.into_openapi());
    }
    openapi::finish(doc)
}

/// The document, serialized once: it is the same for the life of the process.
fn document_bytes() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default())
}

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "getOpenApi",
    security(()),
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], document_bytes()).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::api::openapi::EdgeApiDoc;

    const REGENERATE: &str =
        "cargo run -q -p tollgate-control-plane -- openapi > docs/openapi.json";

    fn doc() -> Value {
        document()
    }

    /// Every `(method, path)` of the document, with the operation.
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&method.as_str())
                {
                    out.push((method.clone(), path.clone(), op));
                }
            }
        }
        out
    }

    fn is_edge(op: &Value) -> bool {
        op["tags"].as_array().unwrap().contains(&json!("edge"))
    }

    #[test]
    fn edge_paths_are_merged_under_the_edge_tag() {
        let doc = doc();
        let edge: Vec<_> = operations(&doc)
            .into_iter()
            .filter(|(_, _, op)| is_edge(op))
            .map(|(method, path, _)| (method, path))
            .collect();
        assert_eq!(
            edge,
            [
                ("get".to_owned(), "/api/v1/entitlements".to_owned()),
                (
                    "get".to_owned(),
                    "/api/v1/entitlements/{featureId}".to_owned()
                ),
            ]
        );
        for (method, path) in &edge {
            let item = &doc["paths"][path];
            assert_eq!(item["servers"][0]["url"], "http://127.0.0.1:8081", "{path}");
            let names: BTreeSet<&str> = item[method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(
                names.is_superset(&BTreeSet::from(["customerId", "customer_id"])),
                "{names:?}"
            );
        }
        let list = &doc["paths"]["/api/v1/entitlements"]["get"]["parameters"];
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"featureId") && names.contains(&"feature_id"),
            "{names:?}"
        );
        let tag = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "edge")
            .expect("an edge tag");
        assert!(tag["description"].as_str().unwrap().contains("edge nodes"));
        // The edge's document stands alone too, without the control plane's paths.
        let alone = serde_json::to_value(EdgeApiDoc::openapi()).unwrap();
        assert_eq!(alone["paths"].as_object().unwrap().len(), 2);
        assert!(alone["components"]["securitySchemes"]["bearerAuth"].is_object());
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = BTreeSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
        }
        assert!(seen.contains("updateCustomerPatch") && seen.contains("updateCustomerPut"));
    }

    #[test]
    fn responses_errors_and_security_are_described() {
        let doc = doc();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearerAuth"]["type"], "http");
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        assert_eq!(schemes["basicAuth"]["type"], "http");
        assert_eq!(schemes["basicAuth"]["scheme"], "basic");
        assert_eq!(
            doc["security"],
            json!([{"bearerAuth": []}, {"basicAuth": []}])
        );
        let responses = &doc["components"]["responses"];
        for (method, path, op) in operations(&doc) {
            let name = format!("{method} {path}");
            let statuses = op["responses"].as_object().unwrap();
            assert!(
                statuses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{name}: no success response"
            );
            let public = op["security"] == json!([{}]);
            if !public {
                assert!(
                    statuses.contains_key("401") && statuses.contains_key("403"),
                    "{name}"
                );
            }
            for (status, response) in statuses {
                let response = match response["$ref"].as_str() {
                    Some(r) => &responses[r.trim_start_matches("#/components/responses/")],
                    None => response,
                };
                assert!(response["description"].is_string(), "{name} {status}");
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                if let Some(schema) = response["content"].get("application/json") {
                    assert_eq!(
                        schema["schema"]["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{name} {status}"
                    );
                } else {
                    assert!(
                        response["content"]["text/html"].is_object(),
                        "{name} {status}: no body"
                    );
                }
            }
            if path.starts_with("/api/v1/") && method == "post" && !is_edge(op) {
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{name}"
                );
            }
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"].as_object().is_some_and(|c| !c.is_empty()),
                    "{name}"
                );
            }
        }
    }

    /// The documentation-only shapes name the same fields as the types that are serialized.
    #[test]
    fn documented_shapes_match_the_wire_types() {
        let doc = doc();
        let properties = |schema: &str| -> BTreeSet<String> {
            doc["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {schema}"))
                .keys()
                .cloned()
                .collect()
        };
        let keys =
            |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };

        let envelope = serde_json::to_value(tollgate_shared::ErrorEnvelope::new(
            tollgate_shared::ErrorKind::NotFound,
            "x",
        ))
        .unwrap();
        assert_eq!(properties("ErrorEnvelope"), keys(&envelope));
        assert_eq!(properties("ErrorBody"), keys(&envelope["error"]));

        let meter = tollgate_shared::Entitlement {
            feature_id: "api-calls".into(),
            feature_type: tollgate_shared::FeatureType::Meter,
            has_access: true,
            usage_limit: tollgate_shared::entitlement::Limit::Max(10),
            current_usage: Some(1),
            remaining: Some(9),
            reset_at: Some("2026-12-01T00:00:00Z".into()),
            hard_limit: Some(true),
        };
        assert_eq!(
            properties("Entitlement"),
            keys(&serde_json::to_value(&meter).unwrap())
        );
        let types: Vec<Value> = [
            tollgate_shared::FeatureType::Boolean,
            tollgate_shared::FeatureType::Meter,
            tollgate_shared::FeatureType::Customizable,
        ]
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
        assert_eq!(
            doc["components"]["schemas"]["FeatureType"]["enum"],
            json!(types)
        );
        let list = serde_json::to_value(tollgate_shared::CustomerEntitlements {
            mode: tollgate_shared::Mode::Test,
            customer_id: "c".into(),
            entitlements: vec![meter],
        })
        .unwrap();
        // The edge answers `{customerId, entitlements}`, without the mode.
        let mut wire = keys(&list);
        wire.remove("mode");
        assert_eq!(properties("CustomerEntitlements"), wire);

        let frame =
            tollgate_shared::sync::Frame::new(tollgate_shared::sync::FrameBody::Heartbeat {
                version: 1,
            });
        let frame = serde_json::to_value(frame).unwrap();
        assert_eq!(properties("SyncFrame"), keys(&frame));
        assert_eq!(properties("SyncFrameBody"), keys(&frame["frame"]));
    }

    /// Every `format` marker of a validated type was replaced by its rules: what is left are
    /// the formats JSON Schema and OpenAPI define.
    #[test]
    fn no_format_marker_survives() {
        fn formats(v: &Value, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(f)) = map.get("format") {
                        out.insert(f.clone());
                    }
                    map.values().for_each(|v| formats(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| formats(v, out)),
                _ => {}
            }
        }
        let mut found = BTreeSet::new();
        formats(&doc(), &mut found);
        let known = [
            "date",
            "date-time",
            "int32",
            "int64",
            "double",
            "float",
            "binary",
            "email",
            "uri",
            "ipv4",
            "ipv6",
            "uuid",
        ];
        let unknown: Vec<_> = found
            .iter()
            .filter(|f| !known.contains(&f.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "formats left in the document: {unknown:?}"
        );
    }

    #[test]
    fn docs_openapi_json_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap();
        let on_disk = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {path}: {e}; generate it with: {REGENERATE}"));
        assert!(
            on_disk.trim_end() == generated.trim_end(),
            "docs/openapi.json differs from the generated OpenAPI document; regenerate it \
             with: {REGENERATE}"
        );
    }
}

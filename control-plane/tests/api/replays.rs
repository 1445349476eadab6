//! Issue 15, finding 11: every idempotent replay is an answer the OpenAPI document describes.
//! Each POST of `/api/v1/` is sent twice with one `Idempotency-Key` — first with a body that
//! succeeds where the test can make one, then with an empty object (a 4xx answer is stored and
//! replayed too) — and the second answer is checked against the schema the document gives for
//! its status. A new POST operation without a row here fails the test.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The schema `doc` gives for `status` of `method path`, made a standalone JSON Schema whose
/// `$ref`s resolve against the document's components.
fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Option<Value> {
    let responses = &doc["paths"][path][method]["responses"];
    let mut response = &responses[status.to_string()];
    if let Some(shared) = response["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/responses/"))
    {
        response = &doc["components"]["responses"][shared];
    }
    let schema = response["content"]["application/json"]["schema"].clone();
    if schema.is_null() {
        return None;
    }
    let mut standalone =
        json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema]});
    standalone["components"] = doc["components"].clone();
    Some(standalone)
}

both! {
    async fn every_idempotent_replay_matches_the_openapi_document(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let doc: Value = client().get(format!("{}/openapi.json", cp.url)).send().await.unwrap().json().await.unwrap();
        api.create_customer("replayer").await;
        api.create_customer("shopper").await;
        api.subscribe_paid("replayer", "pro", "MONTHLY").await;
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=replayer").await;
        let sub = subs["results"][0]["id"].as_str().unwrap().to_owned();
        let (hook, _receiver) = crate::webhooks::start_receiver(0).await;
        // Bodies that succeed, by operation path; every other operation is sent `{}` only.
        let good: Vec<(&str, Value)> = vec![
            ("/api/v1/customers", json!({"customerId": "replayed"})),
            ("/api/v1/portal/session", json!({"customerId": "replayer"})),
            ("/api/v1/api-keys", json!({"kind": "publishable", "name": "replayed"})),
            ("/api/v1/webhook-endpoints", json!({"url": hook, "events": ["*"]})),
            ("/api/v1/checkout", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "shopper",
                                        "successUrl": "https://example.com/ok"})),
            ("/api/v1/usage", json!({"customerId": "replayer", "featureId": "api-calls", "quantity": 1})),
            ("/api/v1/test-clocks", json!({"frozenTime": "2026-01-01T00:00:00Z"})),
            ("/api/v1/customers/{customer_id}/token", json!({})),
        ];
        let fill = |path: &str| {
            path.replace("{customer_id}", "replayer")
                .replace("{id}", &sub)
                .replace("{session_id}", "cs_test_none")
        };
        let mut checked = 0;
        let posts: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(p, ops)| p.starts_with("/api/v1/") && ops.get("post").is_some())
            .map(|(p, _)| p.clone())
            .collect();
        for (n, path) in posts.iter().enumerate() {
            let mut bodies = vec![json!({})];
            if let Some((_, body)) = good.iter().find(|(p, _)| p == path) {
                bodies.insert(0, body.clone());
            }
            for (b, body) in bodies.iter().enumerate() {
                let key = format!("replay-{n}-{b}");
                let headers = [("idempotency-key", key.as_str()), ("content-type", "application/json")];
                let url = fill(path);
                let body = body.to_string();
                let (first, _) = api.raw(Method::POST, &url, body.as_bytes(), &headers).await;
                let (second, replay) = api.raw(Method::POST, &url, body.as_bytes(), &headers).await;
                assert!(!second.is_server_error(), "{path}: {second} {replay}");
                if bodies.len() == 2 && b == 0 {
                    assert!(first.is_success(), "{path} {body}: the good body failed: {first} {replay}");
                }
                assert_eq!(first, second, "{path} {body}: the replay's status changed: {replay}");
                let Some(schema) = response_schema(&doc, path, "post", second.as_u16()) else {
                    panic!("{path}: {second} is not in the document");
                };
                let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
                let errors: Vec<String> = validator.iter_errors(&replay).map(|e| format!("{e} at {}", e.instance_path)).collect();
                assert!(errors.is_empty(), "{path} {body} → {second}: the replay {replay} breaks the document: {errors:?}");
                if second != StatusCode::BAD_REQUEST || b == 0 {
                    checked += 1;
                }
            }
        }
        assert!(posts.len() >= 20 && checked >= posts.len(), "checked {checked} of {}", posts.len());
        // Every good body names an operation (else the table is out of date).
        for (path, _) in &good {
            assert!(posts.iter().any(|p| p == path), "{path} is no longer an operation");
        }
    }
}

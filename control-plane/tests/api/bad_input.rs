//! Every endpoint against bad input: each answer is a 4xx with the error envelope, never a
//! 5xx, and nothing already stored changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Everything a caller can read back, to compare before and after the sweep.
async fn stored(api: &Api) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/api/v1/customers/?page_size=100",
        "/api/v1/subscriptions/?page_size=100",
        "/api/v1/plans/?page_size=100",
        "/api/v1/features/?page_size=100",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        all.insert(path.to_owned(), body);
    }
    Value::Object(all)
}

struct Case {
    method: Method,
    path: String,
    body: Vec<u8>,
    expect: StatusCode,
}

fn case(method: Method, path: &str, body: &str, expect: u16) -> Case {
    Case {
        method,
        path: path.to_owned(),
        body: body.as_bytes().to_vec(),
        expect: StatusCode::from_u16(expect).unwrap(),
    }
}

both! {
    async fn bad_requests_get_clear_4xx_envelopes_and_change_nothing(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("keeper").await;
        let sub = api.subscribe_paid("keeper", "pro", "MONTHLY").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let before = stored(&api).await;

        let big = format!(
            "{{\"customerId\":\"x\",\"name\":\"{}\"}}",
            "a".repeat(70 * 1024)
        );
        let sub = |suffix: &str| format!("/api/v1/subscriptions/{sub_id}/{suffix}");
        let cases = vec![
            // Routing.
            case(Method::GET, "/api/v1/nope/", "", 404),
            case(Method::DELETE, "/api/v1/customers/", "", 405),
            // Customers.
            case(Method::POST, "/api/v1/customers/", "{not json", 400),
            case(Method::POST, "/api/v1/customers/", "[1,2]", 400),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":5}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":"keeper"}"#,
                409,
            ),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":"n","email":"not-an-email"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":"n","metadata":[1]}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":""}"#,
                400,
            ),
            case(Method::POST, "/api/v1/customers/", &big, 413),
            case(Method::GET, "/api/v1/customers/ghost/", "", 404),
            case(
                Method::PATCH,
                "/api/v1/customers/ghost/",
                r#"{"name":"x"}"#,
                404,
            ),
            case(
                Method::PATCH,
                "/api/v1/customers/keeper/",
                r#"{"email":"bad"}"#,
                400,
            ),
            case(Method::GET, "/api/v1/customers/?page=abc", "", 400),
            case(Method::GET, "/api/v1/customers/?page_size=1000", "", 400),
            case(Method::POST, "/api/v1/customers/ghost/token/", "{}", 404),
            case(
                Method::POST,
                "/api/v1/customers/keeper/token/",
                r#"{"ttlSeconds":1}"#,
                400,
            ),
            // Catalog.
            case(
                Method::POST,
                "/api/v1/features/",
                r#"{"identifier":"x","name":"X","type":"COLOR"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/features/",
                r#"{"identifier":"x y","name":"X","type":"BOOLEAN"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/features/",
                r#"{"identifier":"sso","name":"SSO","type":"BOOLEAN"}"#,
                409,
            ),
            case(
                Method::POST,
                "/api/v1/features/",
                r#"{"name":"X","type":"BOOLEAN"}"#,
                400,
            ),
            case(Method::GET, "/api/v1/features/ghost/", "", 404),
            case(
                Method::POST,
                "/api/v1/plans/",
                r#"{"identifier":"p","name":"P","features":[{"featureId":"ghost"}]}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/plans/",
                r#"{"identifier":"p","name":"P","prices":[{"chargePeriod":"HOURLY","amount":"1.00","currency":"usd"}]}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/plans/",
                r#"{"identifier":"p","name":"P","prices":[{"chargePeriod":"MONTHLY","amount":1.5,"currency":"usd"}]}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/plans/",
                r#"{"identifier":"pro","name":"Pro again"}"#,
                409,
            ),
            case(
                Method::POST,
                "/api/v1/plans/",
                r#"{"identifier":"free2","name":"F","group":"base","isDefault":true}"#,
                409,
            ),
            case(
                Method::PUT,
                "/api/v1/plans/ghost/",
                r#"{"identifier":"ghost","name":"G"}"#,
                404,
            ),
            case(
                Method::PUT,
                "/api/v1/plans/pro/",
                r#"{"identifier":"other","name":"G"}"#,
                400,
            ),
            case(Method::GET, "/api/v1/plans/ghost/", "", 404),
            // Checkout.
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"https://a.example.com/"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"ghost","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"https://a.example.com/"}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"WEEKLY","customerId":"keeper","successUrl":"https://a.example.com/"}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"/relative"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"javascript:alert(1)"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","successUrl":"https://a.example.com/"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"https://a.example.com/","quantity":0}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"https://a.example.com/","ipAddress":"999.1.1.1"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/",
                r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"https://a.example.com/","quantity":"two"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/checkout/cs_test_ghost/complete/",
                r#"{"paymentMethod":"pm_card_visa"}"#,
                404,
            ),
            // Subscriptions.
            case(Method::GET, "/api/v1/subscriptions/ghost/", "", 404),
            case(
                Method::GET,
                "/api/v1/subscriptions/?status=sleeping",
                "",
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscriptions/ghost/update/",
                r#"{"planIdentifier":"enterprise","chargePeriod":"MONTHLY"}"#,
                404,
            ),
            case(
                Method::POST,
                &sub("update"),
                r#"{"planIdentifier":"enterprise"}"#,
                400,
            ),
            case(
                Method::POST,
                &sub("update"),
                r#"{"planIdentifier":"ghost","chargePeriod":"MONTHLY"}"#,
                404,
            ),
            case(
                Method::POST,
                &sub("update"),
                r#"{"planIdentifier":"enterprise","chargePeriod":"DAILY"}"#,
                404,
            ),
            case(
                Method::POST,
                &sub("update"),
                r#"{"planIdentifier":"enterprise","chargePeriod":"MONTHLY","prorationBehavior":"SOMETIMES"}"#,
                400,
            ),
            case(
                Method::POST,
                &sub("update"),
                r#"{"planIdentifier":"enterprise","chargePeriod":"MONTHLY","quantity":-1}"#,
                400,
            ),
            case(
                Method::POST,
                &sub("cancel"),
                r#"{"cancellationType":"EVENTUALLY"}"#,
                400,
            ),
            case(
                Method::POST,
                &sub("cancel"),
                r#"{"cancellationType":"SPECIFIC_DATE"}"#,
                400,
            ),
            case(
                Method::POST,
                &sub("cancel"),
                r#"{"cancellationType":"SPECIFIC_DATE","cancellationDate":"2001-01-01"}"#,
                409,
            ),
            case(Method::POST, "/api/v1/subscriptions/ghost/resume/", "", 404),
            // Subscribe (PayKit).
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"planId":"pro"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"ghost"}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"pro"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"pro","chargePeriod":"DAILY"}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"pro","chargePeriod":"MONTHLY","quantity":0}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"pro","chargePeriod":"MONTHLY","forceCheckout":"yes"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"pro","chargePeriod":"MONTHLY","successUrl":"ftp://x"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/subscribe/",
                r#"{"customerId":"keeper","planId":"enterprise","chargePeriod":"MONTHLY","prorationBehavior":"LATER"}"#,
                400,
            ),
            // Usage.
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls","quantity":1,"set":1}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls","set":-1}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls","quantity":"many"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"ghost","featureId":"api-calls","quantity":1}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"ghost","quantity":1}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/usage/",
                r#"{"customerId":"keeper","featureId":"sso","quantity":1}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/report/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls","value":1,"behaviour":"ADD"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/report/usage/",
                r#"{"customerId":"keeper","featureId":"api-calls"}"#,
                400,
            ),
            // Invoices, payment methods, test clocks.
            case(Method::GET, "/api/v1/invoices/in_ghost/", "", 404),
            case(Method::GET, "/api/v1/invoices/?page=0", "", 400),
            case(
                Method::POST,
                "/api/v1/customers/keeper/payment-methods/",
                r#"{"token":"tok_visa"}"#,
                400,
            ),
            case(
                Method::POST,
                "/api/v1/customers/keeper/payment-methods/",
                r#"{"token":"pm_card_chargeDeclined"}"#,
                402,
            ),
            case(
                Method::POST,
                "/api/v1/customers/ghost/payment-methods/",
                r#"{"token":"pm_card_visa"}"#,
                404,
            ),
            case(
                Method::DELETE,
                "/api/v1/customers/ghost/payment-methods/",
                "",
                404,
            ),
            case(
                Method::POST,
                "/api/v1/test-clocks/",
                r#"{"frozenTime":"yesterday"}"#,
                400,
            ),
            case(Method::POST, "/api/v1/test-clocks/", r#"{}"#, 400),
            case(Method::GET, "/api/v1/test-clocks/clock_ghost/", "", 404),
            case(
                Method::POST,
                "/api/v1/test-clocks/clock_ghost/advance/",
                r#"{"frozenTime":"2030-01-01T00:00:00Z"}"#,
                404,
            ),
            case(
                Method::POST,
                "/api/v1/customers/",
                r#"{"customerId":"clocked","testClock":"clock_ghost"}"#,
                404,
            ),
            // Keys.
            case(Method::POST, "/api/v1/api-keys/", r#"{"kind":"root"}"#, 400),
            case(
                Method::POST,
                "/api/v1/api-keys/",
                r#"{"kind":"edge_sync"}"#,
                403,
            ),
            case(Method::DELETE, "/api/v1/api-keys/key_ghost/", "", 404),
        ];
        for c in &cases {
            let (status, body) = api
                .raw(
                    c.method.clone(),
                    &c.path,
                    &c.body,
                    &[("content-type", "application/json")],
                )
                .await;
            let context = format!(
                "{} {} {}",
                c.method,
                c.path,
                String::from_utf8_lossy(&c.body)
                    .chars()
                    .take(120)
                    .collect::<String>()
            );
            assert_eq!(status, c.expect, "{context}: {body}");
            assert_envelope(status, &body, &context);
        }
        // Validation errors name the field.
        let (_, body) = api.post("/api/v1/checkout/", json!({"planIdentifier":"pro","chargePeriod":"FORTNIGHTLY","customerId":"keeper","successUrl":"https://a.example.com/"})).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("chargePeriod"),
            "{body}"
        );
        let (_, body) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper"}),
            )
            .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("successUrl"),
            "{body}"
        );

        assert_eq!(
            stored(&api).await,
            before,
            "bad requests changed stored data"
        );
    }
}

both! {
    async fn wrong_keys_and_other_modes_are_refused(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("mine").await;
        let paths = [
            (Method::GET, "/api/v1/customers/"),
            (Method::POST, "/api/v1/customers/"),
            (Method::GET, "/api/v1/subscriptions/"),
        ];
        let checks: [(Option<&str>, StatusCode); 4] = [
            (None, StatusCode::UNAUTHORIZED),
            (
                Some("sk_test_thisisnotarealkey123"),
                StatusCode::UNAUTHORIZED,
            ),
            (Some(cp.keys.publishable.as_str()), StatusCode::FORBIDDEN),
            (Some(cp.keys.edge_sync.as_str()), StatusCode::FORBIDDEN),
        ];
        for (method, path) in &paths {
            for (key, expect) in &checks {
                let mut req = client()
                    .request(method.clone(), format!("{}{path}", cp.url))
                    .body("{}");
                if let Some(k) = key {
                    req = req.bearer_auth(k);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status();
                let body: Value = resp.json().await.unwrap();
                assert_eq!(status, *expect, "{method} {path} with {key:?}");
                assert_envelope(status, &body, path);
            }
        }
        // Basic auth with garbage.
        let resp = client()
            .get(format!("{}/api/v1/customers/", cp.url))
            .header("authorization", "Basic !!!")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

        // The live key sees none of test mode's objects and cannot touch them.
        let live = cp.api_with(&cp.keys.live_secret);
        let sub = api.subscribe_paid("mine", "pro", "MONTHLY").await;
        let id = sub["id"].as_str().unwrap();
        let (status, body) = live.get(&format!("/api/v1/subscriptions/{id}/")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_envelope(status, &body, "live get");
        let (status, _) = live
            .post(
                &format!("/api/v1/subscriptions/{id}/cancel/"),
                json!({"cancellationType":"IMMEDIATE"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = live
            .post("/api/v1/checkout/cs_test_x/complete/", json!({}))
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the complete helper is test-mode only"
        );
        let (status, _) = live
            .post(
                "/api/v1/test-clocks/",
                json!({"frozenTime":"2026-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "test clocks are test-mode only"
        );
        let (status, _) = live
            .post(
                "/api/v1/subscribe/",
                json!({"customerId":"mine","planId":"pro","chargePeriod":"MONTHLY","successUrl":"https://a.example.com/"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "live mode has its own (empty) world; a live subscribe creates a live customer"
        );
        let (status, _) = live.get("/api/v1/invoices/?customer_id=mine").await;
        assert_eq!(status, StatusCode::OK);
        let (_, still) = api.get(&format!("/api/v1/subscriptions/{id}/")).await;
        assert_eq!(still["status"], "active");
    }
}

both! {
    async fn idempotency_keys_replay_and_refuse_reuse(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let body = br#"{"customerId":"idem","name":"Once"}"#;
        let (s1, b1) = api
            .raw(
                Method::POST,
                "/api/v1/customers/",
                body,
                &[("idempotency-key", "k-1")],
            )
            .await;
        let (s2, b2) = api
            .raw(
                Method::POST,
                "/api/v1/customers/",
                body,
                &[("idempotency-key", "k-1")],
            )
            .await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(b1, b2, "a replay returns the first response");
        let (s3, b3) = api
            .raw(
                Method::POST,
                "/api/v1/customers/",
                br#"{"customerId":"other"}"#,
                &[("idempotency-key", "k-1")],
            )
            .await;
        assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
        assert_envelope(s3, &b3, "reused key");
        let (_, list) = api.get("/api/v1/customers/").await;
        assert_eq!(list["count"], 1, "the replay created nothing");
        // Without a key, the same body is a second create (and a conflict).
        let (s4, _) = api.raw(Method::POST, "/api/v1/customers/", body, &[]).await;
        assert_eq!(s4, StatusCode::CONFLICT);
        // Issue 15, finding 12: keys are scoped by mode, not by the secret key that sent them.
        // A retry with a new key of the same mode (after a rotation) is a replay...
        let (status, made) = api.post("/api/v1/api-keys/", json!({"kind": "secret", "name": "rotated"})).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let rotated = cp.api_with(made["key"].as_str().unwrap());
        let (s5, b5) = rotated.raw(Method::POST, "/api/v1/customers/", body, &[("idempotency-key", "k-1")]).await;
        assert_eq!((s5, &b5), (StatusCode::CREATED, &b1), "a rotated key's retry ran again");
        // ...and a live key never shares a test key's: the same key creates in live mode.
        let live = cp.api_with(&cp.keys.live_secret);
        let (s6, _) = live.raw(Method::POST, "/api/v1/customers/", body, &[("idempotency-key", "k-1")]).await;
        assert_eq!(s6, StatusCode::CREATED);
        let (_, live_list) = live.get("/api/v1/customers/").await;
        assert_eq!(live_list["count"], 1, "{live_list}");
        let (_, list) = api.get("/api/v1/customers/").await;
        assert_eq!(list["count"], 1, "the rotated retry created nothing");
    }
}

both! {
    async fn edge_refuses_bad_requests_with_envelopes(db: Db) {
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let pk = Some(cp.keys.publishable.as_str());
        let cases: Vec<(&str, Option<&str>, StatusCode)> = vec![
            (
                "/api/v1/entitlements/?customerId=a",
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/api/v1/entitlements/?customerId=a",
                Some("pk_test_notarealkey12345"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/api/v1/entitlements/?customerId=a",
                Some("garbage"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/api/v1/entitlements/?customerId=a",
                Some(cp.keys.edge_sync.as_str()),
                StatusCode::FORBIDDEN,
            ),
            (
                "/api/v1/entitlements/?customerId=a",
                Some("ct_forged.token"),
                StatusCode::UNAUTHORIZED,
            ),
            ("/api/v1/entitlements/", pk, StatusCode::BAD_REQUEST),
            (
                "/api/v1/entitlements/?customerId=",
                pk,
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/v1/entitlements/ghost-feature/?customerId=a",
                pk,
                StatusCode::NOT_FOUND,
            ),
            (
                "/api/v1/entitlements?customerId=a&feature_id=ghost",
                pk,
                StatusCode::NOT_FOUND,
            ),
            (
                "/api/v1/entitlements/a/b/?customerId=a",
                pk,
                StatusCode::NOT_FOUND,
            ),
            ("/nope", pk, StatusCode::NOT_FOUND),
        ];
        for (path, key, expect) in cases {
            let (status, body) = edge.get(path, key).await;
            assert_eq!(status, expect, "{path} {key:?}: {body}");
            assert_envelope(status, &body, path);
        }
        // Live keys see live mode's defaults, not test customers.
        let resp = client()
            .post(format!("{}/api/v1/entitlements/?customerId=a", edge.url))
            .bearer_auth(&cp.keys.publishable)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}

both! {
    /// Regressions from the bad-input sweep: each of these once answered 5xx, stored something, or
    /// charged twice.
    async fn sweep_regressions(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("r").await;

        // Undecodable path ids get the envelope.
        let (status, body) = api.get("/api/v1/customers/%FF/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_envelope(status, &body, "invalid UTF-8 in a path");

        // Usage cannot be driven into overflow.
        let (status, _) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"r","featureId":"api-calls","set":i64::MAX}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = api
            .post(
                "/api/v1/report/usage/",
                json!({"customerId":"r","featureId":"api-calls","value":i64::MAX}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("value"),
            "{body}"
        );
        let (status, _) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"","featureId":"api-calls","quantity":1}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Prices are bounded and plain decimals.
        let (status, _) = api
            .post("/api/v1/plans/", json!({"identifier":"huge","name":"H","group":"g","prices":[{"chargePeriod":"MONTHLY","amount":"92233720368547758.07","currency":"usd"}]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = api
            .post("/api/v1/plans/", json!({"identifier":"odd","name":"O","group":"g","prices":[{"chargePeriod":"MONTHLY","amount":"1e5","currency":"usd"}]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // A canceled pending subscription's checkout cannot be paid; a repeated subscribe reuses
        // the open checkout instead of opening a second one.
        let first = api.post("/api/v1/subscribe/", json!({"customerId":"r","planId":"pro","chargePeriod":"MONTHLY","successUrl":"https://a.example.com/"})).await.1;
        let again = api.post("/api/v1/subscribe/", json!({"customerId":"r","planId":"pro","chargePeriod":"MONTHLY","successUrl":"https://a.example.com/"})).await.1;
        assert_eq!(first["paymentUrl"], again["paymentUrl"]);
        assert_eq!(first["subscription"]["id"], again["subscription"]["id"]);
        let pending = first["subscription"]["id"].as_str().unwrap();
        let url = first["paymentUrl"].as_str().unwrap();
        let session = url.trim_end_matches('/').rsplit('/').next().unwrap();
        let (status, canceled) = api
            .post(
                &format!("/api/v1/subscriptions/{pending}/cancel/"),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, canceled["status"].as_str()),
            (StatusCode::OK, Some("canceled"))
        );
        let (status, body) = api
            .post(&format!("/api/v1/checkout/{session}/complete/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (_, invoices) = api.get("/api/v1/invoices/?customerId=r").await;
        assert_eq!(invoices["count"], 0, "nothing was charged");

        // A customer with a plan in a group cannot buy a second one through checkout.
        api.subscribe_paid("r", "pro", "MONTHLY").await;
        let (status, body) = api
            .post("/api/v1/checkout/", json!({"planIdentifier":"enterprise","chargePeriod":"MONTHLY","customerId":"r","successUrl":"https://a.example.com/"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        // …and a subscribed plan cannot move to another group under its subscribers.
        let (_, pro) = api.get("/api/v1/plans/pro/").await;
        let mut moved = pro.clone();
        moved["group"] = json!("elsewhere");
        let (status, body) = api
            .call(reqwest::Method::PUT, "/api/v1/plans/pro/", Some(moved))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // Test clocks stay inside sane times.
        let (status, _) = api
            .post(
                "/api/v1/test-clocks/",
                json!({"frozenTime":"9999-12-31T23:59:59-23:59"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, clock) = api
            .post(
                "/api/v1/test-clocks/",
                json!({"frozenTime":"2026-01-01T00:00:00Z"}),
            )
            .await;
        let (status, _) = api
            .post(
                &format!(
                    "/api/v1/test-clocks/{}/advance/",
                    clock["id"].as_str().unwrap()
                ),
                json!({"frozenTime":"2199-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "one advance moves at most ten years (a conflict with the clock's state)"
        );

        // Idempotency: a refused request stores nothing; Bearer and Basic with one key share a scope.
        let body = br#"{"customerId":"idem-r"}"#;
        let bad = cp.api_with("sk_test_notarealkeyatall1");
        let (status, _) = bad
            .raw(
                reqwest::Method::POST,
                "/api/v1/customers/",
                body,
                &[("idempotency-key", "same")],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = api
            .raw(
                reqwest::Method::POST,
                "/api/v1/customers/",
                body,
                &[("idempotency-key", "same")],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "the 401 was not stored and replayed"
        );
        let resp = client()
            .post(format!("{}/api/v1/customers/", cp.url))
            .bearer_auth(&cp.keys.secret)
            .header("idempotency-key", "same")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["idempotent-replayed"], "true");

        // Resume reads its body like every other endpoint.
        let (_, subs) = api
            .get("/api/v1/subscriptions/?customer_id=r&status=active")
            .await;
        let active = subs["results"][0]["id"].as_str().unwrap();
        let (status, _) = api
            .raw(
                reqwest::Method::POST,
                &format!("/api/v1/subscriptions/{active}/resume/"),
                b"{nope",
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

//! Kelviq's new endpoints against bad input: wrong types, missing fields, unknown ids, wrong
//! key kinds, the other mode's data, oversized bodies and replays — each a 4xx with the error
//! envelope (never a 5xx), and nothing stored changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// What a caller can read back of the Kelviq surface, to compare before and after.
async fn stored(api: &Api) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/api/v1/customers/?page_size=100",
        "/api/v1/subscriptions/?page_size=100",
        "/api/v1/invoices/?page_size=100",
        "/api/v1/refunds/?page_size=100",
        "/api/v1/transaction/?page_size=100",
        "/api/v1/payment-methods/?page_size=100",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        all.insert(path.to_owned(), body);
    }
    Value::Object(all)
}

both! {
    async fn kelviq_endpoints_refuse_bad_input_with_envelopes(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("keeper").await;
        let (status, _) = api
            .post("/api/v1/customers/keeper/payment-methods/", json!({"token": "pm_card_visa"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, charge) = api
            .post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "keeper"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{charge}");
        let order = charge["orderId"].as_str().unwrap().to_owned();
        let sub = charge["id"].as_str().unwrap().to_owned();
        api.create_customer("plain").await;
        let before = stored(&api).await;

        let big = format!("{{\"orderId\":\"{}\"}}", "a".repeat(70 * 1024));
        let cases: Vec<(Method, String, String, u16)> = vec![
            // Archive.
            (Method::DELETE, "/api/v1/customers/ghost/".into(), String::new(), 404),
            // Direct create.
            (Method::POST, "/api/v1/subscriptions/create/".into(), "{}".into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY"}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":7}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"ghost"}"#.into(), 404),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"plain"}"#.into(), 402),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"free","chargePeriod":"MONTHLY","customerId":"keeper"}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"nope","chargePeriod":"MONTHLY","customerId":"keeper"}"#.into(), 404),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"HOURLY","customerId":"keeper"}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","successUrl":"javascript:alert(1)"}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper","features":[{"identifier":"sso","quantity":2}]}"#.into(), 400),
            (Method::POST, "/api/v1/subscriptions/create/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"keeper"}"#.into(), 409),
            (Method::POST, "/api/v1/subscriptions/create/".into(), "[1,2]".into(), 400),
            // Update with Kelviq's options.
            (Method::POST, format!("/api/v1/subscriptions/{sub}/update/"), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","trialEnd":"tomorrow"}"#, 400).into_owned(),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/update/"), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","paymentBehavior":"later"}"#, 400).into_owned(),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/update/"), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","probationBehaviour":"SOMETIMES"}"#, 400).into_owned(),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/update/"), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","features":[{"identifier":"team-size","quantity":"two"}]}"#, 400).into_owned(),
            (Method::POST, "/api/v1/subscriptions/ghost/update/preview/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY"}"#.into(), 404),
            // Cancel.
            (Method::POST, format!("/api/v1/subscriptions/{sub}/cancel/"), r#"{"cancellationType":"SPECIFIC_DATE"}"#, 400).into_owned(),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/cancel/"), r#"{"cancellationType":"SPECIFIC_DATE","cancellationDate":"2001-01-01"}"#, 409).into_owned(),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/cancel/"), r#"{"cancellationType":"LATER"}"#, 400).into_owned(),
            // Reporting.
            (Method::POST, "/api/v1/report/usage/".into(), r#"{"value":"1","customerId":"keeper","featureId":"api-calls"}"#.into(), 400),
            (Method::POST, "/api/v1/report/usage/".into(), r#"{"value":1,"customerId":"keeper","featureId":"api-calls","behaviour":"ADD"}"#.into(), 400),
            (Method::POST, "/api/v1/report/usage/".into(), r#"{"value":1,"customerId":"keeper","featureId":"sso"}"#.into(), 400),
            (Method::POST, "/api/v1/report/usage/".into(), r#"{"value":1,"customerId":"keeper","featureId":"ghost"}"#.into(), 404),
            (Method::POST, "/api/v1/report/event/".into(), "{}".into(), 400),
            (Method::POST, "/api/v1/report/event/".into(), r#"{"customerId":"keeper","eventName":"e","idempotencyKey":"k","timestamp":"yesterday"}"#.into(), 400),
            (Method::POST, "/api/v1/report/event/".into(), r#"{"customerId":"keeper","eventName":"","idempotencyKey":"k","timestamp":"2026-01-01 00:00:00.000000"}"#.into(), 400),
            (Method::POST, "/api/v1/report/event/".into(), r#"{"customerId":"keeper","eventName":"e","idempotencyKey":"k","timestamp":"2026-01-01 00:00:00.000000","properties":[1]}"#.into(), 400),
            (Method::POST, "/api/v1/report/event/".into(), r#"{"customerId":"ghost","eventName":"e","idempotencyKey":"k","timestamp":"2026-01-01 00:00:00.000000"}"#.into(), 404),
            // Payment methods, refunds, transactions: queries.
            (Method::GET, "/api/v1/payment-methods/?page=0".into(), String::new(), 400),
            (Method::GET, "/api/v1/payment-methods/?page_size=1000".into(), String::new(), 400),
            (Method::GET, "/api/v1/refunds/?status=DONE".into(), String::new(), 400),
            (Method::GET, "/api/v1/refunds/?start_date=someday".into(), String::new(), 400),
            (Method::GET, "/api/v1/refunds/re_ghost/".into(), String::new(), 404),
            (Method::GET, "/api/v1/transaction/?status=maybe".into(), String::new(), 400),
            (Method::GET, "/api/v1/transaction/?end_date=2026-13-01".into(), String::new(), 400),
            // Charges.
            (Method::POST, "/api/v1/charges/".into(), "{}".into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"keeper"}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"pro","chargePeriod":"ONE_TIME","customerId":"keeper"}"#.into(), 404),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"ghost"}"#.into(), 404),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain","customAmount":5}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain","customAmount":-5,"currencyCode":"usd"}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain","customAmount":1.005,"currencyCode":"usd"}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain","customAmount":5,"currencyCode":"dollars"}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain","taxBehavior":"NONE"}"#.into(), 400),
            (Method::POST, "/api/v1/charges/".into(), r#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"plain"}"#.into(), 402),
            // Refunds.
            (Method::POST, "/api/v1/refunds/".into(), "{}".into(), 400),
            (Method::POST, "/api/v1/refunds/".into(), r#"{"orderId":""}"#.into(), 400),
            (Method::POST, "/api/v1/refunds/".into(), r#"{"orderId":"in_ghost"}"#.into(), 404),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","amountUnits":0}}"#), 400),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","amountUnits":"ten"}}"#), 400),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","amountUnits":99999999}}"#), 400),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","amount":1e308}}"#), 400),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","reason":"BORED"}}"#), 400),
            (Method::POST, "/api/v1/refunds/".into(), format!(r#"{{"orderId":"{order}","internalNote":"{}"}}"#, "n".repeat(501)), 400),
            (Method::POST, "/api/v1/refunds/".into(), big.clone(), 413),
            // Licenses.
            (Method::POST, "/api/v1/license/activate/".into(), "{}".into(), 400),
            (Method::POST, "/api/v1/license/activate/".into(), r#"{"licenseKey":""}"#.into(), 400),
            (Method::POST, "/api/v1/license/activate/".into(), r#"{"licenseKey":"NOPE"}"#.into(), 404),
            (Method::POST, "/api/v1/license/activate/".into(), r#"{"licenseKey":"NOPE","metadata":"x"}"#.into(), 400),
            (Method::POST, "/api/v1/license/deactivate/".into(), r#"{"licenseKey":"NOPE"}"#.into(), 400),
            (Method::POST, "/api/v1/license/deactivate/".into(), r#"{"licenseKey":"NOPE","instanceId":"i"}"#.into(), 404),
            (Method::POST, "/api/v1/license/validate/".into(), r#"{"licenseKey":5}"#.into(), 400),
            (Method::POST, "/api/v1/license/validate/".into(), format!(r#"{{"licenseKey":"{}"}}"#, "K".repeat(65)), 400),
            // Webhook endpoints' scheme.
            (Method::POST, "/api/v1/webhook-endpoints/".into(), r#"{"url":"https://hooks.example.com/","events":["*"],"signatureScheme":"md5"}"#.into(), 400),
            (Method::POST, "/api/v1/webhook-endpoints/".into(), r#"{"url":"https://hooks.example.com/","events":["*"],"signatureScheme":1}"#.into(), 400),
        ];
        for (method, path, body, expect) in cases {
            let (status, reply) = api
                .raw(method.clone(), &path, body.as_bytes(), &[("content-type", "application/json")])
                .await;
            let context = format!("{method} {path} {}", body.chars().take(120).collect::<String>());
            assert_eq!(status.as_u16(), expect, "{context}: {reply}");
            assert_envelope(status, &reply, &context);
        }
        assert_eq!(stored(&api).await, before, "bad requests changed stored data");
    }
}

/// A tuple with a borrowed body, made owned (keeps the case table above readable).
trait IntoOwned {
    fn into_owned(self) -> (Method, String, String, u16);
}

impl IntoOwned for (Method, String, &str, u16) {
    fn into_owned(self) -> (Method, String, String, u16) {
        (self.0, self.1, self.2.to_owned(), self.3)
    }
}

both! {
    async fn kelviq_endpoints_check_keys_modes_and_replays(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("mine").await;
        let (status, _) = api
            .post("/api/v1/customers/mine/payment-methods/", json!({"token": "pm_card_visa"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, charge) = api
            .post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "mine"}))
            .await;
        let order = charge["orderId"].as_str().unwrap().to_owned();
        let sub = charge["id"].as_str().unwrap().to_owned();

        // Keys: none, unknown, publishable and sync keys are refused on every new path.
        let paths: Vec<(Method, String)> = vec![
            (Method::DELETE, "/api/v1/customers/mine/".into()),
            (Method::POST, "/api/v1/subscriptions/create/".into()),
            (Method::POST, format!("/api/v1/subscriptions/{sub}/update/preview/")),
            (Method::POST, "/api/v1/report/event/".into()),
            (Method::GET, "/api/v1/payment-methods/".into()),
            (Method::POST, "/api/v1/charges/".into()),
            (Method::POST, "/api/v1/refunds/".into()),
            (Method::GET, "/api/v1/refunds/".into()),
            (Method::GET, "/api/v1/transaction/".into()),
            (Method::POST, "/api/v1/license/activate/".into()),
            (Method::POST, "/api/v1/license/validate/".into()),
        ];
        let checks: [(Option<&str>, StatusCode); 4] = [
            (None, StatusCode::UNAUTHORIZED),
            (Some("sk_test_thisisnotarealkey123"), StatusCode::UNAUTHORIZED),
            (Some(cp.keys.publishable.as_str()), StatusCode::FORBIDDEN),
            (Some(cp.keys.edge_sync.as_str()), StatusCode::FORBIDDEN),
        ];
        for (method, path) in &paths {
            for (key, expect) in &checks {
                let mut req = client()
                    .request(method.clone(), format!("{}{path}", cp.url))
                    .header("content-type", "application/json")
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

        // The other mode's data does not exist for a live key.
        let live = cp.api_with(&cp.keys.live_secret);
        for (status, what) in [
            (live.post("/api/v1/refunds/", json!({"orderId": order})).await.0, "refund"),
            (live.post("/api/v1/refunds/", json!({"orderId": sub})).await.0, "refund by charge"),
            (live.call(Method::DELETE, "/api/v1/customers/mine/", None).await.0, "archive"),
            (live.post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "mine"})).await.0, "charge"),
        ] {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        }
        let (_, methods) = live.get("/api/v1/payment-methods/?customer_id=mine").await;
        assert_eq!(methods["count"], 0);
        let (_, tx) = live.get("/api/v1/transaction/").await;
        assert_eq!(tx["count"], 0);

        // Replays: the same refund request under one key refunds once.
        let body = format!(r#"{{"orderId":"{order}","amountUnits":500}}"#);
        let (s1, r1) = api
            .raw(Method::POST, "/api/v1/refunds/", body.as_bytes(), &[("idempotency-key", "refund-1"), ("content-type", "application/json")])
            .await;
        let (s2, r2) = api
            .raw(Method::POST, "/api/v1/refunds/", body.as_bytes(), &[("idempotency-key", "refund-1"), ("content-type", "application/json")])
            .await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(r1, r2, "a replay answers the first refund");
        let (_, list) = api.get("/api/v1/refunds/").await;
        assert_eq!(list["count"], 1, "refunded once");
        let (s3, r3) = api
            .raw(Method::POST, "/api/v1/refunds/", br#"{"orderId":"other"}"#, &[("idempotency-key", "refund-1"), ("content-type", "application/json")])
            .await;
        assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
        assert_envelope(s3, &r3, "reused key");
        // The same charge under one key buys once.
        api.create_customer("twice").await;
        api.post("/api/v1/customers/twice/payment-methods/", json!({"token": "pm_card_visa"})).await;
        let body = br#"{"planIdentifier":"sso-lifetime","chargePeriod":"ONE_TIME","customerId":"twice"}"#;
        let (s1, c1) = api
            .raw(Method::POST, "/api/v1/charges/", body, &[("idempotency-key", "charge-1"), ("content-type", "application/json")])
            .await;
        let (s2, c2) = api
            .raw(Method::POST, "/api/v1/charges/", body, &[("idempotency-key", "charge-1"), ("content-type", "application/json")])
            .await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED), "{c1}");
        assert_eq!(c1, c2);
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=twice").await;
        assert_eq!(invoices["count"], 1, "charged once");
    }
}

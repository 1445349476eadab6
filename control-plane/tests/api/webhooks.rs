//! Webhooks against a real receiver on a loopback port: the right events arrive, signed so
//! that the Standard Webhooks check passes, and a failing receiver is retried until it works.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

async fn start_receiver(fail_first: usize) -> (String, Receiver) {
    let receiver = Receiver {
        fail_first: Arc::new(Mutex::new(fail_first)),
        ..Default::default()
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

/// The receiver's side of Standard Webhooks: recompute the signature from the secret.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let key = B64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

fn types(r: &Receiver) -> Vec<String> {
    r.got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

both! {
    async fn a_paid_checkout_sends_signed_events(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (url, receiver) = start_receiver(0).await;
        let (status, endpoint) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        let secret = endpoint["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));

        api.create_customer("hooked").await;
        api.subscribe_paid("hooked", "pro", "MONTHLY").await;
        let want = [
            "customer.created",
            "subscription.created",
            "invoice.paid",
            "checkout.completed",
            "entitlements.updated",
        ];
        wait_until("all events delivered", || async {
            want.iter().all(|w| types(&receiver).iter().any(|t| t == w))
        })
        .await;
        for (headers, body) in receiver.got.lock().unwrap().iter() {
            assert!(verify(&secret, headers, body), "bad signature on {body}");
            assert!(headers["webhook-id"].to_str().unwrap().starts_with("msg_"));
        }
        let got = receiver.got.lock().unwrap().clone();
        let paid = got
            .iter()
            .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
            .find(|v| v["type"] == "invoice.paid")
            .unwrap();
        assert_eq!(paid["data"]["total"], "49.00");
        assert_eq!(paid["data"]["customerId"], "hooked");

        // Secrets are shown once; the list does not repeat them. A filtered endpoint gets only its types.
        let (_, list) = api.get("/api/v1/webhook-endpoints/").await;
        assert!(list["results"][0].get("secret").is_none());
        let (status, body) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": url, "events": ["invoice.exploded"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_envelope(status, &body, "unknown event type");
        let (status, _) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": "ftp://x.example.com/", "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

both! {
    async fn a_failing_receiver_is_retried_until_it_answers(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (url, receiver) = start_receiver(2).await;
        let (_, endpoint) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": url, "events": ["customer.created"]}),
            )
            .await;
        let id = endpoint["id"].as_str().unwrap().to_owned();
        api.create_customer("retry-me").await;
        wait_until("delivered after retries", || async {
            types(&receiver) == ["customer.created"]
        })
        .await;
        let (_, deliveries) = api
            .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries/"))
            .await;
        let d = &deliveries["results"][0];
        assert_eq!(
            (
                d["status"].as_str(),
                d["attempts"].as_i64(),
                d["eventType"].as_str()
            ),
            (Some("succeeded"), Some(3), Some("customer.created"))
        );

        // A deleted endpoint receives nothing more.
        let (status, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/webhook-endpoints/{id}/"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries/"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        api.create_customer("after-delete").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(types(&receiver).len(), 1);
    }
}

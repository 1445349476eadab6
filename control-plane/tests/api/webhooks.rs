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
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
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

pub async fn start_receiver(fail_first: usize) -> (String, Receiver) {
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

pub fn types(r: &Receiver) -> Vec<String> {
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

/// A receiver whose routes misbehave on purpose: `/fail` (500), `/unavailable` (503),
/// `/redirect` (302 to `/landed`), `/hang` (never answers), `/ok`. It counts what arrived where,
/// and how many `/hang` requests ended (the client gave up and closed).
#[derive(Clone, Default)]
struct Misbehaving {
    hits: Arc<Mutex<std::collections::HashMap<&'static str, usize>>>,
    hang_ended: Arc<std::sync::atomic::AtomicUsize>,
    /// While true, `/fail` fails; set false to let it succeed.
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Misbehaving {
    fn hits(&self, route: &str) -> usize {
        self.hits.lock().unwrap().get(route).copied().unwrap_or(0)
    }

    fn hit(&self, route: &'static str) {
        *self.hits.lock().unwrap().entry(route).or_default() += 1;
    }
}

struct Ended(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn start_misbehaving() -> (String, Misbehaving) {
    use axum::response::{IntoResponse, Redirect};
    let m = Misbehaving::default();
    m.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let app = Router::new()
        .route(
            "/ok",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("ok");
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/fail",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("fail");
                if m.failing.load(std::sync::atomic::Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/unavailable",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .route(
            "/redirect",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("redirect");
                Redirect::temporary("/landed").into_response()
            }),
        )
        .route(
            "/landed",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("landed");
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/hang",
            post(|State(m): State<Misbehaving>| async move {
                m.hit("hang");
                let _ended = Ended(m.hang_ended.clone());
                std::future::pending::<()>().await;
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(m.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, m)
}

async fn endpoint(api: &Api, url: &str) -> String {
    let (status, body) = api
        .post(
            "/api/v1/webhook-endpoints/",
            json!({"url": url, "events": ["customer.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn last_error(api: &Api, endpoint: &str) -> Option<String> {
    let (_, d) = api
        .get(&format!("/api/v1/webhook-endpoints/{endpoint}/deliveries/"))
        .await;
    d["results"][0]["lastError"].as_str().map(str::to_owned)
}

both! {
    async fn webhook_urls_to_private_addresses_are_refused_unless_allowed(db: Db) {
        let private = [
            "http://127.0.0.1:22/",
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/hook",
            "http://localhost:8080/hook", // a name resolving to 127.0.0.1
            "http://0x7f.1/hook",         // 127.0.0.1 spelled otherwise
            "http://[::ffff:192.168.0.1]/",
        ];
        let strict = ControlPlane::start_on_with(db, &[("TOLLGATE_ALLOW_PRIVATE_WEBHOOK_URLS", "false")]);
        let api = strict.api();
        for url in private {
            let (status, body) = api
                .post("/api/v1/webhook-endpoints/", json!({"url": url, "events": ["*"]}))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert_envelope(status, &body, url);
            assert!(body["error"]["message"].as_str().unwrap().contains("url"), "{body}");
        }
        let (status, body) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": "http://user:pw@hooks.example.com/", "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, list) = api.get("/api/v1/webhook-endpoints/").await;
        assert_eq!(list["count"], 0, "{list}");

        // With --allow-private-webhook-urls (the harness's default), the same URLs are accepted.
        let relaxed = ControlPlane::start_on(db);
        let api = relaxed.api();
        for url in private {
            let (status, body) = api
                .post("/api/v1/webhook-endpoints/", json!({"url": url, "events": ["*"]}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
        }
    }
}

both! {
    async fn deliveries_follow_no_redirects_and_summarize_errors(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (base, m) = start_misbehaving().await;
        let redirect = endpoint(&api, &format!("{base}/redirect")).await;
        let unavailable = endpoint(&api, &format!("{base}/unavailable")).await;
        // A port nothing listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            endpoint(&api, &format!("http://127.0.0.1:{port}/")).await
        };
        api.create_customer("hook-errors").await;
        wait_until("every endpoint tried once", || async {
            last_error(&api, &redirect).await.is_some()
                && last_error(&api, &unavailable).await.is_some()
                && last_error(&api, &closed).await.is_some()
        })
        .await;
        assert_eq!(last_error(&api, &redirect).await.as_deref(), Some("HTTP 307"));
        assert_eq!(last_error(&api, &unavailable).await.as_deref(), Some("HTTP 503"));
        assert_eq!(last_error(&api, &closed).await.as_deref(), Some("connection refused"));
        assert!(m.hits("redirect") >= 1);
        assert_eq!(m.hits("landed"), 0, "a redirect was followed");
    }
}

both! {
    async fn endpoints_per_mode_are_capped(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_MAX_WEBHOOK_ENDPOINTS", "3")]);
        let (base, _m) = start_misbehaving().await;
        let test = cp.api();
        for _ in 0..3 {
            endpoint(&test, &format!("{base}/ok")).await;
        }
        let (status, body) = test
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": format!("{base}/ok"), "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_envelope(status, &body, "fourth endpoint");
        // The cap is per mode: live mode still has room.
        let live = cp.api_with(&cp.keys.live_secret);
        endpoint(&live, &format!("{base}/ok")).await;
    }
}

/// `tollgate_webhook_circuit_open_endpoints` as /metrics shows it.
async fn open_circuits(cp: &ControlPlane) -> Option<f64> {
    let text = client()
        .get(format!("{}/metrics", cp.url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("tollgate_webhook_circuit_open_endpoints "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

both! {
    async fn a_failing_endpoint_opens_its_circuit_until_re_enabled(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_WEBHOOK_BREAKER_FAILURES", "3")]);
        let api = cp.api();
        let (base, m) = start_misbehaving().await;
        let id = endpoint(&api, &format!("{base}/fail")).await;
        for i in 0..3 {
            api.create_customer(&format!("breaker-{i}")).await;
        }
        wait_until("circuit open", || async {
            let (_, list) = api.get("/api/v1/webhook-endpoints/").await;
            list["results"][0]["circuitOpen"] == true
        })
        .await;
        let (_, list) = api.get("/api/v1/webhook-endpoints/").await;
        assert_eq!(list["results"][0]["consecutiveFailures"], 3, "{list}");
        assert!(list["results"][0]["circuitOpenedAt"].is_string(), "{list}");
        wait_until("metric shows the open circuit", || async {
            open_circuits(&cp).await == Some(1.0)
        })
        .await;
        // While open, nothing is sent.
        let before = m.hits("fail");
        api.create_customer("breaker-while-open").await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(m.hits("fail"), before, "an open circuit still delivered");

        // Re-enabled (and the receiver fixed): the queued deliveries go out.
        m.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        let (status, body) = api
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/webhook-endpoints/{id}/"),
                Some(json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["circuitOpen"], false, "{body}");
        wait_until("queued deliveries sent after re-enabling", || async {
            let (_, d) = api.get(&format!("/api/v1/webhook-endpoints/{id}/deliveries/")).await;
            d["results"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x["status"] == "succeeded"))
        })
        .await;
        wait_until("metric back to zero", || async { open_circuits(&cp).await == Some(0.0) }).await;
        // Bad bodies and unknown ids.
        for body in [json!({}), json!({"enabled": "yes"}), json!({"enabled": true, "x": 1})] {
            let (status, resp) = api
                .call(reqwest::Method::PATCH, &format!("/api/v1/webhook-endpoints/{id}/"), Some(body))
                .await;
            assert_envelope(status, &resp, "bad patch");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        }
        let (status, _) = api
            .call(reqwest::Method::PATCH, "/api/v1/webhook-endpoints/we_nope/", Some(json!({"enabled": true})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

both! {
    async fn a_hanging_test_endpoint_does_not_hold_live_deliveries(db: Db) {
        let cp = ControlPlane::start_on(db);
        let (base, m) = start_misbehaving().await;
        let test = cp.api();
        let live = cp.api_with(&cp.keys.live_secret);
        endpoint(&test, &format!("{base}/hang")).await;
        endpoint(&live, &format!("{base}/ok")).await;
        for i in 0..30 {
            test.create_customer(&format!("hang-{i}")).await;
        }
        wait_until("test deliveries hanging", || async { m.hits("hang") >= 1 }).await;
        let first_hang = std::time::Instant::now();
        live.create_customer("live-one").await;
        wait_until("live delivery", || async { m.hits("ok") == 1 }).await;
        // Not a timing bound: the live delivery arrived while every test-mode request was
        // still hanging, i.e. it did not wait for them to time out.
        assert_eq!(
            m.hang_ended.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the live delivery waited for the hanging test-mode endpoint"
        );
        // At most two requests in flight to one endpoint. A hanging request is given up after
        // the delivery timeout (the receiver here never notices the hang-up), which frees its
        // slot; on a loaded machine that can happen before the live delivery arrives, so each
        // elapsed timeout allows two more.
        let timeouts = first_hang.elapsed().as_secs() / control_plane_webhook_timeout_secs();
        let allowed = 2 * (1 + timeouts as usize);
        assert!(
            m.hits("hang") <= allowed,
            "{} requests to one endpoint within {} delivery timeouts: more than two in flight",
            m.hits("hang"),
            timeouts + 1
        );
    }
}

/// The control plane's webhook delivery timeout (`workers::webhooks::TIMEOUT`).
fn control_plane_webhook_timeout_secs() -> u64 {
    10
}

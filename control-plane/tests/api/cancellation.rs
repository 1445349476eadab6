//! SPEC §9 "cancellation": a client that hangs up at any point never leaves a write half-done
//! nor slows a later one. Raw sockets send writes of several kinds and hang up before the body,
//! halfway through it, or while waiting for the answer; others wait for their answer. Then:
//! every kind of write still works, each customer's usage lies between what was acknowledged
//! and what was sent, and retrying every unacknowledged report with its `Idempotency-Key`
//! applies each exactly once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const CUSTOMERS: usize = 12;
const WRITES: usize = 1_200;
const CONCURRENCY: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HangUp {
    BeforeBody,
    MidBody,
    WhileWaiting,
    /// Does not hang up: reads the whole answer.
    Never,
}

/// One request over a fresh connection, ended the `how` way. Returns the status when the
/// answer was read.
async fn send(
    addr: SocketAddr,
    key: &str,
    path: &str,
    body: &str,
    idem: &str,
    how: HangUp,
) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {idem}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    match how {
        HangUp::BeforeBody => return None,
        HangUp::MidBody => {
            stream
                .write_all(&body.as_bytes()[..body.len() / 2])
                .await
                .ok()?;
            return None;
        }
        HangUp::WhileWaiting => {
            stream.write_all(body.as_bytes()).await.ok()?;
            // Give the request time to be read and queued, then go away without reading.
            let wait = rand::thread_rng().gen_range(0..3);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            return None;
        }
        HangUp::Never => stream.write_all(body.as_bytes()).await.ok()?,
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Ledger {
    /// Per customer: the sum of reports sent whole, and of those acknowledged with a 200.
    sent: HashMap<String, i64>,
    acked: HashMap<String, i64>,
    /// Reports that were not acknowledged: (customer, idempotency key, body), to retry.
    unacked: Vec<(String, String, String)>,
    /// Answers that were server errors.
    server_errors: Vec<(String, u16)>,
}

both! {
    async fn clients_that_hang_up_never_wedge_or_half_apply_writes(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        for c in 0..CUSTOMERS {
            api.create_customer(&format!("hang-{c}")).await;
            // Plan changes go to customers of their own: a new subscription starts a new billing
            // period, and with it a new usage window.
            api.create_customer(&format!("plan-{c}")).await;
            let (status, _) = api
                .post(
                    &format!("/api/v1/customers/plan-{c}/payment-methods/"),
                    json!({"token": "pm_card_visa"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (addr, key, ledger, next) = (
                cp.addr,
                cp.keys.secret.clone(),
                ledger.clone(),
                next.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= WRITES {
                        return;
                    }
                    let (how, kind, customer, quantity) = {
                        let mut rng = rand::thread_rng();
                        let how = match rng.gen_range(0..4) {
                            0 => HangUp::BeforeBody,
                            1 => HangUp::MidBody,
                            2 => HangUp::WhileWaiting,
                            _ => HangUp::Never,
                        };
                        (how, rng.gen_range(0..10), rng.gen_range(0..CUSTOMERS), rng.gen_range(1..6i64))
                    };
                    let customer = format!("hang-{customer}");
                    let idem = format!("hang-{i}");
                    let (path, body) = match kind {
                        0..=5 => (
                            "/api/v1/usage/".to_owned(),
                            json!({"customerId": customer, "featureId": "api-calls", "quantity": quantity}).to_string(),
                        ),
                        6 => ("/api/v1/customers/".to_owned(), json!({"customerId": format!("new-{i}")}).to_string()),
                        7 => ("/api/v1/api-keys/".to_owned(), json!({"kind": "publishable"}).to_string()),
                        _ => (
                            "/api/v1/subscribe/".to_owned(),
                            json!({"customerId": customer.replace("hang-", "plan-"), "planId": if i % 2 == 0 { "pro" } else { "enterprise" },
                                   "chargePeriod": "MONTHLY"})
                            .to_string(),
                        ),
                    };
                    let status = send(addr, &key, &path, &body, &idem, how).await;
                    let mut l = ledger.lock().unwrap();
                    if let Some(s) = status.filter(|s| *s >= 500) {
                        l.server_errors.push((path.clone(), s));
                    }
                    if kind > 5 {
                        continue;
                    }
                    if how != HangUp::BeforeBody && how != HangUp::MidBody {
                        *l.sent.entry(customer.clone()).or_default() += quantity;
                    }
                    if status == Some(200) {
                        *l.acked.entry(customer.clone()).or_default() += quantity;
                    } else {
                        l.unacked.push((customer, idem, body));
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
        assert!(
            ledger.server_errors.is_empty(),
            "server errors under hang-ups: {:?}",
            ledger.server_errors
        );

        // Every kind of write still works, at once.
        let (status, _) = api
            .post(
                "/api/v1/customers/",
                json!({"customerId": "after-the-storm"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId": "after-the-storm", "featureId": "api-calls", "quantity": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api
            .post("/api/v1/api-keys/", json!({"kind": "publishable"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = api
            .post(
                "/api/v1/webhook-endpoints/",
                json!({"url": "https://hooks.example.com/after", "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = api
            .post(
                "/api/v1/subscribe/",
                json!({"customerId": "hang-0", "planId": "free"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // Usage lies between what was acknowledged and what was sent whole.
        let usage = |api: Api, customer: String| async move {
            let (status, meter) = api
                .post(
                    "/api/v1/usage/",
                    json!({"customerId": customer, "featureId": "api-calls", "quantity": 0}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{meter}");
            meter["currentUsage"].as_i64().unwrap()
        };
        let mut total_sent = 0;
        for c in 0..CUSTOMERS {
            let customer = format!("hang-{c}");
            let stored = usage(api.clone(), customer.clone()).await;
            let acked = ledger.acked.get(&customer).copied().unwrap_or(0);
            let sent = ledger.sent.get(&customer).copied().unwrap_or(0);
            assert!(
                acked <= stored && stored <= sent,
                "{customer}: acknowledged {acked}, stored {stored}, sent {sent}"
            );
            total_sent += sent;
        }
        assert!(total_sent > 0 && !ledger.unacked.is_empty());

        // Retrying every unacknowledged report with its key applies each exactly once: afterwards
        // every customer's usage is the sum of every report (whole or not) of the storm.
        let mut expected: HashMap<String, i64> = ledger.acked.clone();
        for (customer, idem, body) in &ledger.unacked {
            let (status, answer) = api
                .raw(
                    reqwest::Method::POST,
                    "/api/v1/usage/",
                    body.as_bytes(),
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", idem),
                    ],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "retry of {idem}: {answer}");
            let q: serde_json::Value = serde_json::from_str(body).unwrap();
            *expected.entry(customer.clone()).or_default() += q["quantity"].as_i64().unwrap();
        }
        for c in 0..CUSTOMERS {
            let customer = format!("hang-{c}");
            let stored = usage(api.clone(), customer.clone()).await;
            assert_eq!(
                stored,
                expected.get(&customer).copied().unwrap_or(0),
                "{customer}: each report exactly once"
            );
        }
    }
}

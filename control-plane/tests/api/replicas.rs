//! Several control-plane replicas on one PostgreSQL database (SPEC §1 "Scale", issue 7):
//! requests go to any replica; change-log versions stay gap-free across them; billing and
//! webhook work is claimed so nothing happens twice; an edge fails over between them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::helpers::*;

/// The PostgreSQL pair, or `None` (skipped loudly; a failure in CI) without a server.
fn pair(test: &str) -> Option<(ControlPlane, ControlPlane)> {
    if let Err(why) = postgres() {
        missing(test, &why);
        return None;
    }
    let a = ControlPlane::start_on(Db::Postgres);
    let b = a.replica();
    Some((a, b))
}

async fn edge_metric(edge: &Edge, name: &str) -> f64 {
    let text = client()
        .get(format!("{}/metrics", edge.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn meter(api: &Api, customer: &str) -> i64 {
    let (status, m) = api
        .post(
            "/api/v1/usage/",
            json!({"customerId": customer, "featureId": "api-calls", "quantity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    m["currentUsage"].as_i64().unwrap()
}

fn usage_of(entitlements: &Value) -> i64 {
    entitlements["entitlements"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["featureId"] == "api-calls"))
        .and_then(|e| e["currentUsage"].as_i64())
        .unwrap_or(-1)
}

#[tokio::test]
async fn two_replicas_two_edges_every_version_once_in_order() {
    let Some((a, b)) = pair("two_replicas_two_edges_every_version_once_in_order") else {
        return;
    };
    let edge_a = a.edge();
    let edge_b = Edge::start(&format!("{},{}", b.url, a.url), &b.keys);
    edge_a.wait_ready().await;
    edge_b.wait_ready().await;
    let (api_a, api_b) = (a.api(), b.api());

    // Created on A, checked out on B.
    api_a.create_customer("roamer").await;
    api_b.subscribe_paid("roamer", "pro", "MONTHLY").await;
    // Usage alternately on A and B, concurrently from both sides.
    let mut tasks = Vec::new();
    for (i, api) in [api_a.clone(), api_b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                let customer = if (n + i) % 2 == 0 { "roamer" } else { "other" };
                if customer == "other" && n < 2 {
                    let _ = api
                        .post("/api/v1/customers/", json!({"customerId": "other"}))
                        .await;
                }
                let (status, body) = api
                    .post(
                        "/api/v1/usage/",
                        json!({"customerId": customer, "featureId": "api-calls", "quantity": 1}),
                    )
                    .await;
                assert!(
                    status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                    "{body}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = meter(&api_a, "roamer").await;
    assert_eq!(total, meter(&api_b, "roamer").await);
    for edge in [&edge_a, &edge_b] {
        wait_until("edge caught up", || async {
            usage_of(&edge.entitlements("roamer").await) == total
        })
        .await;
    }
    // Neither edge ever saw a version skipped or repeated: no resync, one snapshot each.
    for edge in [&edge_a, &edge_b] {
        assert_eq!(edge_metric(edge, "tollgate_edge_sync_resyncs").await, 0.0);
        assert_eq!(
            edge_metric(edge, "tollgate_edge_snapshots_loaded").await,
            1.0
        );
    }
    let va = edge_a.ready().await["version"].as_u64().unwrap();
    let vb = edge_b.ready().await["version"].as_u64().unwrap();
    assert_eq!(va, vb, "both edges at the same version");
}

#[tokio::test]
async fn eight_simultaneous_subscribes_across_replicas_make_one_subscription() {
    let Some((a, b)) = pair("eight_simultaneous_subscribes_across_replicas_make_one_subscription")
    else {
        return;
    };
    let api_a = a.api();
    api_a.create_customer("racer").await;
    let (status, _) = api_a
        .post(
            "/api/v1/customers/racer/payment-methods/",
            json!({"token": "pm_card_visa"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut calls = Vec::new();
    for i in 0..8 {
        let api = if i % 2 == 0 { a.api() } else { b.api() };
        calls.push(tokio::spawn(async move {
            api.post(
                "/api/v1/subscribe/",
                json!({"customerId": "racer", "planId": "pro", "chargePeriod": "MONTHLY"}),
            )
            .await
        }));
    }
    let mut actions = Vec::new();
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        actions.push(body["action"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "created").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "no_op").count(),
        7,
        "{actions:?}"
    );
    let (_, subs) = api_a.get("/api/v1/subscriptions/?customer_id=racer").await;
    assert_eq!(subs["count"], 1, "{subs}");
    let (_, invoices) = b.api().get("/api/v1/invoices/?customer_id=racer").await;
    assert_eq!(invoices["count"], 1, "{invoices}");
    // One charge: one payment intent, settled once.
    let (_, payments) = b.api().get("/api/v1/payments/?customer_id=racer").await;
    assert_eq!(payments["count"], 1, "{payments}");
    assert_eq!(payments["results"][0]["status"], "succeeded", "{payments}");
    assert_eq!(payments["results"][0]["attempts"], 1, "{payments}");
}

#[derive(Clone, Default)]
struct Hooks {
    ids: Arc<Mutex<Vec<String>>>,
}

async fn hook(State(h): State<Hooks>, headers: HeaderMap, body: String) -> StatusCode {
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    if v["type"] == "subscription.renewed" {
        let id = headers["webhook-id"].to_str().unwrap_or("").to_owned();
        h.ids.lock().unwrap().push(id);
    }
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn renewals_due_together_are_run_once_by_two_replicas() {
    let Some((a, b)) = pair("renewals_due_together_are_run_once_by_two_replicas") else {
        return;
    };
    const CUSTOMERS: usize = 500;
    let hooks = Hooks::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let api = a.api();
    let (status, ep) = api
        .post(
            "/api/v1/webhook-endpoints/",
            json!({"url": hook_url, "events": ["subscription.renewed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let (_, clock) = api
        .post(
            "/api/v1/test-clocks/",
            json!({"frozenTime": "2026-04-01T00:00:00Z"}),
        )
        .await;
    let clock = clock["id"].as_str().unwrap().to_owned();
    // 500 customers on the clock, each with Pro monthly from April 1st (due May 1st).
    let mut setups = Vec::new();
    for chunk in 0..10 {
        let api = if chunk % 2 == 0 { a.api() } else { b.api() };
        let clock = clock.clone();
        setups.push(tokio::spawn(async move {
            for i in 0..CUSTOMERS / 10 {
                let id = format!("renew-{chunk}-{i}");
                let (s, body) = api
                    .post(
                        "/api/v1/customers/",
                        json!({"customerId": id, "testClock": clock}),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{body}");
                let (s, _) = api
                    .post(
                        &format!("/api/v1/customers/{id}/payment-methods/"),
                        json!({"token": "pm_card_visa"}),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED);
                let (s, body) = api
                    .post(
                        "/api/v1/subscribe/",
                        json!({"customerId": id, "planId": "pro", "chargePeriod": "MONTHLY"}),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{body}");
            }
        }));
    }
    for s in setups {
        s.await.unwrap();
    }
    // Both replicas advance the same clock at once: each runs what is due, claiming each
    // renewal with FOR UPDATE SKIP LOCKED.
    let path = format!("/api/v1/test-clocks/{clock}/advance/");
    let body = json!({"frozenTime": "2026-05-01T00:00:00Z"});
    let (api_a, api_b) = (a.api(), b.api());
    let (ra, rb) = tokio::join!(
        api_a.post(&path, body.clone()),
        api_b.post(&path, body.clone())
    );
    assert_eq!(ra.0, StatusCode::OK, "{}", ra.1);
    assert_eq!(rb.0, StatusCode::OK, "{}", rb.1);
    let steps = ra.1["stepsRun"].as_u64().unwrap() + rb.1["stepsRun"].as_u64().unwrap();
    assert!(steps >= CUSTOMERS as u64, "{steps} steps");

    // Exactly one renewal invoice per customer.
    let mut renewals = 0;
    for page in 1..=((CUSTOMERS * 2) / 100 + 1) {
        let (_, list) = api
            .get(&format!("/api/v1/invoices/?page={page}&page_size=100"))
            .await;
        let results = list["results"].as_array().unwrap();
        renewals += results
            .iter()
            .filter(|i| i["reason"] == "subscription_cycle")
            .count();
        if results.len() < 100 {
            break;
        }
    }
    assert_eq!(renewals, CUSTOMERS);
    // And exactly one `subscription.renewed` delivery per customer, from either replica.
    wait_until("500 renewal webhooks", || async {
        hooks.ids.lock().unwrap().len() >= CUSTOMERS
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ids = hooks.ids.lock().unwrap().clone();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), CUSTOMERS, "deliveries");
    assert_eq!(unique.len(), CUSTOMERS, "distinct events");
}

#[tokio::test]
async fn losing_a_replica_loses_nothing_acknowledged() {
    let Some((a, b)) = pair("losing_a_replica_loses_nothing_acknowledged") else {
        return;
    };
    let edge = Edge::start(&format!("{},{}", a.url, b.url), &a.keys);
    edge.wait_ready().await;
    a.api().create_customer("survivor").await;
    let acked = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut writers = Vec::new();
    for w in 0..6 {
        let api = if w % 2 == 0 { a.api() } else { b.api() };
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..300 {
                let status = api
                    .try_post(
                        "/api/v1/usage/",
                        json!({"customerId": "survivor", "featureId": "api-calls", "quantity": 1}),
                    )
                    .await;
                if status == Some(StatusCode::OK) {
                    acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else if w % 2 == 0 {
                    return; // A is gone.
                }
            }
        }));
    }
    wait_until("writes under way", || async {
        acked.load(std::sync::atomic::Ordering::SeqCst) >= 100
    })
    .await;
    let _gone = a.stop(); // SIGKILL replica A mid-stream.
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    let api_b = b.api();
    let stored = meter(&api_b, "survivor").await;
    assert!(stored >= acked, "acknowledged {acked}, stored {stored}");
    // B keeps answering writes.
    let (status, _) = api_b
        .post("/api/v1/customers/", json!({"customerId": "after-a"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The edge that streamed from A moved to B and caught up, with no gap.
    wait_until("edge caught up on B", || async {
        usage_of(&edge.entitlements("survivor").await) == stored
    })
    .await;
    wait_until("edge knows the new customer", || async {
        edge.ready().await["connected"] == true
    })
    .await;
    assert_eq!(edge_metric(&edge, "tollgate_edge_sync_resyncs").await, 0.0);
    assert_eq!(
        edge_metric(&edge, "tollgate_edge_snapshots_loaded").await,
        1.0
    );
}

//! SPEC §9: no acknowledged write is lost when the control plane is killed with SIGKILL under
//! load. Writers hammer it concurrently; it is killed mid-stream; after a restart on the same
//! SQLite file every acknowledged write is there.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_under_load() {
    let cp = ControlPlane::start();
    let api = cp.api();
    api.create_customer("durable").await;
    api.subscribe_paid("durable", "pro", "MONTHLY").await;

    let usage_acks = Arc::new(AtomicUsize::new(0));
    let created: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..6 {
        let api = api.clone();
        let usage_acks = usage_acks.clone();
        let created = created.clone();
        writers.push(tokio::spawn(async move {
            // Bounded: stops at the first failure (the kill) or after 5,000 requests.
            for i in 0..5_000 {
                let ok = if w % 2 == 0 {
                    let status = api
                        .try_post("/api/v1/usage/", json!({"customerId": "durable", "featureId": "api-calls", "quantity": 1}))
                        .await;
                    let ok = status == Some(StatusCode::OK);
                    if ok {
                        usage_acks.fetch_add(1, Ordering::SeqCst);
                    }
                    ok
                } else {
                    let id = format!("w{w}-{i}");
                    let status = api.try_post("/api/v1/customers/", json!({"customerId": id})).await;
                    let ok = status == Some(StatusCode::CREATED);
                    if ok {
                        created.lock().unwrap().push(id);
                    }
                    ok
                };
                if !ok {
                    return;
                }
            }
        }));
    }
    wait_until("writes under way", || async {
        usage_acks.load(Ordering::SeqCst) >= 150
    })
    .await;
    let stopped = cp.stop(); // SIGKILL, mid-stream
    for w in writers {
        let _ = w.await;
    }
    let acked = usage_acks.load(Ordering::SeqCst);
    let created = created.lock().unwrap().clone();
    assert!(acked >= 150 && !created.is_empty());

    let cp = stopped.start();
    let api = cp.api();
    let (status, meter) = api
        .post(
            "/api/v1/usage/",
            json!({"customerId": "durable", "featureId": "api-calls", "quantity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let counted = meter["currentUsage"].as_u64().unwrap() as usize;
    // A commit whose answer was lost in the kill may be counted without an ack, never the reverse.
    assert!(
        counted >= acked,
        "acknowledged {acked} usage reports, found {counted}"
    );
    for id in &created {
        let (status, _) = api.get(&format!("/api/v1/customers/{id}/")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged customer {id} was lost"
        );
    }
}

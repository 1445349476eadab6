//! `control-plane copy`: an embedded database moved up to PostgreSQL answers every API call as
//! before, and an edge synced before the move resumes after it without a new snapshot.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn answers(api: &Api, live: &Api) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/api/v1/customers/?page_size=100",
        "/api/v1/subscriptions/?page_size=100",
        "/api/v1/invoices/?page_size=100",
        "/api/v1/plans/?page_size=100",
        "/api/v1/features/?page_size=100",
        "/api/v1/api-keys/?page_size=100",
        "/api/v1/subscriptions/?customer_id=mover",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        all.insert(path.to_owned(), body);
        let (status, body) = live.get(path).await;
        assert_eq!(status, StatusCode::OK, "live {path}");
        all.insert(format!("live {path}"), body);
    }
    Value::Object(all)
}

#[tokio::test]
async fn an_embedded_database_moves_up_to_postgres() {
    let pg = match postgres() {
        Ok(pg) => pg,
        Err(why) => return missing("an_embedded_database_moves_up_to_postgres", &why),
    };
    let cp = ControlPlane::start();
    let edge = cp.edge();
    edge.wait_ready().await;
    let (api, live) = (cp.api(), cp.api_with(&cp.keys.live_secret));
    // Test mode: subscriptions, invoices, usage; live mode: a customer with usage.
    api.create_customer("mover").await;
    api.subscribe_paid("mover", "pro", "MONTHLY").await;
    for q in [3, 4] {
        let (s, _) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId": "mover", "featureId": "api-calls", "quantity": q}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = live
        .post("/api/v1/customers/", json!({"customerId": "live-one"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = live
        .post(
            "/api/v1/usage/",
            json!({"customerId": "live-one", "featureId": "api-calls", "quantity": 9}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = answers(&api, &live).await;
    wait_until("edge has the usage", || async {
        edge.entitlements("mover").await["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["featureId"] == "api-calls" && e["currentUsage"] == 7)
    })
    .await;
    let version = edge.ready().await["version"].as_u64().unwrap();

    let stopped = cp.stop();
    let target = pg.fresh_database();
    let out = Command::new(bin("control-plane"))
        .args(["copy", "--from", stopped.database_url(), "--to", &target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second copy into a database with data is refused.
    let again = Command::new(bin("control-plane"))
        .args(["copy", "--from", stopped.database_url(), "--to", &target])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let cp = stopped.start_on_database(target, Db::Postgres);
    let (api, live) = (cp.api(), cp.api_with(&cp.keys.live_secret));
    assert_eq!(answers(&api, &live).await, before);
    // The edge resumes on the same versions: no snapshot, and what comes next arrives.
    let (s, _) = api
        .post(
            "/api/v1/usage/",
            json!({"customerId": "mover", "featureId": "api-calls", "quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    wait_until("edge follows the moved control plane", || async {
        edge.entitlements("mover").await["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["featureId"] == "api-calls" && e["currentUsage"] == 8)
    })
    .await;
    assert_eq!(edge.ready().await["version"].as_u64().unwrap(), version + 1);
    let metrics = client()
        .get(format!("{}/metrics", edge.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "tollgate_edge_snapshots_loaded 1"),
        "the edge resumed with `since`, not a new snapshot"
    );
}

//! The sync protocol under failure: the edge keeps serving while the control plane is gone,
//! and catches up, with no delta lost, when it comes back.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn control_plane_version(edge: &Edge) -> u64 {
    edge.ready().await["version"].as_u64().unwrap_or(0)
}

both! {
    async fn edge_serves_through_a_control_plane_outage_and_catches_up(db: Db) {
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        api.create_customer("steady").await;
        api.subscribe_paid("steady", "pro", "MONTHLY").await;
        wait_until("steady is pro", || async {
            has_access(&edge.entitlements("steady").await, "export-data")
        })
        .await;
        let before = edge.entitlements("steady").await;

        // SIGKILL the control plane: the edge keeps answering from memory and says it is stale.
        let stopped = cp.stop();
        wait_until("edge notices", || async {
            edge.ready().await["connected"] == false
        })
        .await;
        for _ in 0..20 {
            assert_eq!(edge.entitlements("steady").await, before);
        }
        let ready = edge.ready().await;
        assert_eq!(ready["stale"], true, "{ready}");
        assert_eq!(ready["hasSnapshot"], true);
        let metrics = client()
            .get(format!("{}/metrics", edge.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("tollgate_edge_sync_connected 0"),
            "{metrics}"
        );

        // Back on the same port and database; changes made right away must all arrive, in order.
        let cp = stopped.start();
        let api = cp.api();
        let mut expected: Vec<(String, bool)> = Vec::new();
        for i in 0..10 {
            let id = format!("after-{i}");
            api.create_customer(&id).await;
            if i % 2 == 0 {
                api.subscribe_paid(&id, "enterprise", "MONTHLY").await;
            }
            expected.push((id, i % 2 == 0));
        }
        wait_until("edge reconnected", || async {
            edge.ready().await["connected"] == true
        })
        .await;
        for (id, sso) in &expected {
            wait_until("customer synced", || async {
                let e = edge.entitlements(id).await;
                has_access(&e, "sso") == *sso
                    && e["entitlements"].as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        }
        assert_eq!(edge.entitlements("steady").await, before);

        // The edge's version matches the control plane's newest change-log entry.
        let (_, subs) = api.get("/api/v1/subscriptions/?page_size=100").await;
        assert_eq!(subs["count"], 6);
        let edge_version = control_plane_version(&edge).await;
        let db_version = latest_version(&cp).await;
        assert_eq!(edge_version, db_version);
    }
}

both! {
    async fn a_second_edge_started_later_gets_the_same_state(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        for i in 0..30 {
            api.create_customer(&format!("c{i}")).await;
        }
        api.subscribe_paid("c7", "pro", "MONTHLY").await;
        let first = cp.edge();
        first.wait_ready().await;
        let second = cp.edge();
        second.wait_ready().await;
        for id in ["c0", "c7", "c29", "unknown"] {
            let a: Value = first.entitlements(id).await;
            let b: Value = second.entitlements(id).await;
            assert_eq!(a, b, "{id}");
        }
        assert!(has_access(&second.entitlements("c7").await, "export-data"));
        let ready = second.ready().await;
        assert_eq!(ready["customers"], 30);
    }
}

both! {
    async fn sync_stream_refuses_other_keys(db: Db) {
        let cp = ControlPlane::start_on(db);
        for key in [
            cp.keys.secret.as_str(),
            cp.keys.publishable.as_str(),
            "esk_notarealkeyatall12345",
        ] {
            let resp = client()
                .get(format!("{}/internal/sync/stream", cp.url))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert!(
                matches!(
                    resp.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{key}: {}",
                resp.status()
            );
        }
    }
}

async fn latest_version(cp: &ControlPlane) -> u64 {
    // Read the change log's counter directly: the test owns the database.
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&cp.database_url)
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar("SELECT version FROM sync_state WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    v as u64
}

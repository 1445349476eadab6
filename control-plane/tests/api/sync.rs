//! The sync protocol under failure: the edge keeps serving while the control plane is gone,
//! and catches up, with no delta lost, when it comes back.

use reqwest::StatusCode;
use serde_json::{Value, json};

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

both! {
    /// Issue 9: revocation ends an open stream within one heartbeat interval whatever the write
    /// rate (it used to be checked only when the stream was idle long enough to send a
    /// heartbeat, and writes every 100 ms never left it idle).
    async fn a_revoked_sync_key_loses_its_stream_under_write_load(db: Db) {
        use futures_util::StreamExt;
        let cp = ControlPlane::start_on(db);
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, made) = live
            .post("/api/v1/api-keys/", json!({"kind": "edge_sync", "name": "doomed"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let key = made["key"].as_str().unwrap().to_owned();
        let key_id = made["id"].as_str().unwrap().to_owned();
        let resp = client()
            .get(format!("{}/internal/sync/stream", cp.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut stream = resp.bytes_stream();

        // A write every 100 ms, for as long as the test runs.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let (api, stop) = (cp.api(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    api.create_customer(&format!("load-{i}")).await;
                    i += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
        // Deltas flow.
        let mut seen = 0usize;
        while seen < 3 {
            let chunk = stream.next().await.expect("stream open").unwrap();
            seen += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let (status, revoked) = live
            .call(reqwest::Method::DELETE, &format!("/api/v1/api-keys/{key_id}/"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        // The stream ends (the deadline only stops a broken test from hanging forever).
        let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(next) = stream.next().await {
                if next.is_err() {
                    break;
                }
            }
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = load.await;
        assert!(ended.is_ok(), "the revoked key's stream stayed open under write load");
        // And the key cannot open a new one.
        let again = client()
            .get(format!("{}/internal/sync/stream", cp.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Change-log entries after `after`: (version, [(op, mode)]).
async fn change_log_after(cp: &ControlPlane, after: i64) -> Vec<(i64, Vec<(String, String)>)> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&cp.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT version, changes FROM change_log WHERE version > $1 ORDER BY version")
        .bind(after)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let changes: Value = serde_json::from_str(&r.get::<String, _>(1)).unwrap();
            let ops = changes
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["op"].as_str().unwrap_or("").to_owned(),
                        c["data"]["mode"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (r.get::<i64, _>(0), ops)
        })
        .collect()
}

both! {
    /// Issue 9: a catalog edit recompiles its customers in bounded chunks, each its own
    /// transaction and delta, so writes in the other mode run between them instead of waiting
    /// for the whole mode; edges apply each chunk as it comes.
    async fn a_catalog_edit_works_in_chunks_that_other_writes_interleave(db: Db) {
        use futures_util::StreamExt;
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        const CUSTOMERS: usize = 1_000;
        futures_util::stream::iter(0..CUSTOMERS)
            .for_each_concurrent(16, |i| {
                let api = api.clone();
                async move {
                    api.create_customer(&format!("bulk-{i:04}")).await;
                }
            })
            .await;
        let before = latest_version(&cp).await as i64;

        // Live-mode writes, one after another, for as long as the edit's recompile runs.
        let live = cp.api_with(&cp.keys.live_secret);
        live.create_customer("live-writer").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (status, body) = live
                        .post(
                            "/api/v1/usage/",
                            json!({"customerId": "live-writer", "featureId": "api-calls", "quantity": 1}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    n += 1;
                }
                n
            })
        };

        // The free plan is every customer's default: its edit reaches all of them.
        let (status, plan) = api
            .call(
                reqwest::Method::PUT,
                "/api/v1/plans/free/",
                Some(json!({"identifier": "free", "name": "Free", "group": "base", "isDefault": true,
                            "features": [{"featureId": "api-calls", "usageLimit": 150},
                                         {"featureId": "max-projects", "usageLimit": 3},
                                         {"featureId": "team-size", "usageLimit": 1}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        let limit_of = |e: &Value| {
            e["entitlements"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["featureId"] == "api-calls"))
                .map(|x| x["usageLimit"].clone())
        };
        wait_until("every customer recompiled at the edge", || async {
            limit_of(&edge.entitlements("bulk-0000").await) == Some(json!(150))
                && limit_of(&edge.entitlements("bulk-0999").await) == Some(json!(150))
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let live_writes = load.await.unwrap();
        assert!(live_writes > 0);

        let log = change_log_after(&cp, before).await;
        let chunk_versions: Vec<i64> = log
            .iter()
            .filter(|(_, ops)| ops.iter().any(|(op, mode)| op == "customer" && mode == "test"))
            .map(|(v, _)| *v)
            .collect();
        let biggest = log
            .iter()
            .map(|(_, ops)| ops.iter().filter(|(op, mode)| op == "customer" && mode == "test").count())
            .max()
            .unwrap_or(0);
        assert!(
            chunk_versions.len() >= CUSTOMERS / 200,
            "the recompile came in {} entries",
            chunk_versions.len()
        );
        assert!(biggest <= 200, "one entry recompiled {biggest} customers");
        let (first, last) = (chunk_versions[0], chunk_versions[chunk_versions.len() - 1]);
        let live_between = log
            .iter()
            .filter(|(v, ops)| {
                *v > first && *v < last && ops.iter().any(|(_, mode)| mode == "live")
            })
            .count();
        assert!(
            live_between > 0,
            "no live-mode write committed between the recompile's first and last chunk"
        );
        // Every customer of the mode got the edit.
        let recompiled: usize = log
            .iter()
            .map(|(_, ops)| ops.iter().filter(|(op, mode)| op == "customer" && mode == "test").count())
            .sum();
        assert!(recompiled >= CUSTOMERS, "{recompiled} customers recompiled");
    }
}

both! {
    /// A catalog edit's customers are recompiled after it, in chunks: usage reported at once
    /// for a meter the edit added must count for a customer whose chunk has not run yet, not
    /// answer "feature not found" (Kelviq's `report_event` SDK test caught that race in CI).
    async fn usage_for_a_new_meter_counts_before_its_recompile(db: Db) {
        use futures_util::StreamExt;
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        const CUSTOMERS: usize = 600;
        futures_util::stream::iter(0..CUSTOMERS)
            .for_each_concurrent(16, |i| {
                let api = api.clone();
                async move {
                    api.create_customer(&format!("bulk-{i:04}")).await;
                }
            })
            .await;
        // The free plan's edit queues three chunks ahead of the new meter's own recompile.
        let (status, plan) = api
            .call(
                reqwest::Method::PUT,
                "/api/v1/plans/free/",
                Some(json!({"identifier": "free", "name": "Free", "group": "base", "isDefault": true,
                            "features": [{"featureId": "api-calls", "usageLimit": 150}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        let (status, feature) = api
            .post(
                "/api/v1/features/",
                json!({"identifier": "fresh-meter", "name": "Fresh", "type": "METER"}),
            )
            .await;
        assert!(status.is_success(), "{feature}");
        let last = format!("bulk-{:04}", CUSTOMERS - 1);
        for expected in 1..=2 {
            let (status, usage) = api
                .post(
                    "/api/v1/usage/",
                    json!({"customerId": last, "featureId": "fresh-meter", "quantity": 1}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{usage}");
            assert_eq!(usage["currentUsage"], expected, "{usage}");
        }
        // And once the recompile has run, the count is still there.
        wait_until("the catalog recompiles done", || async {
            use sqlx::{Connection, Row};
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&cp.database_url)
                .await
                .unwrap();
            sqlx::query("SELECT COUNT(*) FROM catalog_recompiles")
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get::<i64, _>(0)
                == 0
        })
        .await;
        let (status, usage) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId": last, "featureId": "fresh-meter", "quantity": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{usage}");
        assert_eq!(usage["currentUsage"], 3, "{usage}");
    }
}

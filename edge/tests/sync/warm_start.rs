//! `--cache-dir`: an edge restarted while its control plane is down serves the cached data at
//! once, says it is stale, and resumes the stream from the cached version; a damaged cache is
//! ignored; a stale one gives way to what the stream says.

use tollgate_shared::sync::Change;

use crate::standin::{StandIn, World, customer, key};
use crate::*;

fn world() -> World {
    World {
        version: 5,
        customers: vec![customer("c1", 3), customer("c2", 40), customer("c3", 100)],
        keys: vec![key(KEY)],
        deltas: vec![],
        oldest_resumable: 5,
        up: true,
        reorder: false,
        token_keys: vec![],
        defaults: vec![],
    }
}

/// Runs an edge against `standin` until its cache file holds version `version`.
async fn cache_at(standin: &StandIn, dir: &std::path::Path, version: u64) -> Vec<u8> {
    let edge = Edge::start(&standin.url(), Some(dir));
    wait_until("edge ready", || async {
        edge.ready().await.1["version"] == version
    })
    .await;
    let path = dir.join("edge-cache.bin");
    wait_until("cache written", || async {
        edge.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("tollgate_edge_cache_age_seconds ") && !l.ends_with(" -1"))
            && path.exists()
    })
    .await;
    let (status, _, body) = edge.entitlements("c1").await;
    assert_eq!(status, 200);
    edge.kill();
    body
}

#[tokio::test]
async fn warm_start_with_the_control_plane_down() {
    let dir = tempfile::tempdir().unwrap();
    let standin = StandIn::start(world()).await;
    let before = cache_at(&standin, dir.path(), 5).await;
    drop(standin);

    let edge = Edge::start(&dead_url(), Some(dir.path()));
    // Served at once, byte for byte, and stale.
    let (status, etag, body) = edge.entitlements("c1").await;
    assert_eq!(status, 200);
    assert_eq!(body, before);
    assert!(!etag.is_empty());
    let (status, ready) = edge.ready().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["source"], "cache");
    assert_eq!(ready["stale"], true);
    assert_eq!(ready["connected"], false);
    assert_eq!(ready["version"], 5);
    assert_eq!(ready["customers"], 3);
    assert!(ready["stalenessSeconds"].as_f64().unwrap() >= 0.0);
    assert!(ready["cacheAgeSeconds"].as_f64().unwrap() >= 0.0);
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("tollgate_edge_serving_from_cache 1"),
        "{metrics}"
    );
    // 304 works from the cache too.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/entitlements/?customerId=c1", edge.url))
        .bearer_auth(KEY)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
}

#[tokio::test]
async fn a_damaged_cache_is_ignored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let standin = StandIn::start(world()).await;
    cache_at(&standin, dir.path(), 5).await;
    drop(standin);
    let path = dir.path().join("edge-cache.bin");
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    for damaged in [
        flipped,
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
    ] {
        std::fs::write(&path, &damaged).unwrap();
        let edge = Edge::start(&dead_url(), Some(dir.path()));
        let (status, ready) = edge.ready().await;
        assert_eq!(status, 503);
        assert_eq!(ready["hasSnapshot"], false);
        let (status, _, _) = edge.entitlements("c1").await;
        assert_eq!(status, 503);
        wait_until("a clear warning", || async {
            edge.said("ignoring the cache file") && edge.said("checksum")
        })
        .await;
    }
}

#[tokio::test]
async fn a_stale_cache_gives_way_to_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let standin = StandIn::start(world()).await;
    cache_at(&standin, dir.path(), 5).await;
    // Meanwhile: c1 moves on, the cached key is revoked and another added, and the change
    // log no longer reaches back to 5, so the edge must take a new snapshot.
    let fresh = "pk_test_standinKey000000000000002";
    standin.commit(vec![
        Change::Customer(customer("c1", 7)),
        Change::KeyRevoked {
            hash: key(KEY).hash,
        },
        Change::KeyAdded(key(fresh)),
    ]);
    standin.commit(vec![Change::CustomerRemoved {
        mode: tollgate_shared::Mode::Test,
        customer_id: "c3".into(),
    }]);
    standin.set_up(false);
    {
        let mut w = standin_world(&standin);
        w.oldest_resumable = 7;
    }
    let edge = Edge::start(&standin.url(), Some(dir.path()));
    // The cached key works while the cache is all there is…
    let (status, _, _) = edge.entitlements("c1").await;
    assert_eq!(status, 200);
    standin.set_up(true);
    wait_until("the stream's snapshot", || async {
        edge.ready().await.1["version"] == 7
    })
    .await;
    // …and is refused as soon as the newer snapshot says so.
    assert_eq!(edge.entitlements("c1").await.0, 401);
    let (status, _, body) = edge
        .get("/api/v1/entitlements/?customerId=c1", Some(fresh))
        .await;
    assert_eq!(status, 200);
    assert_eq!(current_usage(&body), 7);
    let (_, ready) = edge.ready().await;
    assert_eq!(ready["source"], "stream");
    assert_eq!(ready["customers"], 2);
    assert_eq!(standin.requests().last(), Some(&Some(5)));
}

fn standin_world(s: &StandIn) -> std::sync::MutexGuard<'_, World> {
    s.world()
}

#[tokio::test]
async fn resumes_since_the_cached_version_and_loses_no_delta() {
    let dir = tempfile::tempdir().unwrap();
    let standin = StandIn::start(world()).await;
    cache_at(&standin, dir.path(), 5).await;
    standin.set_up(false);
    // Committed while the edge was away: the edge must get each of them, once, in order.
    standin.commit(vec![Change::Customer(customer("c1", 11))]);
    standin.commit(vec![Change::Customer(customer("c4", 1))]);
    standin.commit(vec![Change::CustomerRemoved {
        mode: tollgate_shared::Mode::Test,
        customer_id: "c2".into(),
    }]);
    let edge = Edge::start(&standin.url(), Some(dir.path()));
    assert_eq!(edge.ready().await.1["version"], 5);
    standin.set_up(true);
    wait_until("caught up", || async {
        edge.ready().await.1["version"] == 8
    })
    .await;
    // Only deltas: the stream was asked `since=5` and sent no snapshot.
    assert_eq!(standin.requests().last(), Some(&Some(5)));
    assert!(!edge.said("snapshot starting"));
    assert_eq!(current_usage(&edge.entitlements("c1").await.2), 11);
    assert_eq!(current_usage(&edge.entitlements("c4").await.2), 1);
    let c2: serde_json::Value = serde_json::from_slice(&edge.entitlements("c2").await.2).unwrap();
    assert_eq!(
        c2["entitlements"],
        serde_json::json!([]),
        "c2 fell back to the defaults"
    );
    // And the stream goes on.
    standin.commit(vec![Change::Customer(customer("c1", 12))]);
    wait_until("live delta", || async {
        current_usage(&edge.entitlements("c1").await.2) == 12
    })
    .await;
    assert_eq!(edge.ready().await.1["version"], 9);
    assert_eq!(edge.ready().await.1["source"], "stream");
}

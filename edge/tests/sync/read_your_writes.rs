//! Read-your-writes: a read with `minVersion` (query or `Tollgate-Min-Version`) that the edge
//! has not applied yet waits, and is answered right after the write arrives, with
//! `Tollgate-Version`; past the bound it is answered stale (`Tollgate-Stale: true`); too many
//! waiting reads get 429. The GET, OFREP and the stream alike. (Against the real control plane
//! and its `Tollgate-Version` header: `compat/openfeature` and `clients/js`.)

use serde_json::json;
use tollgate_shared::sync::Change;

use crate::ofrep::{ctx, world};
use crate::standin::{StandIn, customer};
use crate::*;

/// Waits until the edge has `n` reads waiting, so the write below is known to come after.
async fn waiting(edge: &Edge, n: f64) {
    wait_until("the read waits", || async {
        edge.metric("tollgate_edge_reads_waiting").await == n
    })
    .await;
}

#[tokio::test]
async fn min_version_waits_and_then_answers_right_after_the_write() {
    let standin = StandIn::start(world()).await;
    let edge = Arc::new(Edge::start_with(
        &standin.url(),
        None,
        &["--min-version-wait-ms", "10000"],
    ));
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;

    // GET, with the query parameter.
    let e = edge.clone();
    let get = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/entitlements/?customerId=c1&minVersion=6",
                e.url
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let version = resp.headers()["tollgate-version"]
            .to_str()
            .unwrap()
            .to_owned();
        let stale = resp.headers().get("tollgate-stale").is_some();
        (version, stale, resp.bytes().await.unwrap())
    });
    waiting(&edge, 1.0).await;
    assert_eq!(
        standin.commit(vec![Change::Customer(customer("c1", 77))]),
        6
    );
    let (version, stale, body) = get.await.unwrap();
    assert_eq!((version.as_str(), stale), ("6", false));
    assert_eq!(current_usage(&body), 77);

    // OFREP, with the header.
    let e = edge.clone();
    let ofrep = tokio::spawn(async move {
        e.post(
            "/ofrep/v1/evaluate/flags/api-calls.remaining",
            Some(KEY),
            &ctx("c1"),
            &[("tollgate-min-version", "7")],
        )
        .await
    });
    waiting(&edge, 1.0).await;
    standin.commit(vec![Change::Customer(customer("c1", 80))]);
    let (status, headers, v) = ofrep.await.unwrap();
    assert_eq!((status, v["value"].clone()), (200, json!(20)));
    assert_eq!(headers["tollgate-version"], "7");

    // The stream: opened for a version still to come, its first event is that version's.
    let e = edge.clone();
    let stream = tokio::spawn(async move {
        let mut sse = e
            .stream(
                "/api/v1/entitlements/stream?customerId=c1&minVersion=8",
                Some(KEY),
                &[],
            )
            .await;
        let stale = sse.headers.get("tollgate-stale").is_some();
        (stale, sse.next_data().await.unwrap())
    });
    waiting(&edge, 1.0).await;
    standin.commit(vec![Change::Customer(customer("c1", 81))]);
    let (stale, first) = stream.await.unwrap();
    assert!(!stale);
    assert_eq!(first.version(), 8);
    assert_eq!(current_usage(first.data.as_deref().unwrap().as_bytes()), 81);

    // Reads without minVersion, or with one already applied, never wait and say nothing.
    let (status, _, body) = edge.entitlements("c1").await;
    assert_eq!((status, current_usage(&body)), (200, 81));
    assert_eq!(edge.metric("tollgate_edge_reads_waiting").await, 0.0);
}

#[tokio::test]
async fn past_the_bound_reads_are_answered_stale_and_too_many_waiting_get_429() {
    let standin = StandIn::start(world()).await;
    let edge = Arc::new(Edge::start_with(
        &standin.url(),
        None,
        &["--min-version-wait-ms", "200", "--max-pending-reads", "1"],
    ));
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;

    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/entitlements/?customerId=c1", edge.url))
        .bearer_auth(KEY)
        .header("tollgate-min-version", "99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["tollgate-stale"], "true");
    assert_eq!(resp.headers()["tollgate-version"], "5");
    assert_eq!(current_usage(&resp.bytes().await.unwrap()), 40);
    let (status, headers, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/sso",
            Some(KEY),
            &ctx("c1"),
            &[("tollgate-min-version", "99")],
        )
        .await;
    assert_eq!((status, v["value"].clone()), (200, json!(true)));
    assert_eq!(headers["tollgate-stale"], "true");

    // One read may wait at a time here: a second one is told to come back.
    let e = edge.clone();
    let first = tokio::spawn(async move {
        e.get(
            "/api/v1/entitlements/?customerId=c1&minVersion=99",
            Some(KEY),
        )
        .await
        .0
    });
    waiting(&edge, 1.0).await;
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/entitlements/?customerId=c1&minVersion=99",
            edge.url
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let envelope: Value = resp.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], 429);
    let (status, headers, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/sso",
            Some(KEY),
            &ctx("c1"),
            &[("tollgate-min-version", "99")],
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["key"], "sso");
    // Plain reads are never held up by waiting ones.
    let (status, _, _) = edge.entitlements("c1").await;
    assert_eq!(status, 200);
    let (status, _, _) = edge
        .post("/ofrep/v1/evaluate/flags/sso", Some(KEY), &ctx("c1"), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(first.await.unwrap(), 200);
}

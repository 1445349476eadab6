//! `--control-plane-url A,B`: a control plane that refuses or drops the stream is left for the
//! next one, and the edge resumes `since` its version there (replicas share versions).

use tollgate_shared::sync::Change;

use crate::standin::{StandIn, World, customer, key};
use crate::*;

fn world(up: bool) -> World {
    World {
        version: 5,
        customers: vec![customer("c1", 3)],
        keys: vec![key(KEY)],
        deltas: vec![],
        oldest_resumable: 5,
        up,
        reorder: false,
        token_keys: vec![],
        defaults: vec![],
    }
}

#[tokio::test]
async fn moves_to_the_next_control_plane_and_resumes_since_its_version() {
    let a = StandIn::start(world(false)).await;
    let b = StandIn::start(world(true)).await;
    // A dead address first, then A (refusing), then B.
    let urls = format!("{},{},{}", dead_url(), a.url(), b.url());
    let edge = Edge::start(&urls, None);
    wait_until("ready from B", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    assert_eq!(b.requests(), vec![None], "B served the snapshot");

    // B goes away mid-stream; A comes up with the same history plus one more change.
    b.set_up(false);
    a.set_up(true);
    for s in [&a, &b] {
        s.commit(vec![Change::Customer(customer("c1", 9))]);
    }
    wait_until("the change, from A", || async {
        edge.ready().await.1["version"] == 6
    })
    .await;
    assert_eq!(current_usage(&edge.entitlements("c1").await.2), 9);
    assert_eq!(a.requests().last(), Some(&Some(5)), "A was asked to resume");
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("tollgate_edge_control_plane_index 1"),
        "{metrics}"
    );
}

//! The wire format stays protocol 1 as it was: the edge's fast path reads the control plane's
//! own chunk lines, and any other spelling of the same frames (keys reordered, spaces, CRLF)
//! loads too, to the same bytes.

use tollgate_shared::sync::Change;

use crate::standin::{StandIn, World, customer, key};
use crate::*;

fn world(reorder: bool) -> World {
    World {
        version: 5,
        customers: (0..7).map(|i| customer(&format!("c{i}"), i * 17)).collect(),
        keys: vec![key(KEY)],
        deltas: vec![],
        oldest_resumable: 5,
        up: true,
        reorder,
        token_keys: vec![],
        defaults: vec![],
    }
}

#[tokio::test]
async fn frames_in_another_spelling_load_to_the_same_bytes() {
    let plain = StandIn::start(world(false)).await;
    let odd = StandIn::start(world(true)).await;
    let a = Edge::start(&plain.url(), None);
    let b = Edge::start(&odd.url(), None);
    for e in [&a, &b] {
        wait_until("snapshot", || async { e.ready().await.1["version"] == 5 }).await;
    }
    for s in [&plain, &odd] {
        s.commit(vec![Change::Customer(customer("c3", 99))]);
    }
    for e in [&a, &b] {
        wait_until("delta", || async { e.ready().await.1["version"] == 6 }).await;
    }
    for i in 0..8 {
        let id = format!("c{i}");
        let (sa, ea, ba) = a.entitlements(&id).await;
        let (sb, eb, bb) = b.entitlements(&id).await;
        assert_eq!((sa, &ea, &ba), (sb, &eb, &bb), "{id}");
        assert_eq!(sa, 200);
    }
    assert_eq!(current_usage(&b.entitlements("c3").await.2), 99);
}

//! `GET /api/v1/entitlements/stream`: the entitlements on connect, an event per change with
//! the version as its id, resume with `Last-Event-ID` without a gap or a duplicate,
//! heartbeats, the subscriber cap, slow subscribers dropped while deltas keep applying, and
//! a revoked key ending its stream.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_shared::keys::{hash_hex, hash_key};
use tollgate_shared::sync::Change;

use crate::ofrep::world;
use crate::standin::{StandIn, customer};
use crate::*;

const PATH: &str = "/api/v1/entitlements/stream?customerId=c1";

#[tokio::test]
async fn the_stream_resumes_without_a_gap_or_a_duplicate() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start_with(&standin.url(), None, &["--stream-heartbeat-ms", "100"]);
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;

    let mut sse = edge.stream(PATH, Some(KEY), &[]).await;
    assert_eq!(sse.status, 200);
    let first = sse.next_data().await.unwrap();
    assert_eq!(first.version(), 5);
    let (_, _, get) = edge.entitlements("c1").await;
    assert_eq!(
        first.json(),
        serde_json::from_slice::<Value>(&get).unwrap(),
        "the stream's event is the GET's body"
    );
    // Heartbeats keep it alive.
    loop {
        if sse.next().await.unwrap().comment {
            break;
        }
    }

    standin.commit(vec![Change::Customer(customer("c1", 41))]);
    standin.commit(vec![Change::Customer(customer("c2", 7))]);
    let v8 = standin.commit(vec![Change::Customer(customer("c1", 42))]);
    // One event per change of c1, in order (two changes may coalesce into the later one).
    let mut seen = Vec::new();
    while seen.last().map(|(v, _)| *v) != Some(v8) {
        let ev = sse.next_event().await.unwrap();
        if let Some(data) = &ev.data {
            seen.push((ev.version(), current_usage(data.as_bytes())));
        }
    }
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    assert_eq!(seen.last().unwrap().1, 42);
    let last = v8;
    drop(sse);

    // Disconnected: c1 changes, then another customer does.
    standin.commit(vec![Change::Customer(customer("c1", 50))]);
    let v10 = standin.commit(vec![Change::Customer(customer("c2", 8))]);
    wait_until("deltas", || async {
        edge.ready().await.1["version"] == v10
    })
    .await;

    // Resume: the change missed arrives first, at the edge's version; nothing before it.
    let id = last.to_string();
    let mut sse = edge
        .stream(PATH, Some(KEY), &[("last-event-id", &id)])
        .await;
    let ev = sse.next_event().await.unwrap();
    assert_eq!(ev.version(), v10);
    assert_eq!(current_usage(ev.data.as_deref().unwrap().as_bytes()), 50);
    drop(sse);

    // Resume from there: nothing changed, so no data event (an id-only one at most), and the
    // next event is the next change.
    let id = v10.to_string();
    let mut sse = edge
        .stream(PATH, Some(KEY), &[("last-event-id", &id)])
        .await;
    let quiet = sse.next_event().await.unwrap();
    assert_eq!((quiet.version(), quiet.data), (v10, None));
    let v11 = standin.commit(vec![Change::Customer(customer("c1", 51))]);
    let ev = sse.next_data().await.unwrap();
    assert_eq!(ev.version(), v11);
    assert_eq!(current_usage(ev.data.as_deref().unwrap().as_bytes()), 51);
}

#[tokio::test]
async fn the_subscriber_cap_holds() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start_with(
        &standin.url(),
        None,
        &["--max-streams", "2", "--stream-heartbeat-ms", "100"],
    );
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let mut a = edge.stream(PATH, Some(KEY), &[]).await;
    let mut b = edge
        .stream("/api/v1/entitlements/stream?customerId=c2", Some(KEY), &[])
        .await;
    assert_eq!((a.status, b.status), (200, 200));
    assert!(a.next_data().await.is_some() && b.next_data().await.is_some());
    let c = edge.stream(PATH, Some(KEY), &[]).await;
    assert_eq!(c.status, 503);
    assert_eq!(c.headers["retry-after"], "5");
    assert_eq!(edge.metric("tollgate_edge_streams").await, 2.0);
    // OFREP's event stream counts against the same cap.
    let (_, _, bulk) = edge
        .post(
            "/ofrep/v1/evaluate/flags",
            Some(KEY),
            &crate::ofrep::ctx("c1"),
            &[],
        )
        .await;
    let uri = bulk["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = edge.stream(&uri, None, &[]).await;
    assert_eq!(o.status, 503);
    drop(a);
    // The slot frees when the edge sees the stream gone.
    wait_until("a slot frees", || async {
        edge.metric("tollgate_edge_streams").await == 1.0
    })
    .await;
    let mut d = edge.stream(PATH, Some(KEY), &[]).await;
    assert_eq!(d.status, 200);
    assert!(d.next_data().await.is_some());
    assert!(edge.metric("tollgate_edge_stream_refusals_total").await >= 2.0);
}

/// A client that stops reading: its socket's receive buffer is small and it never reads after
/// the first bytes. The edge drops it — while every delta keeps being applied and a healthy
/// stream of the same customer keeps receiving.
#[tokio::test]
async fn a_slow_subscriber_is_dropped_while_the_edge_keeps_applying_deltas() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start_with(
        &standin.url(),
        None,
        &["--stream-heartbeat-ms", "200", "--stream-stall-beats", "3"],
    );
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut slow = socket.connect(edge.addr().parse().unwrap()).await.unwrap();
    slow.write_all(
        format!("GET {PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 64];
    let n = slow.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));

    // A healthy stream of the same customer, read all along.
    let mut healthy = edge.stream(PATH, Some(KEY), &[]).await;
    assert!(healthy.next_data().await.is_some());
    let got = Arc::new(Mutex::new((0u64, 0i64)));
    let seen = got.clone();
    let reader = tokio::spawn(async move {
        while let Some(ev) = healthy.next_data().await {
            let usage = current_usage(ev.data.as_deref().unwrap().as_bytes());
            *seen.lock().unwrap() = (ev.version(), usage);
        }
    });

    // Change c1 until the slow stream is dropped; every change is applied meanwhile.
    let mut usage = 0;
    let mut last = 5;
    while edge.metric("tollgate_edge_stream_drops_total").await < 1.0 {
        for _ in 0..50 {
            usage = (usage + 1) % 90;
            last = standin.commit(vec![Change::Customer(customer("c1", usage))]);
        }
        wait_until("the edge applies every delta", || async {
            edge.ready().await.1["version"] == last
        })
        .await;
    }
    assert_eq!(edge.metric("tollgate_edge_stream_drops_total").await, 1.0);
    assert_eq!(edge.metric("tollgate_edge_streams").await, 1.0);
    // The healthy stream has the latest state.
    wait_until("the healthy stream catches up", || async {
        *got.lock().unwrap() == (last, usage)
    })
    .await;
    // The slow client's connection was closed: reading drains what was buffered, then ends.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the slow stream's connection is still open"),
        }
    }
    reader.abort();
}

#[tokio::test]
async fn a_revoked_key_ends_its_stream() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start(&standin.url(), None);
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let mut sse = edge.stream(PATH, Some(KEY), &[]).await;
    assert!(sse.next_data().await.is_some());
    standin.commit(vec![Change::KeyRevoked {
        hash: hash_hex(&hash_key(KEY)),
    }]);
    // The stream ends (no more events), and reopening it is refused.
    while sse.next().await.is_some() {}
    let again = edge.stream(PATH, Some(KEY), &[]).await;
    assert_eq!(again.status, 401);
}

/// A stream is a response still being written: the header, idle and request timeouts, which
/// bound waiting for requests and for a response's head, do not end it.
#[tokio::test]
async fn a_stream_outlives_the_connection_timeouts() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start_with(
        &standin.url(),
        None,
        &[
            "--http-header-timeout-ms",
            "200",
            "--http-idle-timeout-ms",
            "200",
            "--http-request-timeout-ms",
            "200",
            "--stream-heartbeat-ms",
            "100",
        ],
    );
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let mut sse = edge.stream(PATH, Some(KEY), &[]).await;
    assert!(sse.next_data().await.is_some());
    // Ten heartbeats: a second, five times each timeout.
    let mut beats = 0;
    while beats < 10 {
        if sse.next().await.expect("the stream is still open").comment {
            beats += 1;
        }
    }
    let v = standin.commit(vec![Change::Customer(customer("c1", 3))]);
    assert_eq!(sse.next_data().await.unwrap().version(), v);
}

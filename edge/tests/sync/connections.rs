//! The edge binary's connection limits (issue 9): a half-sent request is closed within the
//! header timeout, and 2,000 idle sockets do not stop a normal request.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::*;

#[tokio::test]
async fn a_half_sent_request_is_closed_and_idle_sockets_do_not_block_others() {
    // All from loopback here: without the per-address cap.
    let edge = Edge::start_with(
        &dead_url(),
        None,
        &[
            "--http-header-timeout-ms",
            "300",
            "--max-connections-per-ip",
            "0",
        ],
    );
    let addr = edge.url.trim_start_matches("http://").to_owned();

    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, slow.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
        }
    };
    assert!(closed, "the half-sent request was not closed");

    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let (status, _, body) = edge.get("/healthz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"ok\n");
    drop(idle);
}

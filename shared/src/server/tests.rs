//! The accept loop's limits, each against a real socket on loopback. Timeouts are set short
//! and the assertions wait generously: nothing here measures how fast anything is.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

type Stop = tokio::sync::oneshot::Sender<()>;

/// What `/big` answers: far more than socket buffers hold.
const BIG: usize = 64 << 20;

/// Serves "ok" (after `delay`), or [`BIG`] bytes at `/big`, with `limits`, over TLS when
/// given; returns the address.
async fn start(
    limits: ServerLimits,
    tls: Option<TlsConfig>,
    delay: Duration,
) -> (SocketAddr, Stop) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        move |_| {
            service_fn(move |req: Request<Incoming>| async move {
                tokio::time::sleep(delay).await;
                let body = match req.uri().path() {
                    "/big" => Bytes::from(vec![b'x'; BIG]),
                    _ => Bytes::from_static(b"ok"),
                };
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            })
        },
        limits,
        tls,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stop)
}

/// Reads until the server closes the socket; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(got.is_some(), "the half-sent request is still open");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut c, Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("ok"),
        "answered, then closed when idle: {text}"
    );
}

#[tokio::test]
async fn a_slow_response_loses_its_connection_at_the_request_timeout() {
    let limits = ServerLimits {
        request_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::from_secs(30)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut c, Duration::from_secs(10)).await;
    assert!(got.is_some(), "still waiting on a 30 s handler");
}

#[tokio::test]
async fn two_thousand_idle_sockets_do_not_stop_a_normal_request() {
    // All from one address here, so without the per-address cap.
    let limits = ServerLimits {
        max_connections_per_ip: 0,
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    drop(idle);
}

#[tokio::test]
async fn at_the_connection_cap_newcomers_wait_for_a_free_slot() {
    let limits = ServerLimits {
        max_connections: 1,
        header_read_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    // One silent socket holds the only slot until the header timeout drops it; the request
    // behind it is answered after that, not refused.
    let _hog = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn self_signed() -> (String, String) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (key.cert.pem(), key.signing_key.serialize_pem())
}

#[tokio::test]
async fn https_end_to_end_with_a_certificate_made_at_run_time() {
    let (cert, key) = self_signed();
    let tls = TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let (addr, _stop) = start(ServerLimits::default(), Some(tls), Duration::ZERO).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    // HTTPS only: plain HTTP on the same port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered");
    // A client that does not trust the certificate refuses it.
    let strict = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(
        strict
            .get(format!("https://localhost:{}/", addr.port()))
            .send()
            .await
            .is_err()
    );
}

#[test]
fn bad_pem_is_refused() {
    assert!(matches!(
        TlsConfig::from_pem(b"nothing", b"nothing"),
        Err(TlsError::NoCertificate)
    ));
    let (cert, _) = self_signed();
    assert!(matches!(
        TlsConfig::from_pem(cert.as_bytes(), b"nothing"),
        Err(TlsError::Key(_))
    ));
}

#[tokio::test]
async fn an_axum_router_fits() {
    let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        move |_| hyper_util::service::TowerToHyperService::new(router.clone()),
        ServerLimits::default(),
        None,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let body = reqwest::get(format!("http://{addr}/hello"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi");
    // Shutdown drains and returns.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A body fed by a channel, like a sync stream.
struct Streaming(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Streaming {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A long-lived streaming response (the control plane's sync stream) is not cut by the idle or
/// request timeouts: they cover waiting for a request and for a response's head.
#[tokio::test]
async fn a_streaming_response_outlives_the_idle_and_request_timeouts() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        move |_| {
            service_fn(move |_req: Request<Incoming>| async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(async move {
                    for i in 0..8 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if tx.send(Bytes::from(format!("{i}\n"))).await.is_err() {
                            return;
                        }
                    }
                });
                Ok::<_, Infallible>(Response::new(Streaming(rx)))
            })
        },
        limits,
        None,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let body = reqwest::get(format!("http://{addr}/stream"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "0\n1\n2\n3\n4\n5\n6\n7\n");
}

/// A connection's handle closes it at once, even while its response body is pending forever
/// (nothing hyper does would end it), and counts the bytes that reached the socket.
#[tokio::test]
async fn a_connection_handle_closes_its_connection_and_counts_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handles, mut handed) = tokio::sync::mpsc::unbounded_channel::<ConnHandle>();
    tokio::spawn(serve_with_handles(
        listener,
        move |_, handle: ConnHandle| {
            let handles = handles.clone();
            service_fn(move |_req: Request<Incoming>| {
                let _ = handles.send(handle.clone());
                async move {
                    // One chunk, then a body that never ends.
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    tx.send(Bytes::from_static(b"hello\n")).await.unwrap();
                    tokio::spawn(async move {
                        let _keep = tx;
                        std::future::pending::<()>().await;
                    });
                    Ok::<_, Infallible>(Response::new(Streaming(rx)))
                }
            })
        },
        ServerLimits::default(),
        None,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let handle = handed.recv().await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(6).any(|w| w == b"hello\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    // Every byte the client read went through the counter (a chunk's trailing CRLF may still
    // be on its way).
    assert!(handle.bytes_written() >= seen.len() as u64);
    assert_eq!(handle.write_blocked_for(), None, "the client reads");
    handle.close();
    assert!(
        closed_within(&mut stream, Duration::from_secs(10))
            .await
            .is_some()
    );
}

/// Shutdown: the request in flight is answered, an idle keep-alive connection is closed, and
/// `serve` returns once both are gone (well before the drain deadline).
#[tokio::test]
async fn shutdown_drains_the_request_in_flight_and_closes_idle_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (entered, mut inside) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let served = tokio::spawn(serve(
        listener,
        move |_| {
            let (entered, gate) = (entered.clone(), gate.clone());
            service_fn(move |req: Request<Incoming>| {
                let (entered, gate) = (entered.clone(), gate.clone());
                async move {
                    if req.uri().path() == "/slow" {
                        let _ = entered.send(());
                        gate.notified().await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            })
        },
        ServerLimits::default(),
        None,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(60),
    ));
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    inside.recv().await.unwrap();
    stop.send(()).unwrap();
    // The idle connection is closed by the drain; the busy one still gets its answer.
    assert!(
        closed_within(&mut idle, Duration::from_secs(10))
            .await
            .is_some()
    );
    release.notify_one();
    let answer = closed_within(&mut busy, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
}

/// Issue 15, finding 3: one address cannot take every slot. Past its cap a new connection is
/// closed as it arrives; one that ends makes room again.
#[tokio::test]
async fn one_address_is_capped_at_its_connections() {
    let limits = ServerLimits {
        max_connections_per_ip: 2,
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = second.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut third = TcpStream::connect(addr).await.unwrap();
    let got = closed_within(&mut third, Duration::from_secs(10)).await;
    assert_eq!(
        got.as_deref(),
        Some(&b""[..]),
        "a third connection was served"
    );
    drop(first);
    // The freed slot is taken by the next newcomer (the server sees the close soon after).
    let mut served = false;
    for _ in 0..100 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let got = closed_within(&mut c, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if got.starts_with(b"HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed slot was never given out again");
}

/// Issue 15, finding 3: a client that asks for a response and never reads it loses the
/// connection at the write timeout instead of holding it for ever. It then reads what the
/// socket buffers held and finds the end of the stream long before the body's end.
#[tokio::test]
async fn a_client_that_never_reads_loses_its_connection_at_the_write_timeout() {
    let limits = ServerLimits {
        write_timeout: Duration::from_millis(100),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits, None, Duration::ZERO).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Not a bound on anything: the client just does not read for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = closed_within(&mut c, Duration::from_secs(30))
        .await
        .unwrap_or_default();
    assert!(
        got.len() < BIG,
        "the whole body arrived: the server waited for the reader"
    );
}

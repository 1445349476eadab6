//! A stand-in control plane that speaks the real sync protocol (docs/sync.md) and nothing else:
//! `GET /internal/sync/stream[?since=V]` with the scenario's edge sync key. It serves one
//! pre-built snapshot from memory, so the edge's load time is not the control plane's, and it
//! can be told when to start (so the edge's empty memory can be read first) and when to drop
//! its streams (so the edge reconnects and reloads).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::AUTHORIZATION;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::snapshot;

const HEARTBEAT: Duration = Duration::from_millis(500);

/// One snapshot the stand-in sent: its version and when its first and last bytes went out.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub version: u64,
    pub first_byte: Instant,
    pub last_byte: Instant,
}

struct State {
    chunks: Vec<Bytes>,
    customers: u64,
    /// The version a snapshot is served at; an edge asking `since` it gets heartbeats only.
    version: AtomicU64,
    /// Streams wait until this is true before sending anything.
    released: watch::Sender<bool>,
    /// Bumped to end every open stream.
    generation: watch::Sender<u64>,
    sent: Mutex<Vec<Sent>>,
    /// The `since` of every stream request, in order (`None` when absent).
    requests: Mutex<Vec<Option<u64>>>,
    /// Lines pushed to every open stream after its snapshot (deltas, `loadtest edge-apps`).
    pushed: tokio::sync::broadcast::Sender<Bytes>,
}

pub struct StandIn {
    state: Arc<State>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts serving `chunks` (the snapshot's `snapshot_chunk` lines, `customers` in all) at
    /// `version`, on a free loopback port, on its own thread and runtime.
    pub fn start(chunks: Vec<Bytes>, customers: u64, version: u64) -> anyhow::Result<StandIn> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("standin")
            .enable_all()
            .build()
            .context("building the stand-in's runtime")?;
        let listener = rt
            .block_on(TcpListener::bind(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                0,
            ))))
            .context("binding the stand-in control plane")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            chunks,
            customers,
            version: AtomicU64::new(version),
            released: watch::channel(false).0,
            generation: watch::channel(0).0,
            sent: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            pushed: tokio::sync::broadcast::channel(1_024).0,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("standin".into())
            .spawn(move || rt.block_on(accept(listener, serving, stopped)))
            .context("starting the stand-in's thread")?;
        Ok(StandIn {
            state,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets waiting and future streams send.
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }

    /// Serves the next snapshot at `version` and ends every open stream, so a connected edge
    /// reconnects (`since` its old version) and loads it.
    pub fn reload_at(&self, version: u64) {
        self.state.version.store(version, Ordering::SeqCst);
        self.state.generation.send_modify(|g| *g += 1);
    }

    /// Sends `line` (a delta) on every open stream now; returns when it was handed over.
    pub fn push(&self, line: Bytes) -> Instant {
        let at = Instant::now();
        let _ = self.state.pushed.send(line);
        at
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state
            .sent
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<Option<u64>> {
        self.state
            .requests
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("stand-in thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let resp = respond(&state, &req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut stopped => break,
        }
    }
}

/// The stream's body: whatever the feeding task sends, until it stops.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Reply = Response<http_body_util::Either<ChannelBody, Full<Bytes>>>;

fn respond(state: &Arc<State>, req: &Request<Incoming>) -> Reply {
    let plain = |code: StatusCode| {
        let mut r = Response::new(http_body_util::Either::Right(Full::new(Bytes::new())));
        *r.status_mut() = code;
        r
    };
    if req.uri().path() != tollgate_shared::sync::STREAM_PATH {
        return plain(StatusCode::NOT_FOUND);
    }
    let expected = format!("Bearer {}", snapshot::SYNC_KEY);
    if req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        return plain(StatusCode::UNAUTHORIZED);
    }
    let since = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("since="))
            .and_then(|v| v.parse::<u64>().ok())
    });
    if let Ok(mut r) = state.requests.lock() {
        r.push(since);
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(feed(state.clone(), since, tx));
    let mut resp = Response::new(http_body_util::Either::Left(ChannelBody(rx)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

async fn feed(state: Arc<State>, since: Option<u64>, tx: mpsc::Sender<Bytes>) {
    let mut released = state.released.subscribe();
    if released.wait_for(|r| *r).await.is_err() {
        return;
    }
    let mut generation = state.generation.subscribe();
    generation.borrow_and_update();
    let mut pushed = state.pushed.subscribe();
    let version = state.version.load(Ordering::SeqCst);
    if since != Some(version) {
        let first_byte = Instant::now();
        let mut lines = vec![snapshot::begin_line(version, state.customers)];
        lines.extend(state.chunks.iter().cloned());
        lines.push(snapshot::end_line(version));
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if let Ok(mut sent) = state.sent.lock() {
            sent.push(Sent {
                version,
                first_byte,
                last_byte: Instant::now(),
            });
        }
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {
                if tx.send(snapshot::heartbeat_line(version)).await.is_err() {
                    return;
                }
            }
            line = pushed.recv() => match line {
                Ok(line) => {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            _ = generation.changed() => return,
            () = tx.closed() => return,
        }
    }
}

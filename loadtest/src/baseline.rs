//! The baseline: the smallest reasonable hyper 1.x HTTP/1 server, answering every request with
//! the same prepared body. SPEC §9 asks the edge for ≥ 0.9 × this server's throughput with a body
//! of the same size, so it must stay as cheap as a real server can be: no routing, one
//! `Content-Type` header, the body a reference-counted `Bytes` clone.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::cli::BaselineArgs;

const DRAIN: Duration = Duration::from_secs(5);
/// Name of the baseline server's runtime threads (its CPU time is read by this name).
pub const THREAD_NAME: &str = "baseline";

/// A JSON-ish body of exactly `len` bytes (`{"p":"xxxx"}`; bodies under 8 bytes are all `x`).
pub fn body_of_len(len: usize) -> Bytes {
    const OPEN: &[u8] = b"{\"p\":\"";
    const CLOSE: &[u8] = b"\"}";
    if len < OPEN.len() + CLOSE.len() {
        return Bytes::from(vec![b'x'; len]);
    }
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(OPEN);
    body.resize(len - CLOSE.len(), b'x');
    body.extend_from_slice(CLOSE);
    Bytes::from(body)
}

fn respond(body: &Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.clone()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Serves on an already-bound listener until `shutdown` resolves, then drains for at most
/// `drain`. The accept loop is bounded by `shutdown`.
pub async fn serve(
    listener: TcpListener,
    body: Bytes,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    serve_as(listener, body, false, shutdown, drain).await
}

/// [`serve`]; with `read_body`, each request's body is read before the answer (what any
/// server of POSTed evaluations does: `loadtest edge-apps` compares OFREP with both).
async fn serve_as(
    listener: TcpListener,
    body: Bytes,
    read_body: bool,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    builder.header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                if read_body {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let resp = respond(&body);
                        async move {
                            let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                } else {
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let resp = respond(&body);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {}
    }
}

/// A baseline server running on its own runtime and thread, so it does not share the load
/// generator's (deliberately small) runtime.
pub struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("baseline server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

pub fn server_runtime(threads: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .context("building the baseline server runtime")
}

/// Starts a baseline server on `listen` (use port 0 for a free one) in a background thread.
pub fn spawn(listen: SocketAddr, body: Bytes, threads: Option<u16>) -> anyhow::Result<Running> {
    spawn_as(listen, body, false, threads)
}

/// [`spawn`] of a baseline that reads each request's body before it answers.
pub fn spawn_reading(
    listen: SocketAddr,
    body: Bytes,
    threads: Option<u16>,
) -> anyhow::Result<Running> {
    spawn_as(listen, body, true, threads)
}

fn spawn_as(
    listen: SocketAddr,
    body: Bytes,
    read_body: bool,
    threads: Option<u16>,
) -> anyhow::Result<Running> {
    let rt = server_runtime(threads)?;
    let listener = rt
        .block_on(TcpListener::bind(listen))
        .with_context(|| format!("binding the baseline server to {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("baseline-server".into())
        .spawn(move || {
            rt.block_on(serve_as(
                listener,
                body,
                read_body,
                async {
                    let _ = stopped.await;
                },
                DRAIN,
            ));
        })
        .context("starting the baseline server thread")?;
    Ok(Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// `loadtest baseline`: serve until Ctrl-C, SIGTERM or `--exit-after`.
pub fn run_cli(args: &BaselineArgs) -> anyhow::Result<()> {
    let rt = server_runtime(args.threads)?;
    let body = body_of_len(args.body_bytes as usize);
    rt.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "baseline listening on http://{addr}/ (body {} bytes)",
            body.len()
        );
        serve(listener, body, shutdown_signal(args.exit_after), DRAIN).await;
        println!("baseline stopped");
        Ok(())
    })
}

async fn shutdown_signal(exit_after: Option<Duration>) {
    let timer = async {
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm() => {}
        () = timer => {}
    }
}

#[cfg(unix)]
async fn sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn sigterm() {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_asked_length_and_parses() {
        for len in [0, 1, 7, 8, 9, 600, 4096] {
            assert_eq!(body_of_len(len).len(), len);
        }
        let v: serde_json::Value = serde_json::from_slice(&body_of_len(64)).expect("body is JSON");
        assert!(v["p"].is_string());
    }
}

//! One hardened HTTP/1 accept loop for both binaries (issue 9, "Connections" and "TLS"):
//! header-read, idle keep-alive and request timeouts, a cap on concurrent connections, optional
//! TLS (rustls), and a graceful drain with a deadline.
//!
//! [`serve`] takes an already-bound listener and a function that makes one service per
//! connection (the edge keeps per-connection state in it); any
//! `hyper::service::Service<Request<Incoming>>` fits, and an axum `Router` does through
//! `hyper_util::service::TowerToHyperService` (see the tests).
//!
//! * **Header-read timeout**: hyper's. A connection that has not sent a complete request head
//!   this long after it started waiting for one is closed — a half-sent request, and, since
//!   hyper starts the same timer while a keep-alive connection waits for its next request, an
//!   idle connection too.
//! * **Idle timeout**: a keep-alive connection with no request in flight for this long is
//!   closed. The effective limit on idle connections is the smaller of the two timeouts.
//! * **Request timeout**: a request whose response is not ready this long after it arrived
//!   (reading its body included) has its connection closed.
//! * **Connection cap**: a semaphore; at the cap the loop stops accepting (the kernel's backlog
//!   holds newcomers) until a connection ends.
//! * **A handle per connection** ([`serve_with_handles`]): the service can close its own
//!   connection at once, see how many bytes have reached the socket, and for how long a write
//!   has been refused. The edge uses it for
//!   long-lived event streams: one whose client stopped reading is closed, even while hyper is
//!   stuck writing to it (a response body that is never polled cannot end itself).

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Connection limits. Every field has a sane default; both binaries expose each as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a complete request head (default 10 s).
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may sit with no request in flight (default 60 s;
    /// bounded in practice by `header_read_timeout`, see the module docs).
    pub idle_timeout: Duration,
    /// Longest from a request's head to its response being ready (default 30 s).
    pub request_timeout: Duration,
    /// Connections served at once (default 10,000).
    pub max_connections: usize,
    /// Connections from one IP address at once (default 1,000; 0: no cap).
    pub max_connections_per_ip: usize,
    /// Longest a write may wait for the client to take data (default 30 s).
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            write_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no certificate in the PEM given")]
    NoCertificate,
    #[error("no usable private key in the PEM given: {0}")]
    Key(String),
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server certificate chain and key, ready to terminate TLS.
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ServerConfig>);

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

impl TlsConfig {
    /// `--tls-cert FILE --tls-key FILE`: a PEM certificate chain and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        TlsConfig::from_pem(&read(cert)?, &read(key)?)
    }

    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig(Arc::new(config)))
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request's start or end.
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `limit`, if no request starts before.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        (self.in_flight.load(Ordering::Relaxed) == 0).then(|| {
            self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + limit
        })
    }
}

/// The caller's service, with in-flight tracking and the request timeout.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    timeout: Duration,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        TrackedFuture {
            inner: self.inner.call(req),
            sleep: None,
            timeout: self.timeout,
            done: Some(InFlight(self.activity.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response future under the request timeout. The timer is only armed if the response
    /// is not ready at the first poll, so a handler that answers at once (the edge's) pays
    /// neither an allocation nor a clock read for it.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        timeout: Duration,
        done: Option<InFlight>,
    }
}

impl<F, R, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            this.done.take();
            return Poll::Ready(r.map_err(Into::into));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            this.done.take();
            return Poll::Ready(Err("request timed out".into()));
        }
        Poll::Pending
    }
}

/// Marks a request finished when dropped (completed, failed or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection as its service sees it: [`ConnHandle::close`] ends the connection at once
/// (the socket is dropped, whatever hyper is doing with it), [`ConnHandle::bytes_written`]
/// counts what has been written to the socket so far, and [`ConnHandle::write_blocked_for`]
/// says how long a write has been waiting for the peer to make room (a client that stopped
/// reading).
#[derive(Clone, Debug)]
pub struct ConnHandle(Arc<ConnShared>);

#[derive(Debug)]
struct ConnShared {
    /// The connection's task, woken by [`ConnHandle::close`] and by the drain (an atomic per
    /// poll, no lock: a shared `watch` or `Notify` locks a mutex every time a waiting
    /// connection is polled, on every request).
    close: AtomicWaker,
    closed: std::sync::atomic::AtomicBool,
    /// The server is draining: finish the request in flight, take no more.
    draining: std::sync::atomic::AtomicBool,
    written: AtomicU64,
    epoch: Instant,
    /// Milliseconds after `epoch` (plus one) since a write has been pending; 0: none is.
    blocked: AtomicU64,
}

impl Default for ConnHandle {
    fn default() -> Self {
        ConnHandle(Arc::new(ConnShared {
            close: AtomicWaker::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            written: AtomicU64::new(0),
            epoch: Instant::now(),
            blocked: AtomicU64::new(0),
        }))
    }
}

impl ConnHandle {
    /// Closes the connection now: in-flight responses are cut off.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.close.wake();
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Bytes written to the connection's socket (TLS: plaintext bytes handed to rustls).
    pub fn bytes_written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// How long the socket has refused a write (its send buffer full), if it does now.
    pub fn write_blocked_for(&self) -> Option<Duration> {
        match self.0.blocked.load(Ordering::Relaxed) {
            0 => None,
            since => Some(
                self.0
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since - 1)),
            ),
        }
    }

    fn wrote(&self, r: &Poll<std::io::Result<usize>>) {
        let shared = &self.0;
        match r {
            Poll::Ready(Ok(n)) => {
                shared.written.fetch_add(*n as u64, Ordering::Relaxed);
                if shared.blocked.load(Ordering::Relaxed) != 0 {
                    shared.blocked.store(0, Ordering::Relaxed);
                }
            }
            // Only a refused write reads the clock.
            Poll::Pending if shared.blocked.load(Ordering::Relaxed) == 0 => {
                let ms = shared.epoch.elapsed().as_millis() as u64;
                shared.blocked.store(ms + 1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Resolves once [`ConnHandle::close`] was called.
    fn closed(&self) -> Flag<'_> {
        Flag(&self.0, |c| &c.closed)
    }

    /// Resolves once the server drains.
    fn draining(&self) -> Flag<'_> {
        Flag(&self.0, |c| &c.draining)
    }

    fn drain(&self) {
        self.0.draining.store(true, Ordering::Release);
        self.0.close.wake();
    }
}

/// A flag of a connection as a future: registers the waker, then looks (so no change is
/// missed). Both flags share the one waker: the same task polls both.
struct Flag<'a>(
    &'a ConnShared,
    fn(&ConnShared) -> &std::sync::atomic::AtomicBool,
);

impl Future for Flag<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.close.register(cx.waker());
        if (self.1)(self.0).load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The connections being served, to tell each of them when the server drains.
#[derive(Default)]
struct Live {
    next: AtomicU64,
    conns: std::sync::Mutex<std::collections::HashMap<u64, ConnHandle>>,
}

impl Live {
    fn add(&self, handle: &ConnHandle) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, handle.clone());
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn drain_all(&self) {
        for h in self.lock().values() {
            h.drain();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, ConnHandle>> {
        // Each edit is one call: a panic cannot leave the map half-changed.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Connections per client IP address, for `max_connections_per_ip`. Touched once when a
/// connection is accepted and once when it ends, never per request; it holds an entry per
/// address with a connection open, so at most `max_connections` entries.
#[derive(Default)]
struct PerIp {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection's place in [`PerIp`]; given back when dropped.
struct IpSlot {
    ip: std::net::IpAddr,
    per_ip: Arc<PerIp>,
}

impl PerIp {
    /// A slot for a new connection from `ip`, or `None` when `ip` has `max` already.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot {
                ip,
                per_ip: self.clone(),
            });
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            per_ip: self.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if self.per_ip.max == 0 {
            return;
        }
        let mut open = self.per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The connection's I/O, counting bytes written into its [`ConnHandle`] (one relaxed add
    /// on a counter no other connection touches, per write), and failing a write the client
    /// has not taken any of for `write_timeout`: the timer is armed only when a write would
    /// block, so a connection that keeps up pays nothing for it.
    struct CountingIo<I> {
        #[pin]
        inner: I,
        handle: ConnHandle,
        write_timeout: Duration,
        stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

/// `r` of a write (or flush): pending past the write timeout turns into `TimedOut`.
fn write_deadline<T>(
    stalled: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
    r: Poll<std::io::Result<T>>,
) -> Poll<std::io::Result<T>> {
    if r.is_ready() {
        *stalled = None;
        return r;
    }
    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client took nothing of the response within the write timeout",
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl<I: hyper::rt::Read> hyper::rt::Read for CountingIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write> hyper::rt::Write for CountingIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        this.handle.wrote(&r);
        write_deadline(this.stalled, *this.write_timeout, cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        this.handle.wrote(&r);
        write_deadline(this.stalled, *this.write_timeout, cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let r = this.inner.poll_flush(cx);
        write_deadline(this.stalled, *this.write_timeout, cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Serves HTTP/1 (HTTPS with `tls`) on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `drain`. `make` is called once per connection with
/// the peer's address.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    make: M,
    limits: ServerLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()>
where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with_handles(
        listener,
        move |peer, _| make(peer),
        limits,
        tls,
        shutdown,
        drain,
    )
    .await
}

/// [`serve`], with `make` also given the new connection's [`ConnHandle`].
pub async fn serve_with_handles<M, S, B>(
    listener: TcpListener,
    make: M,
    limits: ServerLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()>
where
    M: Fn(SocketAddr, ConnHandle) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let live = Arc::new(Live::default());
    let per_ip = Arc::new(PerIp {
        max: limits.max_connections_per_ip,
        ..PerIp::default()
    });
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.0));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, usually: give connections a moment to end.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(ip_slot) = per_ip.admit(peer.ip()) else {
            debug!(%peer, "closed: this address has --max-connections-per-ip open already");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let handle = ConnHandle::default();
        let service = Tracked {
            inner: make(peer, handle.clone()),
            activity: activity.clone(),
            timeout: limits.request_timeout,
        };
        let builder = builder.clone();
        let id = live.add(&handle);
        let live = live.clone();
        match &acceptor {
            None => {
                tokio::spawn(async move {
                    let io = CountingIo {
                        inner: TokioIo::new(stream),
                        handle: handle.clone(),
                        write_timeout: limits.write_timeout,
                        stalled: None,
                    };
                    connection(&builder, io, service, activity, limits, handle).await;
                    live.remove(id);
                    drop(ip_slot);
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The handshake counts against the header timeout: a client that opens
                    // a socket and says nothing is dropped all the same.
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let io = CountingIo {
                                inner: TokioIo::new(tls),
                                handle: handle.clone(),
                                write_timeout: limits.write_timeout,
                                stalled: None,
                            };
                            connection(&builder, io, service, activity, limits, handle).await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                    live.remove(id);
                    drop(ip_slot);
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    info!("draining connections");
    live.drain_all();
    // Every connection holds a permit until it ends: all of them back means drained.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => info!("drained"),
        () = tokio::time::sleep(drain) => warn!("drain deadline passed; closing remaining connections"),
    }
    Ok(())
}

async fn connection<I, S, B>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    service: Tracked<S>,
    activity: Arc<Activity>,
    limits: ServerLimits,
    handle: ConnHandle,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closed = handle.closed();
    let mut draining = handle.draining();
    let mut closing = false;
    loop {
        let idle_at = activity
            .idle_deadline(limits.idle_timeout)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            _ = conn.as_mut() => return,
            // The service asked for the connection to end now: dropping it closes the socket.
            () = &mut closed => return,
            () = &mut draining, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(idle_at.into()), if !closing => {
                if activity.idle_deadline(limits.idle_timeout).is_some_and(|d| d <= Instant::now()) {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

mod args;
#[cfg(test)]
mod tests;

pub use args::ServerArgs;

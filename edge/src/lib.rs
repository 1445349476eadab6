//! Tollgate's edge: a stateless node that answers `GET /api/v1/entitlements/`, OFREP
//! evaluations and event streams from memory.
//!
//! * [`store`] — the lock-free in-memory state: one atomically swapped root, one writer.
//! * [`customers`] — customers in a few dozen bytes each: a compact base per snapshot, an
//!   overlay for deltas.
//! * [`shape`] — interned per-plan shapes; bodies rendered from shape plus numbers.
//! * [`template`] — text with holes: one body for every customer of a shape, spans within it.
//! * [`codec`] — the byte codecs under them: JSON string escaping, reset dates, varints.
//! * [`load`] — a snapshot chunk parsed in place into records, on a worker thread.
//! * [`cache`] — the warm-start file (`--cache-dir`).
//! * [`prepare`] — the default plans' bodies, ETags.
//! * [`auth`] — publishable/secret keys by hash, customer tokens by signature.
//! * [`state`] — what requests share: the store, the metrics, the bounds on waiting reads.
//! * [`reply`] — the answers routes share: envelopes, ETags, CORS, the GET's bodies.
//! * [`hub`] — who listens for which customer; signalled by the store, never awaited.
//! * [`http`] — routing and the connection's service; the entitlement path never awaits.
//! * [`ofrep`] — OpenFeature's Remote Evaluation Protocol: flags rendered from the records.
//! * [`stream`] — server-sent events: the entitlement stream and OFREP's change notices.
//! * [`wait`] — read-your-writes: reads that wait for a `minVersion`.
//! * [`ticket`] — the signed, per-customer credential in OFREP's event-stream URL.
//! * [`sync`] — the client of the control plane's snapshot/delta stream.
//! * [`metrics`] — Prometheus counters and gauges.
//!
//! The binary (`src/main.rs`) parses flags and calls [`serve`].

pub mod auth;
pub mod cache;
pub mod codec;
pub mod customers;
pub mod http;
pub mod hub;
pub mod load;
pub mod metrics;
pub mod modes;
pub mod ofrep;
pub mod prepare;
pub mod reply;
pub mod shape;
pub mod state;
pub mod store;
pub mod stream;
pub mod sync;
pub mod template;
pub mod ticket;
pub mod wait;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tollgate_shared::server::{ServerLimits, TlsConfig};

pub use crate::state::EdgeState;
pub use crate::store::Store;

/// Serves HTTP on an already-bound listener until `shutdown` resolves, then drains in-flight
/// connections for at most `drain`; default connection limits, no TLS.
pub async fn serve(
    listener: TcpListener,
    state: Arc<EdgeState>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    serve_with(
        listener,
        state,
        ServerLimits::default(),
        None,
        shutdown,
        drain,
    )
    .await
}

/// [`serve`] with connection limits and, given `tls`, HTTPS only. The accept loop is
/// `tollgate_shared::server`'s; each connection gets its own [`http::Connection`] (and so its
/// own key cache).
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<EdgeState>,
    limits: ServerLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let ticker = tokio::spawn(stream::run_ticker(state.store.clone()));
    let store = state.store.clone();
    // Event streams never end by themselves: end them when the accept loop stops, so the
    // drain waits for requests, not for them.
    let shutdown = async move {
        shutdown.await;
        store.hub.close_all(stream::Closed::Shutdown);
    };
    let served = tollgate_shared::server::serve_with_handles(
        listener,
        move |_peer, handle| {
            let connection = http::Connection::with_handle(state.clone(), handle);
            service_fn(move |req| connection.call(req))
        },
        limits,
        tls,
        shutdown,
        drain,
    )
    .await;
    ticker.abort();
    served
}

//! Tollgate's edge: a stateless node that answers `GET /api/v1/entitlements/` from memory.
//!
//! * [`store`] — the lock-free in-memory state: one atomically swapped root, one writer.
//! * [`customers`] — customers in a few dozen bytes each: a compact base per snapshot, an
//!   overlay for deltas.
//! * [`shape`] — interned per-plan shapes; bodies rendered from shape plus numbers.
//! * [`codec`] — the byte codecs under them: JSON string escaping, reset dates, varints.
//! * [`load`] — a snapshot chunk parsed in place into records, on a worker thread.
//! * [`cache`] — the warm-start file (`--cache-dir`).
//! * [`prepare`] — the default plans' bodies, ETags.
//! * [`auth`] — publishable/secret keys by hash, customer tokens by signature.
//! * [`http`] — routing and responses; the entitlement path never awaits.
//! * [`sync`] — the client of the control plane's snapshot/delta stream.
//! * [`metrics`] — Prometheus counters and gauges.
//!
//! The binary (`src/main.rs`) parses flags and calls [`serve`].

pub mod auth;
pub mod cache;
pub mod codec;
pub mod customers;
pub mod http;
pub mod load;
pub mod metrics;
pub mod modes;
pub mod prepare;
pub mod shape;
pub mod store;
pub mod sync;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tollgate_shared::server::{ServerLimits, TlsConfig};

pub use crate::http::EdgeState;
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
    tollgate_shared::server::serve(
        listener,
        move |_peer| {
            let connection = http::Connection::new(state.clone());
            service_fn(move |req| connection.call(&req))
        },
        limits,
        tls,
        shutdown,
        drain,
    )
    .await
}

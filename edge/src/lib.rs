//! Tollgate's edge: a stateless node that answers `GET /api/v1/entitlements/` from memory.
//!
//! * [`store`] — the lock-free in-memory state: one atomically swapped root, one writer.
//! * [`customers`] — customers in a few dozen bytes each: a compact base per snapshot, an
//!   overlay for deltas.
//! * [`shape`] — interned per-plan shapes; bodies rendered from shape plus numbers.
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
pub mod customers;
pub mod http;
pub mod load;
pub mod metrics;
pub mod prepare;
pub mod shape;
pub mod store;
pub mod sync;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use crate::http::EdgeState;
pub use crate::store::Store;

/// Serves HTTP on an already-bound listener until `shutdown` resolves, then drains in-flight
/// connections for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<EdgeState>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    builder.header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = http::Connection::new(state.clone());
                let conn = builder.serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| connection.call(&req)),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!("draining connections");
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(drain) => warn!("drain deadline passed; closing remaining connections"),
    }
    Ok(())
}

//! The edge's HTTP surface. The entitlement routes are the hot path: authenticate (by the
//! connection's cached key, else by hash lookup), find the customer's shape and numbers, render
//! the body from them straight into the response buffer and hash it for the ETag. No locks, no
//! database, no serializer, no `Arc` cloned per request, and no await: those requests are
//! answered before their future is first polled. `BENCHMARKS.md` has the measurements.
//!
//! What must wait goes through one boxed future instead ([`Later`]): reading an OFREP request's
//! body ([`crate::ofrep`]), waiting for a `minVersion` ([`crate::wait`]), and opening an event
//! stream ([`crate::stream`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, IF_NONE_MATCH};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tollgate_shared::server::ConnHandle;
use tollgate_shared::{ErrorKind, Mode};

use crate::auth::{Caller, KeyCache};
use crate::reply::{
    JSON, Step, auth_error, entitlements_body, min_version, preflight_for, text, too_many,
    version_headers,
};
use crate::state::{EdgeState, Pending, Waited};
use crate::store::Source;
use crate::stream::EdgeBody;

pub use crate::reply::{Body, MIN_VERSION, Query, STALE, VERSION, error, parse_query};
pub use crate::state::ReadLimits;

const ENTITLEMENTS: &str = "/api/v1/entitlements";
const OFREP: &str = "/ofrep/v1";
/// The stream's path under [`ENTITLEMENTS`]; a feature named `stream` is read with
/// `?feature_id=stream` instead.
const STREAM: &str = "/stream";

/// One connection's view of the edge: the shared state, plus what this connection remembers
/// between its requests (the last accepted key, see [`KeyCache`]) and its handle (streams
/// close their connection through it).
pub struct Connection {
    shared: Arc<Shared>,
    keys: KeyCache,
}

/// What a waiting read of this connection holds: one `Arc` clone per read, of a count no
/// other connection (so, most of the time, no other core) touches.
struct Shared {
    state: Arc<EdgeState>,
    conn: ConnHandle,
}

/// What the edge answers a request with: ready at once (every plain read), or a future.
pub enum EdgeFuture {
    Ready(Option<Response<EdgeBody>>),
    Waiting(Pin<Box<dyn Future<Output = Response<EdgeBody>> + Send>>),
}

impl Future for EdgeFuture {
    type Output = Result<Response<EdgeBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            EdgeFuture::Ready(r) => Poll::Ready(Ok(r.take().unwrap_or_else(|| {
                error(ErrorKind::Internal, "response polled twice").map(Either::Left)
            }))),
            EdgeFuture::Waiting(f) => f.as_mut().poll(cx).map(Ok),
        }
    }
}

impl Connection {
    pub fn new(state: Arc<EdgeState>) -> Connection {
        Connection::with_handle(state, ConnHandle::default())
    }

    pub fn with_handle(state: Arc<EdgeState>, conn: ConnHandle) -> Connection {
        Connection {
            shared: Arc::new(Shared { state, conn }),
            keys: KeyCache::default(),
        }
    }

    /// Answers one request. Plain reads are complete before the returned future is first
    /// polled, so that future borrows nothing and serving them clones no `Arc`. Reads that
    /// wait hold a clone of this connection's own `Arc` ([`Shared`]).
    pub fn call(&self, req: Request<Incoming>) -> EdgeFuture {
        match route_inner(&self.shared.state, &req, &self.keys, None) {
            Routed::Now(resp) => EdgeFuture::Ready(Some(resp.map(Either::Left))),
            Routed::Later(later) => later.start(&self.shared, req),
        }
    }

    /// [`Connection::call`] for the reads answered at once, for any request type (benches).
    pub fn respond<B>(&self, req: &Request<B>) -> Response<Body> {
        route_with(&self.shared.state, req, &self.keys)
    }
}

/// [`route_with`] for a request without a connection behind it (nothing cached).
pub fn route<B>(state: &EdgeState, req: &Request<B>) -> Response<Body> {
    route_with(state, req, &KeyCache::default())
}

/// The reads answered at once. Synchronous on purpose: nothing on the request path awaits.
/// Routes that must wait answer 500 here: they are served by [`Connection::call`].
pub fn route_with<B>(state: &EdgeState, req: &Request<B>, keys: &KeyCache) -> Response<Body> {
    match route_inner(state, req, keys, None) {
        Routed::Now(resp) => resp,
        Routed::Later(_) => error(
            ErrorKind::Internal,
            "this route is served by Connection::call",
        ),
    }
}

/// A request's answer: now, or after it waited for something.
pub(crate) enum Routed {
    Now(Response<Body>),
    Later(Later),
}

/// What a request still has to wait for.
pub(crate) enum Later {
    /// A read whose `minVersion` the edge has not applied yet: wait, then route it again.
    Version { min: u64 },
    /// An OFREP evaluation: its body to read, maybe a version to wait for.
    Ofrep(crate::ofrep::Job),
    /// An event stream to open.
    Stream(crate::stream::Open),
}

impl Later {
    fn start(self, conn: &Arc<Shared>, req: Request<Incoming>) -> EdgeFuture {
        let state = &conn.state;
        // Waiting for a version takes one of the `max_pending` slots up front; an OFREP
        // evaluation takes one only if it must wait (see `ofrep::Job::run`).
        let pending = match &self {
            Later::Version { .. } => Some(Pending::acquire(state)),
            Later::Stream(open) if open.must_wait(state) => Some(Pending::acquire(state)),
            _ => None,
        };
        let pending = match pending {
            Some(None) => {
                crate::metrics::request(429);
                let resp = match &self {
                    Later::Stream(open) => open.too_many(),
                    _ => too_many(),
                };
                return EdgeFuture::Ready(Some(resp.map(Either::Left)));
            }
            Some(Some(p)) => Some(p),
            None => None,
        };
        let conn = conn.clone();
        EdgeFuture::Waiting(Box::pin(async move {
            let state = &conn.state;
            match self {
                Later::Version { min } => {
                    let waited = crate::wait::version(state, min).await;
                    let resp = match route_inner(state, &req, &KeyCache::default(), Some(waited)) {
                        Routed::Now(resp) => resp,
                        Routed::Later(_) => error(ErrorKind::Internal, "read waited twice"),
                    };
                    drop(pending);
                    resp.map(Either::Left)
                }
                Later::Ofrep(job) => job.run(state, req).await.map(Either::Left),
                Later::Stream(open) => open.run(state.clone(), conn.conn.clone(), pending).await,
            }
        }))
    }
}

fn route_inner<B>(
    state: &EdgeState,
    req: &Request<B>,
    keys: &KeyCache,
    waited: Option<Waited>,
) -> Routed {
    let path = req.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    if let Some(rest) = path.strip_prefix(ENTITLEMENTS) {
        if rest == STREAM {
            return match *req.method() {
                Method::GET => match crate::stream::prepare_entitlements(state, req) {
                    Step::Then(open) => Routed::Later(Later::Stream(open)),
                    Step::Answer(resp) => Routed::Now(resp),
                },
                Method::OPTIONS => Routed::Now(preflight()),
                _ => Routed::Now(error(
                    ErrorKind::MethodNotAllowed,
                    "the entitlement stream is opened with GET",
                )),
            };
        }
        let feature = match rest.strip_prefix('/') {
            None if rest.is_empty() => None,
            Some(f) if !f.is_empty() && !f.contains('/') => Some(f),
            _ => return Routed::Now(error(ErrorKind::NotFound, "no such route")),
        };
        return match *req.method() {
            Method::GET | Method::HEAD => {
                let routed = entitlements(state, req, feature, keys, waited);
                if let Routed::Now(resp) = &routed {
                    count(resp.status());
                }
                routed
            }
            Method::OPTIONS => Routed::Now(preflight()),
            _ => Routed::Now(error(
                ErrorKind::MethodNotAllowed,
                "entitlements are read with GET",
            )),
        };
    }
    if let Some(rest) = path.strip_prefix(OFREP) {
        let routed = if rest == "/events" {
            crate::stream::prepare_ofrep(state, req).map(Later::Stream)
        } else {
            crate::ofrep::route(state, req, rest, keys).map(Later::Ofrep)
        };
        return match routed {
            Step::Then(later) => Routed::Later(later),
            Step::Answer(resp) => Routed::Now(resp),
        };
    }
    Routed::Now(match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(state),
        "/metrics" => match &state.metrics {
            Some(handle) => {
                crate::metrics::refresh(&state.store);
                metrics::gauge!("tollgate_edge_reads_waiting").set(state.pending() as f64);
                text(StatusCode::OK, handle.render())
            }
            None => text(StatusCode::NOT_FOUND, "metrics are not enabled\n"),
        },
        _ => error(ErrorKind::NotFound, "no such route"),
    })
}

fn count(status: StatusCode) {
    crate::metrics::request(status.as_u16());
}

fn entitlements<B>(
    state: &EdgeState,
    req: &Request<B>,
    path_feature: Option<&str>,
    keys: &KeyCache,
    waited: Option<Waited>,
) -> Routed {
    let root = state.store.root();
    if !state.store.status.has_snapshot.load(Ordering::Acquire) {
        return Routed::Now(error(
            ErrorKind::Unavailable,
            "edge is waiting for its first snapshot from the control plane",
        ));
    }
    let caller = match keys.authenticate(
        &root.auth,
        req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()),
    ) {
        Ok(c) => c,
        Err(e) => return Routed::Now(auth_error(&e)),
    };
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (mode, customer_id): (Mode, &str) = match (&caller, query.customer_id.as_deref()) {
        (Caller::Key(mode), Some(id)) if !id.is_empty() => (*mode, id),
        (Caller::Key(_), _) => {
            return Routed::Now(error(
                ErrorKind::BadRequest,
                "customerId: required query parameter",
            ));
        }
        (Caller::Customer { mode, customer_id }, asked) => {
            if asked.is_some_and(|a| a != customer_id) {
                return Routed::Now(error(
                    ErrorKind::Forbidden,
                    "customer token does not grant access to this customer",
                ));
            }
            (*mode, customer_id.as_str())
        }
    };
    // Read-your-writes: a header lookup on every read; the rest only for reads that ask.
    let min = match min_version(req.headers(), query.min_version.as_deref()) {
        Ok(m) => m,
        Err(e) => return Routed::Now(error(ErrorKind::BadRequest, e)),
    };
    if let Some(min) = min
        && waited.is_none()
        && min > root.version
    {
        return Routed::Later(Later::Version { min });
    }
    let feature = path_feature.or(query.feature_id.as_deref());
    let inm = req.headers().get(IF_NONE_MATCH);

    let mut resp = entitlements_body(
        &root,
        mode,
        customer_id,
        feature,
        path_feature.is_some(),
        inm,
    );
    if let Some(min) = min {
        version_headers(&mut resp, root.version, min);
    }
    Routed::Now(resp)
}

fn preflight() -> Response<Body> {
    preflight_for(HeaderValue::from_static("GET, HEAD, OPTIONS"))
}

fn readyz(state: &EdgeState) -> Response<Body> {
    let status = &state.store.status;
    let has_snapshot = status.has_snapshot.load(Ordering::Acquire);
    let connected = status.connected.load(Ordering::Relaxed);
    let staleness = status.staleness_secs();
    let fresh_enough = connected || staleness.is_some_and(|s| s <= state.max_staleness_secs);
    let ready = has_snapshot && fresh_enough;
    let root = state.store.root();
    // `source` says where the data served came from: "cache" until a control plane has
    // spoken after a warm start (with `stalenessSeconds` the age of the file), then "stream".
    let source = match status.source() {
        Source::Nothing => "none",
        Source::Cache => "cache",
        Source::Stream => "stream",
    };
    let body = serde_json::json!({
        "ready": ready,
        "hasSnapshot": has_snapshot,
        "connected": connected,
        "stale": !connected,
        "stalenessSeconds": staleness,
        "version": root.version,
        "customers": root.customer_count(),
        "source": source,
        "cacheAgeSeconds": status.cache_age_secs(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}

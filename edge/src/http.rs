//! The edge's HTTP surface. The entitlement routes are the hot path: authenticate (by the
//! connection's cached key, else by hash lookup), find the customer's shape and numbers, render
//! the body from them straight into the response buffer and hash it for the ETag. No locks, no
//! database, no serializer, no `Arc` cloned per request, and no await: those requests are
//! answered before their future is first polled. `BENCHMARKS.md` has the measurements.
//!
//! What must wait goes through one boxed future instead ([`Later`]): reading an OFREP request's
//! body ([`crate::ofrep`]), waiting for a `minVersion` ([`crate::wait`]), and opening an event
//! stream ([`crate::stream`]).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use tollgate_shared::server::ConnHandle;
use tollgate_shared::{ErrorEnvelope, ErrorKind, Mode};

use crate::auth::{AuthError, Caller, KeyCache};
use crate::codec::put_json_string;
use crate::customers::View;
use crate::store::{Root, Source, Store, slot};
use crate::stream::SseBody;

/// A response answered at once.
pub type Body = Full<Bytes>;
/// Any response the edge gives: a whole body, or an event stream.
pub type EdgeBody = Either<Full<Bytes>, SseBody>;

/// Bounds on the reads that wait (docs/operations.md, "Edges").
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Longest a read waits for its `minVersion` before answering stale.
    pub min_version_wait: Duration,
    /// Reads waiting for a `minVersion` at once (GET, OFREP, streams); more get 429.
    pub max_pending: usize,
    /// Largest OFREP request body.
    pub ofrep_body_limit: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            min_version_wait: Duration::from_millis(1_000),
            max_pending: 1_024,
            ofrep_body_limit: 16 * 1024,
        }
    }
}

pub struct EdgeState {
    pub store: Arc<Store>,
    pub metrics: Option<PrometheusHandle>,
    /// Past this many seconds without hearing from the control plane, `/readyz` says 503.
    pub max_staleness_secs: f64,
    pub reads: ReadLimits,
    /// Reads waiting now (see [`ReadLimits::max_pending`]).
    pending: AtomicUsize,
}

impl EdgeState {
    /// Default limits, no metrics.
    pub fn new(store: Arc<Store>) -> EdgeState {
        EdgeState {
            store,
            metrics: None,
            max_staleness_secs: 300.0,
            reads: ReadLimits::default(),
            pending: AtomicUsize::new(0),
        }
    }

    /// Reads waiting now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// A slot among [`ReadLimits::max_pending`], held while a read waits.
pub struct Pending(Arc<EdgeState>);

impl Pending {
    pub(crate) fn acquire(state: &Arc<EdgeState>) -> Option<Pending> {
        let max = state.reads.max_pending;
        state
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Pending(state.clone()))
    }

    pub fn state(&self) -> &Arc<EdgeState> {
        &self.0
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
const ENTITLEMENTS: &str = "/api/v1/entitlements";
const OFREP: &str = "/ofrep/v1";
/// The stream's path under [`ENTITLEMENTS`]; a feature named `stream` is read with
/// `?feature_id=stream` instead.
const STREAM: &str = "/stream";

/// The request header that asks for read-your-writes (the query parameter is `minVersion`).
pub const MIN_VERSION: HeaderName = HeaderName::from_static("tollgate-min-version");
/// On answers to reads that asked for a `minVersion`: the version the edge answered at.
pub const VERSION: HeaderName = HeaderName::from_static("tollgate-version");
/// On those answers when the edge had not reached the `minVersion` within the wait bound.
pub const STALE: HeaderName = HeaderName::from_static("tollgate-stale");
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const EXPOSE_VERSION: HeaderValue =
    HeaderValue::from_static("ETag, Tollgate-Version, Tollgate-Stale");

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

/// 429 for the reads that wait, when too many already do.
pub(crate) fn too_many() -> Response<Body> {
    let mut resp = error(
        ErrorKind::TooManyRequests,
        "too many reads are waiting on this edge; retry in a second",
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The outcome of waiting for a `minVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// The version asked for.
    pub min: u64,
    /// Whether the edge had applied it when the read was answered.
    pub reached: bool,
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
                Method::GET => crate::stream::prepare_entitlements(state, req),
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
        return crate::ofrep::route(state, req, rest, keys);
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

/// The query parameters the entitlement routes read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pub customer_id: Option<Cow<'a, str>>,
    pub feature_id: Option<Cow<'a, str>>,
    pub min_version: Option<Cow<'a, str>>,
}

/// Reads `customerId`/`customer_id` and `featureId`/`feature_id` (the last one wins), decoded as
/// `application/x-www-form-urlencoded`. A pair with nothing to decode — every id a real client
/// sends — is borrowed as it is; only pairs with `%` or `+` go through `form_urlencoded`, which
/// gives exactly what it would have given for the whole query.
pub fn parse_query(q: &str) -> Query<'_> {
    let mut out = Query::default();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = if pair.bytes().any(|b| b == b'%' || b == b'+') {
            match form_urlencoded::parse(pair.as_bytes()).next() {
                Some(kv) => kv,
                None => continue,
            }
        } else {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (Cow::Borrowed(k), Cow::Borrowed(v))
        };
        match &*k {
            "customerId" | "customer_id" => out.customer_id = Some(v),
            "featureId" | "feature_id" => out.feature_id = Some(v),
            "minVersion" | "min_version" => out.min_version = Some(v),
            _ => {}
        }
    }
    out
}

/// A read's `minVersion`: the `Tollgate-Min-Version` header, else the query parameter.
pub(crate) fn min_version(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<u64>, &'static str> {
    let text = match headers.get(MIN_VERSION) {
        Some(h) => Some(h.to_str().map_err(|_| MIN_VERSION_INVALID)?),
        None => query,
    };
    match text {
        None => Ok(None),
        Some(t) => t.trim().parse().map(Some).map_err(|_| MIN_VERSION_INVALID),
    }
}

pub(crate) const MIN_VERSION_INVALID: &str =
    "minVersion (or the Tollgate-Min-Version header): must be a non-negative integer version";

/// Adds the read-your-writes headers to an answer that asked for a `minVersion`.
pub(crate) fn version_headers(resp: &mut Response<Body>, version: u64, min: u64) {
    let h = resp.headers_mut();
    h.insert(VERSION, HeaderValue::from(version));
    if version < min {
        h.insert(STALE, HeaderValue::from_static("true"));
    }
    h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_VERSION);
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

/// A GET's answer for one customer: the list, one feature's object (`by_path`), or the list
/// narrowed to one feature.
fn entitlements_body(
    root: &Root,
    mode: Mode,
    customer_id: &str,
    feature: Option<&str>,
    by_path: bool,
    inm: Option<&HeaderValue>,
) -> Response<Body> {
    let rendered = root.customers.with(mode, customer_id, |view| {
        view.map(|v| render_known(customer_id, v, feature, by_path))
    });
    match rendered {
        Some(Some(body)) => return ok_fresh_etag(body, inm),
        Some(None) => return unknown_feature(feature.unwrap_or_default()),
        None => {}
    }
    let defaults = &root.defaults[slot(mode)];
    match feature {
        None => ok_fresh_etag(defaults.wrap_for(customer_id, None), inm),
        Some(f) => match defaults.feature(f) {
            Some(obj) if by_path => ok_fresh_etag(obj, inm),
            Some(obj) => ok_fresh_etag(defaults.wrap_for(customer_id, Some(&obj)), inm),
            None => unknown_feature(f),
        },
    }
}

/// The customer's whole list body, `{"customerId":…,"entitlements":[…]}` (event streams).
pub(crate) fn list_body(root: &Root, mode: Mode, customer_id: &str) -> Bytes {
    root.customers
        .with(mode, customer_id, |view| {
            view.and_then(|v| render_known(customer_id, v, None, false))
        })
        .unwrap_or_else(|| root.defaults[slot(mode)].wrap_for(customer_id, None))
}

/// 401 or 403 for a credential the edge refuses.
pub(crate) fn auth_error(e: &AuthError) -> Response<Body> {
    match e {
        AuthError::WrongKind => error(ErrorKind::Forbidden, &e.to_string()),
        _ => error(ErrorKind::Unauthorized, &e.to_string()),
    }
}

/// A known customer's body, rendered from its shape and numbers straight into the response
/// buffer: the list, one feature's object (`by_path`), or the list narrowed to that feature.
/// `None` when the customer has no such feature.
fn render_known(
    customer_id: &str,
    v: View<'_>,
    feature: Option<&str>,
    by_path: bool,
) -> Option<Bytes> {
    let mut buf = BytesMut::with_capacity(v.shape.body_len_hint() + customer_id.len() + 40);
    match feature {
        None => {
            list_prefix(&mut buf, customer_id);
            v.shape.render_array(v.values, &mut buf);
            buf.put_u8(b'}');
        }
        Some(f) => {
            let index = v.shape.feature_index(f)?;
            if by_path {
                v.shape.render_feature(index, v.values, &mut buf);
            } else {
                list_prefix(&mut buf, customer_id);
                buf.put_u8(b'[');
                v.shape.render_feature(index, v.values, &mut buf);
                buf.put_slice(b"]}");
            }
        }
    }
    Some(buf.freeze())
}

fn list_prefix(buf: &mut BytesMut, customer_id: &str) {
    buf.put_slice(b"{\"customerId\":");
    put_json_string(buf, customer_id);
    buf.put_slice(b",\"entitlements\":");
}

fn unknown_feature(feature: &str) -> Response<Body> {
    error(
        ErrorKind::NotFound,
        &format!("featureId: no feature '{feature}' in this catalog"),
    )
}

pub(crate) fn ok_fresh_etag(body: Bytes, inm: Option<&HeaderValue>) -> Response<Body> {
    let etag = crate::prepare::etag_for(&body);
    ok(body, &etag, inm)
}

fn ok(body: Bytes, etag: &HeaderValue, inm: Option<&HeaderValue>) -> Response<Body> {
    let not_modified = inm.is_some_and(|v| etag_matches(v.as_bytes(), etag.as_bytes()));
    let mut resp = Response::new(if not_modified {
        Full::new(Bytes::new())
    } else {
        Full::new(body)
    });
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, JSON);
    h.insert(ETAG, etag.clone());
    h.insert(CACHE_CONTROL, NO_CACHE);
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
    resp
}

/// `If-None-Match` may list several tags, or `*`, and may mark them weak (`W/`).
fn etag_matches(header: &[u8], etag: &[u8]) -> bool {
    header == etag
        || header.split(|b| *b == b',').any(|candidate| {
            let c = candidate.trim_ascii();
            let c = c.strip_prefix(b"W/").unwrap_or(c);
            c == b"*" || c == etag
        })
}

fn preflight() -> Response<Body> {
    preflight_for(HeaderValue::from_static("GET, HEAD, OPTIONS"))
}

/// A CORS preflight answer allowing `methods` and every header the edge reads.
pub(crate) fn preflight_for(methods: HeaderValue) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Authorization, Content-Type, If-None-Match, Last-Event-ID, Tollgate-Min-Version, \
             X-API-Key",
        ),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
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

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The one place edge errors become responses.
pub fn error(kind: ErrorKind, message: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(
        ErrorEnvelope::new(kind, message).to_json(),
    )));
    *resp.status_mut() =
        StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, JSON);
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(etag_matches(b"\"abc\"", b"\"abc\""));
        assert!(etag_matches(b"\"x\", W/\"abc\"", b"\"abc\""));
        assert!(etag_matches(b"*", b"\"abc\""));
        assert!(!etag_matches(b"\"abd\"", b"\"abc\""));
    }

    /// The fast path must read every query exactly as decoding all of it would.
    #[test]
    fn query_reads_like_form_urlencoded() {
        fn reference(q: &str) -> Query<'_> {
            let mut out = Query::default();
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                match &*k {
                    "customerId" | "customer_id" => out.customer_id = Some(v),
                    "featureId" | "feature_id" => out.feature_id = Some(v),
                    "minVersion" | "min_version" => out.min_version = Some(v),
                    _ => {}
                }
            }
            out
        }
        for q in [
            "",
            "customerId=cus_1",
            "customer_id=cus_1&feature_id=sso",
            "customerId=a&customerId=b",
            "customerId=a+b%20c&featureId=x%2By",
            "customer%49d=x",
            "customerId",
            "customerId=&featureId=",
            "&&customerId=a=b&&",
            "customerId=%FF%FE",
            "customerId=%zz",
            "x=1&customerId=c%26d&y",
            "customerId=caf%C3%A9",
            "customerId=a&minVersion=12&min_version=x%20",
        ] {
            assert_eq!(parse_query(q), reference(q), "{q}");
        }
    }
}

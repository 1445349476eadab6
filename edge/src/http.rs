//! The edge's HTTP surface. The entitlement routes are the hot path: authenticate (by the
//! connection's cached key, else by hash lookup), find the customer's shape and numbers, render
//! the body from them straight into the response buffer and hash it for the ETag. No locks, no
//! database, no serializer, no `Arc` cloned per request. `BENCHMARKS.md` has the measurements.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use tollgate_shared::{ErrorEnvelope, ErrorKind, Mode};

use crate::auth::{AuthError, Caller, KeyCache};
use crate::codec::put_json_string;
use crate::customers::View;
use crate::store::{Source, Store, slot};

pub type Body = Full<Bytes>;

pub struct EdgeState {
    pub store: Arc<Store>,
    pub metrics: Option<PrometheusHandle>,
    /// Past this many seconds without hearing from the control plane, `/readyz` says 503.
    pub max_staleness_secs: f64,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
const ENTITLEMENTS: &str = "/api/v1/entitlements";

/// One connection's view of the edge: the shared state, plus what this connection remembers
/// between its requests (the last accepted key, see [`KeyCache`]).
pub struct Connection {
    state: Arc<EdgeState>,
    keys: KeyCache,
}

impl Connection {
    pub fn new(state: Arc<EdgeState>) -> Connection {
        Connection {
            state,
            keys: KeyCache::default(),
        }
    }

    /// Answers one request. The response is complete before the returned future is first
    /// polled, so the future borrows nothing and serving a request clones no `Arc`.
    pub fn call<B>(
        &self,
        req: &Request<B>,
    ) -> std::future::Ready<Result<Response<Body>, Infallible>> {
        std::future::ready(Ok(route_with(&self.state, req, &self.keys)))
    }
}

/// [`route_with`] for a request without a connection behind it (nothing cached).
pub fn route<B>(state: &EdgeState, req: &Request<B>) -> Response<Body> {
    route_with(state, req, &KeyCache::default())
}

/// Synchronous on purpose: nothing on the request path awaits.
pub fn route_with<B>(state: &EdgeState, req: &Request<B>, keys: &KeyCache) -> Response<Body> {
    let path = req.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    if let Some(rest) = path.strip_prefix(ENTITLEMENTS) {
        let feature = match rest.strip_prefix('/') {
            None if rest.is_empty() => None,
            Some(f) if !f.is_empty() && !f.contains('/') => Some(f),
            _ => return error(ErrorKind::NotFound, "no such route"),
        };
        return match *req.method() {
            Method::GET | Method::HEAD => {
                let resp = entitlements(state, req, feature, keys);
                count(resp.status());
                resp
            }
            Method::OPTIONS => preflight(),
            _ => error(
                ErrorKind::MethodNotAllowed,
                "entitlements are read with GET",
            ),
        };
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(state),
        "/metrics" => match &state.metrics {
            Some(handle) => {
                crate::metrics::refresh(&state.store);
                text(StatusCode::OK, handle.render())
            }
            None => text(StatusCode::NOT_FOUND, "metrics are not enabled\n"),
        },
        _ => error(ErrorKind::NotFound, "no such route"),
    }
}

fn count(status: StatusCode) {
    crate::metrics::request(status.as_u16());
}

/// The query parameters the entitlement routes read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pub customer_id: Option<Cow<'a, str>>,
    pub feature_id: Option<Cow<'a, str>>,
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
            _ => {}
        }
    }
    out
}

fn entitlements<B>(
    state: &EdgeState,
    req: &Request<B>,
    path_feature: Option<&str>,
    keys: &KeyCache,
) -> Response<Body> {
    let root = state.store.root();
    if !state.store.status.has_snapshot.load(Ordering::Acquire) {
        return error(
            ErrorKind::Unavailable,
            "edge is waiting for its first snapshot from the control plane",
        );
    }
    let caller = match keys.authenticate(
        &root.auth,
        req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()),
    ) {
        Ok(c) => c,
        Err(e @ AuthError::WrongKind) => return error(ErrorKind::Forbidden, &e.to_string()),
        Err(e) => return error(ErrorKind::Unauthorized, &e.to_string()),
    };
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (mode, customer_id): (Mode, &str) = match (&caller, query.customer_id.as_deref()) {
        (Caller::Key(mode), Some(id)) if !id.is_empty() => (*mode, id),
        (Caller::Key(_), _) => {
            return error(
                ErrorKind::BadRequest,
                "customerId: required query parameter",
            );
        }
        (Caller::Customer { mode, customer_id }, asked) => {
            if asked.is_some_and(|a| a != customer_id) {
                return error(
                    ErrorKind::Forbidden,
                    "customer token does not grant access to this customer",
                );
            }
            (*mode, customer_id.as_str())
        }
    };
    let feature = path_feature.or(query.feature_id.as_deref());
    let inm = req.headers().get(IF_NONE_MATCH);

    let rendered = root.customers.with(mode, customer_id, |view| {
        view.map(|v| render_known(customer_id, v, feature, path_feature.is_some()))
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
            Some(obj) if path_feature.is_some() => ok_fresh_etag(obj, inm),
            Some(obj) => ok_fresh_etag(defaults.wrap_for(customer_id, Some(&obj)), inm),
            None => unknown_feature(f),
        },
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

fn ok_fresh_etag(body: Bytes, inm: Option<&HeaderValue>) -> Response<Body> {
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
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-None-Match"),
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
        ] {
            assert_eq!(parse_query(q), reference(q), "{q}");
        }
    }
}

//! The edge's HTTP surface. The entitlement routes are the hot path: authenticate by hash
//! lookup, find the customer's prepared body, hand out a reference-counted slice of it.
//! No locks, no database, no per-request serialization for known customers.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use tollgate_shared::{ErrorEnvelope, ErrorKind, Mode};

use crate::auth::{AuthError, Caller, authenticate};
use crate::store::{Store, slot};

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

pub async fn handle<B>(
    state: Arc<EdgeState>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(route(&state, &req))
}

/// Synchronous on purpose: nothing on the request path awaits.
pub fn route<B>(state: &EdgeState, req: &Request<B>) -> Response<Body> {
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
                let resp = entitlements(state, req, feature);
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

struct Query<'a> {
    customer_id: Option<Cow<'a, str>>,
    feature_id: Option<Cow<'a, str>>,
}

fn parse_query(q: &str) -> Query<'_> {
    let mut out = Query {
        customer_id: None,
        feature_id: None,
    };
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
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
) -> Response<Body> {
    let root = state.store.root();
    if !state.store.status.has_snapshot.load(Ordering::Acquire) {
        return error(
            ErrorKind::Unavailable,
            "edge is waiting for its first snapshot from the control plane",
        );
    }
    let caller = match authenticate(
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

    let customers = root.customers[slot(mode)].pin();
    if let Some(prepared) = customers.get(customer_id) {
        return match (feature, path_feature.is_some()) {
            (None, _) => ok(prepared.body().clone(), prepared.etag(), inm),
            (Some(f), true) => match prepared.feature(f) {
                Some(obj) => ok_fresh_etag(obj, inm),
                None => unknown_feature(f),
            },
            (Some(f), false) => match prepared.feature(f) {
                Some(obj) => ok_fresh_etag(narrow(customer_id, &obj), inm),
                None => unknown_feature(f),
            },
        };
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

fn narrow(customer_id: &str, obj: &Bytes) -> Bytes {
    crate::prepare::list_body(customer_id, obj, true)
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
    header.split(|b| *b == b',').any(|candidate| {
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
    let body = serde_json::json!({
        "ready": ready,
        "hasSnapshot": has_snapshot,
        "connected": connected,
        "stale": !connected,
        "stalenessSeconds": staleness,
        "version": state.store.version(),
        "customers": state.store.root().customer_count(),
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
}

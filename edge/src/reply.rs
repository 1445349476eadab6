//! Answers every route shares: the error envelope, JSON bodies with their `ETag` and
//! `If-None-Match`, CORS preflights, the query and `minVersion` reading, the read-your-writes
//! headers, and the GET's entitlement bodies rendered from shape plus numbers (the hot path:
//! straight into the response buffer, no serializer).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_TYPE, ETAG,
    RETRY_AFTER,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tollgate_shared::{ErrorEnvelope, ErrorKind, Mode};

use crate::auth::AuthError;
use crate::codec::put_json_string;
use crate::customers::View;
use crate::store::{Root, slot};

/// A response answered at once.
pub type Body = Full<Bytes>;

/// A route's outcome before anything is awaited: the answer now, or the work still to do.
pub(crate) enum Step<T> {
    Answer(Response<Body>),
    Then(T),
}

impl<T> Step<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Answer(r) => Step::Answer(r),
            Step::Then(t) => Step::Then(f(t)),
        }
    }
}

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
pub(crate) const NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");

/// The request header that asks for read-your-writes (the query parameter is `minVersion`).
pub const MIN_VERSION: HeaderName = HeaderName::from_static("tollgate-min-version");
/// On answers to reads that asked for a `minVersion`: the version the edge answered at.
pub const VERSION: HeaderName = HeaderName::from_static("tollgate-version");
/// On those answers when the edge had not reached the `minVersion` within the wait bound.
pub const STALE: HeaderName = HeaderName::from_static("tollgate-stale");
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub(crate) const EXPOSE_VERSION: HeaderValue =
    HeaderValue::from_static("ETag, Tollgate-Version, Tollgate-Stale");

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
#[inline]
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
#[inline]
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

/// A GET's answer for one customer: the list, one feature's object (`by_path`), or the list
/// narrowed to one feature.
#[inline]
pub(crate) fn entitlements_body(
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
#[inline]
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

#[inline]
pub(crate) fn ok_fresh_etag(body: Bytes, inm: Option<&HeaderValue>) -> Response<Body> {
    let etag = crate::prepare::etag_for(&body);
    ok(body, &etag, inm)
}

#[inline]
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
#[inline]
fn etag_matches(header: &[u8], etag: &[u8]) -> bool {
    header == etag
        || header.split(|b| *b == b',').any(|candidate| {
            let c = candidate.trim_ascii();
            let c = c.strip_prefix(b"W/").unwrap_or(c);
            c == b"*" || c == etag
        })
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

pub(crate) fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
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

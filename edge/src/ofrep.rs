//! OpenFeature's Remote Evaluation Protocol at the edge (OFREP 0.3, `open-feature/protocol`'s
//! `service/openapi.yaml`; docs/entitlements-clients.md has the mapping):
//!
//! * `POST /ofrep/v1/evaluate/flags/{key}` — one flag, for server-side (dynamic-context)
//!   providers;
//! * `POST /ofrep/v1/evaluate/flags` — every flag of the customer, for client-side providers,
//!   with `ETag` / `If-None-Match` (304) and ADR-0008 `eventStreams`: an SSE URL on this edge
//!   (`/ofrep/v1/events?ticket=…`, [`crate::ticket`]) that sends `refetchEvaluation` when the
//!   customer's entitlements change.
//!
//! `context.targetingKey` is the customer id (a customer token names its customer itself).
//! Flags are rendered from the customer's packed record through its shape's OFREP template
//! ([`crate::shape`]): no entitlement is materialized, no serializer runs. Errors use the
//! protocol's shape: `{"key","errorCode","errorDetails"}` for one flag,
//! `{"errorCode","errorDetails"}` for the bulk call.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
    IF_NONE_MATCH, RETRY_AFTER,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tollgate_shared::Mode;

use crate::auth::{self, AuthError, Caller, KeyCache};
use crate::codec::put_json_string;
use crate::hub::Credential;
use crate::reply::{
    ANY_ORIGIN, Body, JSON, Step, X_API_KEY, ok_fresh_etag, preflight_for, version_headers,
};
use crate::shape::CowStr;
use crate::state::{EdgeState, Pending, Waited};
use crate::store::{Root, now_ms, slot};

/// The reason of a known customer's flags: their plans decided them.
const TARGETING_MATCH: &[u8] = b"\"TARGETING_MATCH\"";
/// The reason for a customer the edge has never heard of: the mode's default plans.
const STATIC: &[u8] = b"\"STATIC\"";
const NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");

/// OFREP's error codes (`evaluationFailure.errorCode`, `flagNotFound.errorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    FlagNotFound,
    TargetingKeyMissing,
    InvalidContext,
    ParseError,
    General,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::FlagNotFound => "FLAG_NOT_FOUND",
            Code::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            Code::InvalidContext => "INVALID_CONTEXT",
            Code::ParseError => "PARSE_ERROR",
            Code::General => "GENERAL",
        }
    }
}

/// Which evaluation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Single(String),
    Bulk,
}

/// An OFREP failure answer: the status, the protocol's error body (with the flag's key for a
/// single evaluation).
pub fn failure(status: StatusCode, target: &Target, code: Code, details: &str) -> Response<Body> {
    let mut buf = BytesMut::with_capacity(96 + details.len());
    buf.put_u8(b'{');
    if let Target::Single(key) = target {
        buf.put_slice(b"\"key\":");
        put_json_string(&mut buf, key);
        buf.put_u8(b',');
    }
    buf.put_slice(b"\"errorCode\":\"");
    buf.put_slice(code.as_str().as_bytes());
    buf.put_slice(b"\",\"errorDetails\":");
    put_json_string(&mut buf, details);
    buf.put_u8(b'}');
    let mut resp = Response::new(Full::new(buf.freeze()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, JSON);
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(CACHE_CONTROL, NO_CACHE);
    resp
}

/// An answer given before the body is read, counted.
fn answer(resp: Response<Body>) -> Step<Job> {
    crate::metrics::request(resp.status().as_u16());
    Step::Answer(resp)
}

/// Routes the evaluations under `/ofrep/v1{rest}`: everything that can be decided before the
/// body is read. `Err` is the answer, now; `Ok` the evaluation still to run.
pub(crate) fn route<B>(
    state: &EdgeState,
    req: &Request<B>,
    rest: &str,
    keys: &KeyCache,
) -> Step<Job> {
    let target = match rest.strip_prefix("/evaluate/flags") {
        Some("") => Target::Bulk,
        Some(key) if key.len() > 1 && key.starts_with('/') && !key[1..].contains('/') => {
            match percent_encoding::percent_decode_str(&key[1..]).decode_utf8() {
                Ok(k) => Target::Single(k.into_owned()),
                Err(_) => {
                    let t = Target::Single(key[1..].to_owned());
                    return answer(failure(
                        StatusCode::NOT_FOUND,
                        &t,
                        Code::FlagNotFound,
                        "the flag key is not valid UTF-8",
                    ));
                }
            }
        }
        _ => {
            return answer(failure(
                StatusCode::NOT_FOUND,
                &Target::Bulk,
                Code::General,
                "no such OFREP route; flags are evaluated at /ofrep/v1/evaluate/flags[/{key}]",
            ));
        }
    };
    match *req.method() {
        Method::POST => {}
        Method::OPTIONS => {
            return Step::Answer(preflight_for(HeaderValue::from_static("POST, OPTIONS")));
        }
        _ => {
            let mut resp = failure(
                StatusCode::METHOD_NOT_ALLOWED,
                &target,
                Code::General,
                "OFREP evaluations are POST requests",
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return answer(resp);
        }
    }
    if !state
        .store
        .status
        .has_snapshot
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return answer(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &target,
            Code::General,
            "edge is waiting for its first snapshot from the control plane",
        ));
    }
    let root = state.store.root();
    let headers = req.headers();
    let authorization = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let api_key = authorization
        .is_none()
        .then(|| headers.get(X_API_KEY).map(HeaderValue::as_bytes))
        .flatten();
    // The bulk answer's stream ticket is signed with the key's hash: no cache for it.
    let authed = match &target {
        Target::Single(_) => keys
            .authenticate_request(&root.auth, authorization, api_key)
            .map(|c| (c, None)),
        Target::Bulk => auth::request_credential(authorization, api_key)
            .and_then(|c| auth::authenticate_for_stream(&root.auth, &c))
            .map(|(c, cred)| (c, Some(cred))),
    };
    let (caller, credential) = match authed {
        Ok(c) => c,
        Err(e) => {
            let status = match e {
                AuthError::WrongKind => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            return answer(failure(status, &target, Code::General, &e.to_string()));
        }
    };
    let min = match ofrep_min_version(req) {
        Ok(m) => m,
        Err(e) => {
            return answer(failure(StatusCode::BAD_REQUEST, &target, Code::General, e));
        }
    };
    let limit = state.reads.ofrep_body_limit;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return answer(too_large(&target, limit));
    }
    let inm = (target == Target::Bulk)
        .then(|| headers.get(IF_NONE_MATCH).cloned())
        .flatten();
    Step::Then(Job {
        target,
        caller,
        credential,
        min,
        inm,
        limit,
    })
}

/// `minVersion` (header or query), or else the version an ADR-0008 re-fetch passes back as
/// `flagConfigEtag` (the `etag` of the `refetchEvaluation` event, which is the version that
/// changed the customer). That one is opaque to clients and read leniently.
fn ofrep_min_version<B>(req: &Request<B>) -> Result<Option<u64>, &'static str> {
    let mut asked = None;
    let mut etag = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "minVersion" | "min_version" => asked = Some(v),
            "flagConfigEtag" => etag = Some(v),
            _ => {}
        }
    }
    let min = crate::reply::min_version(req.headers(), asked.as_deref())?;
    Ok(min.or_else(|| etag.and_then(|e| e.trim_matches('"').parse().ok())))
}

fn too_large(target: &Target, limit: usize) -> Response<Body> {
    failure(
        StatusCode::PAYLOAD_TOO_LARGE,
        target,
        Code::InvalidContext,
        &format!("the evaluation request is larger than this edge accepts ({limit} bytes)"),
    )
}

/// Why an evaluation is refused: status, code, details.
type Refusal = (StatusCode, Code, &'static str);

/// An evaluation waiting for its body (and maybe its `minVersion`).
pub(crate) struct Job {
    target: Target,
    caller: Caller,
    /// The bulk caller's credential, to sign the event stream's ticket with.
    credential: Option<Credential>,
    min: Option<u64>,
    inm: Option<HeaderValue>,
    limit: usize,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body too large")]
    TooLarge,
    #[error("the request body ended early: {0}")]
    Aborted(hyper::Error),
}

/// Reads a whole body, refusing more than `limit` bytes (a declared length was checked
/// before). One chunk, the common case, is kept as it came.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Aborted)?.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(len.max(1024));
                buf.put_slice(f);
                buf.put_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.put_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

impl Job {
    /// 429: too many reads are waiting on this edge.
    pub(crate) fn too_many(&self) -> Response<Body> {
        let mut resp = failure(
            StatusCode::TOO_MANY_REQUESTS,
            &self.target,
            Code::General,
            "too many evaluations are waiting on this edge; retry in a second",
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }

    pub(crate) async fn run(
        self,
        state: &Arc<EdgeState>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let resp = self.evaluate(state, req).await;
        crate::metrics::request(resp.status().as_u16());
        resp
    }

    async fn evaluate(&self, state: &Arc<EdgeState>, req: Request<Incoming>) -> Response<Body> {
        let body = match read_body(req.into_body(), self.limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return too_large(&self.target, self.limit),
            // The client hung up (or sent a broken chunked body): nobody reads this answer.
            Err(e) => return self.fail(StatusCode::BAD_REQUEST, Code::ParseError, &e.to_string()),
        };
        let parsed = match serde_json::from_slice::<EvalRequest<'_>>(&body) {
            Ok(p) => p,
            Err(e) => {
                return self.fail(
                    StatusCode::BAD_REQUEST,
                    Code::ParseError,
                    &format!("the request body is not JSON: {e}"),
                );
            }
        };
        let (mode, customer_id): (Mode, Cow<'_, str>) = match self.customer(&parsed) {
            Ok(c) => c,
            Err((status, code, details)) => return self.fail(status, code, details),
        };
        let waited = match self.min {
            Some(min) if min > state.store.version() => {
                let Some(pending) = Pending::acquire(state) else {
                    return self.too_many();
                };
                let waited = crate::wait::version(state, min).await;
                drop(pending);
                Some(waited)
            }
            Some(min) => Some(Waited { min, reached: true }),
            None => None,
        };
        let root = state.store.root();
        let mut resp = match &self.target {
            Target::Single(key) => single(&root, mode, &customer_id, key),
            Target::Bulk => bulk(
                &root,
                mode,
                &customer_id,
                self.credential.as_ref(),
                self.inm.as_ref(),
            ),
        };
        if let Some(w) = waited {
            version_headers(&mut resp, root.version, w.min);
        }
        resp
    }

    fn fail(&self, status: StatusCode, code: Code, details: &str) -> Response<Body> {
        failure(status, &self.target, code, details)
    }

    /// The customer the evaluation is for: `context.targetingKey`, or the customer token's.
    fn customer<'a>(&self, parsed: &EvalRequest<'a>) -> Result<(Mode, Cow<'a, str>), Refusal> {
        let bad = |code, details| Err((StatusCode::BAD_REQUEST, code, details));
        let targeting = match &parsed.0 {
            Top::NotObject => {
                return bad(
                    Code::InvalidContext,
                    "the request body must be an object: {\"context\":{\"targetingKey\":…}}",
                );
            }
            Top::Object(Ctx::NotObject) => {
                return bad(Code::InvalidContext, "context: must be an object");
            }
            Top::Object(Ctx::Object(Key::NotString)) => {
                return bad(
                    Code::InvalidContext,
                    "context.targetingKey: must be a string (the customer id)",
                );
            }
            Top::Object(Ctx::Object(Key::Str(k))) if !k.is_empty() => Some(k.clone()),
            Top::Object(_) => None,
        };
        match (&self.caller, targeting) {
            (Caller::Key(mode), Some(id)) => Ok((*mode, id)),
            (Caller::Key(_), None) => bad(
                Code::TargetingKeyMissing,
                "context.targetingKey is required: it names the customer to evaluate for",
            ),
            (Caller::Customer { mode, customer_id }, asked) => {
                if asked.as_deref().is_some_and(|a| a != customer_id) {
                    return Err((
                        StatusCode::FORBIDDEN,
                        Code::General,
                        "customer token does not grant access to this customer",
                    ));
                }
                Ok((*mode, Cow::Owned(customer_id.clone())))
            }
        }
    }
}

/// One flag, from the customer's record, or the mode's defaults for a customer the edge has
/// never heard of.
fn single(root: &Root, mode: Mode, customer_id: &str, key: &str) -> Response<Body> {
    let mut buf = BytesMut::new();
    let found = root.customers.with(mode, customer_id, |view| match view {
        Some(v) => v.shape.ofrep_flag(key).map(|flag| {
            buf.reserve(v.shape.ofrep_len_hint() / 2);
            v.shape
                .render_ofrep_flag(flag, v.values, TARGETING_MATCH, &mut buf)
        }),
        None => {
            let d = &root.default_shapes[slot(mode)];
            d.shape
                .ofrep_flag(key)
                .map(|flag| d.shape.render_ofrep_flag(flag, &d.values, STATIC, &mut buf))
        }
    });
    if found.is_none() {
        return failure(
            StatusCode::NOT_FOUND,
            &Target::Single(key.to_owned()),
            Code::FlagNotFound,
            &format!(
                "no flag '{key}': flags are the catalog's feature ids, and {{feature}}.limit, {{feature}}.remaining"
            ),
        );
    }
    let mut resp = Response::new(Full::new(buf.freeze()));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, JSON);
    h.insert(CACHE_CONTROL, NO_CACHE);
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    resp
}

/// Every flag, plus the event stream that says when to evaluate again.
fn bulk(
    root: &Root,
    mode: Mode,
    customer_id: &str,
    credential: Option<&Credential>,
    inm: Option<&HeaderValue>,
) -> Response<Body> {
    let mut buf = BytesMut::new();
    buf.put_slice(b"{\"flags\":");
    root.customers.with(mode, customer_id, |view| match view {
        Some(v) => {
            buf.reserve(v.shape.ofrep_len_hint() + 256);
            v.shape
                .render_ofrep_flags(v.values, TARGETING_MATCH, &mut buf)
        }
        None => {
            let d = &root.default_shapes[slot(mode)];
            buf.reserve(d.shape.ofrep_len_hint() + 256);
            d.shape.render_ofrep_flags(&d.values, STATIC, &mut buf)
        }
    });
    if let Some(ticket) = credential.and_then(|c| stream_ticket(c, mode, customer_id)) {
        buf.put_slice(
            b",\"eventStreams\":[{\"type\":\"sse\",\"endpoint\":{\"requestUri\":\"/ofrep/v1/events?ticket=",
        );
        buf.put_slice(ticket.as_bytes());
        // The version that last changed this customer: the stream starts from it, so a change
        // between this answer and the connection is not missed. Stable while the customer is.
        buf.put_slice(b"&since=");
        buf.put_slice(
            itoa::Buffer::new()
                .format(root.changed_at(mode, customer_id))
                .as_bytes(),
        );
        buf.put_slice(b"\"}}]");
    }
    buf.put_u8(b'}');
    ok_fresh_etag(buf.freeze(), inm)
}

/// The credential the event-stream URL carries: a ticket signed with the caller's key, or
/// the caller's customer token itself.
fn stream_ticket(credential: &Credential, mode: Mode, customer_id: &str) -> Option<String> {
    match credential {
        Credential::Key { hash, .. } => {
            let now = (now_ms() / 1000) as i64;
            Some(crate::ticket::mint(
                hash,
                mode,
                customer_id,
                crate::ticket::expiry_for(now),
            ))
        }
        // Token characters are all URL-safe (`ct_`, base64url, `.`).
        Credential::Token { token, .. } => Some(token.to_string()),
    }
}

// --- The request body: `{"context": {"targetingKey": "…", …}, …}`, read without building
// anything but the targeting key, and telling apart what is wrong with it.

/// An evaluation request as far as the edge reads it.
struct EvalRequest<'a>(Top<'a>);

enum Top<'a> {
    NotObject,
    Object(Ctx<'a>),
}

enum Ctx<'a> {
    Absent,
    NotObject,
    Object(Key<'a>),
}

enum Key<'a> {
    Absent,
    NotString,
    Str(Cow<'a, str>),
}

/// Consumes any JSON value, answering `other` (what is not the expected kind).
macro_rules! visit_other {
    ($other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for EvalRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = EvalRequest<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an evaluation request")
            }
            visit_other!(EvalRequest(Top::NotObject));
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(EvalRequest(Top::NotObject))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(EvalRequest(Top::NotObject))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut ctx = Ctx::Absent;
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    if k.0 == "context" {
                        ctx = map.next_value::<Ctx<'a>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(EvalRequest(Top::Object(ctx)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Ctx<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Ctx<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an evaluation context")
            }
            visit_other!(Ctx::NotObject);
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Ctx::NotObject)
            }
            // `"context": null` is no context.
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ctx::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut key = Key::Absent;
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    if k.0 == "targetingKey" {
                        key = map.next_value::<Key<'a>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Ctx::Object(key))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a targeting key")
            }
            visit_other!(Key::NotString);
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Key::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Key::NotString)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key::Str(Cow::Owned(v)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<String, String> {
        match serde_json::from_str::<EvalRequest<'_>>(body) {
            Err(e) => Err(format!("parse: {}", e.classify() as u8)),
            Ok(EvalRequest(top)) => Ok(match top {
                Top::NotObject => "not an object".into(),
                Top::Object(Ctx::Absent) => "no context".into(),
                Top::Object(Ctx::NotObject) => "context not an object".into(),
                Top::Object(Ctx::Object(Key::Absent)) => "no key".into(),
                Top::Object(Ctx::Object(Key::NotString)) => "key not a string".into(),
                Top::Object(Ctx::Object(Key::Str(k))) => format!("key {k}"),
            }),
        }
    }

    #[test]
    fn the_request_reader_tells_every_shape_apart() {
        let cases = [
            (
                r#"{"context":{"targetingKey":"user-1","email":"a@b"}}"#,
                "key user-1",
            ),
            (
                r#"{"context":{"email":{"x":[1,2]},"targetingKey":"u\"2"}}"#,
                "key u\"2",
            ),
            (
                r#"{"context":{"targetingKey":"a","targetingKey":"b"}}"#,
                "key b",
            ),
            (r#"{"context":{}}"#, "no key"),
            (r#"{"context":{"targetingKey":null}}"#, "no key"),
            (r#"{"context":{"targetingKey":5}}"#, "key not a string"),
            (r#"{"context":{"targetingKey":["a"]}}"#, "key not a string"),
            (
                r#"{"context":{"targetingKey":{"a":1}}}"#,
                "key not a string",
            ),
            (r#"{"context":null}"#, "no context"),
            (r#"{"context":"user-1"}"#, "context not an object"),
            (
                r#"{"context":[{"targetingKey":"a"}]}"#,
                "context not an object",
            ),
            (r#"{}"#, "no context"),
            (r#"{"other":1}"#, "no context"),
            (r#"[]"#, "not an object"),
            (r#""x""#, "not an object"),
            (r#"7"#, "not an object"),
        ];
        for (body, want) in cases {
            assert_eq!(read(body), Ok(want.to_owned()), "{body}");
        }
        for broken in ["", "{", r#"{"context":"#, "nope", r#"{"context":{}} x"#] {
            assert!(read(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn failures_have_the_protocol_shape() {
        let resp = failure(
            StatusCode::NOT_FOUND,
            &Target::Single("a\"b".into()),
            Code::FlagNotFound,
            "no flag",
        );
        let body = resp.into_body();
        let bytes = futures_util::FutureExt::now_or_never(body.collect())
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"key":"a\"b","errorCode":"FLAG_NOT_FOUND","errorDetails":"no flag"})
        );
    }
}

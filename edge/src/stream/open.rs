//! Opening a stream: who may, for which customer, from which version.
//!
//! * `GET /api/v1/entitlements/stream?customerId=` — the same keys and tokens as the GET
//!   (`Authorization`); `Last-Event-ID` resumes; `minVersion` / `Tollgate-Min-Version` waits
//!   as reads do.
//! * `GET /ofrep/v1/events?ticket=…&since=…` — the URL an OFREP bulk answer advertises: the
//!   ticket is the credential ([`crate::ticket`], or a customer token), `since` the version
//!   that last changed the customer when the bulk answer was made, so a change between the
//!   evaluation and the connection still sends a `refetchEvaluation`. `Last-Event-ID`
//!   (an `EventSource` reconnecting) wins over `since`.
//!
//! The stream registers with the hub *before* it reads the root it starts from: a delta
//! published in between is in that root or signals the stream (or both), never neither.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_TYPE, RETRY_AFTER,
};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Either;
use tollgate_shared::server::ConnHandle;
use tollgate_shared::{ErrorKind, Mode};

use super::EdgeBody;
use super::body::{Flavor, SseBody, current, event};
use crate::auth::{self, Caller};
use crate::hub::Credential;
use crate::ofrep::{Code, Target, failure};
use crate::reply::{
    ANY_ORIGIN, Body, MIN_VERSION_INVALID, STALE, Step, VERSION, auth_error, error, parse_query,
};
use crate::state::{EdgeState, Pending};
use crate::store::now_ms;

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// A stream about to open.
pub(crate) struct Open {
    flavor: Flavor,
    mode: Mode,
    customer_id: String,
    credential: Credential,
    /// The version the client has (`Last-Event-ID`, or OFREP's `since`).
    resume: Option<u64>,
    /// `minVersion`.
    min: Option<u64>,
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// `Last-Event-ID`: what `EventSource` (or our client) sends on reconnect.
fn last_event_id<B>(req: &Request<B>) -> Result<Option<u64>, &'static str> {
    match req.headers().get(LAST_EVENT_ID) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().map_err(|_| LAST_EVENT_ID_INVALID))
            .transpose(),
    }
}

const LAST_EVENT_ID_INVALID: &str =
    "Last-Event-ID: must be the id of an event this edge sent (a version number)";

fn waiting_for_snapshot(state: &EdgeState) -> bool {
    !state
        .store
        .status
        .has_snapshot
        .load(std::sync::atomic::Ordering::Acquire)
}

/// `GET /api/v1/entitlements/stream`.
pub(crate) fn prepare_entitlements<B>(state: &EdgeState, req: &Request<B>) -> Step<Open> {
    if waiting_for_snapshot(state) {
        return Step::Answer(error(
            ErrorKind::Unavailable,
            "edge is waiting for its first snapshot from the control plane",
        ));
    }
    let root = state.store.root();
    let authed = auth::request_credential(
        req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes),
        None,
    )
    .and_then(|c| auth::authenticate_for_stream(&root.auth, &c));
    let (caller, credential) = match authed {
        Ok(c) => c,
        Err(e) => return Step::Answer(auth_error(&e)),
    };
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (mode, customer_id) = match (caller, query.customer_id.as_deref()) {
        (Caller::Key(mode), Some(id)) if !id.is_empty() => (mode, id.to_owned()),
        (Caller::Key(_), _) => {
            return Step::Answer(error(
                ErrorKind::BadRequest,
                "customerId: required query parameter",
            ));
        }
        (Caller::Customer { mode, customer_id }, asked) => {
            if asked.is_some_and(|a| a != customer_id) {
                return Step::Answer(error(
                    ErrorKind::Forbidden,
                    "customer token does not grant access to this customer",
                ));
            }
            (mode, customer_id)
        }
    };
    let min = match crate::reply::min_version(req.headers(), query.min_version.as_deref()) {
        Ok(m) => m,
        Err(e) => return Step::Answer(error(ErrorKind::BadRequest, e)),
    };
    let resume = match last_event_id(req) {
        Ok(r) => r,
        Err(e) => return Step::Answer(error(ErrorKind::BadRequest, e)),
    };
    Step::Then(Open {
        flavor: Flavor::Entitlements,
        mode,
        customer_id,
        credential,
        resume,
        min,
    })
}

fn ofrep_failure(status: StatusCode, code: Code, details: &str) -> Step<Open> {
    crate::metrics::request(status.as_u16());
    Step::Answer(failure(status, &Target::Bulk, code, details))
}

/// `GET /ofrep/v1/events?ticket=…`.
pub(crate) fn prepare_ofrep<B>(state: &EdgeState, req: &Request<B>) -> Step<Open> {
    match *req.method() {
        http::Method::GET => {}
        http::Method::OPTIONS => {
            return Step::Answer(crate::reply::preflight_for(HeaderValue::from_static(
                "GET, OPTIONS",
            )));
        }
        _ => {
            return ofrep_failure(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::General,
                "the event stream is opened with GET",
            );
        }
    }
    if waiting_for_snapshot(state) {
        return ofrep_failure(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::General,
            "edge is waiting for its first snapshot from the control plane",
        );
    }
    let mut ticket = None;
    let mut since = None;
    let mut min = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "ticket" => ticket = Some(v),
            "since" => since = Some(v),
            "minVersion" | "min_version" => min = Some(v),
            _ => {}
        }
    }
    let Some(ticket) = ticket.filter(|t| !t.is_empty()) else {
        return ofrep_failure(
            StatusCode::UNAUTHORIZED,
            Code::General,
            "ticket: required; use the URL a bulk evaluation's eventStreams gives",
        );
    };
    let root = state.store.root();
    let (mode, customer_id, credential) = if ticket.starts_with(crate::ticket::TICKET_PREFIX) {
        match crate::ticket::verify(&ticket, &root.auth, now_secs()) {
            Ok(g) => (
                g.mode,
                g.customer_id,
                Credential::Key {
                    hash: g.key,
                    expires: Some(g.expires),
                },
            ),
            Err(e) => {
                return ofrep_failure(StatusCode::UNAUTHORIZED, Code::General, &e.to_string());
            }
        }
    } else {
        match auth::authenticate_for_stream(&root.auth, &ticket) {
            Ok((Caller::Customer { mode, customer_id }, cred)) => (mode, customer_id, cred),
            // A key in the URL would end up in logs: only tickets and tokens are taken.
            Ok((Caller::Key(_), _)) => {
                return ofrep_failure(
                    StatusCode::UNAUTHORIZED,
                    Code::General,
                    "ticket: a key is not a ticket; use the URL a bulk evaluation gives",
                );
            }
            Err(e) => {
                let status = match e {
                    auth::AuthError::WrongKind => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                return ofrep_failure(status, Code::General, &e.to_string());
            }
        }
    };
    let since = match since.map(|s| s.parse::<u64>()).transpose() {
        Ok(s) => s,
        Err(_) => {
            return ofrep_failure(
                StatusCode::BAD_REQUEST,
                Code::General,
                "since: must be a version number",
            );
        }
    };
    let min = match crate::reply::min_version(req.headers(), min.as_deref()) {
        Ok(m) => m,
        Err(_) => {
            return ofrep_failure(StatusCode::BAD_REQUEST, Code::General, MIN_VERSION_INVALID);
        }
    };
    let resume = match last_event_id(req) {
        Ok(r) => r.or(since),
        Err(e) => return ofrep_failure(StatusCode::BAD_REQUEST, Code::General, e),
    };
    Step::Then(Open {
        flavor: Flavor::Ofrep,
        mode,
        customer_id,
        credential,
        resume,
        min,
    })
}

impl Open {
    fn refuse(&self, status: StatusCode, kind: ErrorKind, message: &str) -> Response<Body> {
        crate::metrics::request(status.as_u16());
        let mut resp = match self.flavor {
            Flavor::Entitlements => error(kind, message),
            Flavor::Ofrep => failure(status, &Target::Bulk, Code::General, message),
        };
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        resp
    }

    /// Whether the stream must wait for a version the edge has not applied yet.
    pub(crate) fn must_wait(&self, state: &EdgeState) -> bool {
        self.resume
            .max(self.min)
            .is_some_and(|n| n > state.store.version())
    }

    /// 429: too many reads are waiting.
    pub(crate) fn too_many(&self) -> Response<Body> {
        match self.flavor {
            Flavor::Entitlements => crate::reply::too_many(),
            Flavor::Ofrep => {
                let mut resp = failure(
                    StatusCode::TOO_MANY_REQUESTS,
                    &Target::Bulk,
                    Code::General,
                    "too many reads are waiting on this edge; retry in a second",
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
        }
    }

    pub(crate) async fn run(
        self,
        state: Arc<EdgeState>,
        conn: ConnHandle,
        pending: Option<Pending>,
    ) -> Response<EdgeBody> {
        // The client has `resume` already; `min` it asked for: wait for both, within the bound.
        let need = self.resume.max(self.min);
        let reached = match need {
            Some(n) if n > state.store.version() => crate::wait::version(&state, n).await.reached,
            _ => true,
        };
        drop(pending);
        let sub = match state.store.hub.subscribe(
            self.mode,
            &self.customer_id,
            self.credential.clone(),
            conn,
        ) {
            Ok(s) => s,
            Err(full) => {
                crate::metrics::stream_refused();
                return self
                    .refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorKind::Unavailable,
                        &full.to_string(),
                    )
                    .map(Either::Left);
            }
        };
        let root = state.store.root();
        let now = root.version;
        let (body, hash) = current(&root, self.mode, &self.customer_id);
        let (first, sent, hash) = match self.resume {
            // The client is ahead of this edge (which did not catch up in time): send nothing
            // until the edge passes it.
            Some(have) if have > now => (retry_only(), have, None),
            Some(have) if !root.changed_since(self.mode, &self.customer_id, have) => {
                (event(self.flavor, now, None, true), now, Some(hash))
            }
            None if self.flavor == Flavor::Ofrep => {
                (event(self.flavor, now, None, true), now, Some(hash))
            }
            _ => (event(self.flavor, now, Some(&body), true), now, Some(hash)),
        };
        drop(root);
        crate::metrics::request(200);
        let body = SseBody::new(state.store.clone(), sub, self.flavor, sent, hash, first);
        let mut resp = Response::new(Either::Right(body));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, EVENT_STREAM);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
        // Proxies that buffer (nginx) would hold events back.
        h.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        if let Some(n) = need {
            h.insert(VERSION, HeaderValue::from(now));
            if !reached || now < n {
                h.insert(STALE, HeaderValue::from_static("true"));
            }
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Tollgate-Version, Tollgate-Stale"),
            );
        }
        resp
    }
}

fn retry_only() -> Bytes {
    Bytes::from(format!("retry: {}\n\n", super::body::RETRY_MS))
}

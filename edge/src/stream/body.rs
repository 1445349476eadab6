//! One event stream's response body: server-sent events rendered when hyper asks for the next
//! frame, from the customer's *current* state.
//!
//! Every event's `id` is the edge's version when it was rendered: the client has the state as
//! of that version, so a reconnect with `Last-Event-ID: V` needs exactly the changes after V.
//! When a signal arrives but the customer's entitlements rendered the same (a catalog edit
//! that did not touch them, a snapshot), the stream sends an `id:`-only event: no event
//! reaches the client, but its `Last-Event-ID` moves on (WHATWG HTML, "dispatch the event").

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::{Body, Frame};
use tollgate_shared::Mode;

use crate::hub::{Closed, Sub};
use crate::store::{Root, Store};

/// Which events a stream sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `GET /api/v1/entitlements/stream`: the customer's entitlements, as the GET answers.
    Entitlements,
    /// OFREP's event stream: `refetchEvaluation` notices (ADR-0008).
    Ofrep,
}

/// How long a client waits before reconnecting after a dropped stream (SSE `retry`), ms.
pub const RETRY_MS: u64 = 2_000;
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

pub struct SseBody {
    store: Arc<Store>,
    sub: Arc<Sub>,
    flavor: Flavor,
    /// The client has the customer's state as of this version.
    sent: u64,
    /// A hash of the entitlements the client has, when known.
    hash: Option<u64>,
    first: Option<Bytes>,
    /// The hub tick of the last heartbeat, and the key epoch last checked against.
    beat: u64,
    epoch: u64,
    done: bool,
}

/// The customer's entitlements body and its hash.
pub fn current(root: &Root, mode: Mode, customer_id: &str) -> (Bytes, u64) {
    let body = crate::reply::list_body(root, mode, customer_id);
    let hash = xxhash_rust::xxh3::xxh3_64(&body);
    (body, hash)
}

/// An event: `id`, then (when `data` is given) the flavor's payload.
pub fn event(flavor: Flavor, version: u64, data: Option<&Bytes>, retry: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + data.map_or(0, Bytes::len));
    if retry {
        out.put_slice(b"retry: ");
        out.put_slice(itoa::Buffer::new().format(RETRY_MS).as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"id: ");
    out.put_slice(itoa::Buffer::new().format(version).as_bytes());
    out.put_u8(b'\n');
    match (flavor, data) {
        (_, None) => {}
        // The body is compact JSON: no raw newline can end the `data:` line early.
        (Flavor::Entitlements, Some(body)) => {
            out.put_slice(b"data: ");
            out.put_slice(body);
            out.put_u8(b'\n');
        }
        (Flavor::Ofrep, Some(_)) => {
            out.put_slice(b"event: message\ndata: {\"type\":\"refetchEvaluation\",\"etag\":\"");
            out.put_slice(itoa::Buffer::new().format(version).as_bytes());
            out.put_slice(b"\"}\n");
        }
    }
    out.put_u8(b'\n');
    out.freeze()
}

impl SseBody {
    pub(crate) fn new(
        store: Arc<Store>,
        sub: Arc<Sub>,
        flavor: Flavor,
        sent: u64,
        hash: Option<u64>,
        first: Bytes,
    ) -> SseBody {
        let beat = store.hub.tick_now();
        let epoch = store.hub.auth_epoch();
        SseBody {
            store,
            sub,
            flavor,
            sent,
            hash,
            first: Some(first),
            beat,
            epoch,
            done: false,
        }
    }

    /// The next event after a signal, if the edge has moved past what the client has.
    fn next_event(&mut self) -> Option<Bytes> {
        let root = self.store.root();
        if root.version <= self.sent {
            return None;
        }
        let (body, hash) = current(&root, self.sub.mode, &self.sub.customer_id);
        let changed = self.hash != Some(hash);
        self.sent = root.version;
        self.hash = Some(hash);
        Some(event(
            self.flavor,
            root.version,
            changed.then_some(&body),
            false,
        ))
    }

    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.done = true;
        Poll::Ready(None)
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        // Registered before looking, so a signal in between wakes us again.
        this.sub.register(cx.waker());
        if this.sub.closed() != Closed::Open {
            return this.end();
        }
        let epoch = this.store.hub.auth_epoch();
        if epoch != this.epoch {
            this.epoch = epoch;
            if !crate::auth::still_valid(&this.store.root().auth, &this.sub.credential) {
                this.sub.close(Closed::Revoked);
                return this.end();
            }
        }
        if this.sub.take() > this.sent
            && let Some(frame) = this.next_event()
        {
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        let tick = this.store.hub.tick_now();
        if tick != this.beat {
            this.beat = tick;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(HEARTBEAT)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.store.hub.unsubscribe(&self.sub);
    }
}

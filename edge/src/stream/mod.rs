//! Event streams at the edge (docs/entitlements-clients.md): `GET /api/v1/entitlements/stream`
//! (server-sent events carrying a customer's entitlements) and OFREP's `refetchEvaluation`
//! stream that bulk evaluations advertise (`/ofrep/v1/events`).
//!
//! The subscriber registry the sync task signals is [`crate::hub`]; here:
//!
//! * [`open`] — authenticating a stream and where it resumes from.
//! * [`body`] — the response body that renders events from the current root.

pub mod body;
mod open;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};

pub use crate::hub::{Closed, Credential, Hub, StreamLimits, Sub};
pub use body::{Flavor, SseBody};
pub(crate) use open::{Open, prepare_entitlements, prepare_ofrep};

/// Any response the edge gives: a whole body, or an event stream.
pub type EdgeBody = Either<Full<Bytes>, SseBody>;

/// Ticks `hub` every heartbeat interval, for as long as the edge runs.
pub async fn run_ticker(store: Arc<crate::store::Store>) {
    let period = store.hub.limits().heartbeat.max(Duration::from_millis(10));
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        store.hub.tick((crate::store::now_ms() / 1000) as i64);
    }
}

//! Event streams at the edge (docs/entitlements-clients.md): `GET /api/v1/entitlements/stream`
//! (server-sent events carrying a customer's entitlements) and OFREP's `refetchEvaluation`
//! stream that bulk evaluations advertise (`/ofrep/v1/events`).
//!
//! * [`hub`] — the subscriber registry the sync task signals; bounded per-subscriber state,
//!   slow subscribers dropped, heartbeats, the subscriber cap.
//! * [`open`] — authenticating a stream and where it resumes from.
//! * [`body`] — the response body that renders events from the current root.

pub mod body;
pub mod hub;
mod open;

pub use body::{Flavor, SseBody};
pub use hub::{Closed, Credential, Full, Hub, StreamLimits, Sub, run_ticker};
pub(crate) use open::{Open, prepare_entitlements, prepare_ofrep};

//! The HTTP surface: everything a request touches before it reaches a workflow.
//!
//! * [`router`] — the one list of routes; the router and the OpenAPI document are built from it.
//! * [`routes`] — one file per area of the JSON API.
//! * [`dialects`] — Kelviq, PayKit and 4geeks, each a thin parser and renderer over workflows.
//! * [`pages`] — the hosted checkout and portal pages.
//! * [`openapi`] — what the document says beyond the operations.
//! * [`state`] — [`state::AppState`], what every handler sees; [`caller`] — who is calling;
//!   [`idempotency`] — stored answers replayed before a handler runs; [`settlement`] — doors
//!   that wait for the payment their write asked for; [`rate_limit`] — token buckets per
//!   address and per credential.

pub mod caller;
pub mod dialects;
pub mod idempotency;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod router;
pub mod routes;
pub mod settlement;
pub mod state;

//! The three API dialects Tollgate speaks, side by side, each a thin layer over the same
//! decision (`subscriptions::lifecycle`) and the same unit of work:
//!
//! * [`kelviq`] — Kelviq's subscription calls (`update`, `cancel`, `resume`) and its usage
//!   report; the rest of the primary dialect lives with its domain's routes.
//! * [`paykit`] — PayKit's unified `POST /api/v1/subscribe/`.
//! * [`fourgeeks`] — 4geeks' `/v1/subscriptions` (snake_case, its envelopes and pagination).

pub mod fourgeeks;
pub mod kelviq;
pub mod paykit;

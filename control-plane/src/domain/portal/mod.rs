//! The customer portal's sessions (Kelviq's `portal.create_session`): a short-lived link where a
//! customer manages their subscription (`api::pages::portal`, `workflows::portal`).
//!
//! * [`model`] — sessions, tokens (random, stored hashed, expiring), the forms' values. Pure.
//! * [`store`] — the `portal_sessions` table.

pub mod model;
pub mod store;

//! Checkout sessions: opened by the API, paid on the hosted page (or by the test-mode
//! `complete` helper), completed into a subscription (`workflows::checkout`).
//!
//! * [`model`] — sessions and their errors.
//! * [`store`] — the `checkout_sessions` table.

pub mod model;
pub mod store;

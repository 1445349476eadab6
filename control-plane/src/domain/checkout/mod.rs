//! Hosted checkout: sessions created by the API, paid on a real HTML page (or by the test-mode
//! `complete` helper), and completed into an active subscription.
//!
//! * [`model`] — sessions and their errors.
//! * [`store`] — the `checkout_sessions` table.
//! * [`complete`] — paying a session: charge, then start the subscription, in one unit of work.
//! * [`routes`] — `POST /api/v1/checkout/` and `POST /api/v1/checkout/{id}/complete/`.
//! * [`page`] — the HTML page a person pays on.
//! * [`payments`] — the test-mode payment provider (Stripe's test cards).
pub mod model;
pub mod store;

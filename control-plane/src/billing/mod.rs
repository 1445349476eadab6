//! Billing: money over time.
//!
//! * [`proration`] — prorated amounts in integer minor units (pure).
//! * [`invoices`] — invoices, lines, collecting them from credit and the card on file.
//! * [`clock`] — the billing clock's rules: what is due, what a period end does, dunning (pure).
//! * [`worker`] — the billing clock itself: one code path for the real-time loop and for test
//!   clocks.
//! * [`test_clocks`] — Stripe-style test clocks.
//! * [`routes`] — `/api/v1/invoices/`, payment methods.

pub mod clock;
pub mod invoices;
pub mod proration;
pub mod routes;
pub mod test_clocks;
pub mod worker;

//! The domains: each a `model.rs` of pure types and rules (with their unit tests) and a
//! `store.rs` holding the only SQL on its tables. A domain imports `platform` and the domains
//! below it, never the writer, the app state, workflows or routes. From the bottom up:
//!
//! * [`catalog`] — features, plans, prices and grants; price resolution; display of prices.
//! * [`customers`], [`test_clocks`], [`payments`] (a charge's outcome, a decline's reason).
//! * [`invoices`] — lines, drafts, views, proration.
//! * [`subscriptions`] — rows, PayKit's decision table, cancellation and renewal rules, the
//!   update preview (pure).
//! * [`usage`] — meters, windows, reported events.
//! * [`entitlements`] — compiling what a customer may use from the domains below.
//! * [`licenses`], [`refunds`], [`checkout`] (sessions), [`portal`] (sessions).
//! * [`webhooks`], [`idempotency`], [`auth`], [`sync`] (the change log), [`recompiles`] (the
//!   queue catalog edits leave).

pub mod auth;
pub mod catalog;
pub mod checkout;
pub mod customers;
pub mod entitlements;
pub mod idempotency;
pub mod invoices;
pub mod licenses;
pub mod payments;
pub mod portal;
pub mod recompiles;
pub mod refunds;
pub mod subscriptions;
pub mod sync;
pub mod test_clocks;
pub mod usage;
pub mod webhooks;

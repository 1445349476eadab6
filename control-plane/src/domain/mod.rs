//! TODO
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

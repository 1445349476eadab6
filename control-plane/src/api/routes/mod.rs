//! One file per area of the JSON API. A handler parses, calls a workflow (or a store, for a
//! read) and renders; each file's `routes()` declares its routes once, with their operations.

pub mod api_keys;
pub mod catalog;
pub mod checkout;
pub mod customers;
pub mod invoices;
pub mod licenses;
pub mod ops;
pub mod payments;
pub mod portal;
pub mod refunds;
pub mod stripe_webhooks;
pub mod subscriptions;
pub mod sync;
pub mod test_clocks;
pub mod usage;
pub mod webhooks;

//! Customers: created explicitly or by checkout, looked up by the caller's own `customerId`.
//!
//! * [`model`] — views, validation (emails, metadata), errors.
//! * [`store`] — the `customers`, `payment_methods` and `customer_balances` tables, and a
//!   customer's "now" (their test clock's, if they live on one).

pub mod model;
pub mod store;

//! Customers: created explicitly or by checkout, looked up by the caller's own `customerId`.
//!
//! * [`model`] — views, validation, errors.
//! * [`store`] — the `customers` and `payment_methods` tables, and a customer's "now".
//! * [`routes`] — `/api/v1/customers/…`, including customer-token minting.

pub mod model;
pub mod store;

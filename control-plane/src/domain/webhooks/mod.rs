//! Webhooks (SPEC §7): a durable outbox written by the unit of work in the same transaction as
//! the change it reports, delivered at least once (`workers::webhooks`), signed per the Standard
//! Webhooks spec.
//!
//! * [`model`] — secrets, signing schemes.
//! * [`store`] — endpoints, events and deliveries.

pub mod model;
pub mod store;

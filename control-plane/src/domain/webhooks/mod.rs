//! Webhooks (SPEC §7): a durable outbox written by the unit of work in the same transaction as
//! the change it reports, delivered at least once with exponential backoff, signed per the
//! Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256>`).
//!
//! * [`model`] — event types, secrets, signing.
//! * [`store`] — endpoints, events and deliveries.
//! * [`delivery`] — the worker that sends what is due, per endpoint, with a circuit breaker.
//! * [`guard`] — where webhooks may go (no loopback, private or metadata addresses).
//! * [`routes`] — `/api/v1/webhook-endpoints/` and their deliveries.
pub mod model;
pub mod store;

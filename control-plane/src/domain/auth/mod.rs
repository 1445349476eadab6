//! Keys on the control plane: who is calling (and in which mode), key creation, listing and
//! revocation, and the bootstrap keys of a fresh install. Keys are stored as SHA-256 hashes; a
//! key is shown once, when it is made. Every key edges must know about (secret and
//! publishable) goes through the change log, so a revoked key stops working at every edge.
//!
//! * [`model`] — callers, errors, the bootstrap configuration.
//! * [`store`] — the `api_keys` table.
//! * [`keys`] — credential lookups with a short-lived cache.
//! * [`extract`] — the `Caller` / `EdgeCaller` extractors.
//! * [`bootstrap`] — keys from configuration, or generated on first start.
//! * [`routes`] — `/api/v1/api-keys/`.
pub mod keys;
pub mod model;
pub mod store;

//! Keys on the control plane: callers and their mode, API keys (stored as SHA-256 hashes, shown
//! once), and the settings row. Every key edges must know about goes through the change log, so a
//! revoked key stops working at every edge.
//!
//! * [`model`] — callers, errors, the bootstrap configuration.
//! * [`store`] — the `api_keys` and `settings` tables.
//! * [`keys`] — credential lookups with a short-lived cache.

pub mod keys;
pub mod model;
pub mod store;

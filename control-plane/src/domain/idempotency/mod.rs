//! `Idempotency-Key` on every POST (Stripe semantics). A retry with the same key and the same
//! request replays the first response; the same key with a different request is a 422. The
//! response is stored by the unit of work, in the same transaction as the write it answers.
//! Answers expire after a configurable time (24 h by default) and are pruned.
//!
//! * [`model`] — the claim a request carries to the writer.
//! * [`store`] — the `idempotency_keys` table.

pub mod model;
pub mod store;

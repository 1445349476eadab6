//! `Idempotency-Key` on every POST (Stripe semantics). A retry with the same key and the same
//! request replays the first response; the same key with a different request is a 422. Keys are
//! scoped to the secret key that sent them. The response is stored by the unit of work, in the
//! same transaction as the write it answers, so a committed write always has its answer on
//! record. Responses that carry a secret are stored without it; answers expire after a
//! configurable time (24 h by default) and are pruned.
//!
//! * [`model`] — the claim a request carries to the writer.
//! * [`store`] — the `idempotency_keys` table.
//! * [`middleware`] — answers replays before a handler runs and hands the claim on.
pub mod model;
pub mod store;

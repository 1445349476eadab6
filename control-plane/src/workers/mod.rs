//! Background workers. Each takes narrow handles (the writer, the read pool, the clock), never
//! the app state, and does its work in units of work through the writer.
//!
//! * [`billing_clock`] — finds what falls due (renewals, trial ends, retries, expiries, meter
//!   windows) and runs each in its own unit (`workflows::renew`).
//! * [`recompile`] — catalog edits' recompiles, in bounded chunks.
//! * [`webhooks`] — webhook delivery with backoff and a circuit breaker per endpoint.
//! * [`payments`] — charges payment intents outside the writer and settles them.
//! * [`maintenance`] — pruning of every bounded table.
//! * [`sync_listen`] — on PostgreSQL, other replicas' commits (`LISTEN`, with a catch-up read).
//! * [`gauges`] — gauges an operator wants.

pub mod billing_clock;
pub mod gauges;
pub mod maintenance;
pub mod payments;
pub mod recompile;
pub mod sync_listen;
pub mod webhooks;

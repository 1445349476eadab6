//! The control plane's side of edge sync (docs/sync.md).
//!
//! * [`changelog`] — the versioned log every unit of work that changes what edges serve appends
//!   to, numbered gap-free from one counter row.
//! * [`notifier`] — wakes stream tasks when a version commits.
//! * [`listen`] — on PostgreSQL, hears other replicas' commits (`LISTEN/NOTIFY`, plus a
//!   catch-up read so a missed notification only delays).
//! * [`stream`] — the long-lived HTTP response that feeds an edge: snapshot, then deltas.

pub mod changelog;
pub mod notifier;

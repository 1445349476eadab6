//! The control plane's side of edge sync (docs/sync.md).
//!
//! * [`changelog`] — the versioned log every unit of work that changes what edges serve appends
//!   to, numbered gap-free from one counter row.
//! * [`notifier`] — wakes stream tasks when a version commits.

pub mod changelog;
pub mod notifier;

//! The queue of recompiles that catalog edits leave behind.
//!
//! * [`model`] — one queued recompile.
//! * [`store`] — the `catalog_recompiles` table.

pub mod model;
pub mod store;

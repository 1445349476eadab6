//! Usage meters: reports (a delta or an absolute `set`) counted per meter window.
//!
//! * [`window`] — which window a report falls in (pure).
//! * [`store`] — the `usage_counters` table.
//! * [`model`] — what can go wrong with a report.

pub mod model;
pub mod store;
pub mod window;

//! Usage meters: reports (a delta or an absolute `set`) counted per meter window.
//!
//! * [`window`] — which window a report falls in (pure).
//! * [`store`] — the `usage_counters` table.
//! * [`report`] — recording a report inside a unit of work, patching only the moved meter.
//! * [`events`] — the `usage_events` table: reported events, once per key, counted by meters.
//! * [`routes`] — `POST /api/v1/usage/`.

pub mod events;
pub mod store;
pub mod window;

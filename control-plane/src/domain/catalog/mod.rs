//! The catalog (SPEC §3): features, plans, their prices per charge period and their grants.
//! Each mode has its own catalog; the catalog file is applied to both.
//!
//! * [`model`] — request shapes, validation into definitions, response views.
//! * [`store`] — reading and writing definitions inside a transaction.
//! * [`routes`] — `/api/v1/features/` and `/api/v1/plans/`.
//! * [`file`] — the declarative catalog file loaded at start.
//! * [`recompile`] — the customers a catalog edit affects, recompiled in bounded chunks.
//! * [`money`], [`period`] — amounts in minor units; calendar-exact charge periods.
//! * [`display`] — prices and grants as people read them on the hosted pages.

pub mod display;
pub mod model;
pub mod store;

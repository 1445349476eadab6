//! The catalog (SPEC §3): features, plans, their prices per charge period and their grants.
//! Each mode has its own catalog; the catalog file is applied to both (`app::catalog_file`).
//!
//! * [`model`] — request shapes, validation into definitions, price resolution, views.
//! * [`store`] — the `features`, `plans`, `prices` and `plan_features` tables.
//! * [`display`] — prices and grants as people read them on the hosted pages.

pub mod display;
pub mod model;
pub mod store;

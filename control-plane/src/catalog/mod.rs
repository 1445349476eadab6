//! The catalog (SPEC §3): features, plans, their prices per charge period and their grants.
//! Each mode has its own catalog; the catalog file is applied to both.
//!
//! * [`model`] — request shapes, validation into definitions, response views.
//! * [`store`] — reading and writing definitions inside a transaction.
//! * [`routes`] — `/api/v1/features/` and `/api/v1/plans/`.
//! * [`file`] — the declarative catalog file loaded at start.
//! * [`money`], [`period`] — amounts in minor units; calendar-exact charge periods.

pub mod file;
pub mod model;
pub mod money;
pub mod period;
pub mod routes;
pub mod store;

use crate::error::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("feature '{0}' not found")]
    FeatureNotFound(String),
    #[error("plan '{0}' not found")]
    PlanNotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

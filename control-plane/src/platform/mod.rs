//! The leaves: plumbing every floor above may use, and nothing of the domains.
//!
//! * [`db`] — engines, migrations, read pools, the unit of work ([`db::Uow`]), due-item queries,
//!   copying an embedded database to PostgreSQL.
//! * [`http`] — the error type and the one map from errors to HTTP, replies, extractors, the
//!   hosted pages' security headers, documentation-only schemas.
//! * [`clock`], [`ids`], [`settings`] — time from one injectable clock, identifiers, the running
//!   configuration.
//! * Validated types: [`validate`] (`CustomerId`, `Quantity`, `TrialDays`, `RedirectUrl`…),
//!   [`money`] (`Currency`, amounts in minor units), [`period`] (`ChargePeriod`), [`events`]
//!   (`EventKind`), and [`schema`] (how each states its rules in the OpenAPI document, once).
//! * [`egress`] — where outgoing webhooks may go (the SSRF guard).
//! * [`observe`] — request tracing and the metrics recorder.

pub mod clock;
pub mod db;
pub mod egress;
pub mod events;
pub mod http;
pub mod ids;
pub mod money;
pub mod observe;
pub mod period;
pub mod schema;
pub mod settings;
pub mod validate;

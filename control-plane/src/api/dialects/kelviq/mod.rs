//! Kelviq's dialect beyond what lives with its domain's routes: the subscription calls its
//! SDKs make (`create`, `update`, `update/preview`, `cancel`, `resume`) and its reporting
//! calls (`report/usage`, `report/event`). Plan changes go through the same decision as
//! PayKit's `subscribe`: an upgrade switches now with a prorated invoice, a downgrade waits for
//! the period's end.
//!
//! * [`changes`] — `update` and `update/preview` (one parser, one decision).
//! * [`cancel`] — `cancel` and `resume`.
//! * [`create`] — `subscriptions/create/`: a direct start on the card on file.
//! * [`charges`] — `charges/`: a ONE_TIME plan bought now on the card on file.
//! * [`reporting`] — `report/usage/` and `report/event/`.

pub mod cancel;
pub mod changes;
pub mod charges;
pub mod create;
pub mod reporting;

pub use cancel::*;
pub use changes::*;
pub use charges::*;
pub use create::*;
pub use reporting::*;

use chrono::{DateTime, NaiveDate, Utc};

use crate::api::state::AppState;
use crate::platform::validate::{Invalid, invalid};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn parse_when(field: &str, text: &str) -> Result<i64, Invalid> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.with_timezone(&Utc).timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
        .ok_or_else(|| invalid(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(update))
        .routes(routes!(preview_update))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(create_charge))
        .routes(routes!(report_usage))
        .routes(routes!(report_event))
}

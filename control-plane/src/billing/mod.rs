//! Billing: money over time.
//!
//! * [`proration`] — prorated amounts in integer minor units.
//! * [`invoices`] — invoices, lines, collecting them from credit and the card on file.
//! * [`worker`] — the billing clock: renewals, scheduled changes, trial ends, dunning, meter
//!   resets; one code path for the real-time loop and for test clocks.
//! * [`test_clocks`] — Stripe-style test clocks.
//! * [`routes`] — `/api/v1/invoices/`, payment methods.

pub mod invoices;
pub mod proration;
pub mod routes;
pub mod test_clocks;
pub mod worker;

use sqlx::SqliteConnection;
use tollgate_shared::Mode;

/// "Now" for one customer: their test clock's frozen time if they live on one, else `real_now`.
pub async fn customer_now(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<i64, sqlx::Error> {
    let frozen: Option<i64> = sqlx::query_scalar(
        "SELECT t.frozen_time FROM customers c JOIN test_clocks t ON t.id = c.test_clock
         WHERE c.mode = ? AND c.customer_id = ?",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    Ok(frozen.unwrap_or(real_now))
}

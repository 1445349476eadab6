//! The `usage_counters` table: one row per meter window, keyed by the window's end
//! ([`NEVER`] for a window that never resets).

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::Mode;

use crate::domain::usage::model::NewEvent;
use crate::platform::db::Uow;

/// The `window_end` of a window that never resets (a `ONE_TIME` purchase).
pub const NEVER: i64 = i64::MAX;
/// Usage saturates here; with reports capped at [`MAX_REPORT`] the sum cannot overflow.
pub const MAX_USAGE: i64 = 1 << 62;
/// The largest delta or `set` one report may carry.
pub const MAX_REPORT: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Delta(i64),
    Set(i64),
}

/// Adds (or sets) usage in the window ending at `window_end`, never below zero nor above
/// [`MAX_USAGE`], in one statement. Returns the window's usage after the report.
pub async fn record(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    feature_id: &str,
    window_end: i64,
    report: Report,
) -> Result<i64, sqlx::Error> {
    let now = uow.now();
    let (initial, delta, set) = match report {
        Report::Delta(d) => (d.clamp(0, MAX_USAGE), d, None),
        Report::Set(v) => (v.clamp(0, MAX_USAGE), 0, Some(v.clamp(0, MAX_USAGE))),
    };
    sql::query(
        "INSERT INTO usage_counters (mode, customer_id, feature_id, window_end, first_at, value)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (mode, customer_id, feature_id, window_end) DO UPDATE SET value = CASE
           WHEN $8 IS NOT NULL THEN $8
           WHEN usage_counters.value + $7 < 0 THEN 0
           WHEN usage_counters.value + $7 > $9 THEN $9
           ELSE usage_counters.value + $7 END
         RETURNING value",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(feature_id)
    .bind(window_end)
    .bind(now)
    .bind(initial)
    .bind(delta)
    .bind(set)
    .bind(MAX_USAGE)
    .scalar(uow.conn())
    .await
}

/// A customer's counters: `(feature, window_end, value)`.
pub async fn counters(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sql::query(
        "SELECT feature_id, window_end, value FROM usage_counters WHERE mode = $1 AND customer_id = $2",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_all_as(conn)
    .await
}

/// Deletes windows that ended before `before`, at most `limit` rows. Returns how many.
pub async fn prune(uow: &mut Uow, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM usage_counters WHERE (mode, customer_id, feature_id, window_end) IN
           (SELECT mode, customer_id, feature_id, window_end FROM usage_counters WHERE window_end < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(uow.conn())
    .await
}

/// Deletes up to `limit` reported events received before `before` whose billing period has
/// closed: the customer has no live subscription whose current period began at or before the
/// event (such an event is still to be invoiced with that period). Usage pricing's `unique`
/// aggregation will keep what it still needs by the same rule.
pub async fn prune_events(uow: &mut Uow, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM usage_events WHERE (mode, idempotency_key) IN
           (SELECT e.mode, e.idempotency_key FROM usage_events e
             WHERE e.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM subscriptions s
                                WHERE s.mode = e.mode AND s.customer_id = e.customer_id
                                  AND s.status IN ('active', 'trialing', 'past_due', 'incomplete')
                                  AND s.current_period_start <= e.created_at)
             LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(uow.conn())
    .await
}

/// Stores a reported event under its idempotency key. `false` when the key is taken.
pub async fn insert_event(
    uow: &mut Uow,
    mode: Mode,
    e: &NewEvent<'_>,
    hash: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sql::query(
        "INSERT INTO usage_events (mode, idempotency_key, customer_id, event_name, occurred_at, resource_id,
           properties, request_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (mode, idempotency_key) DO NOTHING",
    )
    .bind(mode.as_str())
    .bind(e.idempotency_key)
    .bind(e.customer_id)
    .bind(e.event_name)
    .bind(e.timestamp)
    .bind(e.resource_id)
    .bind(e.properties.map(serde_json::Value::to_string))
    .bind(hash)
    .bind(now)
    .execute(uow.conn())
    .await?;
    Ok(inserted > 0)
}

/// The request hash of the event stored under `idempotency_key`.
pub async fn event_hash(
    conn: &mut Conn,
    mode: Mode,
    idempotency_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql::query("SELECT request_hash FROM usage_events WHERE mode = $1 AND idempotency_key = $2")
        .bind(mode.as_str())
        .bind(idempotency_key)
        .scalar_optional(conn)
        .await
}

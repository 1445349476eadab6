//! The `customer_entitlements` table: the compiled view the edges serve, one row per customer
//! of each mode, rewritten by the unit of work that changed its inputs.

use crate::platform::db::due::{DueItem, Scope, due_items};
use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::{Entitlement, Mode};

/// A customer's stored compile.
#[derive(Debug, Clone)]
pub struct StoredCompile {
    pub entitlements: Vec<Entitlement>,
    pub next_change_at: Option<i64>,
}

pub async fn stored(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<StoredCompile>, sqlx::Error> {
    let row = sql::query(
        "SELECT entitlements, next_change_at FROM customer_entitlements WHERE mode = $1 AND customer_id = $2",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let json: String = row.try_get("entitlements")?;
    Ok(Some(StoredCompile {
        entitlements: serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        next_change_at: row.try_get("next_change_at")?,
    }))
}

/// A customer's stored compile together with their clock — `(created, now)`, "now" being
/// their test clock's time if they live on one — in one read: the usage path's only read.
pub async fn stored_with_clock(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<Option<(i64, i64, Option<StoredCompile>)>, sqlx::Error> {
    let row = sql::query(
        "SELECT c.created_at, t.frozen_time, e.entitlements, e.next_change_at FROM customers c
         LEFT JOIN test_clocks t ON t.id = c.test_clock
         LEFT JOIN customer_entitlements e ON e.mode = c.mode AND e.customer_id = c.customer_id
         WHERE c.mode = $1 AND c.customer_id = $2 AND c.archived_at IS NULL",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let created: i64 = row.try_get("created_at")?;
    let now = row
        .try_get::<Option<i64>>("frozen_time")?
        .unwrap_or(real_now);
    let compile = match row.try_get::<Option<String>>("entitlements")? {
        Some(json) => Some(StoredCompile {
            entitlements: serde_json::from_str(&json)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            next_change_at: row.try_get("next_change_at")?,
        }),
        None => None,
    };
    Ok(Some((created, now, compile)))
}

pub async fn save(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    entitlements: &[Entitlement],
    next_change_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(entitlements).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sql::query(
        "INSERT INTO customer_entitlements (mode, customer_id, entitlements, version, next_change_at)
         VALUES ($1, $2, $3, 0, $4)
         ON CONFLICT (mode, customer_id) DO UPDATE SET entitlements = excluded.entitlements,
           next_change_at = excluded.next_change_at",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(json)
    .bind(next_change_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every customer of a mode that has a compile.
pub async fn all_customers(conn: &mut Conn, mode: Mode) -> Result<Vec<String>, sqlx::Error> {
    sql::query("SELECT customer_id FROM customer_entitlements WHERE mode = $1 ORDER BY customer_id")
        .bind(mode.as_str())
        .scalars(conn)
        .await
}

/// Customers with a stored compile after `after` in id order, at most `limit`: one chunk of a
/// catalog recompile.
pub async fn customers_after(
    conn: &mut Conn,
    mode: Mode,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sql::query(
        "SELECT customer_id FROM customer_entitlements WHERE mode = $1 AND customer_id > $2
         ORDER BY customer_id LIMIT $3",
    )
    .bind(mode.as_str())
    .bind(after)
    .bind(limit)
    .scalars(conn)
    .await
}

/// Customers whose compile changes by itself (a meter window ends) at or before `until`,
/// among those on real time or on test clock `clock`.
pub async fn due(
    conn: &mut Conn,
    scope: Scope<'_>,
    until: i64,
    limit: i64,
) -> Result<Vec<DueItem>, sqlx::Error> {
    due_items(
        conn,
        scope,
        "SELECT e.mode, e.customer_id AS id, e.customer_id, e.next_change_at AS due
         FROM customer_entitlements e JOIN customers c ON c.mode = e.mode AND c.customer_id = e.customer_id
         WHERE e.next_change_at IS NOT NULL AND {scope} AND e.next_change_at <= $2
         ORDER BY e.next_change_at, e.customer_id LIMIT $3",
        vec![until.into(), limit.into()],
    )
    .await
}

pub async fn count(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sql::query("SELECT COUNT(*) FROM customer_entitlements")
        .scalar(conn)
        .await
}

/// Every stored compile, for a snapshot: `(mode, customer, entitlements JSON)`, streamed from
/// a read connection.
pub fn stream_all<'c>(
    conn: &'c mut sqlx::AnyConnection,
) -> futures_util::stream::BoxStream<'c, Result<(String, String, String), sqlx::Error>> {
    sqlx::query_as("SELECT mode, customer_id, entitlements FROM customer_entitlements").fetch(conn)
}

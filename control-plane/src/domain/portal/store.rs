//! The `portal_sessions` table: every statement on it.

use tollgate_shared::Mode;

use crate::domain::portal::model::PortalSession;
use crate::platform::db::Uow;
use crate::platform::db::sql;
use crate::platform::db::sql::Conn;
use crate::platform::ids;

/// Stores a session for `customer_id` of `mode`, known by its token's hash; returns it.
pub async fn insert(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    token_hash: &str,
    csrf: &str,
    expires_at: i64,
) -> Result<PortalSession, sqlx::Error> {
    let session = PortalSession {
        id: ids::new("ps"),
        mode,
        customer_id: customer_id.to_owned(),
        csrf: csrf.to_owned(),
        created_at: uow.now(),
        expires_at,
    };
    sql::query(
        "INSERT INTO portal_sessions (id, token_hash, mode, customer_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&session.id)
    .bind(token_hash)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(csrf)
    .bind(session.created_at)
    .bind(expires_at)
    .execute(uow.conn())
    .await?;
    Ok(session)
}

/// The session whose token hashes to `token_hash`, expired or not (the caller says which it
/// may use, so an expired link can be told apart from a wrong one).
pub async fn find(conn: &mut Conn, token_hash: &str) -> Result<Option<PortalSession>, sqlx::Error> {
    let Some(r) = sql::query(
        "SELECT id, mode, customer_id, csrf, created_at, expires_at FROM portal_sessions
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let mode: Mode = r.try_get("mode")?;
    Ok(Some(PortalSession {
        id: r.try_get("id")?,
        mode,
        customer_id: r.try_get("customer_id")?,
        csrf: r.try_get("csrf")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    }))
}

/// Deletes up to `limit` sessions that expired before `before`; returns how many.
pub async fn prune(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM portal_sessions WHERE id IN
           (SELECT id FROM portal_sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await
}

//! The `change_log` and `sync_state` tables: one log row per committed unit of work that changed
//! what edges serve, numbered from one counter row.
//!
//! Versions come from `sync_state.version`, advanced by the writer inside the batch
//! transaction just before it commits. The row stays locked until that commit, so on
//! PostgreSQL two replicas' batches take their numbers one after the other, in commit order, and
//! a batch that rolls back gives its numbers back: versions are gap-free and in commit order on
//! one writer or several.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::sync::{Change, Delta};

/// The channel PostgreSQL replicas listen on for new versions.
pub const CHANNEL: &str = "tollgate_changes";

/// Takes `n` versions; returns the last of them (the first is `last - n + 1`).
pub async fn advance(conn: &mut Conn, n: i64) -> Result<i64, sqlx::Error> {
    sql::query("UPDATE sync_state SET version = version + $1 WHERE id = 1 RETURNING version")
        .bind(n)
        .scalar(conn)
        .await
}

pub async fn insert(
    conn: &mut Conn,
    version: i64,
    now: i64,
    changes: &[Change],
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(changes).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sql::query("INSERT INTO change_log (version, created_at, changes) VALUES ($1, $2, $3)")
        .bind(version)
        .bind(now)
        .bind(json)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts one entry per unit, numbered from `first`, in one statement.
pub async fn insert_many(
    conn: &mut Conn,
    first: i64,
    now: i64,
    units: &[Vec<Change>],
) -> Result<(), sqlx::Error> {
    // Bounded by the writer's batch size, far below either engine's parameter limit.
    for (block, chunk) in units.chunks(256).enumerate() {
        let mut sql = String::from("INSERT INTO change_log (version, created_at, changes) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let p = 3 * i;
            sql.push_str(&format!("(${}, ${}, ${})", p + 1, p + 2, p + 3));
        }
        let mut query = sql::query(sql);
        for (i, changes) in chunk.iter().enumerate() {
            let json =
                serde_json::to_string(changes).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            query = query
                .bind(first + (block * 256 + i) as i64)
                .bind(now)
                .bind(json);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// PostgreSQL: tells every replica's listener (at commit) that `version` exists.
pub async fn notify(conn: &mut Conn, version: i64) -> Result<(), sqlx::Error> {
    sql::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(version.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn latest(conn: &mut Conn) -> Result<u64, sqlx::Error> {
    let v: i64 = sql::query("SELECT version FROM sync_state WHERE id = 1")
        .scalar(conn)
        .await?;
    Ok(v.max(0) as u64)
}

pub async fn oldest(conn: &mut Conn) -> Result<Option<u64>, sqlx::Error> {
    let v: Option<i64> = sql::query("SELECT MIN(version) FROM change_log")
        .scalar(conn)
        .await?;
    Ok(v.map(|v| v.max(0) as u64))
}

/// Deltas after `since`, oldest first, at most `limit`.
pub async fn after(conn: &mut Conn, since: u64, limit: i64) -> Result<Vec<Delta>, sqlx::Error> {
    let rows = sql::query(
        "SELECT version, changes FROM change_log WHERE version > $1 ORDER BY version LIMIT $2",
    )
    .bind(i64::try_from(since).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let version: i64 = row.try_get("version")?;
            let changes: String = row.try_get("changes")?;
            let changes =
                serde_json::from_str(&changes).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(Delta {
                version: version.max(0) as u64,
                changes,
            })
        })
        .collect()
}

/// Deletes entries created before `before`, keeping at least the newest `keep`, at most
/// `limit` rows at a time. Edges further behind than what is left resync with a snapshot.
pub async fn prune(
    conn: &mut Conn,
    before: i64,
    keep: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM change_log WHERE version IN (
           SELECT version FROM change_log WHERE created_at < $1
             AND version <= (SELECT version FROM sync_state WHERE id = 1) - $2
           ORDER BY version LIMIT $3)",
    )
    .bind(before)
    .bind(keep)
    .bind(limit)
    .execute(conn)
    .await
}

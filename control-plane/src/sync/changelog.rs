//! The change log: one row per committed transaction that changed what edges serve.
//! Versions come from `MAX(version) + 1` inside the (serialized) write transaction, so they are
//! gap-free and in commit order.

use sqlx::{Row, SqliteConnection};
use tollgate_shared::sync::{Change, Delta};

use crate::db::WriteTx;

/// Appends `changes` as the next version; the version is also remembered on the transaction
/// so the commit can wake the sync streams.
pub async fn append(tx: &mut WriteTx, now: i64, changes: Vec<Change>) -> Result<u64, sqlx::Error> {
    if changes.is_empty() {
        return Ok(tx.appended.unwrap_or(0));
    }
    let json = serde_json::to_string(&changes).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO change_log (version, created_at, changes)
         VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM change_log), ?, ?) RETURNING version",
    )
    .bind(now)
    .bind(json)
    .fetch_one(tx.conn())
    .await?;
    tx.appended = Some(version as u64);
    Ok(version as u64)
}

pub async fn latest(conn: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let v: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM change_log")
        .fetch_one(conn)
        .await?;
    Ok(v as u64)
}

pub async fn oldest(conn: &mut SqliteConnection) -> Result<Option<u64>, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MIN(version) FROM change_log")
        .fetch_one(conn)
        .await?;
    Ok(v.map(|v| v as u64))
}

/// Deltas after `since`, oldest first, at most `limit`.
pub async fn after(
    conn: &mut SqliteConnection,
    since: u64,
    limit: i64,
) -> Result<Vec<Delta>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT version, changes FROM change_log WHERE version > ? ORDER BY version LIMIT ?",
    )
    .bind(since as i64)
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
                version: version as u64,
                changes,
            })
        })
        .collect()
}

//! The `catalog_recompiles` table: recompiles that catalog edits queued, each with its cursor.

use tollgate_shared::Mode;

use crate::domain::recompiles::model::Recompile;
use crate::platform::db::Uow;
use crate::platform::db::sql::{self, Conn};
use crate::platform::db::uow::CatalogTouch;
use crate::platform::ids;

/// Queues the recompile a catalog edit calls for (in the edit's own transaction, so it cannot
/// be lost). A job for every customer makes the mode's other waiting jobs redundant.
pub async fn enqueue(
    conn: &mut Conn,
    mode: Mode,
    scope: &CatalogTouch,
    now: i64,
) -> Result<(), sqlx::Error> {
    let plans = match scope {
        CatalogTouch::Everyone => {
            sql::query("DELETE FROM catalog_recompiles WHERE mode = $1")
                .bind(mode.as_str())
                .execute(&mut *conn)
                .await?;
            None
        }
        CatalogTouch::Plans(plans) if plans.is_empty() => return Ok(()),
        CatalogTouch::Plans(plans) => Some(serde_json::to_string(plans).unwrap_or_default()),
    };
    sql::query(
        "INSERT INTO catalog_recompiles (id, mode, plans, cursor, created_at) VALUES ($1, $2, $3, '', $4)",
    )
    .bind(ids::new("rc"))
    .bind(mode.as_str())
    .bind(plans)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest recompile no other worker holds, locked for this unit (`SKIP LOCKED` on
/// PostgreSQL; SQLite has one writer).
pub async fn next(uow: &mut Uow) -> Result<Option<Recompile>, sqlx::Error> {
    let lock = match uow.conn().backend() {
        crate::platform::db::Backend::Sqlite => "",
        crate::platform::db::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let row = sql::query(format!(
        "SELECT id, mode, plans, cursor FROM catalog_recompiles ORDER BY created_at, id LIMIT 1{lock}"
    ))
    .fetch_optional(uow.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let plans: Option<String> = row.try_get("plans")?;
    Ok(Some(Recompile {
        id: row.try_get("id")?,
        mode: row.try_get::<Mode>("mode")?,
        plans: plans.map(|p| serde_json::from_str(&p).unwrap_or_default()),
        cursor: row.try_get("cursor")?,
    }))
}

/// Records progress: the chunk up to `cursor` is done.
pub async fn advance(uow: &mut Uow, id: &str, cursor: &str) -> Result<(), sqlx::Error> {
    sql::query("UPDATE catalog_recompiles SET cursor = $1 WHERE id = $2")
        .bind(cursor)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

pub async fn finish(uow: &mut Uow, id: &str) -> Result<(), sqlx::Error> {
    sql::query("DELETE FROM catalog_recompiles WHERE id = $1")
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// Recompiles waiting or part-done (a gauge for operators).
pub async fn pending(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sql::query("SELECT COUNT(*) FROM catalog_recompiles")
        .scalar(conn)
        .await
}

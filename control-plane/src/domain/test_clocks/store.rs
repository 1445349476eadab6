//! The `test_clocks` table: every statement on it.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;

use crate::platform::db::Uow;

pub struct ClockRow {
    pub id: String,
    pub name: Option<String>,
    pub frozen_time: i64,
    pub created_at: i64,
}

pub async fn insert(
    uow: &mut Uow,
    id: &str,
    name: Option<&str>,
    frozen: i64,
) -> Result<(), sqlx::Error> {
    let now = uow.now();
    sql::query(
        "INSERT INTO test_clocks (id, mode, name, frozen_time, created_at) VALUES ($1, 'test', $2, $3, $4)",
    )
    .bind(id)
    .bind(name)
    .bind(frozen)
    .bind(now)
    .execute(uow.conn())
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<ClockRow>, sqlx::Error> {
    sql::query("SELECT id, name, frozen_time, created_at FROM test_clocks WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| {
            Ok(ClockRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                frozen_time: r.try_get("frozen_time")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
}

pub async fn frozen_time(conn: &mut Conn, id: &str) -> Result<Option<i64>, sqlx::Error> {
    sql::query("SELECT frozen_time FROM test_clocks WHERE id = $1")
        .bind(id)
        .scalar_optional(conn)
        .await
}

/// Moves the clock to `to`. Inside a unit, locked (PostgreSQL) so concurrent advances queue.
pub async fn set(uow: &mut Uow, id: &str, to: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE test_clocks SET frozen_time = $1 WHERE id = $2")
        .bind(to)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// The clock's time, locked against concurrent advances until the unit commits.
pub async fn locked_time(uow: &mut Uow, id: &str) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!(
        "SELECT frozen_time FROM test_clocks WHERE id = $1{}",
        uow.backend().for_update()
    );
    sql::query(sql).bind(id).scalar_optional(uow.conn()).await
}

//! The `idempotency_keys` table: claims, stored answers, and pruning.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;

use crate::domain::idempotency::model::IdemClaim;
use crate::platform::http::reply::Reply;

/// A stored answer as the pre-check sees it.
pub enum Stored {
    Answer(Reply),
    Mismatch,
    /// Nothing stored (or only an expired or unfinished claim).
    None,
}

/// Looks up a finished answer without claiming anything (the middleware's pre-check).
pub async fn lookup(conn: &mut Conn, claim: &IdemClaim) -> Result<Stored, sqlx::Error> {
    let row = sql::query(
        "SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(Stored::None);
    };
    if row.try_get::<i64>("created_at")? < claim.not_before {
        return Ok(Stored::None);
    }
    if row.try_get::<String>("request_hash")? != claim.request_hash {
        return Ok(Stored::Mismatch);
    }
    Ok(match row.try_get::<Option<i64>>("status")? {
        Some(status) => Stored::Answer(Reply::replay(
            status as u16,
            row.try_get::<Option<Vec<u8>>>("response")?
                .unwrap_or_default(),
        )),
        None => Stored::None,
    })
}

pub enum Claimed {
    Mine,
    Replay(Reply),
    Mismatch,
}

/// Inside a unit of work: takes the key for this request, or finds the answer already there.
/// On PostgreSQL a concurrent claim of the same key (another replica) waits here until the
/// first commits, and then replays its answer.
pub async fn claim(conn: &mut Conn, claim: &IdemClaim, now: i64) -> Result<Claimed, sqlx::Error> {
    let taken = sql::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, status = NULL,
           response = NULL, created_at = excluded.created_at
         WHERE idempotency_keys.created_at < $5 OR idempotency_keys.status IS NULL",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(now)
    .bind(claim.not_before)
    .execute(&mut *conn)
    .await?;
    if taken == 1 {
        return Ok(Claimed::Mine);
    }
    Ok(match lookup(conn, claim).await? {
        Stored::Answer(reply) => Claimed::Replay(reply),
        Stored::Mismatch => Claimed::Mismatch,
        Stored::None => Claimed::Mine,
    })
}

/// Stores the answer of a unit that claimed the key.
pub async fn complete(
    conn: &mut Conn,
    claim: &IdemClaim,
    reply: &Reply,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE idempotency_keys SET status = $1, response = $2 WHERE scope = $3 AND key = $4",
    )
    .bind(i64::from(reply.status.as_u16()))
    .bind(reply.body_to_store().to_vec())
    .bind(&claim.scope)
    .bind(&claim.key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores an answer without a prior claim (a unit that failed with a 4xx, after its savepoint
/// was rolled back).
pub async fn record(
    conn: &mut Conn,
    claim: &IdemClaim,
    reply: &Reply,
    now: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(i64::from(reply.status.as_u16()))
    .bind(reply.body_to_store().to_vec())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes answers created before `before`, at most `limit` at a time. Returns how many.
pub async fn prune(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM idempotency_keys WHERE (scope, key) IN
           (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await
}

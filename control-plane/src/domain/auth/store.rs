//! The `api_keys` table: every statement on it.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::keys::{hash_hex, hash_key, parse_hash_hex};
use tollgate_shared::sync::{Change, EdgeKey};
use tollgate_shared::{KeyKind, Mode};

use crate::domain::auth::model::FoundKey;
use crate::platform::db::Uow;
use crate::platform::ids;

/// An unrevoked key by the hex SHA-256 of the key.
pub async fn find_by_hash(
    conn: &mut Conn,
    hash_hex: &str,
) -> Result<Option<FoundKey>, sqlx::Error> {
    let row =
        sql::query("SELECT id, kind, mode FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash_hex)
            .fetch_optional(conn)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let Some(kind) = KeyKind::parse(&row.try_get::<String>("kind")?) else {
        return Ok(None);
    };
    Ok(Some(FoundKey {
        id: row.try_get("id")?,
        kind,
        mode: row.try_get::<Option<Mode>>("mode")?,
    }))
}

pub struct NewKey {
    pub id: String,
    pub key: String,
    pub created_at: i64,
}

/// Stores `key` (already generated or supplied) and tells the edges about it.
pub async fn insert(
    uow: &mut Uow,
    kind: KeyKind,
    mode: Option<Mode>,
    key: &str,
    name: Option<&str>,
) -> Result<NewKey, sqlx::Error> {
    let now = uow.now();
    let id = ids::new("key");
    let hash = hash_hex(&hash_key(key));
    let prefix: String = key.chars().take(12).collect();
    sql::query(
        "INSERT INTO api_keys (id, kind, mode, hash, prefix, name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(mode.map(Mode::as_str))
    .bind(&hash)
    .bind(&prefix)
    .bind(name)
    .bind(now)
    .execute(uow.conn())
    .await?;
    if let (Some(mode), KeyKind::Secret | KeyKind::Publishable) = (mode, kind) {
        uow.publish(Change::KeyAdded(EdgeKey { hash, mode, kind }));
    }
    Ok(NewKey {
        id,
        key: key.to_owned(),
        created_at: now,
    })
}

pub async fn hash_exists(conn: &mut Conn, hash_hex: &str) -> Result<bool, sqlx::Error> {
    Ok(sql::query("SELECT 1 FROM api_keys WHERE hash = $1")
        .bind(hash_hex)
        .fetch_optional(conn)
        .await?
        .is_some())
}

pub async fn any_active(
    conn: &mut Conn,
    kind: KeyKind,
    mode: Option<Mode>,
) -> Result<bool, sqlx::Error> {
    Ok(sql::query(
        "SELECT 1 FROM api_keys WHERE kind = $1 AND mode IS NOT DISTINCT FROM $2 AND revoked_at IS NULL",
    )
    .bind(kind.as_str())
    .bind(mode.map(Mode::as_str))
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub kind: String,
    pub mode: Option<String>,
    pub prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub hash: String,
}

fn key_row(r: &sql::Row) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        mode: r.try_get("mode")?,
        prefix: r.try_get("prefix")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        hash: r.try_get("hash")?,
    })
}

/// The keys a caller of `mode` sees: its mode's, plus edge sync keys for live callers.
const VISIBLE: &str = "(mode = $1 OR (mode IS NULL AND $1 = 'live'))";

pub async fn list(
    conn: &mut Conn,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<KeyRow>, i64), sqlx::Error> {
    let count: i64 = sql::query(format!("SELECT COUNT(*) FROM api_keys WHERE {VISIBLE}"))
        .bind(mode.as_str())
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(format!(
        "SELECT id, kind, mode, prefix, name, created_at, revoked_at, hash FROM api_keys WHERE {VISIBLE}
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(mode.as_str())
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(key_row).collect::<Result<_, _>>()?, count))
}

pub async fn get_visible(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sql::query(format!(
        "SELECT id, kind, mode, prefix, name, created_at, revoked_at, hash FROM api_keys WHERE id = $2 AND {VISIBLE}"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| key_row(&r))
    .transpose()
}

/// Revokes a key here and, through the change log, at every edge.
pub async fn revoke(uow: &mut Uow, id: &str, hash: &str) -> Result<(), sqlx::Error> {
    let now = uow.now();
    sql::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(uow.conn())
        .await?;
    uow.publish(Change::KeyRevoked {
        hash: hash.to_owned(),
    });
    Ok(())
}

/// Whether key `id` is still unrevoked (sync streams check their own key).
pub async fn active(conn: &mut Conn, id: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sql::query("SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Every key edges accept (secret and publishable, unrevoked), for a snapshot.
pub async fn edge_keys(conn: &mut Conn) -> Result<Vec<EdgeKey>, sqlx::Error> {
    let rows = sql::query(
        "SELECT kind, mode, hash FROM api_keys WHERE revoked_at IS NULL AND mode IS NOT NULL ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mode: Mode = row.try_get("mode")?;
        let Some(kind) = KeyKind::parse(&row.try_get::<String>("kind")?) else {
            continue;
        };
        let hash: String = row.try_get("hash")?;
        if kind != KeyKind::EdgeSync && parse_hash_hex(&hash).is_some() {
            out.push(EdgeKey { hash, mode, kind });
        }
    }
    Ok(out)
}

/// A value of the `settings` table (the customer-token signing key lives there).
pub async fn setting(conn: &mut Conn, name: &str) -> Result<Option<String>, sqlx::Error> {
    sql::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .scalar_optional(conn)
        .await
}

/// Stores a setting unless it exists; returns the stored value either way.
pub async fn setting_or_insert(
    uow: &mut Uow,
    name: &str,
    value: &str,
) -> Result<String, sqlx::Error> {
    sql::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(uow.conn())
        .await?;
    Ok(setting(uow.conn(), name)
        .await?
        .unwrap_or_else(|| value.to_owned()))
}

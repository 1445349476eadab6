//! The `webhook_endpoints`, `webhook_events` and `webhook_deliveries` tables: every statement
//! on them.

use crate::db::sql::{self, Conn};
use serde_json::Value;
use tollgate_shared::Mode;

use crate::db::{Backend, Uow};
use crate::ids;

/// An enabled endpoint and the event types it wants.
#[derive(Debug, Clone)]
pub struct Listener {
    pub endpoint_id: String,
    pub mode: Mode,
    pub events: Vec<String>,
}

impl Listener {
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }
}

/// Every enabled endpoint of both modes.
pub async fn listeners(conn: &mut Conn) -> Result<Vec<Listener>, sqlx::Error> {
    let rows = sql::query(
        "SELECT id, mode, events FROM webhook_endpoints WHERE disabled_at IS NULL ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Listener {
                endpoint_id: r.try_get("id").ok()?,
                mode: Mode::parse(&r.try_get::<String>("mode").ok()?)?,
                events: serde_json::from_str(&r.try_get::<String>("events").ok()?).ok()?,
            })
        })
        .collect())
}

/// Writes an event and one pending delivery per target endpoint.
pub async fn insert_event(
    conn: &mut Conn,
    id: &str,
    mode: Mode,
    kind: &str,
    payload: &Value,
    at: i64,
    targets: &[String],
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO webhook_events (id, mode, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(mode.as_str())
    .bind(kind)
    .bind(payload.to_string())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    for endpoint in targets {
        sql::query(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, 'pending', 0, $4)",
        )
        .bind(ids::new("whd"))
        .bind(id)
        .bind(endpoint)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An endpoint as stored (without its secret).
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub created_at: i64,
}

pub struct NewEndpoint<'a> {
    pub mode: Mode,
    pub url: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub description: Option<&'a str>,
}

pub async fn insert_endpoint(
    uow: &mut Uow,
    e: NewEndpoint<'_>,
) -> Result<EndpointRow, sqlx::Error> {
    let id = ids::new("we");
    let now = uow.now();
    let events = serde_json::to_string(e.events).unwrap_or_else(|_| "[]".into());
    sql::query(
        "INSERT INTO webhook_endpoints (id, mode, url, events, secret, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(e.mode.as_str())
    .bind(e.url)
    .bind(&events)
    .bind(e.secret)
    .bind(e.description)
    .bind(now)
    .execute(uow.conn())
    .await?;
    uow.endpoints_changed();
    Ok(EndpointRow {
        id,
        url: e.url.to_owned(),
        events: e.events.to_vec(),
        description: e.description.map(str::to_owned),
        created_at: now,
    })
}

fn endpoint_row(r: &sql::Row) -> Result<EndpointRow, sqlx::Error> {
    Ok(EndpointRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        events: serde_json::from_str(&r.try_get::<String>("events")?).unwrap_or_default(),
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn list_endpoints(
    conn: &mut Conn,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EndpointRow>, i64), sqlx::Error> {
    let count: i64 = sql::query(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE mode = $1 AND disabled_at IS NULL",
    )
    .bind(mode.as_str())
    .scalar(&mut *conn)
    .await?;
    let rows = sql::query(
        "SELECT id, url, events, description, created_at FROM webhook_endpoints
         WHERE mode = $1 AND disabled_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(mode.as_str())
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((
        rows.iter().map(endpoint_row).collect::<Result<_, _>>()?,
        count,
    ))
}

/// Enabled endpoints of a mode.
pub async fn count_endpoints(conn: &mut Conn, mode: Mode) -> Result<i64, sqlx::Error> {
    sql::query("SELECT COUNT(*) FROM webhook_endpoints WHERE mode = $1 AND disabled_at IS NULL")
        .bind(mode.as_str())
        .scalar(conn)
        .await
}

pub async fn endpoint_exists(conn: &mut Conn, mode: Mode, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sql::query(
        "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND mode = $2 AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(mode.as_str())
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Disables an endpoint and drops its pending deliveries. Returns whether it existed.
pub async fn disable_endpoint(uow: &mut Uow, mode: Mode, id: &str) -> Result<bool, sqlx::Error> {
    let now = uow.now();
    let done = sql::query(
        "UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND mode = $3 AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(mode.as_str())
    .execute(uow.conn())
    .await?;
    if done == 0 {
        return Ok(false);
    }
    sql::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', claimed_until = NULL
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(uow.conn())
    .await?;
    uow.endpoints_changed();
    Ok(true)
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

pub async fn deliveries(
    conn: &mut Conn,
    endpoint_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeliveryRow>, i64), sqlx::Error> {
    let count: i64 = sql::query("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(endpoint_id)
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(
        "SELECT d.id, d.event_id, ev.type, d.status, d.attempts, d.last_status_code, d.last_error, d.next_attempt_at,
                d.delivered_at, d.created_at
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(endpoint_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(DeliveryRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("type")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                last_status_code: r.try_get("last_status_code")?,
                last_error: r.try_get("last_error")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                delivered_at: r.try_get("delivered_at")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((items, count))
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub event_id: String,
    pub url: String,
    pub secret: String,
    pub payload: String,
    pub attempts: i64,
}

/// Claims up to `limit` due deliveries for `lease` seconds: no other worker (on any replica)
/// takes them until the lease runs out, and a worker that dies holding them only delays them.
pub async fn claim_due(
    uow: &mut Uow,
    now: i64,
    lease: i64,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let lock = match uow.conn().backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
    };
    let rows = sql::query(format!(
        "SELECT d.id, d.event_id, d.attempts, e.url, e.secret, ev.payload
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND e.disabled_at IS NULL
           AND (d.claimed_until IS NULL OR d.claimed_until < $1)
         ORDER BY d.next_attempt_at, d.id LIMIT $2{lock}"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(uow.conn())
    .await?;
    let claimed = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    for c in &claimed {
        sql::query("UPDATE webhook_deliveries SET claimed_until = $1 WHERE id = $2")
            .bind(now + lease)
            .bind(&c.id)
            .execute(uow.conn())
            .await?;
    }
    Ok(claimed)
}

/// What one attempt came to.
pub struct Attempt<'a> {
    pub id: &'a str,
    pub attempts: i64,
    /// `succeeded`, `pending` (retry at `next_attempt_at`) or `failed`.
    pub status: &'a str,
    pub code: Option<i64>,
    pub error: Option<&'a str>,
    pub next_attempt_at: i64,
    pub at: i64,
}

pub async fn record_attempt(uow: &mut Uow, a: Attempt<'_>) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status_code = $3, last_error = $4,
           next_attempt_at = $5, delivered_at = CASE WHEN $1 = 'succeeded' THEN $6 ELSE delivered_at END,
           claimed_until = NULL
         WHERE id = $7 AND status = 'pending'",
    )
    .bind(a.status)
    .bind(a.attempts)
    .bind(a.code)
    .bind(a.error)
    .bind(a.next_attempt_at)
    .bind(a.at)
    .bind(a.id)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// Deliveries waiting to be sent (a gauge for operators).
pub async fn backlog(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sql::query("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        .scalar(conn)
        .await
}

/// Deletes finished deliveries created before `before`, then events left without deliveries,
/// at most `limit` of each. Returns how many rows went.
pub async fn prune(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    let deliveries = sql::query(
        "DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    let events = sql::query(
        "DELETE FROM webhook_events WHERE id IN (
           SELECT ev.id FROM webhook_events ev WHERE ev.created_at < $1
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id) LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(deliveries + events)
}

//! The `webhook_endpoints`, `webhook_events` and `webhook_deliveries` tables: every statement
//! on them.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use serde_json::Value;
use tollgate_shared::Mode;

use crate::domain::webhooks::model::Scheme;
use crate::platform::db::{Backend, Uow};
use crate::platform::events::EventKind;
use crate::platform::ids;

/// An enabled endpoint and the event types it wants.
#[derive(Debug, Clone)]
pub struct Listener {
    pub endpoint_id: String,
    pub mode: Mode,
    pub events: Vec<String>,
}

impl Listener {
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind.as_str())
    }
}

/// Every enabled endpoint of both modes.
pub async fn listeners(conn: &mut Conn) -> Result<Vec<Listener>, sqlx::Error> {
    let rows = sql::query(
        "SELECT id, mode, events FROM webhook_endpoints WHERE disabled_at IS NULL ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let events: String = r.try_get("events")?;
            Ok(Listener {
                endpoint_id: r.try_get("id")?,
                mode: r.try_get("mode")?,
                events: serde_json::from_str(&events)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        })
        .collect()
}

/// Writes an event and one pending delivery per target endpoint.
pub async fn insert_event(
    conn: &mut Conn,
    id: &str,
    mode: Mode,
    kind: EventKind,
    payload: &Value,
    at: i64,
    targets: &[String],
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO webhook_events (id, mode, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(mode.as_str())
    .bind(kind.as_str())
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
    /// Failed attempts in a row (reset by a success).
    pub consecutive_failures: i64,
    /// When the circuit breaker stopped deliveries to it, if it has.
    pub circuit_opened_at: Option<i64>,
    pub scheme: Scheme,
}

pub struct NewEndpoint<'a> {
    pub mode: Mode,
    pub url: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub description: Option<&'a str>,
    pub scheme: Scheme,
}

pub async fn insert_endpoint(
    uow: &mut Uow,
    e: NewEndpoint<'_>,
) -> Result<EndpointRow, sqlx::Error> {
    let id = ids::new("we");
    let now = uow.now();
    let events = serde_json::to_string(e.events).unwrap_or_else(|_| "[]".into());
    sql::query(
        "INSERT INTO webhook_endpoints (id, mode, url, events, secret, description, created_at, signature_scheme)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(e.mode.as_str())
    .bind(e.url)
    .bind(&events)
    .bind(e.secret)
    .bind(e.description)
    .bind(now)
    .bind(e.scheme.as_str())
    .execute(uow.conn())
    .await?;
    uow.endpoints_changed();
    Ok(EndpointRow {
        id,
        url: e.url.to_owned(),
        events: e.events.to_vec(),
        description: e.description.map(str::to_owned),
        created_at: now,
        consecutive_failures: 0,
        circuit_opened_at: None,
        scheme: e.scheme,
    })
}

const ENDPOINT_COLUMNS: &str =
    "id, url, events, description, created_at, consecutive_failures, circuit_opened_at,
    signature_scheme";

fn endpoint_row(r: &sql::Row) -> Result<EndpointRow, sqlx::Error> {
    Ok(EndpointRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        events: serde_json::from_str(&r.try_get::<String>("events")?).unwrap_or_default(),
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        circuit_opened_at: r.try_get("circuit_opened_at")?,
        scheme: {
            let scheme: String = r.try_get("signature_scheme")?;
            Scheme::parse(&scheme).ok_or_else(|| {
                sqlx::Error::Decode(format!("'{scheme}' is not a signature scheme").into())
            })?
        },
    })
}

/// One enabled endpoint of a mode.
pub async fn endpoint(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    sql::query(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE id = $1 AND mode = $2 AND disabled_at IS NULL"
    ))
    .bind(id)
    .bind(mode.as_str())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(endpoint_row)
    .transpose()
}

/// Closes an endpoint's circuit (deliveries resume, the failure count starts again). Returns the
/// endpoint, or `None` if there is no such enabled endpoint.
pub async fn close_circuit(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    let done = sql::query(
        "UPDATE webhook_endpoints SET circuit_opened_at = NULL, consecutive_failures = 0
         WHERE id = $1 AND mode = $2 AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(mode.as_str())
    .execute(uow.conn())
    .await?;
    if done == 0 {
        return Ok(None);
    }
    endpoint(uow.conn(), mode, id).await
}

/// Counts an attempt's outcome against its endpoint: a success resets the count of failures in a
/// row; a failure adds one and opens the circuit at `threshold`. Returns whether this attempt
/// opened it.
pub async fn endpoint_outcome(
    uow: &mut Uow,
    endpoint_id: &str,
    ok: bool,
    threshold: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    if ok {
        sql::query(
            "UPDATE webhook_endpoints SET consecutive_failures = 0
             WHERE id = $1 AND consecutive_failures <> 0",
        )
        .bind(endpoint_id)
        .execute(uow.conn())
        .await?;
        return Ok(false);
    }
    let opened = sql::query(
        "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
           circuit_opened_at = CASE WHEN circuit_opened_at IS NULL AND consecutive_failures + 1 >= $2
                                    THEN $3 ELSE circuit_opened_at END
         WHERE id = $1
         RETURNING consecutive_failures",
    )
    .bind(endpoint_id)
    .bind(threshold)
    .bind(now)
    .scalar_optional::<i64>(uow.conn())
    .await?;
    Ok(opened == Some(threshold))
}

/// Endpoints whose circuit is open (a gauge for operators).
pub async fn open_circuits(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE disabled_at IS NULL AND circuit_opened_at IS NOT NULL",
    )
    .scalar(conn)
    .await
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
    let rows = sql::query(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE mode = $1 AND disabled_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
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
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub scheme: Scheme,
    pub payload: String,
    pub attempts: i64,
}

/// What one claim may take.
pub struct ClaimLimits<'a> {
    pub now: i64,
    /// Seconds the claim lasts.
    pub lease: i64,
    /// Deliveries in all.
    pub limit: i64,
    /// Deliveries per endpoint.
    pub per_endpoint: i64,
    /// Endpoints to leave out (their in-flight slots are taken).
    pub skip_endpoints: &'a [String],
    /// When set, only these endpoints (the ones with some slots free, claimed up to what is
    /// free).
    pub only_endpoints: Option<&'a [String]>,
}

/// Claims due deliveries for `lease` seconds, taking the endpoints round-robin (each endpoint's
/// oldest first, at most `per_endpoint` each): no other worker on any replica takes them until
/// the lease runs out, and a worker that dies holding them only delays them. Endpoints whose
/// circuit is open are skipped.
pub async fn claim_due(uow: &mut Uow, c: ClaimLimits<'_>) -> Result<Vec<Claimed>, sqlx::Error> {
    let lock = match uow.conn().backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
    };
    let mut next = 4;
    let mut marks = |n: usize| -> Vec<String> {
        let m = (next..next + n).map(|i| format!("${i}")).collect();
        next += n;
        m
    };
    let mut skip = if c.skip_endpoints.is_empty() {
        String::new()
    } else {
        format!(
            " AND d2.endpoint_id NOT IN ({})",
            marks(c.skip_endpoints.len()).join(", ")
        )
    };
    if let Some(only) = c.only_endpoints {
        if only.is_empty() {
            return Ok(Vec::new());
        }
        skip.push_str(&format!(
            " AND d2.endpoint_id IN ({})",
            marks(only.len()).join(", ")
        ));
    }
    // The claim conditions are repeated on `d` outside the ranking: PostgreSQL re-checks those
    // (and only those) on a row another replica changed after this statement's snapshot.
    let mut query = sql::query(format!(
        "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, e.url, e.secret, e.signature_scheme, ev.payload
         FROM (SELECT d2.id,
                      ROW_NUMBER() OVER (PARTITION BY d2.endpoint_id ORDER BY d2.next_attempt_at, d2.id) AS turn
               FROM webhook_deliveries d2
               JOIN webhook_endpoints e2 ON e2.id = d2.endpoint_id
               WHERE d2.status = 'pending' AND d2.next_attempt_at <= $1
                 AND e2.disabled_at IS NULL AND e2.circuit_opened_at IS NULL
                 AND (d2.claimed_until IS NULL OR d2.claimed_until < $1){skip}) ranked
         JOIN webhook_deliveries d ON d.id = ranked.id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN webhook_events ev ON ev.id = d.event_id
         WHERE ranked.turn <= $3 AND d.status = 'pending'
           AND (d.claimed_until IS NULL OR d.claimed_until < $1)
         ORDER BY ranked.turn, d.next_attempt_at, d.id LIMIT $2{lock}"
    ))
    .bind(c.now)
    .bind(c.limit)
    .bind(c.per_endpoint);
    for id in c.skip_endpoints {
        query = query.bind(id.as_str());
    }
    for id in c.only_endpoints.unwrap_or_default() {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(uow.conn()).await?;
    let claimed = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                endpoint_id: r.try_get("endpoint_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                scheme: Scheme::parse(&r.try_get::<String>("signature_scheme")?)
                    .unwrap_or_default(),
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    for claim in &claimed {
        sql::query("UPDATE webhook_deliveries SET claimed_until = $1 WHERE id = $2")
            .bind(c.now + c.lease)
            .bind(&claim.id)
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

/// A delivery still pending this long after its event (an endpoint whose circuit stayed open)
/// is marked failed, so the queue is bounded in time (Stripe retries for three days).
pub const PENDING_MAX_AGE_SECS: i64 = 3 * 86_400;

/// Marks deliveries pending since before `before` failed (`expired`), at most `limit`.
pub async fn expire_pending(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'expired', claimed_until = NULL
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND created_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await
}

/// Deletes finished deliveries created before `before`, then events left without deliveries,
/// then deleted endpoints left without deliveries, at most `limit` of each. Returns how many
/// rows went.
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
    .execute(&mut *conn)
    .await?;
    let endpoints = sql::query(
        "DELETE FROM webhook_endpoints WHERE id IN (
           SELECT e.id FROM webhook_endpoints e WHERE e.disabled_at IS NOT NULL AND e.disabled_at < $1
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id) LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(deliveries + events + endpoints)
}

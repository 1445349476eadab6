//! The `payment_intents` table: every statement on it.

use tollgate_shared::Mode;

use crate::domain::payments::model::{Intent, IntentStatus, Purpose};
use crate::platform::db::sql;
use crate::platform::db::sql::{Conn, FromRow, Row};
use crate::platform::db::{Backend, Uow};
use crate::platform::money::Currency;

const COLUMNS: &str = "id, mode, customer_id, invoice_id, subscription_id, amount_minor, currency, purpose,
    status, processor, payment_method, processor_ref, attempts, last_error, decline_code, created_at,
    updated_at, expires_at";

impl FromRow for Intent {
    fn from_row(r: &Row) -> Result<Self, sqlx::Error> {
        let purpose: String = r.try_get("purpose")?;
        let status: String = r.try_get("status")?;
        Ok(Intent {
            id: r.try_get("id")?,
            mode: r.try_get::<Mode>("mode")?,
            customer_id: r.try_get("customer_id")?,
            invoice_id: r.try_get("invoice_id")?,
            subscription_id: r.try_get("subscription_id")?,
            amount_minor: r.try_get("amount_minor")?,
            currency: r.try_get::<Currency>("currency")?,
            purpose: serde_json::from_str(&purpose)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            status: IntentStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown intent status '{status}'").into())
            })?,
            processor: r.try_get("processor")?,
            payment_method: r.try_get("payment_method")?,
            processor_ref: r.try_get("processor_ref")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            decline_code: r.try_get("decline_code")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    }
}

/// What a unit of work asks to be charged.
pub struct NewIntent<'a> {
    pub id: &'a str,
    pub mode: Mode,
    pub customer_id: &'a str,
    pub invoice_id: &'a str,
    pub subscription_id: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: Currency,
    pub purpose: &'a Purpose,
    pub processor: &'a str,
    pub payment_method: Option<&'a str>,
    pub created_at: i64,
}

pub async fn insert(uow: &mut Uow, i: NewIntent<'_>) -> Result<(), sqlx::Error> {
    let purpose = serde_json::to_string(i.purpose).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sql::query(
        "INSERT INTO payment_intents (id, mode, customer_id, invoice_id, subscription_id, amount_minor, currency,
           purpose, status, processor, payment_method, attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'processing', $9, $10, 0, $11, $11)",
    )
    .bind(i.id)
    .bind(i.mode.as_str())
    .bind(i.customer_id)
    .bind(i.invoice_id)
    .bind(i.subscription_id)
    .bind(i.amount_minor)
    .bind(i.currency)
    .bind(purpose)
    .bind(i.processor)
    .bind(i.payment_method)
    .bind(i.created_at)
    .execute(uow.conn())
    .await?;
    uow.payment_pending(i.id);
    Ok(())
}

pub async fn get(conn: &mut Conn, mode: Mode, id: &str) -> Result<Option<Intent>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// One intent, whatever its mode (the hosted authentication page and the worker find it by
/// id alone; the id is unguessable).
pub async fn find(conn: &mut Conn, id: &str) -> Result<Option<Intent>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// A customer's intents, newest first: the first `limit` and how many there are.
pub async fn list_for_customer(
    conn: &mut Conn,
    mode: Mode,
    customer_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Intent>, i64), sqlx::Error> {
    let filter = "mode = $1 AND ($2 IS NULL OR customer_id = $2)";
    let count: i64 = sql::query(format!(
        "SELECT COUNT(*) FROM payment_intents WHERE {filter}"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .scalar(&mut *conn)
    .await?;
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE {filter}
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(limit)
    .bind(offset)
    .fetch_all_as(conn)
    .await?;
    Ok((rows, count))
}

/// The newest intent that pays for subscription `id`, if any.
pub async fn latest_for_subscription(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE mode = $1 AND subscription_id = $2
         ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// The open intent (processing, or waiting for the customer's authentication) that pays for a
/// subscription of `group`, if any.
pub async fn open_in_group(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    let columns = COLUMNS
        .split(',')
        .map(|c| format!("p.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    sql::query(format!(
        "SELECT {columns} FROM payment_intents p
         JOIN subscriptions s ON s.mode = p.mode AND s.id = p.subscription_id
         WHERE p.mode = $1 AND p.customer_id = $2 AND s.grp = $3
           AND p.status IN ('processing', 'requires_action')
         ORDER BY p.created_at DESC, p.id DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(group)
    .fetch_optional_as(conn)
    .await
}

/// Whether a charge for subscription `id` is with the payments worker: its next billing step
/// waits until it settles.
pub async fn charging(conn: &mut Conn, mode: Mode, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sql::query(
        "SELECT COUNT(*) FROM payment_intents WHERE mode = $1 AND subscription_id = $2
           AND status = 'processing'",
    )
    .bind(mode.as_str())
    .bind(id)
    .scalar(conn)
    .await?;
    Ok(n > 0)
}

/// Whether any charge of a customer is with the payments worker.
pub async fn customer_charging(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sql::query(
        "SELECT COUNT(*) FROM payment_intents WHERE mode = $1 AND customer_id = $2
           AND status = 'processing'",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .scalar(conn)
    .await?;
    Ok(n > 0)
}

/// How many intents of customers living on test clock `clock` the worker has yet to settle.
pub async fn processing_on_clock(conn: &mut Conn, clock: &str) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT COUNT(*) FROM payment_intents p
         JOIN customers c ON c.mode = p.mode AND c.customer_id = p.customer_id
         WHERE c.test_clock = $1 AND p.status = 'processing'",
    )
    .bind(clock)
    .scalar(conn)
    .await
}

/// Claims up to `limit` intents waiting for the processor whose lease (if any) has run out,
/// for `lease` seconds from `now`, and counts the attempt. On PostgreSQL the rows are taken
/// `FOR UPDATE SKIP LOCKED`, so replicas claiming at once never take the same one.
pub async fn claim(
    uow: &mut Uow,
    now: i64,
    lease: i64,
    limit: i64,
) -> Result<Vec<Intent>, sqlx::Error> {
    let lock = match uow.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let ids: Vec<String> = sql::query(format!(
        "SELECT id FROM payment_intents WHERE status = 'processing'
           AND (claimed_until IS NULL OR claimed_until < $1)
         ORDER BY created_at, id LIMIT $2{lock}"
    ))
    .bind(now)
    .bind(limit)
    .scalars(uow.conn())
    .await?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        sql::query(
            "UPDATE payment_intents SET claimed_until = $1, attempts = attempts + 1 WHERE id = $2",
        )
        .bind(now + lease)
        .bind(&id)
        .execute(uow.conn())
        .await?;
        if let Some(i) = find(uow.conn(), &id).await? {
            claimed.push(i);
        }
    }
    Ok(claimed)
}

/// Intents waiting for the customer's authentication whose time is up.
pub async fn expired_actions(
    conn: &mut Conn,
    now: i64,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    // `expires_at` is in the customer's time: a test clock's, if they live on one.
    sql::query(
        "SELECT p.id, p.mode FROM payment_intents p
         JOIN customers c ON c.mode = p.mode AND c.customer_id = p.customer_id
         LEFT JOIN test_clocks t ON t.id = c.test_clock
         WHERE p.status = 'requires_action' AND p.expires_at < COALESCE(t.frozen_time, $1)
         ORDER BY p.expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all_as(conn)
    .await
}

/// Records where an intent went. `updated_at` is in the customer's time.
pub async fn set_status(
    uow: &mut Uow,
    id: &str,
    status: IntentStatus,
    change: StatusChange<'_>,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE payment_intents SET status = $1, processor_ref = COALESCE($2, processor_ref),
           last_error = $3, decline_code = $4, expires_at = COALESCE($5, expires_at),
           updated_at = $6, claimed_until = NULL
         WHERE id = $7",
    )
    .bind(status.as_str())
    .bind(change.reference)
    .bind(change.error)
    .bind(change.decline_code)
    .bind(change.expires_at)
    .bind(change.at)
    .bind(id)
    .execute(uow.conn())
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
pub struct StatusChange<'a> {
    pub reference: Option<&'a str>,
    pub error: Option<&'a str>,
    pub decline_code: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub at: i64,
}

/// Puts an intent back for the worker (a confirmed authentication is charged again).
pub async fn requeue(uow: &mut Uow, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE payment_intents SET status = 'processing', claimed_until = NULL, updated_at = $1
         WHERE id = $2 AND status = 'requires_action'",
    )
    .bind(at)
    .bind(id)
    .execute(uow.conn())
    .await?;
    uow.payment_pending(id);
    Ok(())
}

/// Records a processor's event id; `false` when it was recorded before (a redelivery).
pub async fn record_event(
    uow: &mut Uow,
    id: &str,
    mode: Mode,
    kind: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sql::query(
        "INSERT INTO processor_events (id, mode, kind, received_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(mode.as_str())
    .bind(kind)
    .bind(at)
    .execute(uow.conn())
    .await?;
    Ok(inserted > 0)
}

/// Forgets up to `limit` processor events received before `before`; answers how many.
pub async fn prune_events(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM processor_events WHERE id IN
           (SELECT id FROM processor_events WHERE received_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await
}

/// The intent whose processor reference is `reference`.
pub async fn by_reference(
    conn: &mut Conn,
    mode: Mode,
    reference: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE mode = $1 AND processor_ref = $2
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(reference)
    .fetch_optional_as(conn)
    .await
}

/// The payment intent that paid invoice `id`, if one did.
pub async fn paid_invoice(
    conn: &mut Conn,
    mode: Mode,
    invoice_id: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM payment_intents WHERE mode = $1 AND invoice_id = $2
           AND status = 'succeeded' ORDER BY updated_at DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(invoice_id)
    .fetch_optional_as(conn)
    .await
}

//! The `refunds` table: every statement on it.

use tollgate_shared::Mode;

use crate::domain::refunds::model::Refund;
use crate::platform::db::Uow;
use crate::platform::db::sql;
use crate::platform::db::sql::Conn;

const COLUMNS: &str =
    "id, mode, customer_id, invoice_id, credit_note_id, amount_minor, currency, reason,
    internal_note, status, created_at, credit_minor, intent_id, processor_ref, failure_reason";

pub async fn insert(uow: &mut Uow, r: &Refund) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO refunds (id, mode, customer_id, invoice_id, credit_note_id, amount_minor, currency, reason,
           internal_note, status, created_at, credit_minor, intent_id, processor_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&r.id)
    .bind(r.mode.as_str())
    .bind(&r.customer_id)
    .bind(&r.invoice_id)
    .bind(&r.credit_note_id)
    .bind(r.amount_minor)
    .bind(r.currency)
    .bind(&r.reason)
    .bind(&r.internal_note)
    .bind(&r.status)
    .bind(r.created_at)
    .bind(r.credit_minor)
    .bind(&r.intent_id)
    .bind(&r.processor_ref)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// What has been refunded of an invoice so far, in minor units: `(to the card, to credit)`.
pub async fn refunded(
    conn: &mut Conn,
    mode: Mode,
    invoice_id: &str,
) -> Result<(i64, i64), sqlx::Error> {
    sql::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT), CAST(COALESCE(SUM(credit_minor), 0) AS BIGINT)
         FROM refunds WHERE mode = $1 AND invoice_id = $2 AND status <> 'FAILED'",
    )
    .bind(mode.as_str())
    .bind(invoice_id)
    .fetch_optional_as(conn)
    .await
    .map(Option::unwrap_or_default)
}

pub async fn get(conn: &mut Conn, mode: Mode, id: &str) -> Result<Option<Refund>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM refunds WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// Filters of the refunds list (and of refunds in the transactions list).
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    /// Matches the refund's id, its invoice or its customer exactly.
    pub search: Option<&'a str>,
    pub status: Option<&'a str>,
    /// `[from, to)` on the creation time.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Refunds newest first: the first `limit` after `offset`, and how many match in all.
pub async fn list(
    conn: &mut Conn,
    mode: Mode,
    f: Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Refund>, i64), sqlx::Error> {
    let filter = "mode = $1 AND ($2 IS NULL OR id = $2 OR invoice_id = $2 OR customer_id = $2)
        AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5)";
    let count: i64 = sql::query(format!("SELECT COUNT(*) FROM refunds WHERE {filter}"))
        .bind(mode.as_str())
        .bind(f.search)
        .bind(f.status)
        .bind(f.from)
        .bind(f.to)
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM refunds WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(mode.as_str())
    .bind(f.search)
    .bind(f.status)
    .bind(f.from)
    .bind(f.to)
    .bind(limit)
    .bind(offset)
    .fetch_all_as(conn)
    .await?;
    Ok((rows, count))
}

/// A refund the payments worker must ask the processor for.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub mode: Mode,
    pub amount_minor: i64,
    /// The processor's id for the charge being refunded.
    pub charge_ref: String,
}

/// Claims up to `limit` `PENDING` refunds whose lease (if any) has run out, for `lease`
/// seconds from `now` (on PostgreSQL `FOR UPDATE SKIP LOCKED`).
pub async fn claim_pending(
    uow: &mut Uow,
    now: i64,
    lease: i64,
    limit: i64,
) -> Result<Vec<Pending>, sqlx::Error> {
    let lock = match uow.backend() {
        crate::platform::db::Backend::Postgres => " FOR UPDATE OF r SKIP LOCKED",
        crate::platform::db::Backend::Sqlite => "",
    };
    let rows: Vec<(String, String, i64, String)> = sql::query(format!(
        "SELECT r.id, r.mode, r.amount_minor, p.processor_ref FROM refunds r
         JOIN payment_intents p ON p.id = r.intent_id
         WHERE r.status = 'PENDING' AND (r.claimed_until IS NULL OR r.claimed_until < $1)
           AND p.processor_ref IS NOT NULL
         ORDER BY r.created_at, r.id LIMIT $2{lock}"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all_as(uow.conn())
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (id, mode, amount_minor, charge_ref) in rows {
        sql::query("UPDATE refunds SET claimed_until = $1 WHERE id = $2")
            .bind(now + lease)
            .bind(&id)
            .execute(uow.conn())
            .await?;
        if let Some(mode) = Mode::parse(&mode) {
            claimed.push(Pending {
                id,
                mode,
                amount_minor,
                charge_ref,
            });
        }
    }
    Ok(claimed)
}

/// Records what the processor did with a pending refund: made it (`Ok(reference)`) or refused
/// it (`Err(reason)`). A refund no longer pending is left alone.
pub async fn settle(
    uow: &mut Uow,
    id: &str,
    result: Result<Option<&str>, &str>,
) -> Result<bool, sqlx::Error> {
    let (status, reference, reason) = match result {
        Ok(reference) => ("SUCCEEDED", reference, None),
        Err(reason) => ("FAILED", None, Some(reason)),
    };
    let changed = sql::query(
        "UPDATE refunds SET status = $1, processor_ref = $2, failure_reason = $3, claimed_until = NULL
         WHERE id = $4 AND status = 'PENDING'",
    )
    .bind(status)
    .bind(reference)
    .bind(reason)
    .bind(id)
    .execute(uow.conn())
    .await?;
    Ok(changed > 0)
}

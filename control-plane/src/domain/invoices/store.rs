//! The `invoices` and `invoice_lines` tables: every statement on them.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::Mode;

use crate::domain::invoices::model::{Draft, InvoiceView, Line, LineView};
use crate::platform::clock::rfc3339;
use crate::platform::db::Uow;
use crate::platform::money::Currency;
use crate::platform::money::format_amount;

pub async fn insert_line(
    uow: &mut Uow,
    draft: &Draft<'_>,
    invoice: Option<&str>,
    line: &Line,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO invoice_lines (invoice_id, mode, subscription_id, description, amount_minor, currency, period_start,
           period_end, proration, plan_identifier) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(invoice)
    .bind(draft.mode.as_str())
    .bind(draft.subscription_id)
    .bind(&line.description)
    .bind(line.amount_minor)
    .bind(draft.currency)
    .bind(line.period_start)
    .bind(line.period_end)
    .bind(i64::from(line.proration))
    .bind(&line.plan)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// Moves a subscription's pending lines (`PRORATE_NEXT_INVOICE`) onto `invoice`.
pub async fn claim_pending_lines(
    uow: &mut Uow,
    mode: Mode,
    subscription_id: &str,
    invoice: &str,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE invoice_lines SET invoice_id = $1 WHERE subscription_id = $2 AND invoice_id IS NULL AND mode = $3",
    )
    .bind(invoice)
    .bind(subscription_id)
    .bind(mode.as_str())
    .execute(uow.conn())
    .await?;
    Ok(())
}

pub async fn pending_line_count(
    conn: &mut Conn,
    mode: Mode,
    subscription_id: &str,
) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT COUNT(*) FROM invoice_lines WHERE subscription_id = $1 AND invoice_id IS NULL AND mode = $2",
    )
    .bind(subscription_id)
    .bind(mode.as_str())
    .scalar(conn)
    .await
}

/// A subscription's pending lines (`PRORATE_NEXT_INVOICE`), in the order an invoice claims them.
pub async fn pending_lines(
    conn: &mut Conn,
    mode: Mode,
    subscription_id: &str,
) -> Result<Vec<Line>, sqlx::Error> {
    sql::query(
        "SELECT description, amount_minor, period_start, period_end, proration, plan_identifier
         FROM invoice_lines WHERE subscription_id = $1 AND invoice_id IS NULL AND mode = $2 ORDER BY id",
    )
    .bind(subscription_id)
    .bind(mode.as_str())
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|l| {
        Ok(Line {
            description: l.try_get("description")?,
            amount_minor: l.try_get("amount_minor")?,
            period_start: l.try_get("period_start")?,
            period_end: l.try_get("period_end")?,
            proration: l.try_get::<i64>("proration")? != 0,
            plan: l.try_get("plan_identifier")?,
        })
    })
    .collect()
}

pub async fn lines_total(conn: &mut Conn, invoice: &str) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM invoice_lines WHERE invoice_id = $1",
    )
    .bind(invoice)
    .scalar(conn)
    .await
}

pub struct NewInvoice<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub total: i64,
    /// What the customer's credit balance paid of `total`.
    pub credit_applied: i64,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

pub async fn insert(
    uow: &mut Uow,
    draft: &Draft<'_>,
    inv: NewInvoice<'_>,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO invoices (id, mode, customer_id, subscription_id, status, currency, total_minor, reason, created_at, paid_at, credit_applied_minor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(inv.id)
    .bind(draft.mode.as_str())
    .bind(draft.customer_id)
    .bind(draft.subscription_id)
    .bind(inv.status)
    .bind(draft.currency)
    .bind(inv.total)
    .bind(draft.reason.as_str())
    .bind(inv.created_at)
    .bind(inv.paid_at)
    .bind(inv.credit_applied)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// An invoice as a retry sees it.
#[derive(Debug, Clone)]
pub struct Due {
    pub customer_id: String,
    pub currency: Currency,
    pub total: i64,
    pub credit_applied: i64,
    pub status: String,
}

impl sql::FromRow for Due {
    fn from_row(r: &sql::Row) -> Result<Self, sqlx::Error> {
        Ok(Due {
            customer_id: r.try_get("customer_id")?,
            currency: r.try_get("currency")?,
            total: r.try_get("total_minor")?,
            credit_applied: r.try_get("credit_applied_minor")?,
            status: r.try_get("status")?,
        })
    }
}

/// What is due on an invoice, and what credit already paid of it.
pub async fn due(conn: &mut Conn, mode: Mode, id: &str) -> Result<Option<Due>, sqlx::Error> {
    sql::query(
        "SELECT customer_id, currency, total_minor, credit_applied_minor, status FROM invoices
         WHERE mode = $1 AND id = $2",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// Marks an invoice paid, `credit_applied` of it from the customer's credit balance.
pub async fn mark_paid(
    uow: &mut Uow,
    id: &str,
    credit_applied: i64,
    at: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE invoices SET status = 'paid', paid_at = $1, credit_applied_minor = $2 WHERE id = $3",
    )
    .bind(at)
    .bind(credit_applied)
    .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// What the customer's credit balance pays of an invoice.
pub async fn set_credit_applied(uow: &mut Uow, id: &str, credit: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE invoices SET credit_applied_minor = $1 WHERE id = $2")
        .bind(credit)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// The card holder disputed the charge that paid this invoice.
pub async fn mark_disputed(uow: &mut Uow, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE invoices SET disputed_at = COALESCE(disputed_at, $1) WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

pub async fn set_status(uow: &mut Uow, id: &str, status: &str) -> Result<(), sqlx::Error> {
    sql::query("UPDATE invoices SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

pub async fn view(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<InvoiceView>, sqlx::Error> {
    let Some(r) = sql::query(
        "SELECT id, customer_id, subscription_id, status, currency, total_minor, reason, created_at, paid_at, disputed_at
         FROM invoices WHERE mode = $1 AND id = $2",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let currency: Currency = r.try_get("currency")?;
    let lines = sql::query(
        "SELECT description, amount_minor, period_start, period_end, proration, plan_identifier
         FROM invoice_lines WHERE invoice_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|l| {
        Ok(LineView {
            description: l.try_get("description")?,
            amount: format_amount(l.try_get("amount_minor")?, currency),
            period_start: l.try_get::<Option<i64>>("period_start")?.map(rfc3339),
            period_end: l.try_get::<Option<i64>>("period_end")?.map(rfc3339),
            proration: l.try_get::<i64>("proration")? != 0,
            plan_identifier: l.try_get("plan_identifier")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(InvoiceView {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        subscription_id: r.try_get("subscription_id")?,
        status: r.try_get("status")?,
        total: format_amount(r.try_get("total_minor")?, currency),
        currency,
        reason: r.try_get("reason")?,
        created_at: rfc3339(r.try_get("created_at")?),
        paid_at: r.try_get::<Option<i64>>("paid_at")?.map(rfc3339),
        disputed_at: r.try_get::<Option<i64>>("disputed_at")?.map(rfc3339),
        lines,
    }))
}

/// Ids of a page of invoices, newest first, with the total count.
pub async fn list_ids(
    conn: &mut Conn,
    mode: Mode,
    customer_id: Option<&str>,
    subscription_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<String>, i64), sqlx::Error> {
    let filter =
        "mode = $1 AND ($2 IS NULL OR customer_id = $2) AND ($3 IS NULL OR subscription_id = $3)";
    let count: i64 = sql::query(format!("SELECT COUNT(*) FROM invoices WHERE {filter}"))
        .bind(mode.as_str())
        .bind(customer_id)
        .bind(subscription_id)
        .scalar(&mut *conn)
        .await?;
    let ids = sql::query(format!(
        "SELECT id FROM invoices WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(subscription_id)
    .bind(limit)
    .bind(offset)
    .scalars(conn)
    .await?;
    Ok((ids, count))
}

/// An invoice's headline, for lists people read (the hosted portal).
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub status: String,
    pub currency: Currency,
    pub total_minor: i64,
    pub reason: String,
    pub created_at: i64,
}

pub async fn summary_row(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<SummaryRow>, sqlx::Error> {
    let Some(r) = sql::query(
        "SELECT status, currency, total_minor, reason, created_at FROM invoices WHERE mode = $1 AND id = $2",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(SummaryRow {
        status: r.try_get("status")?,
        currency: r.try_get("currency")?,
        total_minor: r.try_get("total_minor")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
    }))
}

/// An invoice as refunds and transactions see it.
#[derive(Debug, Clone)]
pub struct Paid {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub status: String,
    pub currency: Currency,
    pub total: i64,
    /// What the customer's credit balance paid of `total`; the card paid the rest.
    pub credit_applied: i64,
    pub reason: String,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

const PAID_COLUMNS: &str = "id, mode, customer_id, subscription_id, status, currency, total_minor, credit_applied_minor, reason, created_at, paid_at";

fn paid_from_row(r: &sql::Row) -> Result<Paid, sqlx::Error> {
    Ok(Paid {
        id: r.try_get("id")?,
        mode: r.try_get::<Mode>("mode")?,
        customer_id: r.try_get("customer_id")?,
        subscription_id: r.try_get("subscription_id")?,
        status: r.try_get("status")?,
        currency: r.try_get("currency")?,
        total: r.try_get("total_minor")?,
        credit_applied: r.try_get("credit_applied_minor")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
        paid_at: r.try_get("paid_at")?,
    })
}

/// One invoice of `mode`, whatever its status.
pub async fn get(conn: &mut Conn, mode: Mode, id: &str) -> Result<Option<Paid>, sqlx::Error> {
    sql::query(format!(
        "SELECT {PAID_COLUMNS} FROM invoices WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| paid_from_row(&r))
    .transpose()
}

/// The newest paid invoice of a subscription with something charged (a charge's order).
pub async fn latest_paid_of_subscription(
    conn: &mut Conn,
    mode: Mode,
    subscription_id: &str,
) -> Result<Option<Paid>, sqlx::Error> {
    sql::query(format!(
        "SELECT {PAID_COLUMNS} FROM invoices WHERE mode = $1 AND subscription_id = $2 AND status = 'paid'
           AND total_minor > 0 ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(subscription_id)
    .fetch_optional(conn)
    .await?
    .map(|r| paid_from_row(&r))
    .transpose()
}

/// Payment attempts, newest first: invoices with something to charge that were paid
/// (`success`) or whose charge failed (`failure`). `status`: `paid` or `failed` narrows.
/// Returns the first `limit` and how many there are in all.
pub async fn payments(
    conn: &mut Conn,
    mode: Mode,
    status: Option<&str>,
    search: Option<&str>,
    (from, to): (Option<i64>, Option<i64>),
    limit: i64,
) -> Result<(Vec<Paid>, i64), sqlx::Error> {
    let filter = "mode = $1 AND total_minor > 0 AND reason <> 'credit_note'
        AND status IN ('paid', 'open', 'uncollectible')
        AND ($2 IS NULL OR ($2 = 'paid' AND status = 'paid') OR ($2 = 'failed' AND status <> 'paid'))
        AND ($3 IS NULL OR id = $3 OR customer_id = $3 OR subscription_id = $3)
        AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5)";
    let count: i64 = sql::query(format!("SELECT COUNT(*) FROM invoices WHERE {filter}"))
        .bind(mode.as_str())
        .bind(status)
        .bind(search)
        .bind(from)
        .bind(to)
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(format!(
        "SELECT {PAID_COLUMNS} FROM invoices WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(mode.as_str())
    .bind(status)
    .bind(search)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok((
        rows.iter().map(paid_from_row).collect::<Result<_, _>>()?,
        count,
    ))
}

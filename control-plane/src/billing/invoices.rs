//! Invoices, their lines, and charging the card on file. Amounts are minor units of the
//! subscription's currency; a credit line is negative. A customer's credit balance (from
//! prorated decreases) is applied before the card is charged.

use serde::Serialize;
use sqlx::{Row, SqliteConnection};
use tollgate_shared::Mode;

use crate::catalog::money::format_amount;
use crate::checkout::payments::Decline;
use crate::clock::rfc3339;
use crate::db::WriteTx;

#[derive(Debug, Clone)]
pub struct Line {
    pub description: String,
    pub amount_minor: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub proration: bool,
    pub plan: Option<String>,
}

pub struct Draft<'a> {
    pub mode: Mode,
    pub customer_id: &'a str,
    pub subscription_id: Option<&'a str>,
    pub currency: &'a str,
    pub reason: &'a str,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    Paid,
    Failed(Decline),
}

/// The customer's card on file, as the test provider sees it.
pub async fn card_on_file(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT behaviour FROM payment_methods WHERE mode = ? AND customer_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await
}

/// A later (off-session) charge: renewals, upgrades, trial ends, retries.
pub async fn charge_card(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
    amount: i64,
) -> Result<Payment, sqlx::Error> {
    if amount <= 0 {
        return Ok(Payment::Paid);
    }
    if mode == Mode::Live {
        return Ok(Payment::Failed(Decline::NoLiveProvider));
    }
    Ok(
        match card_on_file(conn, mode, customer_id).await?.as_deref() {
            Some("succeeds") => Payment::Paid,
            Some(_) => Payment::Failed(Decline::CardDeclined),
            None => Payment::Failed(Decline::NoPaymentMethod),
        },
    )
}

pub struct Created {
    pub id: String,
    pub total: i64,
    pub payment: Payment,
}

/// Writes the invoice with its lines (plus the subscription's pending lines) and collects it:
/// credit balance first, then the card. A failed charge leaves the invoice `open`.
pub async fn create_and_collect(
    tx: &mut WriteTx,
    now: i64,
    draft: Draft<'_>,
) -> Result<Created, sqlx::Error> {
    create(tx, now, draft, true).await
}

/// Records an invoice already paid by other means (the checkout page's charge).
pub async fn record_paid(
    tx: &mut WriteTx,
    now: i64,
    draft: Draft<'_>,
) -> Result<Created, sqlx::Error> {
    create(tx, now, draft, false).await
}

async fn create(
    tx: &mut WriteTx,
    now: i64,
    draft: Draft<'_>,
    collect: bool,
) -> Result<Created, sqlx::Error> {
    let id = format!("in_{}", uuid::Uuid::new_v4().simple());
    for line in &draft.lines {
        insert_line(tx, &draft, Some(&id), line).await?;
    }
    if let Some(sub) = draft.subscription_id {
        sqlx::query("UPDATE invoice_lines SET invoice_id = ? WHERE subscription_id = ? AND invoice_id IS NULL AND mode = ?")
            .bind(&id)
            .bind(sub)
            .bind(draft.mode.as_str())
            .execute(tx.conn())
            .await?;
    }
    let total: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount_minor), 0) FROM invoice_lines WHERE invoice_id = ?",
    )
    .bind(&id)
    .fetch_one(tx.conn())
    .await?;
    let balance: i64 = sqlx::query_scalar(
        "SELECT balance_minor FROM customers WHERE mode = ? AND customer_id = ?",
    )
    .bind(draft.mode.as_str())
    .bind(draft.customer_id)
    .fetch_optional(tx.conn())
    .await?
    .unwrap_or(0);
    // Negative totals become credit; positive ones use credit before the card.
    let from_balance = match (collect, total > 0) {
        // Paid by other means (the checkout page's charge): the credit stays for later.
        (false, _) => 0,
        (true, true) => balance.min(total),
        (true, false) => total,
    };
    let due = total - from_balance;
    let payment = if collect {
        charge_card(tx.conn(), draft.mode, draft.customer_id, due).await?
    } else {
        Payment::Paid
    };
    let paid = payment == Payment::Paid;
    if paid {
        sqlx::query("UPDATE customers SET balance_minor = MAX(-4611686018427387904, MIN(4611686018427387904, balance_minor - ?)) WHERE mode = ? AND customer_id = ?")
            .bind(from_balance)
            .bind(draft.mode.as_str())
            .bind(draft.customer_id)
            .execute(tx.conn())
            .await?;
    }
    sqlx::query(
        "INSERT INTO invoices (id, mode, customer_id, subscription_id, status, currency, total_minor, reason, created_at, paid_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(draft.mode.as_str())
    .bind(draft.customer_id)
    .bind(draft.subscription_id)
    .bind(if paid { "paid" } else { "open" })
    .bind(draft.currency)
    .bind(total)
    .bind(draft.reason)
    .bind(now)
    .bind(paid.then_some(now))
    .execute(tx.conn())
    .await?;
    crate::webhooks::emit_invoice(tx, draft.mode, now, paid, &id).await?;
    Ok(Created { id, total, payment })
}

/// Lines that wait for the subscription's next invoice (`PRORATE_NEXT_INVOICE`).
pub async fn add_pending(tx: &mut WriteTx, draft: &Draft<'_>) -> Result<(), sqlx::Error> {
    for line in &draft.lines {
        insert_line(tx, draft, None, line).await?;
    }
    Ok(())
}

async fn insert_line(
    tx: &mut WriteTx,
    draft: &Draft<'_>,
    invoice: Option<&str>,
    line: &Line,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoice_lines (invoice_id, mode, subscription_id, description, amount_minor, currency, period_start,
           period_end, proration, plan_identifier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(invoice)
    .bind(draft.mode.as_str())
    .bind(draft.subscription_id)
    .bind(&line.description)
    .bind(line.amount_minor)
    .bind(draft.currency)
    .bind(line.period_start)
    .bind(line.period_end)
    .bind(line.proration)
    .bind(&line.plan)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Retries an open invoice's charge; marks it paid on success.
pub async fn retry(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    invoice_id: &str,
) -> Result<Payment, sqlx::Error> {
    let row = sqlx::query(
        "SELECT customer_id, total_minor, status FROM invoices WHERE mode = ? AND id = ?",
    )
    .bind(mode.as_str())
    .bind(invoice_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        return Ok(Payment::Paid);
    };
    if row.try_get::<String, _>("status")? != "open" {
        return Ok(Payment::Paid);
    }
    let customer: String = row.try_get("customer_id")?;
    let payment = charge_card(tx.conn(), mode, &customer, row.try_get("total_minor")?).await?;
    if payment == Payment::Paid {
        sqlx::query("UPDATE invoices SET status = 'paid', paid_at = ? WHERE id = ?")
            .bind(now)
            .bind(invoice_id)
            .execute(tx.conn())
            .await?;
        crate::webhooks::emit_invoice(tx, mode, now, true, invoice_id).await?;
    }
    Ok(payment)
}

pub async fn set_status(
    tx: &mut WriteTx,
    invoice_id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invoices SET status = ? WHERE id = ?")
        .bind(status)
        .bind(invoice_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    pub description: String,
    pub amount: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub proration: bool,
    pub plan_identifier: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub total: String,
    pub reason: String,
    pub created_at: String,
    pub paid_at: Option<String>,
    pub lines: Vec<LineView>,
}

pub async fn view(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<Option<InvoiceView>, sqlx::Error> {
    let Some(r) = sqlx::query(
        "SELECT id, customer_id, subscription_id, status, currency, total_minor, reason, created_at, paid_at
         FROM invoices WHERE mode = ? AND id = ?",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let currency: String = r.try_get("currency")?;
    let lines = sqlx::query(
        "SELECT description, amount_minor, period_start, period_end, proration, plan_identifier
         FROM invoice_lines WHERE invoice_id = ? ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|l| {
        Ok(LineView {
            description: l.try_get("description")?,
            amount: format_amount(l.try_get("amount_minor")?, &currency),
            period_start: l.try_get::<Option<i64>, _>("period_start")?.map(rfc3339),
            period_end: l.try_get::<Option<i64>, _>("period_end")?.map(rfc3339),
            proration: l.try_get::<i64, _>("proration")? != 0,
            plan_identifier: l.try_get("plan_identifier")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(InvoiceView {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        subscription_id: r.try_get("subscription_id")?,
        status: r.try_get("status")?,
        total: format_amount(r.try_get("total_minor")?, &currency),
        currency,
        reason: r.try_get("reason")?,
        created_at: rfc3339(r.try_get("created_at")?),
        paid_at: r.try_get::<Option<i64>, _>("paid_at")?.map(rfc3339),
        lines,
    }))
}

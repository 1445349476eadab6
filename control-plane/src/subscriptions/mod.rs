//! Subscriptions: rows, their public view, and the transitions available today — start (from a
//! paid checkout), switch plan, cancel, resume. Each transition recompiles the customer's
//! entitlements in the same transaction.
//!
//! * [`routes`] — `/api/v1/subscriptions/…` (Kelviq's shapes).

pub mod lifecycle;
pub mod routes;
pub mod subscribe;

use serde::Serialize;
use sqlx::{Row, SqliteConnection};
use tollgate_shared::Mode;

use crate::catalog::money::format_amount;
use crate::catalog::period::ChargePeriod;
use crate::catalog::store::PlanPrice;
use crate::clock::{date, rfc3339};
use crate::db::WriteTx;
use crate::entitlements::{self, GRANTING};
use crate::error::Invalid;

pub const STATUSES: [&str; 5] = ["incomplete", "trialing", "active", "past_due", "canceled"];

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Subscription '{0}' not found")]
    NotFound(String),
    #[error("subscription is {status}; {action} is not possible")]
    NotChangeable {
        status: String,
        action: &'static str,
    },
    #[error("{0}")]
    Payment(#[from] crate::checkout::payments::Decline),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<crate::catalog::CatalogError> for SubscriptionError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        match e {
            crate::catalog::CatalogError::Invalid(i) => SubscriptionError::Invalid(i),
            crate::catalog::CatalogError::Db(d) => SubscriptionError::Db(d),
            other => SubscriptionError::Invalid(crate::error::invalid(
                "planIdentifier",
                other.to_string(),
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanRef {
    pub name: String,
    pub identifier: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledChange {
    pub plan_identifier: String,
    pub charge_period: String,
    pub effective_at: Option<String>,
}

/// Kelviq's subscription fields plus the lifecycle fields of SPEC §4.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub status: String,
    pub plan: PlanRef,
    pub amount: String,
    pub recurrence: String,
    pub currency: String,
    pub start_date: String,
    pub end_date: Option<String>,
    pub customer_id: String,
    pub charge_period: String,
    pub quantity: i64,
    pub current_period_start: String,
    pub current_period_end: Option<String>,
    pub trial_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub scheduled_change: Option<ScheduledChange>,
}

const COLUMNS: &str = "s.id, s.status, s.plan_identifier, COALESCE(p.name, s.plan_identifier) AS plan_name, s.amount_minor,
    s.currency, s.quantity, s.charge_period, s.started_at, s.current_period_start, s.current_period_end, s.trial_end,
    s.cancel_at_period_end, s.cancel_at, s.ended_at, s.customer_id, s.scheduled_plan, s.scheduled_period";

fn view(r: &sqlx::sqlite::SqliteRow) -> Result<SubscriptionView, sqlx::Error> {
    let period: String = r.try_get("charge_period")?;
    let currency: String = r.try_get("currency")?;
    let amount: i64 = r.try_get("amount_minor")?;
    let quantity: i64 = r.try_get("quantity")?;
    let period_end: Option<i64> = r.try_get("current_period_end")?;
    let cancel_at_period_end = r.try_get::<i64, _>("cancel_at_period_end")? != 0;
    let ended_at: Option<i64> = r.try_get("ended_at")?;
    let cancel_at: Option<i64> = r.try_get("cancel_at")?;
    let end = ended_at.or(cancel_at).or(if cancel_at_period_end {
        period_end
    } else {
        None
    });
    let scheduled_plan: Option<String> = r.try_get("scheduled_plan")?;
    Ok(SubscriptionView {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        plan: PlanRef {
            name: r.try_get("plan_name")?,
            identifier: r.try_get("plan_identifier")?,
        },
        amount: format_amount(amount.saturating_mul(quantity), &currency),
        recurrence: ChargePeriod::parse(&period)
            .map(ChargePeriod::recurrence)
            .unwrap_or("month")
            .to_owned(),
        currency,
        start_date: date(r.try_get("started_at")?),
        end_date: end.map(date),
        customer_id: r.try_get("customer_id")?,
        charge_period: period,
        quantity,
        current_period_start: rfc3339(r.try_get("current_period_start")?),
        current_period_end: period_end.map(rfc3339),
        trial_end: r.try_get::<Option<i64>, _>("trial_end")?.map(rfc3339),
        cancel_at_period_end,
        scheduled_change: scheduled_plan.map(|plan_identifier| ScheduledChange {
            plan_identifier,
            charge_period: r
                .try_get::<Option<String>, _>("scheduled_period")
                .ok()
                .flatten()
                .unwrap_or_default(),
            effective_at: period_end.map(rfc3339),
        }),
    })
}

pub async fn get(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<SubscriptionView, SubscriptionError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscriptions s LEFT JOIN plans p ON p.mode = s.mode AND p.identifier = s.plan_identifier
         WHERE s.mode = ? AND s.id = ?"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))?;
    Ok(view(&row)?)
}

pub struct ListFilter<'a> {
    pub customer_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub plan: Option<&'a str>,
}

pub async fn list(
    conn: &mut SqliteConnection,
    mode: Mode,
    f: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SubscriptionView>, i64), sqlx::Error> {
    let filter = "s.mode = ? AND (? IS NULL OR s.customer_id = ?) AND (? IS NULL OR s.status = ?)
        AND (? IS NULL OR s.plan_identifier = ?)";
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM subscriptions s WHERE {filter}"
    ))
    .bind(mode.as_str())
    .bind(f.customer_id)
    .bind(f.customer_id)
    .bind(f.status)
    .bind(f.status)
    .bind(f.plan)
    .bind(f.plan)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscriptions s LEFT JOIN plans p ON p.mode = s.mode AND p.identifier = s.plan_identifier
         WHERE {filter} ORDER BY s.created_at DESC, s.rowid DESC LIMIT ? OFFSET ?"
    ))
    .bind(mode.as_str())
    .bind(f.customer_id)
    .bind(f.customer_id)
    .bind(f.status)
    .bind(f.status)
    .bind(f.plan)
    .bind(f.plan)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((rows.iter().map(view).collect::<Result<Vec<_>, _>>()?, count))
}

/// Starts a subscription to `price` for a customer who has paid (or needs no payment), ending
/// any other granting subscription in the same group: one plan per group. `pending` is the
/// `incomplete` subscription a checkout was opened for; it is activated in place so callers
/// keep the id they were given.
pub struct NewSubscription<'a> {
    pub customer_id: &'a str,
    pub price: &'a PlanPrice,
    pub quantity: i64,
    pub trial_days: u32,
    pub pending: Option<&'a str>,
}

pub async fn start(
    tx: &mut WriteTx,
    mode: Mode,
    now: i64,
    new: NewSubscription<'_>,
) -> Result<String, SubscriptionError> {
    let NewSubscription {
        customer_id,
        price,
        quantity,
        trial_days,
        pending,
    } = new;
    sqlx::query(&format!(
        "UPDATE subscriptions SET status = 'canceled', canceled_at = ?, ended_at = ?, modified_at = ?
         WHERE mode = ? AND customer_id = ? AND grp = ? AND status IN {GRANTING}"
    ))
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(&price.group)
    .execute(tx.conn())
    .await?;
    let trial_end = (trial_days > 0).then(|| now + i64::from(trial_days) * 86_400);
    // A trial is its own period; the first charged cycle is anchored where it ends.
    let (status, period_end, anchor) = match trial_end {
        Some(end) => ("trialing", Some(end), end),
        None => ("active", price.charge_period.first_period_end(now), now),
    };
    let id = pending
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    sqlx::query(
        "INSERT INTO subscriptions (id, mode, customer_id, plan_identifier, grp, charge_period, amount_minor, currency,
           quantity, status, started_at, current_period_start, current_period_end, trial_end, created_at, modified_at,
           cycle_anchor, cycle_index)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?11, ?11, ?14, 0)
         ON CONFLICT (id) DO UPDATE SET plan_identifier = excluded.plan_identifier, grp = excluded.grp,
           charge_period = excluded.charge_period, amount_minor = excluded.amount_minor, currency = excluded.currency,
           quantity = excluded.quantity, status = excluded.status, started_at = excluded.started_at,
           current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
           trial_end = excluded.trial_end, modified_at = excluded.modified_at, cycle_anchor = excluded.cycle_anchor,
           cycle_index = 0",
    )
    .bind(&id)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(&price.plan)
    .bind(&price.group)
    .bind(price.charge_period.as_str())
    .bind(price.amount_minor)
    .bind(&price.currency)
    .bind(quantity)
    .bind(status)
    .bind(now)
    .bind(period_end)
    .bind(trial_end)
    .bind(anchor)
    .execute(tx.conn())
    .await?;
    entitlements::recompile(tx, now, mode, &[customer_id.to_owned()]).await?;
    let event = if pending.is_some() {
        "subscription.activated"
    } else {
        "subscription.created"
    };
    crate::webhooks::emit_subscription(tx, mode, now, event, &id).await?;
    Ok(id)
}

/// The status and customer of a subscription, for transitions to check before acting.
pub async fn current(
    tx: &mut WriteTx,
    mode: Mode,
    id: &str,
) -> Result<(String, String, String), SubscriptionError> {
    let row =
        sqlx::query("SELECT status, customer_id, grp FROM subscriptions WHERE mode = ? AND id = ?")
            .bind(mode.as_str())
            .bind(id)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))?;
    Ok((
        row.try_get("status")?,
        row.try_get("customer_id")?,
        row.try_get("grp")?,
    ))
}

/// Ends a subscription at `at`: `canceled`, no more retries, its checkouts expired, and
/// `subscription.canceled` emitted. The caller recompiles entitlements.
pub async fn end_now(tx: &mut WriteTx, mode: Mode, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET status = 'canceled', ended_at = ?1, canceled_at = COALESCE(canceled_at, ?1),
           next_retry_at = NULL, modified_at = ?1 WHERE mode = ?2 AND id = ?3",
    )
    .bind(at)
    .bind(mode.as_str())
    .bind(id)
    .execute(tx.conn())
    .await?;
    expire_checkouts(tx, mode, id).await?;
    // Proration lines waiting for a next invoice that will never come are invoiced now.
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM invoice_lines WHERE subscription_id = ? AND invoice_id IS NULL AND mode = ?")
            .bind(id)
            .bind(mode.as_str())
            .fetch_one(tx.conn())
            .await?;
    if pending > 0 {
        let (customer_id, currency): (String, String) = sqlx::query_as(
            "SELECT customer_id, currency FROM subscriptions WHERE mode = ? AND id = ?",
        )
        .bind(mode.as_str())
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
        let draft = crate::billing::invoices::Draft {
            mode,
            customer_id: &customer_id,
            subscription_id: Some(id),
            currency: &currency,
            reason: "subscription_final",
            lines: Vec::new(),
        };
        crate::billing::invoices::create_and_collect(tx, at, draft).await?;
    }
    crate::webhooks::emit_subscription(tx, mode, at, "subscription.canceled", id).await
}

/// Closes the open checkout sessions of a pending subscription that is going away.
pub async fn expire_checkouts(
    tx: &mut WriteTx,
    mode: Mode,
    subscription_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkout_sessions SET status = 'expired' WHERE mode = ? AND subscription_id = ? AND status = 'open'")
        .bind(mode.as_str())
        .bind(subscription_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub fn is_granting(status: &str) -> bool {
    matches!(status, "trialing" | "active" | "past_due")
}

//! The `checkout_sessions` table: every statement on it.

use crate::platform::db::due::{DueItem, Scope, due_items};
use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::Mode;

use crate::domain::checkout::model::{Session, SessionStatus};
use crate::platform::db::Uow;

pub async fn load(conn: &mut Conn, id: &str) -> Result<Option<Session>, sqlx::Error> {
    let Some(r) = sql::query(
        "SELECT id, mode, customer_id, plan_identifier, charge_period, quantity, trial_days, success_url, cancel_url,
                status, subscription_id, created_at
         FROM checkout_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Session {
        id: r.try_get("id")?,
        mode: r.try_get::<Mode>("mode")?,
        customer_id: r.try_get("customer_id")?,
        plan_identifier: r.try_get("plan_identifier")?,
        charge_period: r.try_get("charge_period")?,
        quantity: r.try_get("quantity")?,
        trial_days: r.try_get("trial_days")?,
        success_url: r.try_get("success_url")?,
        cancel_url: r.try_get("cancel_url")?,
        status: SessionStatus::parse(&r.try_get::<String>("status")?),
        subscription_id: r.try_get("subscription_id")?,
        created_at: r.try_get("created_at")?,
    }))
}

pub struct NewSession<'a> {
    pub mode: Mode,
    pub customer_id: &'a str,
    pub plan: &'a str,
    pub period: &'a str,
    pub quantity: i64,
    pub trial_days: Option<i64>,
    pub success_url: &'a str,
    pub cancel_url: Option<&'a str>,
    pub offering_id: Option<&'a str>,
    pub pricing_table_id: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    /// The `incomplete` subscription this checkout will activate, if one was made up front.
    pub subscription_id: Option<&'a str>,
}

/// Opens a checkout session; returns its id (`cs_test_…` / `cs_live_…`).
pub async fn open_session(
    uow: &mut Uow,
    now: i64,
    s: NewSession<'_>,
) -> Result<String, sqlx::Error> {
    let session_id = crate::platform::ids::unguessable(&format!("cs_{}", s.mode));
    sql::query(
        "INSERT INTO checkout_sessions (id, mode, customer_id, plan_identifier, charge_period, quantity, trial_days,
           success_url, cancel_url, offering_id, pricing_table_id, ip_address, status, subscription_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', $13, $14)",
    )
    .bind(&session_id)
    .bind(s.mode.as_str())
    .bind(s.customer_id)
    .bind(s.plan)
    .bind(s.period)
    .bind(s.quantity)
    .bind(s.trial_days)
    .bind(s.success_url)
    .bind(s.cancel_url)
    .bind(s.offering_id)
    .bind(s.pricing_table_id)
    .bind(s.ip_address)
    .bind(s.subscription_id)
    .bind(now)
    .execute(uow.conn())
    .await?;
    Ok(session_id)
}

/// The open session of a pending subscription, if it has one.
pub async fn open_for_subscription(
    conn: &mut Conn,
    mode: Mode,
    subscription_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql::query(
        "SELECT id FROM checkout_sessions WHERE mode = $1 AND subscription_id = $2 AND status = 'open'
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(mode.as_str())
    .bind(subscription_id)
    .scalar_optional(conn)
    .await
}

/// Closes the open checkout sessions of a pending subscription that is going away.
pub async fn expire_for_subscription(
    uow: &mut Uow,
    mode: Mode,
    subscription_id: &str,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE checkout_sessions SET status = 'expired' WHERE mode = $1 AND subscription_id = $2 AND status = 'open'",
    )
    .bind(mode.as_str())
    .bind(subscription_id)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// The `incomplete` subscription a session's payment will start (kept while its payment
/// intent settles, so a second attempt finds it).
pub async fn set_subscription(
    uow: &mut Uow,
    id: &str,
    subscription_id: &str,
) -> Result<(), sqlx::Error> {
    sql::query("UPDATE checkout_sessions SET subscription_id = $1 WHERE id = $2")
        .bind(subscription_id)
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

pub async fn mark_complete(
    uow: &mut Uow,
    id: &str,
    subscription_id: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE checkout_sessions SET status = 'complete', subscription_id = $1, completed_at = $2 WHERE id = $3",
    )
    .bind(subscription_id)
    .bind(at)
    .bind(id)
    .execute(uow.conn())
    .await?;
    Ok(())
}

pub async fn mark_expired(uow: &mut Uow, id: &str) -> Result<(), sqlx::Error> {
    sql::query("UPDATE checkout_sessions SET status = 'expired' WHERE id = $1 AND status = 'open'")
        .bind(id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// Open sessions whose time is up by `until` (opened `ttl` or more seconds before, in their
/// customer's time), soonest first: `(mode, session id, customer id, when it expired)`. `clock`
/// picks the customers of one test clock; `None`, those on real time.
pub async fn due_expiries(
    conn: &mut Conn,
    scope: Scope<'_>,
    ttl: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<DueItem>, sqlx::Error> {
    due_items(
        conn,
        scope,
        "SELECT s.mode, s.id, s.customer_id, s.created_at + $2 AS due
         FROM checkout_sessions s JOIN customers c ON c.mode = s.mode AND c.customer_id = s.customer_id
         WHERE s.status = 'open' AND {scope} AND s.created_at <= $3 - $2
         ORDER BY s.created_at, s.id LIMIT $4",
        vec![ttl.into(), until.into(), limit.into()],
    )
    .await
}

/// Deletes expired sessions opened before `before`, at most `limit`.
pub async fn prune_expired(conn: &mut Conn, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
    sql::query(
        "DELETE FROM checkout_sessions WHERE id IN (
           SELECT id FROM checkout_sessions WHERE status = 'expired' AND created_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await
}

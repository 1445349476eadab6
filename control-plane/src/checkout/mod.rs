//! Hosted checkout: sessions created by the API, paid on a real HTML page (or by the
//! test-mode `complete` helper), and completed into an active subscription.
//!
//! * [`routes`] — `POST /api/v1/checkout/` and `POST /api/v1/checkout/{id}/complete/`.
//! * [`page`] — the HTML page a person pays on.
//! * [`payments`] — the test-mode payment provider (Stripe's test cards).

pub mod page;
pub mod payments;
pub mod routes;

use sqlx::{Row, SqliteConnection};
use tollgate_shared::Mode;

use crate::app::AppState;
use crate::catalog::CatalogError;
use crate::catalog::store::resolve_price;
use crate::customers::CustomerError;
use crate::error::Invalid;
use crate::subscriptions;
use payments::{Decline, TestCard};

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("checkout session '{0}' not found")]
    NotFound(String),
    #[error("checkout session '{0}' is already completed")]
    AlreadyCompleted(String),
    #[error("{0}")]
    Declined(#[from] Decline),
    #[error("this helper exists in test mode only")]
    TestModeOnly,
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub plan_identifier: String,
    pub charge_period: String,
    pub quantity: i64,
    pub trial_days: Option<i64>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub status: String,
    pub subscription_id: Option<String>,
}

pub async fn load(conn: &mut SqliteConnection, id: &str) -> Result<Session, CheckoutError> {
    let r = sqlx::query(
        "SELECT id, mode, customer_id, plan_identifier, charge_period, quantity, trial_days, success_url, cancel_url,
                status, subscription_id
         FROM checkout_sessions WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| CheckoutError::NotFound(id.to_owned()))?;
    Ok(Session {
        id: r.try_get("id")?,
        mode: Mode::parse(r.try_get("mode")?).unwrap_or(Mode::Test),
        customer_id: r.try_get("customer_id")?,
        plan_identifier: r.try_get("plan_identifier")?,
        charge_period: r.try_get("charge_period")?,
        quantity: r.try_get("quantity")?,
        trial_days: r.try_get("trial_days")?,
        success_url: r.try_get("success_url")?,
        cancel_url: r.try_get("cancel_url")?,
        status: r.try_get("status")?,
        subscription_id: r.try_get("subscription_id")?,
    })
}

/// Where the payer goes after paying: `successUrl` with Stripe's `{CHECKOUT_SESSION_ID}`
/// placeholder filled in.
pub fn success_redirect(session: &Session) -> String {
    session
        .success_url
        .replace("{CHECKOUT_SESSION_ID}", &session.id)
}

pub struct Completed {
    pub session: Session,
    pub subscription_id: String,
}

/// Charges the card and turns the session into a subscription, all in one transaction:
/// a declined card stores nothing, and a session completes at most once.
pub async fn complete(
    state: &AppState,
    mode: Mode,
    id: &str,
    card: Option<TestCard>,
) -> Result<Completed, CheckoutError> {
    let now = state.clock.unix();
    let mut tx = state.db.write().await?;
    let session = load(tx.conn(), id).await?;
    if session.mode != mode {
        return Err(CheckoutError::NotFound(id.to_owned()));
    }
    if session.status == "complete" {
        return Err(CheckoutError::AlreadyCompleted(id.to_owned()));
    }
    let card = payments::charge_at_checkout(mode, card)?;
    let price = resolve_price(
        tx.conn(),
        mode,
        &session.plan_identifier,
        Some(&session.charge_period),
    )
    .await?;
    sqlx::query(
        "INSERT INTO payment_methods (id, mode, customer_id, brand, last4, behaviour, created_at) VALUES (?, ?, ?, 'visa', ?, ?, ?)",
    )
    .bind(format!("pm_{}", uuid::Uuid::new_v4().simple()))
    .bind(mode.as_str())
    .bind(&session.customer_id)
    .bind(card.last4())
    .bind(card.behaviour())
    .bind(now)
    .execute(tx.conn())
    .await?;
    let trial_days = session
        .trial_days
        .map(|d| d as u32)
        .unwrap_or(price.trial_days);
    let subscription_id = subscriptions::start(
        &mut tx,
        mode,
        now,
        &session.customer_id,
        &price,
        session.quantity,
        trial_days,
    )
    .await
    .map_err(|e| match e {
        subscriptions::SubscriptionError::Db(db) => CheckoutError::Db(db),
        other => CheckoutError::Invalid(crate::error::invalid("planIdentifier", other.to_string())),
    })?;
    sqlx::query("UPDATE checkout_sessions SET status = 'complete', subscription_id = ?, completed_at = ? WHERE id = ?")
        .bind(&subscription_id)
        .bind(now)
        .bind(id)
        .execute(tx.conn())
        .await?;
    state.commit(tx).await?;
    metrics::counter!("tollgate_checkouts_completed_total").increment(1);
    Ok(Completed {
        session,
        subscription_id,
    })
}

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
    /// The checkout can no longer be paid: its price is gone, its pending subscription was
    /// canceled, or the customer already has a plan in the group.
    #[error("{0}")]
    Unavailable(String),
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
    if session.status != "open" {
        return Err(CheckoutError::Unavailable(format!(
            "checkout session '{id}' has expired"
        )));
    }
    let price = resolve_price(
        tx.conn(),
        mode,
        &session.plan_identifier,
        Some(&session.charge_period),
    )
    .await
    .map_err(|_| {
        CheckoutError::Unavailable(format!(
            "plan '{}' no longer has a {} price",
            session.plan_identifier, session.charge_period
        ))
    })?;
    if let Some(pending) = &session.subscription_id {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM subscriptions WHERE mode = ? AND id = ?")
                .bind(mode.as_str())
                .bind(pending)
                .fetch_optional(tx.conn())
                .await?;
        if status.as_deref() != Some("incomplete") {
            return Err(CheckoutError::Unavailable(format!(
                "the subscription this checkout was for is {}",
                status.unwrap_or_default()
            )));
        }
    }
    ensure_free_group(&mut tx, mode, &session.customer_id, &price.group).await?;
    // Only now, with every check passed, is the card charged.
    let card = payments::charge_at_checkout(mode, card)?;
    let now = crate::billing::customer_now(tx.conn(), mode, &session.customer_id, now).await?;
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
    let pending = session.subscription_id.as_deref();
    let subscription_id = subscriptions::start(
        &mut tx,
        mode,
        now,
        subscriptions::NewSubscription {
            customer_id: &session.customer_id,
            price: &price,
            quantity: session.quantity,
            trial_days,
            pending,
        },
    )
    .await
    .map_err(|e| match e {
        subscriptions::SubscriptionError::Db(db) => CheckoutError::Db(db),
        other => CheckoutError::Invalid(crate::error::invalid("planIdentifier", other.to_string())),
    })?;
    if trial_days == 0 {
        let total = price.amount_minor.saturating_mul(session.quantity);
        crate::billing::invoices::record_paid(
            &mut tx,
            now,
            crate::billing::invoices::Draft {
                mode,
                customer_id: &session.customer_id,
                subscription_id: Some(&subscription_id),
                currency: &price.currency,
                reason: "subscription_create",
                lines: vec![crate::billing::invoices::Line {
                    description: format!(
                        "{} × {} ({})",
                        session.quantity,
                        price.plan,
                        price.charge_period.recurrence()
                    ),
                    amount_minor: total,
                    period_start: Some(now),
                    period_end: price.charge_period.first_period_end(now),
                    proration: false,
                    plan: Some(price.plan.clone()),
                }],
            },
        )
        .await?;
    }
    sqlx::query("UPDATE checkout_sessions SET status = 'complete', subscription_id = ?, completed_at = ? WHERE id = ?")
        .bind(&subscription_id)
        .bind(now)
        .bind(id)
        .execute(tx.conn())
        .await?;
    let completed = serde_json::json!({
        "checkoutSessionId": id,
        "customerId": session.customer_id,
        "subscriptionId": subscription_id,
        "planIdentifier": session.plan_identifier,
        "chargePeriod": session.charge_period,
    });
    crate::webhooks::emit(&mut tx, mode, now, "checkout.completed", completed).await?;
    state.commit(tx).await?;
    metrics::counter!("tollgate_checkouts_completed_total").increment(1);
    Ok(Completed {
        session,
        subscription_id,
    })
}

/// A checkout starts a customer's first paid plan in a group; changing plans is `subscribe` /
/// `update`'s job (with proration), so a customer who already has one gets a 409 instead of a
/// second charge.
pub async fn ensure_free_group(
    tx: &mut crate::db::WriteTx,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<(), CheckoutError> {
    let current: Option<String> = sqlx::query_scalar(&format!(
        "SELECT plan_identifier FROM subscriptions WHERE mode = ? AND customer_id = ? AND grp = ?
         AND status IN {}",
        crate::entitlements::GRANTING
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(group)
    .fetch_optional(tx.conn())
    .await?;
    match current {
        Some(plan) => Err(CheckoutError::Unavailable(format!(
            "customer '{customer_id}' already has plan '{plan}' in group '{group}'; change plans with \
             POST /api/v1/subscriptions/{{id}}/update/ or /api/v1/subscribe/"
        ))),
        None => Ok(()),
    }
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
    tx: &mut crate::db::WriteTx,
    now: i64,
    s: NewSession<'_>,
) -> Result<String, sqlx::Error> {
    let session_id = format!("cs_{}_{}", s.mode, uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO checkout_sessions (id, mode, customer_id, plan_identifier, charge_period, quantity, trial_days,
           success_url, cancel_url, offering_id, pricing_table_id, ip_address, status, subscription_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
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
    .execute(tx.conn())
    .await?;
    Ok(session_id)
}

pub fn checkout_url(public_url: &str, session_id: &str) -> String {
    format!("{public_url}/checkout/{session_id}/")
}

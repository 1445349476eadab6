//! Paying a checkout session: every check, then the charge, then the subscription, all in one
//! unit of work — a declined card stores nothing, and a session completes at most once.

use tollgate_shared::Mode;

use crate::domain::catalog::store::resolve_price;
use crate::domain::checkout::model::{CheckoutError, Session, SessionStatus};
use crate::domain::checkout::store;
use crate::domain::checkout::store::NewSession;
use crate::domain::customers::store as customers;
use crate::domain::subscriptions::lifecycle::{Action, ChangeRequest, Proration};
use crate::domain::subscriptions::model::{Status, SubscriptionError};
use crate::domain::subscriptions::store as subscriptions;
use crate::payments::EnteredCard;
use crate::payments::test_cards as payments;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::validate::{RedirectUrl, invalid};
use crate::workflows::subscribe as apply;
use crate::workflows::subscribe::ensure_free_group;
use crate::workflows::subscribe::{PaidAtCheckout, Urls};

pub struct Completed {
    pub session: Session,
    pub subscription_id: String,
    /// The first invoice's payment intent, when the session completes once it succeeds.
    pub intent: Option<String>,
}

/// Completes session `id` of `mode` with `card`. Runs inside a unit of work.
pub async fn complete(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    card: &EnteredCard,
    checkout_ttl_secs: i64,
) -> Result<Completed, CheckoutError> {
    let session = store::load(uow.conn(), id)
        .await?
        .filter(|s| s.mode == mode)
        .ok_or_else(|| CheckoutError::NotFound(id.to_owned()))?;
    match session.status {
        SessionStatus::Complete => return Err(CheckoutError::AlreadyCompleted(id.to_owned())),
        SessionStatus::Expired => {
            return Err(CheckoutError::Unavailable(format!(
                "checkout session '{id}' has expired"
            )));
        }
        SessionStatus::Open => {}
    }
    customers::lock(uow, mode, &session.customer_id).await?;
    let now = customers::now_of(uow, mode, &session.customer_id).await?;
    if session.is_expired(now, checkout_ttl_secs) {
        return Err(CheckoutError::Unavailable(format!(
            "checkout session '{id}' has expired"
        )));
    }
    let price = resolve_price(
        uow.conn(),
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
        let status = subscriptions::get(uow.conn(), mode, pending)
            .await?
            .map(|s| s.status);
        if status != Some(Status::Incomplete) {
            return Err(CheckoutError::Unavailable(format!(
                "the subscription this checkout was for is {}",
                status.map(Status::as_str).unwrap_or("gone")
            )));
        }
    }
    ensure_free_group(uow, mode, &session.customer_id, &price.group).await?;
    // Only now, with every check passed, does the card go on file (and is charged after this
    // unit, through a payment intent).
    let (brand, last4, reference) = card.on_file(|c| payments::charge_at_checkout(mode, c))?;
    customers::attach_card(
        uow,
        mode,
        &session.customer_id,
        &brand,
        &last4,
        &reference,
        now,
    )
    .await?;
    let trial_days = session
        .trial_days
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(price.trial_days);
    // The same decision as every other door: with the group free (checked above) and the card
    // just put on file, it is "start now"; the first invoice is recorded as paid.
    let applied = apply::change(
        uow,
        mode,
        &session.customer_id,
        ChangeRequest {
            target: price,
            quantity: Some(session.quantity),
            force_checkout: false,
            proration: Proration::ImmediateCharge,
            trial_days: Some(trial_days),
            trial_end: None,
        },
        &Urls::default(),
        Some(&PaidAtCheckout {
            pending: session.subscription_id.clone(),
            session: Some(id.to_owned()),
        }),
        now,
    )
    .await?;
    let (Action::Created, Some(subscription_id)) = (applied.action, applied.subscription_id) else {
        return Err(CheckoutError::Unavailable(format!(
            "checkout session '{id}' cannot start a subscription"
        )));
    };
    if applied.intent.is_some() {
        // The session completes when the payment intent succeeds (`workflows::settle`); a
        // retry with another card finds the same pending subscription.
        store::set_subscription(uow, id, &subscription_id).await?;
    } else {
        mark_complete(uow, &session, &subscription_id, now).await?;
    }
    Ok(Completed {
        session,
        subscription_id,
        intent: applied.intent,
    })
}

/// The session is paid: `complete`, and `checkout.completed` recorded.
pub async fn mark_complete(
    uow: &mut Uow,
    session: &Session,
    subscription_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    store::mark_complete(uow, &session.id, subscription_id, now).await?;
    uow.emit(
        session.mode,
        EventKind::CheckoutCompleted,
        Subject::Data(serde_json::json!({
            "checkoutSessionId": session.id,
            "customerId": session.customer_id,
            "subscriptionId": subscription_id,
            "planIdentifier": session.plan_identifier,
            "chargePeriod": session.charge_period,
        })),
        now,
    );
    Ok(())
}

impl From<SubscriptionError> for CheckoutError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Db(db) => CheckoutError::Db(db),
            SubscriptionError::Payment(d) => CheckoutError::Declined(d),
            other => CheckoutError::Invalid(crate::platform::validate::invalid(
                "planIdentifier",
                other.to_string(),
            )),
        }
    }
}

/// What a checkout session is opened for.
#[derive(Debug, Clone, Copy)]
pub struct Open<'a> {
    /// The customer, made if new; or, without one, the customer with `email` (made if none).
    pub customer_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub plan: &'a str,
    pub period: &'a str,
    pub quantity: i64,
    pub trial_days: Option<u32>,
    pub success_url: &'a RedirectUrl,
    pub cancel_url: Option<&'a RedirectUrl>,
    pub offering_id: Option<&'a str>,
    pub pricing_table_id: Option<&'a str>,
    pub ip_address: Option<&'a str>,
}

/// Opens a checkout session for a customer's first paid plan in a group. Answers its id.
pub async fn open(uow: &mut Uow, mode: Mode, o: &Open<'_>) -> Result<String, CheckoutError> {
    let price = resolve_price(uow.conn(), mode, o.plan, Some(o.period))
        .await
        .map_err(CheckoutError::from)?;
    if price.is_default {
        return Err(invalid("planIdentifier", "the free default plan needs no checkout").into());
    }
    // Auto-create the customer from `customerId`, or find/create one by `email`.
    let customer = match (o.customer_id, o.email) {
        (Some(id), email) => customers::find_or_create(uow, mode, id, email).await?,
        (None, Some(email)) => match customers::find_by_email(uow.conn(), mode, email).await? {
            Some(c) => c,
            None => {
                let id = crate::platform::ids::new("cus");
                customers::find_or_create(uow, mode, &id, Some(email)).await?
            }
        },
        (None, None) => return Err(invalid("customerId", "required").into()),
    };
    customers::lock(uow, mode, &customer.customer_id).await?;
    ensure_free_group(uow, mode, &customer.customer_id, &price.group).await?;
    // In the customer's time, so a test clock drives the session's expiry too.
    let now = customers::now_of(uow, mode, &customer.customer_id).await?;
    let session_id = store::open_session(
        uow,
        now,
        NewSession {
            mode,
            customer_id: &customer.customer_id,
            plan: &price.plan,
            period: price.charge_period.as_str(),
            quantity: o.quantity,
            trial_days: o.trial_days.map(i64::from),
            success_url: o.success_url.as_str(),
            cancel_url: o.cancel_url.map(RedirectUrl::as_str),
            offering_id: o.offering_id,
            pricing_table_id: o.pricing_table_id,
            ip_address: o.ip_address,
            subscription_id: None,
        },
    )
    .await?;
    Ok(session_id)
}

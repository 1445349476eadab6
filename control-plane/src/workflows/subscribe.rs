//! Carrying out a [`Decision`]: the rows it writes, the invoice it makes, the events it
//! records. Every door (PayKit's `subscribe`, Kelviq's `update`, 4geeks, the hosted checkout,
//! the billing clock) ends a subscription, starts one or changes one through these functions, so
//! the same charge is described and billed the same way whichever door it came through.

use tollgate_shared::Mode;

use crate::domain::subscriptions::lifecycle;

use crate::domain::catalog::model::PlanPrice;
use crate::domain::catalog::store as catalog;
use crate::domain::checkout::model::CheckoutError;
use crate::domain::checkout::store as checkout;
use crate::domain::checkout::store::NewSession;
use crate::domain::customers::store as customers;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::invoices::model::{Draft, Reason};
use crate::domain::invoices::store as invoices;
use crate::domain::licenses::store as licenses;
use crate::domain::payments::model::{CycleSpec, Intent, Payment, Purpose};
use crate::domain::payments::store as intents;
use crate::domain::subscriptions::lifecycle::Proration;
use crate::domain::subscriptions::lifecycle::{Action, ChangeRequest, Decision, full_period_line};
use crate::domain::subscriptions::model::SubscriptionView;
use crate::domain::subscriptions::model::{Cycle, Status, Subscription, SubscriptionError};
use crate::domain::subscriptions::store;
use crate::domain::subscriptions::store::Start;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::http::error::ApiError;
use crate::platform::ids;
use crate::platform::validate::{RedirectUrl, invalid};
use crate::workflows::collect;

/// What happened, and to which subscription.
#[derive(Debug)]
pub struct Applied {
    pub action: Action,
    pub subscription_id: Option<String>,
    pub invoice_id: Option<String>,
    /// Set when a checkout is needed: the session to send the customer to.
    pub checkout_session: Option<String>,
    /// The payment intent the change waits for, if its invoice was not paid at once.
    pub intent: Option<String>,
}

impl Applied {
    fn on(action: Action, id: &str, invoice: Option<String>) -> Applied {
        Applied {
            action,
            subscription_id: Some(id.to_owned()),
            invoice_id: invoice,
            checkout_session: None,
            intent: None,
        }
    }

    fn waiting_for(mut self, intent: Option<String>) -> Applied {
        self.intent = intent;
        self
    }
}

/// Where a checkout (if one is needed) sends the customer afterwards.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    pub success: Option<RedirectUrl>,
    pub cancel: Option<RedirectUrl>,
}

/// A checkout is being paid: the card was just put on file, the `incomplete` subscription
/// made for the checkout (if any) is the one that starts, and the session completes when the
/// first invoice's payment intent succeeds.
#[derive(Debug, Clone, Default)]
pub struct PaidAtCheckout {
    pub pending: Option<String>,
    pub session: Option<String>,
}

/// Decides and applies `req` for a customer, in the customer's time `now`. The customer row is
/// locked first, so concurrent changes for one customer (several replicas) queue up.
pub async fn change(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    req: ChangeRequest,
    urls: &Urls,
    paid: Option<&PaidAtCheckout>,
    now: i64,
) -> Result<Applied, SubscriptionError> {
    customers::lock(uow, mode, customer_id).await?;
    // One change of a group waits for its payment at a time: asking for the same change again
    // (a retry, eight concurrent requests) answers the one in progress, which charges once.
    if let Some(open) =
        intents::open_in_group(uow.conn(), mode, customer_id, &req.target.group).await?
    {
        return in_progress(uow, open, &req).await;
    }
    let current = store::current_in_group(uow.conn(), mode, customer_id, &req.target.group).await?;
    let has_card = match (&current, paid) {
        (Some(_), _) | (_, Some(_)) => true,
        (None, None) => customers::card_on_file(uow.conn(), mode, customer_id)
            .await?
            .is_some(),
    };
    let decision = lifecycle::decide(current.as_ref(), &req, has_card, now)?;
    let action = decision.action();
    match (decision, current) {
        (Decision::DefaultPlan, _) | (Decision::NoOp, None) => Ok(Applied {
            action,
            subscription_id: None,
            invoice_id: None,
            checkout_session: None,
            intent: None,
        }),
        (
            Decision::StartNow {
                quantity,
                trial_days,
            },
            _,
        ) => {
            let pending = paid.and_then(|p| p.pending.as_deref());
            let id = start(
                uow,
                mode,
                customer_id,
                &req.target,
                quantity,
                trial_days,
                pending,
                now,
            )
            .await?;
            let mut invoice = None;
            let mut intent = None;
            if trial_days == 0 {
                let draft = Draft {
                    mode,
                    customer_id,
                    subscription_id: Some(&id),
                    currency: req.target.currency,
                    reason: Reason::SubscriptionCreate,
                    lines: vec![full_period_line(&req.target, quantity, now)],
                };
                let purpose = Purpose::Start {
                    subscription: id.clone(),
                    checkout_session: paid.and_then(|p| p.session.clone()),
                };
                let created = collect::create_and_collect(uow, now, draft, purpose).await?;
                match created.payment {
                    // The unit rolls back: nothing changes, nothing is granted.
                    Payment::Failed(decline) => return Err(SubscriptionError::Payment(decline)),
                    // It starts when the intent succeeds (`subscription.activated`); until
                    // then it is `incomplete` and grants nothing.
                    Payment::Pending(pi) => {
                        intent = Some(pi);
                        store::await_payment(uow, mode, &id, now).await?;
                        if pending.is_none() {
                            started(uow, mode, &id, false, now);
                        }
                    }
                    Payment::Paid => {
                        sync_license(uow, mode, customer_id, &id, &req.target, now).await?;
                        started(uow, mode, &id, pending.is_some(), now);
                    }
                }
                invoice = Some(created.id);
            } else {
                sync_license(uow, mode, customer_id, &id, &req.target, now).await?;
                started(uow, mode, &id, pending.is_some(), now);
            }
            Ok(Applied::on(Action::Created, &id, invoice).waiting_for(intent))
        }
        (Decision::Checkout { quantity }, _) => {
            pending_checkout(uow, mode, customer_id, &req, quantity, urls, now).await
        }
        (
            Decision::ChangeNow {
                action,
                quantity,
                cycle,
                invoice,
            },
            Some(cur),
        ) => {
            let mut invoice_id = None;
            if let Some(plan) = invoice {
                let draft = Draft {
                    mode,
                    customer_id,
                    subscription_id: Some(&cur.id),
                    currency: req.target.currency,
                    reason: Reason::SubscriptionUpdate,
                    lines: plan.lines,
                };
                if plan.deferred {
                    collect::add_pending(uow, &draft).await?;
                } else {
                    let purpose = Purpose::Update {
                        subscription: cur.id.clone(),
                        plan: req.target.plan.clone(),
                        period: req.target.charge_period.as_str().to_owned(),
                        quantity,
                        cycle: cycle_spec(cycle),
                    };
                    let created = collect::create_and_collect(uow, now, draft, purpose).await?;
                    match created.payment {
                        Payment::Failed(decline) => {
                            return Err(SubscriptionError::Payment(decline));
                        }
                        // The change waits for the money (Stripe's `pending_if_incomplete`):
                        // the settle applies it.
                        Payment::Pending(pi) => {
                            return Ok(Applied::on(action, &cur.id, Some(created.id))
                                .waiting_for(Some(pi)));
                        }
                        Payment::Paid => invoice_id = Some(created.id),
                    }
                }
            }
            store::change_now(uow, &cur, &req.target, quantity, cycle, now).await?;
            sync_license(uow, mode, &cur.customer_id, &cur.id, &req.target, now).await?;
            updated(uow, &cur, now);
            Ok(Applied::on(action, &cur.id, invoice_id))
        }
        (
            Decision::Schedule {
                action,
                quantity,
                to_free,
            },
            Some(cur),
        ) => {
            store::schedule(uow, &cur, &req.target, quantity, to_free, now).await?;
            updated(uow, &cur, now);
            Ok(Applied::on(action, &cur.id, None))
        }
        (Decision::Resume, Some(cur)) => {
            store::clear_pending(uow, &cur, now).await?;
            updated(uow, &cur, now);
            Ok(Applied::on(Action::Resumed, &cur.id, None))
        }
        (Decision::NoOp, Some(cur)) => Ok(Applied::on(Action::NoOp, &cur.id, None)),
        (Decision::ChangeNow { .. } | Decision::Schedule { .. } | Decision::Resume, None) => {
            Err(SubscriptionError::Db(sqlx::Error::Protocol(
                "a change was decided without a current subscription".into(),
            )))
        }
    }
}

/// The change a payment in progress pays for, if it is `req` (else a 409).
async fn in_progress(
    uow: &mut Uow,
    open: Intent,
    req: &ChangeRequest,
) -> Result<Applied, SubscriptionError> {
    let target = &req.target;
    let subscription = open.subscription_id.clone().unwrap_or_default();
    let same = match &open.purpose {
        Purpose::Start { .. } => store::get(uow.conn(), open.mode, &subscription)
            .await?
            .is_some_and(|s| {
                s.plan == target.plan
                    && s.period == target.charge_period
                    && req.quantity.is_none_or(|q| q == s.quantity)
            }),
        Purpose::Update {
            plan,
            period,
            quantity,
            ..
        } => {
            *plan == target.plan
                && period == target.charge_period.as_str()
                && req.quantity.is_none_or(|q| q == *quantity)
        }
        Purpose::Renewal { .. } | Purpose::Retry { .. } | Purpose::Invoice => false,
    };
    if !same {
        return Err(SubscriptionError::PaymentInProgress {
            payment: open.id,
            group: target.group.clone(),
        });
    }
    // Asked again: answered like any repeated change (`no_op`), once the one in progress has
    // settled; the door waits for it as for one of its own.
    uow.payment_pending(&open.id);
    Ok(
        Applied::on(Action::NoOp, &subscription, Some(open.invoice_id.clone()))
            .waiting_for(Some(open.id)),
    )
}

/// What a customer asks of a group through PayKit's `subscribe()`: a plan at a period (its
/// only one when `None`), and how.
#[derive(Debug, Clone)]
pub struct Ask {
    pub plan: String,
    pub period: Option<String>,
    pub quantity: Option<i64>,
    pub trial_days: Option<u32>,
    pub force_checkout: bool,
    pub proration: Proration,
}

/// What [`subscribe`] did, with the subscription and invoice as the unit leaves them.
#[derive(Debug)]
pub struct Subscribed {
    pub applied: Applied,
    pub subscription: Option<SubscriptionView>,
    pub invoice: Option<InvoiceView>,
}

/// PayKit's `subscribe()`: subscribe, upgrade, downgrade, cancel to free or resume, for a
/// customer made on the spot if new, in the customer's time.
pub async fn subscribe(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    ask: &Ask,
    urls: &Urls,
) -> Result<Subscribed, SubscriptionError> {
    let target = catalog::resolve_price(uow.conn(), mode, &ask.plan, ask.period.as_deref()).await?;
    customers::find_or_create(uow, mode, customer_id, None).await?;
    let now = customers::now_of(uow, mode, customer_id).await?;
    let applied = change(
        uow,
        mode,
        customer_id,
        ChangeRequest {
            target,
            quantity: ask.quantity,
            force_checkout: ask.force_checkout,
            proration: ask.proration,
            trial_days: ask.trial_days,
            trial_end: None,
        },
        urls,
        None,
        now,
    )
    .await?;
    let subscription = match &applied.subscription_id {
        Some(id) => store::view(uow.conn(), mode, id).await?,
        None => None,
    };
    let invoice = match &applied.invoice_id {
        Some(id) => invoices::view(uow.conn(), mode, id).await?,
        None => None,
    };
    Ok(Subscribed {
        applied,
        subscription,
        invoice,
    })
}

/// A pending subscription to `target` and the checkout that pays for it (4geeks' create): the
/// customer is made if new and must not have a plan in the group yet. Answers the subscription's
/// id and the checkout session's.
#[allow(clippy::too_many_arguments)]
pub async fn through_checkout(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    target: PlanPrice,
    quantity: Option<i64>,
    trial_days: Option<u32>,
    return_url: &RedirectUrl,
) -> Result<(String, String), ApiError> {
    customers::find_or_create(uow, mode, customer_id, None).await?;
    customers::lock(uow, mode, customer_id).await?;
    ensure_free_group(uow, mode, customer_id, &target.group).await?;
    let now = customers::now_of(uow, mode, customer_id).await?;
    let applied = change(
        uow,
        mode,
        customer_id,
        ChangeRequest {
            target,
            quantity,
            force_checkout: true,
            proration: Proration::ImmediateCharge,
            trial_days,
            trial_end: None,
        },
        &Urls {
            success: Some(return_url.clone()),
            cancel: Some(return_url.clone()),
        },
        None,
        now,
    )
    .await?;
    match (
        applied.action,
        applied.subscription_id,
        applied.checkout_session,
    ) {
        (Action::CheckoutRequired, Some(id), Some(session)) => Ok((id, session)),
        _ => Err(ApiError::internal(
            "4geeks create",
            &"a forced checkout did not open one",
        )),
    }
}

/// The subscription `id` of `mode`, with its customer locked for the rest of the unit (and read
/// again under the lock: another writer may have changed it meanwhile).
pub async fn lock_subscription(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<Subscription, SubscriptionError> {
    let sub = store::get(uow.conn(), mode, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))?;
    customers::lock(uow, mode, &sub.customer_id).await?;
    store::get(uow.conn(), mode, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
}

/// The subscription holds the license key its (new) plan grants, or none.
pub async fn sync_license(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    subscription_id: &str,
    price: &PlanPrice,
    now: i64,
) -> Result<(), sqlx::Error> {
    let limit = catalog::license_limit(uow.conn(), mode, &price.plan).await?;
    licenses::ensure_for_subscription(
        uow,
        mode,
        customer_id,
        subscription_id,
        &price.plan,
        limit,
        now,
    )
    .await
}

fn updated(uow: &mut Uow, sub: &Subscription, at: i64) {
    uow.emit(
        sub.mode,
        EventKind::SubscriptionUpdated,
        Subject::Subscription(sub.id.clone()),
        at,
    );
}

/// Starts a subscription to `price` for a customer who has paid (or needs no payment), ending
/// any other granting subscription in the same group: one plan per group. `pending` is the
/// `incomplete` subscription a checkout was opened for; it is activated in place so callers
/// keep the id they were given. Returns the subscription's id.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    price: &PlanPrice,
    quantity: i64,
    trial_days: u32,
    pending: Option<&str>,
    now: i64,
) -> Result<String, sqlx::Error> {
    store::end_granting_in_group(uow, mode, customer_id, &price.group, now).await?;
    let trial_end = (trial_days > 0).then(|| now + i64::from(trial_days) * 86_400);
    // A trial is its own period; the first charged cycle is anchored where it ends.
    let (status, period_end, anchor) = match trial_end {
        Some(end) => (Status::Trialing, Some(end), end),
        None => (
            Status::Active,
            price.charge_period.first_period_end(now),
            now,
        ),
    };
    let id = pending.map(str::to_owned).unwrap_or_else(ids::uuid);
    store::start(
        uow,
        mode,
        now,
        Start {
            id: &id,
            customer_id,
            price,
            quantity,
            status,
            period_end,
            trial_end,
            anchor,
        },
    )
    .await?;
    Ok(id)
}

/// A change's cycle, as an intent stores it.
pub fn cycle_spec(c: Cycle) -> CycleSpec {
    match c {
        Cycle::Same => CycleSpec::Same,
        Cycle::New => CycleSpec::New,
        Cycle::TrialUntil(t) => CycleSpec::TrialUntil(t),
    }
}

/// What an intent stored, as a change's cycle.
pub fn cycle_of(c: CycleSpec) -> Cycle {
    match c {
        CycleSpec::Same => Cycle::Same,
        CycleSpec::New => Cycle::New,
        CycleSpec::TrialUntil(t) => Cycle::TrialUntil(t),
    }
}

/// `subscription.created` for a new subscription, `subscription.activated` for the pending
/// one a checkout was opened for.
fn started(uow: &mut Uow, mode: Mode, id: &str, pending: bool, now: i64) {
    let event = if pending {
        EventKind::SubscriptionActivated
    } else {
        EventKind::SubscriptionCreated
    };
    uow.emit(mode, event, Subject::Subscription(id.to_owned()), now);
}

/// One pending checkout per group: the same request gets the same checkout back, another plan
/// replaces it (so a customer can never pay twice for one group).
async fn pending_checkout(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    req: &ChangeRequest,
    quantity: i64,
    urls: &Urls,
    now: i64,
) -> Result<Applied, SubscriptionError> {
    let target = &req.target;
    for pending in store::incomplete_in_group(uow.conn(), mode, customer_id, &target.group).await? {
        let Some(session) = checkout::open_for_subscription(uow.conn(), mode, &pending.id).await?
        else {
            continue;
        };
        let same = pending.plan == target.plan
            && pending.period == target.charge_period
            && pending.quantity == quantity;
        if same {
            return Ok(Applied {
                action: Action::CheckoutRequired,
                subscription_id: Some(pending.id),
                invoice_id: None,
                checkout_session: Some(session),
                intent: None,
            });
        }
        end_now(uow, &pending, now).await?;
    }
    let success_url = urls.success.as_ref().ok_or_else(|| {
        invalid(
            "successUrl",
            "required: this customer must go through checkout",
        )
    })?;
    let id = ids::uuid();
    store::insert_incomplete(uow, mode, &id, customer_id, target, quantity, now).await?;
    uow.emit(
        mode,
        EventKind::SubscriptionCreated,
        Subject::Subscription(id.clone()),
        now,
    );
    let session = checkout::open_session(
        uow,
        now,
        NewSession {
            mode,
            customer_id,
            plan: &target.plan,
            period: target.charge_period.as_str(),
            quantity,
            trial_days: req.trial_days.map(i64::from),
            success_url: success_url.as_str(),
            cancel_url: urls.cancel.as_ref().map(RedirectUrl::as_str),
            offering_id: None,
            pricing_table_id: None,
            ip_address: None,
            subscription_id: Some(&id),
        },
    )
    .await?;
    Ok(Applied {
        action: Action::CheckoutRequired,
        subscription_id: Some(id),
        invoice_id: None,
        checkout_session: Some(session),
        intent: None,
    })
}

/// Ends a subscription at `at`: `canceled`, no more retries, its checkouts expired, pending
/// proration lines invoiced, and `subscription.canceled` recorded.
pub async fn end_now(uow: &mut Uow, sub: &Subscription, at: i64) -> Result<(), sqlx::Error> {
    store::mark_ended(uow, sub, at).await?;
    checkout::expire_for_subscription(uow, sub.mode, &sub.id).await?;
    // Proration lines waiting for a next invoice that will never come are invoiced now.
    let pending =
        crate::domain::invoices::store::pending_line_count(uow.conn(), sub.mode, &sub.id).await?;
    if pending > 0 {
        collect::create_and_collect(
            uow,
            at,
            Draft {
                mode: sub.mode,
                customer_id: &sub.customer_id,
                subscription_id: Some(&sub.id),
                currency: sub.currency,
                reason: Reason::SubscriptionFinal,
                lines: Vec::new(),
            },
            Purpose::Invoice,
        )
        .await?;
    }
    uow.emit(
        sub.mode,
        EventKind::SubscriptionCanceled,
        Subject::Subscription(sub.id.clone()),
        at,
    );
    Ok(())
}

/// A checkout starts a customer's first paid plan in a group; changing plans is `subscribe` /
/// `update`'s job (with proration), so a customer who already has one gets a 409 instead of a
/// second charge.
pub async fn ensure_free_group(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<(), CheckoutError> {
    match store::current_in_group(uow.conn(), mode, customer_id, group).await? {
        Some(current) => Err(CheckoutError::Unavailable(format!(
            "customer '{customer_id}' already has plan '{}' in group '{group}'; change plans with \
             POST /api/v1/subscriptions/{{id}}/update/ or /api/v1/subscribe/",
            current.plan
        ))),
        None => Ok(()),
    }
}

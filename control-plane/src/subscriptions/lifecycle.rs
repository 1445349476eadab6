//! The one lifecycle service (SPEC §5, PayKit's behaviour table). `POST /api/v1/subscribe/`,
//! Kelviq's `update`, and checkout completion all come through [`change`], so a rule holds
//! whichever door a caller uses:
//!
//! | situation | result |
//! |---|---|
//! | target is the group's free/default plan, nothing paid | no-op: the default plan applies |
//! | new paid plan, card on file, no `forceCheckout` | created and charged at once |
//! | new paid plan, no card (or `forceCheckout`) | `incomplete` subscription + `paymentUrl` |
//! | higher price in the group, or same plan on a longer period | upgrade now, prorated invoice |
//! | lower price, or cancel to the free plan | scheduled for period end |
//! | another lower plan while one is scheduled | replaces the scheduled target |
//! | current plan with a change pending | resume: the pending change is cleared |
//! | current plan, nothing pending, same quantity | no-op |
//! | current plan, other quantity | updated in place, prorated |

use sqlx::Row;
use tollgate_shared::Mode;

use super::SubscriptionError;
use crate::billing::invoices::{self, Draft, Line, Payment};
use crate::billing::proration::{prorate, upgrade_in_cycle};
use crate::catalog::money::format_amount;
use crate::catalog::period::ChargePeriod;
use crate::catalog::store::PlanPrice;
use crate::db::WriteTx;
use crate::entitlements::{self, GRANTING};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proration {
    ImmediateCharge,
    NextInvoice,
    None,
}

impl Proration {
    pub fn parse(s: Option<&str>) -> Option<Proration> {
        match s {
            None | Some("IMMEDIATE_CHARGE") => Some(Proration::ImmediateCharge),
            Some("PRORATE_NEXT_INVOICE") => Some(Proration::NextInvoice),
            Some("NO_PRORATION") => Some(Proration::None),
            Some(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DefaultPlan,
    Created,
    CheckoutRequired,
    Upgraded,
    DowngradeScheduled,
    CancelScheduled,
    Resumed,
    QuantityChanged,
    NoOp,
}

#[derive(Debug)]
pub struct Outcome {
    pub action: Action,
    pub subscription_id: Option<String>,
    pub invoice_id: Option<String>,
    /// Set when a checkout is needed: the session to send the customer to.
    pub checkout_session: Option<String>,
}

pub struct Request<'a> {
    pub mode: Mode,
    pub customer_id: &'a str,
    pub target: PlanPrice,
    pub quantity: Option<i64>,
    pub force_checkout: bool,
    pub success_url: Option<&'a str>,
    pub cancel_url: Option<&'a str>,
    pub proration: Proration,
    pub trial_days: Option<u32>,
}

/// The granting subscription a customer has in a group, as the rules need it.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub status: String,
    pub plan: String,
    pub period: ChargePeriod,
    pub amount: i64,
    pub currency: String,
    pub quantity: i64,
    pub period_start: i64,
    pub period_end: Option<i64>,
    pub scheduled_plan: Option<String>,
    pub scheduled_period: Option<String>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
}

impl Current {
    fn total(&self) -> i64 {
        self.amount.saturating_mul(self.quantity)
    }

    fn pending_change(&self) -> bool {
        self.scheduled_plan.is_some() || self.cancel_at_period_end || self.cancel_at.is_some()
    }
}

pub async fn current_in_group(
    tx: &mut WriteTx,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<Option<Current>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT id, status, plan_identifier, charge_period, amount_minor, currency, quantity, current_period_start,
                current_period_end, scheduled_plan, scheduled_period, cancel_at_period_end, cancel_at
         FROM subscriptions WHERE mode = ? AND customer_id = ? AND grp = ? AND status IN {GRANTING}
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(group)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(Current {
            id: r.try_get("id")?,
            status: r.try_get("status")?,
            plan: r.try_get("plan_identifier")?,
            period: ChargePeriod::parse(r.try_get("charge_period")?)
                .unwrap_or(ChargePeriod::Monthly),
            amount: r.try_get("amount_minor")?,
            currency: r.try_get("currency")?,
            quantity: r.try_get("quantity")?,
            period_start: r.try_get("current_period_start")?,
            period_end: r.try_get("current_period_end")?,
            scheduled_plan: r.try_get("scheduled_plan")?,
            scheduled_period: r.try_get("scheduled_period")?,
            cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
            cancel_at: r.try_get("cancel_at")?,
        })
    })
    .transpose()
}

/// Is `target` (at `new_total`) a step up from `current`? A higher price per unit of time,
/// or the same plan on a longer period.
pub fn is_upgrade(current: &Current, target: &PlanPrice, new_total: i64) -> bool {
    // A one-time price has no period to spread over: compare what is paid.
    if current.period == ChargePeriod::OneTime || target.charge_period == ChargePeriod::OneTime {
        return new_total > current.total();
    }
    if current.plan == target.plan {
        return target.charge_period.nominal_days() > current.period.nominal_days();
    }
    let (cur_days, new_days) = (
        i128::from(current.period.nominal_days()),
        i128::from(target.charge_period.nominal_days()),
    );
    i128::from(new_total) * cur_days > i128::from(current.total()) * new_days
}

pub async fn change(
    tx: &mut WriteTx,
    now: i64,
    req: Request<'_>,
) -> Result<Outcome, SubscriptionError> {
    let mode = req.mode;
    let outcome = decide(tx, now, req).await?;
    let updated = matches!(
        outcome.action,
        Action::Upgraded
            | Action::DowngradeScheduled
            | Action::CancelScheduled
            | Action::Resumed
            | Action::QuantityChanged
    );
    if let (true, Some(id)) = (updated, &outcome.subscription_id) {
        crate::webhooks::emit_subscription(tx, mode, now, "subscription.updated", id).await?;
    }
    Ok(outcome)
}

async fn decide(
    tx: &mut WriteTx,
    now: i64,
    req: Request<'_>,
) -> Result<Outcome, SubscriptionError> {
    let current = current_in_group(tx, req.mode, req.customer_id, &req.target.group).await?;
    // Only the group's default plan is "free": a 0-priced plan of its own is still a plan to join.
    let free = req.target.is_default;
    let Some(current) = current else {
        if free {
            return Ok(Outcome {
                action: Action::DefaultPlan,
                subscription_id: None,
                invoice_id: None,
                checkout_session: None,
            });
        }
        return create(tx, now, &req).await;
    };
    let quantity = req.quantity.unwrap_or(current.quantity);
    let same_price = current.plan == req.target.plan && current.period == req.target.charge_period;
    if same_price {
        if quantity != current.quantity {
            return upgrade(tx, now, &req, &current, quantity, Action::QuantityChanged).await;
        }
        if current.pending_change() {
            clear_pending(tx, now, req.mode, &current.id).await?;
            return Ok(outcome(Action::Resumed, &current.id, None));
        }
        return Ok(outcome(Action::NoOp, &current.id, None));
    }
    if free {
        schedule(tx, now, req.mode, &current.id, &req.target, quantity, true).await?;
        return Ok(outcome(Action::CancelScheduled, &current.id, None));
    }
    let new_total = req.target.amount_minor.saturating_mul(quantity);
    if is_upgrade(&current, &req.target, new_total) {
        return upgrade(tx, now, &req, &current, quantity, Action::Upgraded).await;
    }
    if current.currency != req.target.currency {
        return Err(crate::error::invalid(
            "planIdentifier",
            "cannot switch between prices in different currencies",
        )
        .into());
    }
    schedule(tx, now, req.mode, &current.id, &req.target, quantity, false).await?;
    Ok(outcome(Action::DowngradeScheduled, &current.id, None))
}

fn outcome(action: Action, id: &str, invoice: Option<String>) -> Outcome {
    Outcome {
        action,
        subscription_id: Some(id.to_owned()),
        invoice_id: invoice,
        checkout_session: None,
    }
}

async fn clear_pending(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL, cancel_at_period_end = 0,
           cancel_at = NULL, canceled_at = NULL, modified_at = ? WHERE mode = ? AND id = ?",
    )
    .bind(now)
    .bind(mode.as_str())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// One pending change per subscription: a new one replaces the old.
async fn schedule(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    id: &str,
    target: &PlanPrice,
    quantity: i64,
    to_free: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET scheduled_plan = ?, scheduled_period = ?, scheduled_quantity = ?, cancel_at_period_end = ?,
           cancel_at = NULL, canceled_at = CASE WHEN ? THEN ? ELSE NULL END, modified_at = ? WHERE mode = ? AND id = ?",
    )
    .bind(&target.plan)
    .bind(target.charge_period.as_str())
    .bind(quantity)
    .bind(to_free)
    .bind(to_free)
    .bind(now)
    .bind(now)
    .bind(mode.as_str())
    .bind(id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

fn describe(plan: &str, quantity: i64, total: i64, currency: &str, period: ChargePeriod) -> String {
    format!(
        "{quantity} × {plan} ({} {} / {})",
        format_amount(total, currency),
        currency.to_uppercase(),
        period.recurrence()
    )
}

/// Upgrades (and quantity changes) take effect now. In the same cycle the invoice credits the
/// unused part of the old price and charges the rest of the period at the new one; a new
/// charge period starts a new cycle and charges its full price.
async fn upgrade(
    tx: &mut WriteTx,
    now: i64,
    req: &Request<'_>,
    current: &Current,
    quantity: i64,
    action: Action,
) -> Result<Outcome, SubscriptionError> {
    let target = &req.target;
    let new_total = target.amount_minor.saturating_mul(quantity);
    let mut invoice_id = None;
    let trialing = current.status == "trialing";
    let same_cycle = current.period == target.charge_period;
    let period_end = current.period_end.unwrap_or(now);
    if !trialing && current.currency != target.currency {
        return Err(crate::error::invalid(
            "planIdentifier",
            "cannot switch between prices in different currencies",
        )
        .into());
    }
    if !trialing {
        let mut lines = Vec::new();
        let (credit, charge) = if current.period_end.is_none() {
            // ONE_TIME: the old purchase is credited whole and the new one charged whole.
            (-current.total(), new_total)
        } else if same_cycle {
            upgrade_in_cycle(
                current.total(),
                new_total,
                now,
                current.period_start,
                period_end,
            )
        } else {
            (
                -prorate(
                    current.total(),
                    period_end - now,
                    period_end - current.period_start,
                ),
                new_total,
            )
        };
        let new_end = if same_cycle {
            Some(period_end)
        } else {
            target.charge_period.first_period_end(now)
        };
        if req.proration != Proration::None && credit != 0 {
            lines.push(Line {
                description: format!(
                    "Unused time on {}",
                    describe(
                        &current.plan,
                        current.quantity,
                        current.total(),
                        &current.currency,
                        current.period
                    )
                ),
                amount_minor: credit,
                period_start: Some(now),
                period_end: Some(period_end),
                proration: true,
                plan: Some(current.plan.clone()),
            });
        }
        if req.proration != Proration::None || !same_cycle {
            lines.push(Line {
                description: if same_cycle {
                    format!(
                        "Remaining time on {}",
                        describe(
                            &target.plan,
                            quantity,
                            new_total,
                            &target.currency,
                            target.charge_period
                        )
                    )
                } else {
                    describe(
                        &target.plan,
                        quantity,
                        new_total,
                        &target.currency,
                        target.charge_period,
                    )
                },
                amount_minor: charge,
                period_start: Some(now),
                period_end: new_end,
                proration: same_cycle,
                plan: Some(target.plan.clone()),
            });
        }
        let draft = Draft {
            mode: req.mode,
            customer_id: req.customer_id,
            subscription_id: Some(&current.id),
            currency: &target.currency,
            reason: "subscription_update",
            lines,
        };
        if req.proration == Proration::NextInvoice && same_cycle {
            invoices::add_pending(tx, &draft).await?;
        } else if !draft.lines.is_empty() {
            let created = invoices::create_and_collect(tx, now, draft).await?;
            if let Payment::Failed(decline) = created.payment {
                // The caller rolls the transaction back: nothing changes, nothing is granted.
                return Err(SubscriptionError::Payment(decline));
            }
            invoice_id = Some(created.id);
        }
    }
    let new_cycle = !same_cycle && !trialing;
    sqlx::query(
        "UPDATE subscriptions SET plan_identifier = ?, charge_period = ?, amount_minor = ?, currency = ?, quantity = ?,
           scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL, cancel_at_period_end = 0, cancel_at = NULL, canceled_at = NULL,
           current_period_start = CASE WHEN ? THEN ? ELSE current_period_start END,
           current_period_end = CASE WHEN ? THEN ? ELSE current_period_end END,
           cycle_anchor = CASE WHEN ? THEN ? ELSE cycle_anchor END,
           cycle_index = CASE WHEN ? THEN 0 ELSE cycle_index END,
           modified_at = ? WHERE mode = ? AND id = ?",
    )
    .bind(&target.plan)
    .bind(target.charge_period.as_str())
    .bind(target.amount_minor)
    .bind(&target.currency)
    .bind(quantity)
    .bind(new_cycle)
    .bind(now)
    .bind(new_cycle)
    .bind(target.charge_period.first_period_end(now))
    .bind(new_cycle)
    .bind(now)
    .bind(new_cycle)
    .bind(now)
    .bind(req.mode.as_str())
    .bind(&current.id)
    .execute(tx.conn())
    .await?;
    entitlements::recompile(tx, now, req.mode, &[req.customer_id.to_owned()]).await?;
    Ok(outcome(action, &current.id, invoice_id))
}

/// A first paid subscription in the group: charged now with a card on file (or trialing),
/// otherwise `incomplete` until a checkout is paid.
async fn create(
    tx: &mut WriteTx,
    now: i64,
    req: &Request<'_>,
) -> Result<Outcome, SubscriptionError> {
    let quantity = req.quantity.unwrap_or(1);
    let has_card = invoices::card_on_file(tx.conn(), req.mode, req.customer_id)
        .await?
        .is_some();
    let trial_days = req.trial_days.unwrap_or(req.target.trial_days);
    if has_card && !req.force_checkout {
        let id = super::start(
            tx,
            req.mode,
            now,
            super::NewSubscription {
                customer_id: req.customer_id,
                price: &req.target,
                quantity,
                trial_days,
                pending: None,
            },
        )
        .await?;
        let mut invoice_id = None;
        if trial_days == 0 {
            let total = req.target.amount_minor.saturating_mul(quantity);
            let created = invoices::create_and_collect(
                tx,
                now,
                Draft {
                    mode: req.mode,
                    customer_id: req.customer_id,
                    subscription_id: Some(&id),
                    currency: &req.target.currency,
                    reason: "subscription_create",
                    lines: vec![Line {
                        description: describe(
                            &req.target.plan,
                            quantity,
                            total,
                            &req.target.currency,
                            req.target.charge_period,
                        ),
                        amount_minor: total,
                        period_start: Some(now),
                        period_end: req.target.charge_period.first_period_end(now),
                        proration: false,
                        plan: Some(req.target.plan.clone()),
                    }],
                },
            )
            .await?;
            if let Payment::Failed(decline) = created.payment {
                return Err(SubscriptionError::Payment(decline));
            }
            invoice_id = Some(created.id);
        }
        return Ok(outcome(Action::Created, &id, invoice_id));
    }
    // One pending checkout per group: the same request gets the same checkout back, another
    // plan replaces it (so a customer can never pay twice for one group).
    let pending = sqlx::query(
        "SELECT s.id, s.plan_identifier, s.charge_period, s.quantity, c.id AS session FROM subscriptions s
         JOIN checkout_sessions c ON c.subscription_id = s.id AND c.status = 'open'
         WHERE s.mode = ? AND s.customer_id = ? AND s.grp = ? AND s.status = 'incomplete'",
    )
    .bind(req.mode.as_str())
    .bind(req.customer_id)
    .bind(&req.target.group)
    .fetch_all(tx.conn())
    .await?;
    for p in pending {
        let id: String = p.try_get("id")?;
        let same = p.try_get::<String, _>("plan_identifier")? == req.target.plan
            && p.try_get::<String, _>("charge_period")? == req.target.charge_period.as_str()
            && p.try_get::<i64, _>("quantity")? == quantity;
        if same {
            return Ok(Outcome {
                action: Action::CheckoutRequired,
                subscription_id: Some(id),
                invoice_id: None,
                checkout_session: Some(p.try_get("session")?),
            });
        }
        super::end_now(tx, req.mode, &id, now).await?;
    }
    let success_url = req.success_url.ok_or_else(|| {
        crate::error::invalid(
            "successUrl",
            "required: this customer must go through checkout",
        )
    })?;
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO subscriptions (id, mode, customer_id, plan_identifier, grp, charge_period, amount_minor, currency,
           quantity, status, started_at, current_period_start, cycle_anchor, created_at, modified_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'incomplete', ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(req.mode.as_str())
    .bind(req.customer_id)
    .bind(&req.target.plan)
    .bind(&req.target.group)
    .bind(req.target.charge_period.as_str())
    .bind(req.target.amount_minor)
    .bind(&req.target.currency)
    .bind(quantity)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(tx.conn())
    .await?;
    crate::webhooks::emit_subscription(tx, req.mode, now, "subscription.created", &id).await?;
    let session = crate::checkout::open_session(
        tx,
        now,
        crate::checkout::NewSession {
            mode: req.mode,
            customer_id: req.customer_id,
            plan: &req.target.plan,
            period: req.target.charge_period.as_str(),
            quantity,
            trial_days: req.trial_days.map(i64::from),
            success_url,
            cancel_url: req.cancel_url,
            offering_id: None,
            pricing_table_id: None,
            ip_address: None,
            subscription_id: Some(&id),
        },
    )
    .await?;
    Ok(Outcome {
        action: Action::CheckoutRequired,
        subscription_id: Some(id),
        invoice_id: None,
        checkout_session: Some(session),
    })
}

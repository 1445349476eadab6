//! The billing clock: one worker that renews, applies scheduled changes, ends trials with
//! their first charge, runs dunning, and republishes entitlements when meter windows roll over.
//!
//! The same [`run_due`] serves the real-time loop (customers without a test clock, at the
//! injected clock's "now") and test clocks (their customers, up to the clock's frozen time).
//! Due work is taken one item at a time in time order, each in its own transaction that
//! re-reads the row and re-checks that it is still due — so a crash between items loses
//! nothing, and re-running after a crash (or twice) does nothing twice.

use sqlx::Row;
use tollgate_shared::Mode;
use tracing::{Instrument, info_span, warn};

use super::invoices::{self, Draft, Line, Payment};
use crate::app::AppState;
use crate::catalog::period::ChargePeriod;
use crate::catalog::store::resolve_price;
use crate::entitlements::{self, GRANTING};

/// Whose work to run.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Customers on real time.
    RealTime,
    /// Customers attached to this test clock.
    TestClock(&'a str),
}

const NEVER: i64 = i64::MAX;
/// Bounds one call; advancing a daily subscription by decades still fits.
const MAX_STEPS: usize = 100_000;

#[derive(Debug)]
enum Due {
    Subscription {
        mode: Mode,
        id: String,
        at: i64,
    },
    Entitlements {
        mode: Mode,
        customer_id: String,
        at: i64,
    },
}

impl Due {
    fn at(&self) -> i64 {
        match self {
            Due::Subscription { at, .. } | Due::Entitlements { at, .. } => *at,
        }
    }
}

fn scope_filter(scope: Scope<'_>) -> (&'static str, Option<&str>) {
    match scope {
        Scope::RealTime => ("c.test_clock IS NULL AND ?1 IS NULL", None),
        Scope::TestClock(id) => ("c.test_clock = ?1", Some(id)),
    }
}

async fn next_due(
    state: &AppState,
    scope: Scope<'_>,
    until: i64,
    skip: &Skip,
) -> Result<Option<Due>, sqlx::Error> {
    let (filter, clock) = scope_filter(scope);
    let sub = sqlx::query(&format!(
        "SELECT s.mode, s.id, MIN(COALESCE(s.current_period_end, {NEVER}), COALESCE(s.cancel_at, {NEVER}),
                COALESCE(s.next_retry_at, {NEVER})) AS due
         FROM subscriptions s JOIN customers c ON c.mode = s.mode AND c.customer_id = s.customer_id
         WHERE s.status IN {GRANTING} AND {filter} AND due <= ?2
           AND s.id NOT IN (SELECT value FROM json_each(?3)) ORDER BY due LIMIT 1"
    ))
    .bind(clock)
    .bind(until)
    .bind(skip.subscriptions_json())
    .fetch_optional(&state.db.pool)
    .await?;
    let ents = sqlx::query(&format!(
        "SELECT e.mode, e.customer_id, e.next_change_at AS due
         FROM customer_entitlements e JOIN customers c ON c.mode = e.mode AND c.customer_id = e.customer_id
         WHERE e.next_change_at IS NOT NULL AND {filter} AND e.next_change_at <= ?2
           AND e.customer_id NOT IN (SELECT value FROM json_each(?3)) ORDER BY e.next_change_at LIMIT 1"
    ))
    .bind(clock)
    .bind(until)
    .bind(skip.customers_json())
    .fetch_optional(&state.db.pool)
    .await?;
    let sub = sub
        .map(|r| -> Result<Due, sqlx::Error> {
            Ok(Due::Subscription {
                mode: Mode::parse(r.try_get("mode")?).unwrap_or(Mode::Test),
                id: r.try_get("id")?,
                at: r.try_get("due")?,
            })
        })
        .transpose()?;
    let ents = ents
        .map(|r| -> Result<Due, sqlx::Error> {
            Ok(Due::Entitlements {
                mode: Mode::parse(r.try_get("mode")?).unwrap_or(Mode::Test),
                customer_id: r.try_get("customer_id")?,
                at: r.try_get("due")?,
            })
        })
        .transpose()?;
    // Subscriptions first on a tie: a renewal recompiles entitlements anyway.
    Ok(match (sub, ents) {
        (Some(s), Some(e)) => Some(if e.at() < s.at() { e } else { s }),
        (s, e) => s.or(e),
    })
}

/// Items that failed in this pass, so one broken row cannot block everything due after it.
#[derive(Default)]
struct Skip {
    subscriptions: Vec<String>,
    customers: Vec<String>,
}

impl Skip {
    fn subscriptions_json(&self) -> String {
        serde_json::to_string(&self.subscriptions).unwrap_or_else(|_| "[]".into())
    }

    fn customers_json(&self) -> String {
        serde_json::to_string(&self.customers).unwrap_or_else(|_| "[]".into())
    }
}

/// What one pass of the billing clock did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    pub steps: usize,
    /// Items that failed; they are logged, counted in metrics, and retried on the next pass.
    pub failed: usize,
}

/// Runs everything due at or before `until` in `scope`, oldest first.
pub async fn run_due(state: &AppState, scope: Scope<'_>, until: i64) -> Result<Run, sqlx::Error> {
    let mut run = Run::default();
    let mut skip = Skip::default();
    while let Some(due) = next_due(state, scope, until, &skip).await? {
        let span = info_span!("billing_step", ?due);
        let outcome = match &due {
            Due::Subscription { mode, id, at } => {
                subscription_step(state, *mode, id, *at)
                    .instrument(span)
                    .await
            }
            Due::Entitlements {
                mode,
                customer_id,
                at,
            } => {
                async {
                    let mut tx = state.db.write().await?;
                    entitlements::recompile(&mut tx, *at, *mode, std::slice::from_ref(customer_id)).await?;
                    let next: Option<i64> = sqlx::query_scalar(
                        "SELECT next_change_at FROM customer_entitlements WHERE mode = ? AND customer_id = ?",
                    )
                    .bind(mode.as_str())
                    .bind(customer_id)
                    .fetch_optional(tx.conn())
                    .await?
                    .flatten();
                    state.commit(tx).await?;
                    // A window that did not move (its subscription's step was skipped) must not
                    // be picked again and again in this pass.
                    Ok(next.is_none_or(|n| n > *at))
                }
                .instrument(span)
                .await
            }
        };
        match outcome {
            Ok(true) => {
                run.steps += 1;
                metrics::counter!("tollgate_billing_steps_total").increment(1);
            }
            Ok(false) | Err(_) => {
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, ?due, "billing step failed; skipping it until the next pass");
                }
                run.failed += 1;
                metrics::counter!("tollgate_billing_step_failures_total").increment(1);
                match due {
                    Due::Subscription { id, .. } => skip.subscriptions.push(id),
                    Due::Entitlements { customer_id, .. } => skip.customers.push(customer_id),
                }
            }
        }
        if run.steps + run.failed >= MAX_STEPS {
            warn!(
                ?run,
                "billing clock pass hit its step limit; the rest waits for the next pass"
            );
            break;
        }
    }
    Ok(run)
}

/// The background loop for customers on real time.
pub async fn run_forever(state: AppState, tick: std::time::Duration) {
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = run_due(&state, Scope::RealTime, state.clock.unix()).await {
            warn!(error = %e, "billing clock step failed; will retry");
        }
    }
}

struct Sub {
    customer_id: String,
    status: String,
    plan: String,
    period: ChargePeriod,
    amount: i64,
    currency: String,
    quantity: i64,
    period_start: i64,
    period_end: Option<i64>,
    cancel_at: Option<i64>,
    next_retry_at: Option<i64>,
    cancel_at_period_end: bool,
    scheduled_plan: Option<String>,
    scheduled_period: Option<String>,
    scheduled_quantity: Option<i64>,
    anchor: i64,
    index: i64,
    dunning_invoice: Option<String>,
    dunning_attempts: i64,
    dunning_started_at: Option<i64>,
}

async fn load(
    tx: &mut crate::db::WriteTx,
    mode: Mode,
    id: &str,
) -> Result<Option<Sub>, sqlx::Error> {
    let Some(r) = sqlx::query(
        "SELECT customer_id, status, plan_identifier, charge_period, amount_minor, currency, quantity, current_period_start,
                current_period_end, cancel_at, next_retry_at, cancel_at_period_end, scheduled_plan, scheduled_period,
                COALESCE(cycle_anchor, current_period_start) AS anchor, cycle_index, dunning_invoice, dunning_attempts,
                scheduled_quantity, dunning_started_at
         FROM subscriptions WHERE mode = ? AND id = ?",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Sub {
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        plan: r.try_get("plan_identifier")?,
        period: ChargePeriod::parse(r.try_get("charge_period")?).unwrap_or(ChargePeriod::Monthly),
        amount: r.try_get("amount_minor")?,
        currency: r.try_get("currency")?,
        quantity: r.try_get("quantity")?,
        period_start: r.try_get("current_period_start")?,
        period_end: r.try_get("current_period_end")?,
        cancel_at: r.try_get("cancel_at")?,
        next_retry_at: r.try_get("next_retry_at")?,
        cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
        scheduled_plan: r.try_get("scheduled_plan")?,
        scheduled_period: r.try_get("scheduled_period")?,
        anchor: r.try_get("anchor")?,
        index: r.try_get("cycle_index")?,
        dunning_invoice: r.try_get("dunning_invoice")?,
        dunning_attempts: r.try_get("dunning_attempts")?,
        scheduled_quantity: r.try_get("scheduled_quantity")?,
        dunning_started_at: r.try_get("dunning_started_at")?,
    }))
}

fn end_of(period: ChargePeriod, anchor: i64, n: i64) -> Option<i64> {
    use chrono::TimeZone;
    let anchor = chrono::Utc.timestamp_opt(anchor, 0).single()?;
    period
        .boundary(anchor, u32::try_from(n).ok()?)
        .map(|d| d.timestamp())
}

/// One due event of one subscription, in one transaction. Returns whether anything changed.
async fn subscription_step(
    state: &AppState,
    mode: Mode,
    id: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = state.db.write().await?;
    let Some(sub) = load(&mut tx, mode, id).await? else {
        return Ok(false);
    };
    let due = [sub.period_end, sub.cancel_at, sub.next_retry_at]
        .into_iter()
        .flatten()
        .min();
    if !crate::subscriptions::is_granting(&sub.status) || due != Some(at) {
        // Someone (another worker, or an earlier run before a crash) already did this.
        return Ok(false);
    }
    let retry_days = &state.config.dunning_retry_days;
    if sub.cancel_at == Some(at) {
        crate::subscriptions::end_now(&mut tx, mode, id, at).await?;
    } else if sub.next_retry_at == Some(at) {
        let invoice = sub.dunning_invoice.clone().unwrap_or_default();
        match invoices::retry(&mut tx, at, mode, &invoice).await? {
            Payment::Paid => {
                sqlx::query(
                    "UPDATE subscriptions SET status = 'active', dunning_invoice = NULL, dunning_attempts = 0,
                       next_retry_at = NULL, modified_at = ? WHERE mode = ? AND id = ?",
                )
                .bind(at)
                .bind(mode.as_str())
                .bind(id)
                .execute(tx.conn())
                .await?;
                crate::webhooks::emit_subscription(&mut tx, mode, at, "subscription.updated", id)
                    .await?;
            }
            Payment::Failed(_) => {
                let attempts = sub.dunning_attempts + 1;
                match retry_days.get(attempts as usize) {
                    Some(days) => {
                        let failed_at = sub.dunning_started_at.unwrap_or(sub.period_start);
                        sqlx::query(
                            "UPDATE subscriptions SET dunning_attempts = ?, next_retry_at = ?, modified_at = ?
                             WHERE mode = ? AND id = ?",
                        )
                        .bind(attempts)
                        .bind(failed_at + i64::from(*days) * 86_400)
                        .bind(at)
                        .bind(mode.as_str())
                        .bind(id)
                        .execute(tx.conn())
                        .await?;
                    }
                    None => {
                        invoices::set_status(&mut tx, &invoice, "uncollectible").await?;
                        crate::subscriptions::end_now(&mut tx, mode, id, at).await?;
                    }
                }
            }
        }
    } else if sub.period_end == Some(at) {
        period_end(state, &mut tx, mode, id, &sub, at).await?;
    }
    entitlements::recompile(&mut tx, at, mode, std::slice::from_ref(&sub.customer_id)).await?;
    state.commit(tx).await?;
    Ok(true)
}

/// A period boundary: cancel, or end the trial, or apply the scheduled change; then charge
/// the next period. A failed charge keeps access (`past_due`) and starts dunning.
async fn period_end(
    state: &AppState,
    tx: &mut crate::db::WriteTx,
    mode: Mode,
    id: &str,
    sub: &Sub,
    at: i64,
) -> Result<(), sqlx::Error> {
    if sub.cancel_at_period_end {
        return crate::subscriptions::end_now(tx, mode, id, at).await;
    }
    // Still unpaid when the next period is due (retries longer than a short period): the
    // failed invoice is given up and the subscription ends, rather than renewing on credit.
    if sub.status == "past_due" {
        if let Some(invoice) = &sub.dunning_invoice {
            invoices::set_status(tx, invoice, "uncollectible").await?;
        }
        return crate::subscriptions::end_now(tx, mode, id, at).await;
    }
    let trial_ending = sub.status == "trialing";
    if trial_ending
        && invoices::card_on_file(tx.conn(), mode, &sub.customer_id)
            .await?
            .is_none()
    {
        return crate::subscriptions::end_now(tx, mode, id, at).await;
    }
    let (mut plan, mut period, mut amount, mut currency) = (
        sub.plan.clone(),
        sub.period,
        sub.amount,
        sub.currency.clone(),
    );
    let mut new_cycle = trial_ending;
    if let Some(next_plan) = &sub.scheduled_plan {
        match resolve_price(tx.conn(), mode, next_plan, sub.scheduled_period.as_deref()).await {
            Ok(p) => {
                new_cycle |= p.charge_period != period;
                (plan, period, amount, currency) =
                    (p.plan, p.charge_period, p.amount_minor, p.currency);
            }
            Err(e) => {
                warn!(error = %e, plan = %next_plan, "scheduled plan no longer exists; renewing the current one")
            }
        }
    }
    // A trial was its own period, and a new charge period starts a new cycle: both anchor
    // the next cycle here. Otherwise the cycle goes on, counted from its anchor.
    let (anchor, index) = if new_cycle {
        (at, 0)
    } else {
        (sub.anchor, sub.index + 1)
    };
    let next_end = end_of(period, anchor, index + 1);
    let quantity = sub
        .scheduled_quantity
        .filter(|_| sub.scheduled_plan.is_some())
        .unwrap_or(sub.quantity);
    let total = amount.saturating_mul(quantity);
    let created = invoices::create_and_collect(
        tx,
        at,
        Draft {
            mode,
            customer_id: &sub.customer_id,
            subscription_id: Some(id),
            currency: &currency,
            reason: if trial_ending {
                "trial_end"
            } else {
                "subscription_cycle"
            },
            lines: vec![Line {
                description: format!("{quantity} × {plan} ({})", period.recurrence()),
                amount_minor: total,
                period_start: Some(at),
                period_end: next_end,
                proration: false,
                plan: Some(plan.clone()),
            }],
        },
    )
    .await?;
    let paid = created.payment == Payment::Paid;
    let first_retry = state
        .config
        .dunning_retry_days
        .first()
        .map(|d| at + i64::from(*d) * 86_400);
    sqlx::query(
        "UPDATE subscriptions SET status = ?, plan_identifier = ?, charge_period = ?, amount_minor = ?, currency = ?,
           quantity = ?, current_period_start = ?, current_period_end = ?, cycle_anchor = ?, cycle_index = ?,
           scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL,
           dunning_invoice = ?, dunning_attempts = 0, dunning_started_at = ?, next_retry_at = ?, modified_at = ?
         WHERE mode = ? AND id = ?",
    )
    .bind(if paid { "active" } else { "past_due" })
    .bind(&plan)
    .bind(period.as_str())
    .bind(amount)
    .bind(&currency)
    .bind(quantity)
    .bind(at)
    .bind(next_end)
    .bind(anchor)
    .bind(index)
    .bind((!paid).then_some(&created.id))
    .bind((!paid).then_some(at))
    .bind(if paid { None } else { first_retry })
    .bind(at)
    .bind(mode.as_str())
    .bind(id)
    .execute(tx.conn())
    .await?;
    let event = match (paid, trial_ending) {
        (true, true) => "subscription.activated",
        (true, false) => "subscription.renewed",
        (false, _) => "subscription.past_due",
    };
    crate::webhooks::emit_subscription(tx, mode, at, event, id).await?;
    if !paid && first_retry.is_none() {
        // No retries configured: the failure is final.
        invoices::set_status(tx, &created.id, "uncollectible").await?;
        crate::subscriptions::end_now(tx, mode, id, at).await?;
    }
    Ok(())
}

//! PayKit's behaviour table (SPEC §5) as one pure function: from the customer's current
//! subscription in a group and what they ask for, to a [`Decision`]. `POST /api/v1/subscribe/`,
//! Kelviq's `update`, the 4geeks create and checkout all come through [`decide`], and
//! `crate::workflows::subscribe` carries the decision out, so a rule holds whichever door a caller uses:
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

use crate::domain::catalog::model::PlanPrice;
use crate::domain::invoices::model::Line;
use crate::domain::invoices::proration::{prorate, upgrade_in_cycle};
pub use crate::domain::subscriptions::model::Cycle;
use crate::domain::subscriptions::model::{Status, Subscription, SubscriptionError};
use crate::platform::money::{Currency, format_amount};
use crate::platform::period::ChargePeriod;
use crate::platform::schema::TextRules;
use crate::platform::validate::{Invalid, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proration {
    ImmediateCharge,
    NextInvoice,
    None,
}

impl Proration {
    pub const NAMES: [&'static str; 3] =
        ["IMMEDIATE_CHARGE", "PRORATE_NEXT_INVOICE", "NO_PRORATION"];

    pub fn parse(s: Option<&str>) -> Option<Proration> {
        match s {
            None | Some("IMMEDIATE_CHARGE") => Some(Proration::ImmediateCharge),
            Some("PRORATE_NEXT_INVOICE") => Some(Proration::NextInvoice),
            Some("NO_PRORATION") => Some(Proration::None),
            Some(_) => None,
        }
    }
}

impl Proration {
    /// What the document promises of a proration behaviour: one of [`Proration::NAMES`].
    pub const RULES: TextRules = TextRules {
        marker: "proration",
        min_length: None,
        max_length: None,
        pattern: Some("^(IMMEDIATE_CHARGE|PRORATE_NEXT_INVOICE|NO_PRORATION)$"),
    };
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
    /// `trialEnd` was given: the trial ended now, or (re)starts until a date.
    TrialChanged,
    NoOp,
}

/// What a caller asked for.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub target: PlanPrice,
    pub quantity: Option<i64>,
    pub force_checkout: bool,
    pub proration: Proration,
    pub trial_days: Option<u32>,
    /// Kelviq's `trialEnd` on an update: end the trial now, or trial until a date.
    pub trial_end: Option<TrialEnd>,
}

impl ChangeRequest {
    /// A request for `target` with every option at its default: the quantity kept, no forced
    /// checkout, prorated and charged now, the plan's own trial.
    pub fn to(target: PlanPrice) -> ChangeRequest {
        ChangeRequest {
            target,
            quantity: None,
            force_checkout: false,
            proration: Proration::ImmediateCharge,
            trial_days: None,
            trial_end: None,
        }
    }
}

/// Kelviq's `trialEnd`: the literal `now`, or a time in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialEnd {
    Now,
    At(i64),
}

/// The invoice a change makes now (or, deferred, puts on the next invoice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePlan {
    pub lines: Vec<Line>,
    /// `PRORATE_NEXT_INVOICE`: the lines wait for the subscription's next invoice.
    pub deferred: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The group's default plan applies; nothing is stored.
    DefaultPlan,
    /// The first paid plan in the group, started now on the card on file (charged now unless
    /// it starts with a trial).
    StartNow {
        quantity: i64,
        trial_days: u32,
    },
    /// The first paid plan, but the customer must pay on the hosted checkout first.
    Checkout {
        quantity: i64,
    },
    /// An upgrade or a quantity change, effective now.
    ChangeNow {
        action: Action,
        quantity: i64,
        cycle: Cycle,
        invoice: Option<InvoicePlan>,
    },
    /// A downgrade, or a cancellation to the free plan, at the period's end.
    Schedule {
        action: Action,
        quantity: i64,
        to_free: bool,
    },
    Resume,
    NoOp,
}

impl Decision {
    pub fn action(&self) -> Action {
        match self {
            Decision::DefaultPlan => Action::DefaultPlan,
            Decision::StartNow { .. } => Action::Created,
            Decision::Checkout { .. } => Action::CheckoutRequired,
            Decision::ChangeNow { action, .. } | Decision::Schedule { action, .. } => *action,
            Decision::Resume => Action::Resumed,
            Decision::NoOp => Action::NoOp,
        }
    }
}

/// Is `target` (at `new_total`) a step up from `current`? A higher price per unit of time,
/// or the same plan on a longer period.
pub fn is_upgrade(current: &Subscription, target: &PlanPrice, new_total: i64) -> bool {
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

fn other_currency() -> Invalid {
    invalid(
        "planIdentifier",
        "cannot switch between prices in different currencies",
    )
}

/// The one decision.
pub fn decide(
    current: Option<&Subscription>,
    req: &ChangeRequest,
    has_card: bool,
    now: i64,
) -> Result<Decision, Invalid> {
    let target = &req.target;
    // Only the group's default plan is "free": a 0-priced plan of its own is still a plan.
    let free = target.is_default;
    let Some(current) = current else {
        if free {
            return Ok(Decision::DefaultPlan);
        }
        let quantity = req.quantity.unwrap_or(1);
        return Ok(if has_card && !req.force_checkout {
            Decision::StartNow {
                quantity,
                trial_days: req.trial_days.unwrap_or(target.trial_days),
            }
        } else {
            Decision::Checkout { quantity }
        });
    };
    let quantity = req.quantity.unwrap_or(current.quantity);
    match req.trial_end {
        Some(TrialEnd::At(at)) => return trial_until(current, req, quantity, at, now),
        Some(TrialEnd::Now) if current.status == Status::Trialing => {
            return end_trial_now(current, req, quantity, now);
        }
        // A subscription that is not trialing has no trial to end: `now` changes nothing.
        Some(TrialEnd::Now) | None => {}
    }
    let same_price = current.plan == target.plan && current.period == target.charge_period;
    if same_price {
        if quantity != current.quantity {
            return change_now(current, req, quantity, Action::QuantityChanged, now);
        }
        if current.pending_change() {
            return Ok(Decision::Resume);
        }
        return Ok(Decision::NoOp);
    }
    if free {
        return Ok(Decision::Schedule {
            action: Action::CancelScheduled,
            quantity,
            to_free: true,
        });
    }
    let new_total = target.amount_minor.saturating_mul(quantity);
    if is_upgrade(current, target, new_total) {
        return change_now(current, req, quantity, Action::Upgraded, now);
    }
    if current.currency != target.currency {
        return Err(other_currency());
    }
    Ok(Decision::Schedule {
        action: Action::DowngradeScheduled,
        quantity,
        to_free: false,
    })
}

/// How a full period of a price is described on an invoice, whichever door it came through
/// (a subscribe, a checkout, a renewal).
pub fn describe(
    plan: &str,
    quantity: i64,
    total: i64,
    currency: Currency,
    period: ChargePeriod,
) -> String {
    format!(
        "{quantity} × {plan} ({} {} / {})",
        format_amount(total, currency),
        currency.upper(),
        period.recurrence()
    )
}

/// The line that charges one whole period of `price` × `quantity` from `start`.
pub fn full_period_line(price: &PlanPrice, quantity: i64, start: i64) -> Line {
    let total = price.amount_minor.saturating_mul(quantity);
    Line {
        description: describe(
            &price.plan,
            quantity,
            total,
            price.currency,
            price.charge_period,
        ),
        amount_minor: total,
        period_start: Some(start),
        period_end: price.charge_period.first_period_end(start),
        proration: false,
        plan: Some(price.plan.clone()),
    }
}

/// `trialEnd` at a date: whatever the direction, the subscription switches to the target now and
/// is `trialing` until `at`, with no invoice now; the first charge falls at `at`. Unused paid
/// time of the current period is not credited (docs/billing.md: a trial replaces it).
fn trial_until(
    current: &Subscription,
    req: &ChangeRequest,
    quantity: i64,
    at: i64,
    now: i64,
) -> Result<Decision, Invalid> {
    if at <= now {
        return Err(invalid("trialEnd", "must be in the future"));
    }
    if req.target.is_default {
        return Err(invalid(
            "trialEnd",
            "the group's free default plan has no trial",
        ));
    }
    if current.currency != req.target.currency {
        return Err(other_currency());
    }
    Ok(Decision::ChangeNow {
        action: Action::TrialChanged,
        quantity,
        cycle: Cycle::TrialUntil(at),
        invoice: None,
    })
}

/// `trialEnd: now` on a trialing subscription: the trial ends, a paid cycle of the target
/// starts now and its full price is charged now (whatever `prorationBehavior`: nothing of a
/// trial was paid, so there is nothing to prorate).
fn end_trial_now(
    current: &Subscription,
    req: &ChangeRequest,
    quantity: i64,
    now: i64,
) -> Result<Decision, Invalid> {
    if req.target.is_default {
        return Err(invalid(
            "trialEnd",
            "the group's free default plan has no trial",
        ));
    }
    if current.currency != req.target.currency {
        return Err(other_currency());
    }
    Ok(Decision::ChangeNow {
        action: Action::TrialChanged,
        quantity,
        cycle: Cycle::New,
        invoice: Some(InvoicePlan {
            lines: vec![full_period_line(&req.target, quantity, now)],
            deferred: false,
        }),
    })
}

/// Upgrades (and quantity changes) take effect now. In the same cycle the invoice credits the
/// unused part of the old price and charges the rest of the period at the new one; a new
/// charge period starts a new cycle and charges its full price. A trial changes plan without
/// an invoice.
fn change_now(
    current: &Subscription,
    req: &ChangeRequest,
    quantity: i64,
    action: Action,
    now: i64,
) -> Result<Decision, Invalid> {
    let target = &req.target;
    let trialing = current.status == Status::Trialing;
    let same_cycle = current.period == target.charge_period;
    if trialing {
        return Ok(Decision::ChangeNow {
            action,
            quantity,
            cycle: Cycle::Same,
            invoice: None,
        });
    }
    if current.currency != target.currency {
        return Err(other_currency());
    }
    let new_total = target.amount_minor.saturating_mul(quantity);
    let period_end = current.period_end.unwrap_or(now);
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
    let mut lines = Vec::new();
    if req.proration != Proration::None && credit != 0 {
        lines.push(Line {
            description: format!(
                "Unused time on {}",
                describe(
                    &current.plan,
                    current.quantity,
                    current.total(),
                    current.currency,
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
        let described = describe(
            &target.plan,
            quantity,
            new_total,
            target.currency,
            target.charge_period,
        );
        lines.push(Line {
            description: if same_cycle {
                format!("Remaining time on {described}")
            } else {
                described
            },
            amount_minor: charge,
            period_start: Some(now),
            period_end: new_end,
            proration: same_cycle,
            plan: Some(target.plan.clone()),
        });
    }
    let deferred = req.proration == Proration::NextInvoice && same_cycle;
    Ok(Decision::ChangeNow {
        action,
        quantity,
        cycle: if same_cycle { Cycle::Same } else { Cycle::New },
        invoice: (!lines.is_empty()).then_some(InvoicePlan { lines, deferred }),
    })
}

/// When a cancellation asks a subscription to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAt {
    Now,
    PeriodEnd,
    Date(i64),
}

/// What a cancellation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The subscription ends now.
    EndNow,
    /// Access goes on until the period's end (`at: None`) or until `at`.
    Later { at: Option<i64> },
}

/// The one cancellation rule, for every door (Kelviq's `cancel`, 4geeks' `DELETE`, the portal):
/// only a granting or an unpaid (`incomplete`) subscription can be canceled; a date must lie
/// ahead of the subscription's `now`; and an unpaid subscription (no period to run out) or a
/// ONE_TIME purchase (no period end to wait for) asked to end at its period's end ends now.
pub fn decide_cancel(
    sub: &Subscription,
    when: CancelAt,
    now: i64,
) -> Result<Cancellation, SubscriptionError> {
    if !sub.status.is_granting() && sub.status != Status::Incomplete {
        return Err(SubscriptionError::NotChangeable {
            status: sub.status,
            action: "canceling",
        });
    }
    if let CancelAt::Date(at) = when
        && at <= now
    {
        return Err(SubscriptionError::CancelDateNotAhead);
    }
    let one_time = sub.period_end.is_none();
    let ends_now = when == CancelAt::Now
        || sub.status == Status::Incomplete
        || (one_time && when == CancelAt::PeriodEnd);
    Ok(match when {
        _ if ends_now => Cancellation::EndNow,
        CancelAt::Date(at) => Cancellation::Later { at: Some(at) },
        _ => Cancellation::Later { at: None },
    })
}

/// Resuming clears a scheduled cancellation or plan change; only a granting subscription has
/// one to clear.
pub fn decide_resume(sub: &Subscription) -> Result<(), SubscriptionError> {
    if !sub.status.is_granting() {
        return Err(SubscriptionError::NotChangeable {
            status: sub.status,
            action: "resuming",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn t(m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0)
            .unwrap()
            .timestamp()
    }

    fn price(plan: &str, period: ChargePeriod, amount: i64, default: bool) -> PlanPrice {
        PlanPrice {
            is_default: default,
            trial_days: if plan == "enterprise" { 14 } else { 0 },
            ..PlanPrice::test(plan, period, amount)
        }
    }

    fn free() -> PlanPrice {
        price("free", ChargePeriod::Monthly, 0, true)
    }
    fn pro() -> PlanPrice {
        price("pro", ChargePeriod::Monthly, 4_900, false)
    }
    fn pro_yearly() -> PlanPrice {
        price("pro", ChargePeriod::Yearly, 49_000, false)
    }
    fn enterprise() -> PlanPrice {
        price("enterprise", ChargePeriod::Monthly, 19_900, false)
    }

    /// Pro monthly, April 2026, one seat, active.
    fn on_pro() -> Subscription {
        Subscription::test("pro", ChargePeriod::Monthly, 4_900, t(4, 1))
    }

    fn on_enterprise() -> Subscription {
        Subscription {
            plan: "enterprise".into(),
            amount: 19_900,
            ..on_pro()
        }
    }

    fn ask(target: PlanPrice) -> ChangeRequest {
        ChangeRequest {
            target,
            quantity: None,
            force_checkout: false,
            proration: Proration::ImmediateCharge,
            trial_days: None,
            trial_end: None,
        }
    }

    fn amounts(d: &Decision) -> Vec<i64> {
        match d {
            Decision::ChangeNow {
                invoice: Some(i), ..
            } => i.lines.iter().map(|l| l.amount_minor).collect(),
            _ => Vec::new(),
        }
    }

    /// One row per line of the behaviour table above.
    #[test]
    fn paykit_behaviour_table() {
        let mid = t(4, 16);
        let pending = Subscription {
            scheduled_plan: Some("pro".into()),
            scheduled_period: Some("MONTHLY".into()),
            ..on_enterprise()
        };
        let cases: Vec<(&str, Option<Subscription>, ChangeRequest, bool, Action)> = vec![
            (
                "free, nothing paid",
                None,
                ask(free()),
                false,
                Action::DefaultPlan,
            ),
            (
                "paid, card on file",
                None,
                ask(pro()),
                true,
                Action::Created,
            ),
            (
                "paid, no card",
                None,
                ask(pro()),
                false,
                Action::CheckoutRequired,
            ),
            (
                "paid, card, forceCheckout",
                None,
                ChangeRequest {
                    force_checkout: true,
                    ..ask(pro())
                },
                true,
                Action::CheckoutRequired,
            ),
            (
                "higher price",
                Some(on_pro()),
                ask(enterprise()),
                true,
                Action::Upgraded,
            ),
            (
                "same plan, longer period",
                Some(on_pro()),
                ask(pro_yearly()),
                true,
                Action::Upgraded,
            ),
            (
                "lower price",
                Some(on_enterprise()),
                ask(pro()),
                true,
                Action::DowngradeScheduled,
            ),
            (
                "cancel to free",
                Some(on_pro()),
                ask(free()),
                true,
                Action::CancelScheduled,
            ),
            (
                "another lower plan while one is scheduled",
                Some(pending.clone()),
                ask(free()),
                true,
                Action::CancelScheduled,
            ),
            (
                "current plan, change pending",
                Some(pending),
                ask(enterprise()),
                true,
                Action::Resumed,
            ),
            (
                "current plan, nothing pending",
                Some(on_pro()),
                ask(pro()),
                true,
                Action::NoOp,
            ),
            (
                "current plan, other quantity",
                Some(on_pro()),
                ChangeRequest {
                    quantity: Some(3),
                    ..ask(pro())
                },
                true,
                Action::QuantityChanged,
            ),
        ];
        for (row, current, req, card, expected) in cases {
            let d = decide(current.as_ref(), &req, card, mid).unwrap();
            assert_eq!(d.action(), expected, "{row}");
        }
    }

    #[test]
    fn upgrade_mid_period_prorates_to_the_cent() {
        let d = decide(Some(&on_pro()), &ask(enterprise()), true, t(4, 16)).unwrap();
        // 15 of 30 days left: −24.50 for unused Pro, +99.50 for Enterprise.
        assert_eq!(amounts(&d), vec![-2_450, 9_950]);
        assert!(matches!(
            d,
            Decision::ChangeNow {
                cycle: Cycle::Same,
                ..
            }
        ));
    }

    #[test]
    fn a_longer_period_starts_a_new_cycle_and_charges_in_full() {
        let d = decide(Some(&on_pro()), &ask(pro_yearly()), true, t(4, 16)).unwrap();
        assert_eq!(amounts(&d), vec![-2_450, 49_000]);
        assert!(matches!(
            d,
            Decision::ChangeNow {
                cycle: Cycle::New,
                ..
            }
        ));
    }

    #[test]
    fn proration_behaviours() {
        let with = |p: Proration| ChangeRequest {
            proration: p,
            ..ask(enterprise())
        };
        let none = decide(Some(&on_pro()), &with(Proration::None), true, t(4, 16)).unwrap();
        assert_eq!(
            none,
            Decision::ChangeNow {
                action: Action::Upgraded,
                quantity: 1,
                cycle: Cycle::Same,
                invoice: None
            }
        );
        let next = decide(
            Some(&on_pro()),
            &with(Proration::NextInvoice),
            true,
            t(4, 16),
        )
        .unwrap();
        assert!(matches!(
            next,
            Decision::ChangeNow {
                invoice: Some(InvoicePlan { deferred: true, .. }),
                ..
            }
        ));
    }

    #[test]
    fn trials_change_plan_without_an_invoice() {
        let trial = Subscription {
            status: Status::Trialing,
            ..on_pro()
        };
        let d = decide(Some(&trial), &ask(enterprise()), true, t(4, 16)).unwrap();
        assert!(matches!(d, Decision::ChangeNow { invoice: None, .. }));
    }

    #[test]
    fn currencies_do_not_mix() {
        let eur = PlanPrice {
            currency: Currency::parse("eur").expect("a currency"),
            amount_minor: 100,
            ..pro()
        };
        let mut cheap = ask(eur);
        cheap.target.plan = "cheap".into();
        assert_eq!(
            decide(Some(&on_pro()), &cheap, true, t(4, 16))
                .unwrap_err()
                .field,
            "planIdentifier"
        );
    }

    #[test]
    fn one_time_more_seats_cost_the_difference() {
        let life = Subscription {
            plan: "life".into(),
            period: ChargePeriod::OneTime,
            amount: 29_900,
            period_end: None,
            ..on_pro()
        };
        let target = price("life", ChargePeriod::OneTime, 29_900, false);
        let req = ChangeRequest {
            quantity: Some(3),
            ..ask(target)
        };
        let d = decide(Some(&life), &req, true, t(4, 16)).unwrap();
        assert_eq!(d.action(), Action::QuantityChanged);
        assert_eq!(amounts(&d).iter().sum::<i64>(), 59_800);
    }

    /// The one cancellation rule, row by row.
    #[test]
    fn cancellation_table() {
        let now = t(4, 16);
        let one_time = Subscription {
            period: ChargePeriod::OneTime,
            period_end: None,
            ..on_pro()
        };
        let unpaid = Subscription {
            status: Status::Incomplete,
            ..on_pro()
        };
        let ended = Subscription {
            status: Status::Canceled,
            ..on_pro()
        };
        let past_due = Subscription {
            status: Status::PastDue,
            ..on_pro()
        };
        let active = on_pro();
        use Cancellation::{EndNow, Later};
        let rows: Vec<(&str, &Subscription, CancelAt, Result<Cancellation, &str>)> = vec![
            ("now", &active, CancelAt::Now, Ok(EndNow)),
            (
                "at period end",
                &active,
                CancelAt::PeriodEnd,
                Ok(Later { at: None }),
            ),
            (
                "on a date ahead",
                &active,
                CancelAt::Date(t(4, 20)),
                Ok(Later { at: Some(t(4, 20)) }),
            ),
            (
                "on a date passed",
                &active,
                CancelAt::Date(t(4, 10)),
                Err("ahead"),
            ),
            (
                "on this very second",
                &active,
                CancelAt::Date(now),
                Err("ahead"),
            ),
            (
                "past due, at period end",
                &past_due,
                CancelAt::PeriodEnd,
                Ok(Later { at: None }),
            ),
            (
                "unpaid: nothing to run out",
                &unpaid,
                CancelAt::PeriodEnd,
                Ok(EndNow),
            ),
            (
                "unpaid, on a date",
                &unpaid,
                CancelAt::Date(t(4, 20)),
                Ok(EndNow),
            ),
            (
                "one-time, at period end",
                &one_time,
                CancelAt::PeriodEnd,
                Ok(EndNow),
            ),
            (
                "one-time, on a date",
                &one_time,
                CancelAt::Date(t(4, 20)),
                Ok(Later { at: Some(t(4, 20)) }),
            ),
            ("already ended", &ended, CancelAt::Now, Err("changeable")),
        ];
        for (row, sub, when, expected) in rows {
            let got = decide_cancel(sub, when, now);
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{row}"),
                (Err(SubscriptionError::CancelDateNotAhead), Err("ahead")) => {}
                (Err(SubscriptionError::NotChangeable { .. }), Err("changeable")) => {}
                (got, want) => panic!("{row}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn resumption_table() {
        for (status, ok) in [
            (Status::Active, true),
            (Status::Trialing, true),
            (Status::PastDue, true),
            (Status::Incomplete, false),
            (Status::Canceled, false),
        ] {
            let sub = Subscription { status, ..on_pro() };
            assert_eq!(decide_resume(&sub).is_ok(), ok, "{status}");
        }
    }
}

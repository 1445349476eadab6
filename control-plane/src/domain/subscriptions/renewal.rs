//! The billing clock's rules as pure functions: what is due for a subscription at a moment, what
//! a period end does (cancel, end a trial, apply the scheduled change, renew), and how dunning
//! goes on after a charge. The worker (`crate::workers::billing_clock`) reads a subscription, asks these, and
//! applies the answer in one unit of work.

use chrono::TimeZone;

use crate::domain::catalog::model::PlanPrice;
use crate::domain::invoices::model::{Line, Reason};
use crate::domain::subscriptions::lifecycle::describe;
use crate::domain::subscriptions::model::{Status, Subscription};
use crate::platform::events::EventKind;
use crate::platform::money::Currency;
use crate::platform::period::ChargePeriod;

/// What falls due for a subscription at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing (any more): another worker, or an earlier run before a crash, already did it.
    Nothing,
    /// `cancel_at` is reached.
    CancelDate,
    /// A dunning retry of `invoice`.
    Retry { invoice: String },
    /// The current period ends.
    PeriodEnd,
}

pub fn due(sub: &Subscription, at: i64) -> Due {
    if !sub.status.is_granting() || sub.next_due() != Some(at) {
        return Due::Nothing;
    }
    if sub.cancel_at == Some(at) {
        Due::CancelDate
    } else if sub.next_retry_at == Some(at) {
        Due::Retry {
            invoice: sub.dunning_invoice.clone().unwrap_or_default(),
        }
    } else {
        Due::PeriodEnd
    }
}

/// What a period end does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodEnd {
    /// The subscription ends; `uncollectible` names an invoice given up on.
    End { uncollectible: Option<String> },
    /// It goes on into a new period, charged now.
    Renew { trial_ending: bool },
}

pub fn period_end(sub: &Subscription, has_card: bool) -> PeriodEnd {
    if sub.cancel_at_period_end {
        return PeriodEnd::End {
            uncollectible: None,
        };
    }
    // Still unpaid when the next period is due (retries longer than a short period): the
    // failed invoice is given up and the subscription ends, rather than renewing on credit.
    if sub.status == Status::PastDue {
        return PeriodEnd::End {
            uncollectible: sub.dunning_invoice.clone(),
        };
    }
    let trial_ending = sub.status == Status::Trialing;
    if trial_ending && !has_card {
        return PeriodEnd::End {
            uncollectible: None,
        };
    }
    PeriodEnd::Renew { trial_ending }
}

/// The next period of a renewing subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub plan: String,
    pub period: ChargePeriod,
    pub amount: i64,
    pub currency: Currency,
    pub quantity: i64,
    pub anchor: i64,
    pub index: i64,
    pub period_end: Option<i64>,
    pub reason: Reason,
    pub line: Line,
}

fn end_of(period: ChargePeriod, anchor: i64, n: i64) -> Option<i64> {
    let anchor = chrono::Utc.timestamp_opt(anchor, 0).single()?;
    period
        .boundary(anchor, u32::try_from(n).ok()?)
        .map(|d| d.timestamp())
}

/// The period that starts at `at`: the scheduled change applied (when its plan still has the
/// price), the cycle continued or — after a trial, or on a new charge period — restarted.
pub fn renewal(
    sub: &Subscription,
    at: i64,
    trial_ending: bool,
    scheduled: Option<&PlanPrice>,
) -> Renewal {
    let (plan, period, amount, currency) = match scheduled {
        Some(p) => (p.plan.clone(), p.charge_period, p.amount_minor, p.currency),
        None => (sub.plan.clone(), sub.period, sub.amount, sub.currency),
    };
    // A trial was its own period, and a new charge period starts a new cycle: both anchor the
    // next cycle here. Otherwise the cycle goes on, counted from its anchor.
    let new_cycle = trial_ending || period != sub.period;
    let (anchor, index) = if new_cycle {
        (at, 0)
    } else {
        (sub.cycle_anchor, sub.cycle_index + 1)
    };
    let period_end = end_of(period, anchor, index + 1);
    let quantity = sub
        .scheduled_quantity
        .filter(|_| sub.scheduled_plan.is_some())
        .unwrap_or(sub.quantity);
    let total = amount.saturating_mul(quantity);
    Renewal {
        line: Line {
            description: describe(&plan, quantity, total, currency, period),
            amount_minor: total,
            period_start: Some(at),
            period_end,
            proration: false,
            plan: Some(plan.clone()),
        },
        plan,
        period,
        amount,
        currency,
        quantity,
        anchor,
        index,
        period_end,
        reason: if trial_ending {
            Reason::TrialEnd
        } else {
            Reason::SubscriptionCycle
        },
    }
}

/// Where a renewal charge leaves the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterCharge {
    pub status: Status,
    /// First dunning retry, when the charge failed and retries are configured.
    pub next_retry_at: Option<i64>,
    /// The charge failed and no retry is configured: the failure is final.
    pub give_up: bool,
    pub event: EventKind,
}

pub fn after_charge(paid: bool, trial_ending: bool, at: i64, retry_days: &[u32]) -> AfterCharge {
    let first_retry = retry_days.first().map(|d| at + i64::from(*d) * 86_400);
    AfterCharge {
        status: if paid {
            Status::Active
        } else {
            Status::PastDue
        },
        next_retry_at: if paid { None } else { first_retry },
        give_up: !paid && first_retry.is_none(),
        event: match (paid, trial_ending) {
            (true, true) => EventKind::SubscriptionActivated,
            (true, false) => EventKind::SubscriptionRenewed,
            (false, _) => EventKind::SubscriptionPastDue,
        },
    }
}

/// Where a dunning retry leaves the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRetry {
    Recovered,
    RetryAt { attempts: i64, at: i64 },
    GiveUp,
}

/// Retries are counted from the failed charge (`dunning_started_at`), on the configured days.
pub fn after_retry(sub: &Subscription, paid: bool, retry_days: &[u32]) -> AfterRetry {
    if paid {
        return AfterRetry::Recovered;
    }
    let attempts = sub.dunning_attempts + 1;
    match usize::try_from(attempts)
        .ok()
        .and_then(|a| retry_days.get(a))
    {
        Some(days) => {
            let failed_at = sub.dunning_started_at.unwrap_or(sub.period_start);
            AfterRetry::RetryAt {
                attempts,
                at: failed_at + i64::from(*days) * 86_400,
            }
        }
        None => AfterRetry::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn t(m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0)
            .unwrap()
            .timestamp()
    }

    fn sub() -> Subscription {
        Subscription::test("pro", ChargePeriod::Monthly, 4_900, t(1, 31))
    }

    #[test]
    fn what_is_due() {
        let rows: Vec<(&str, Subscription, i64, Due)> = vec![
            ("period end", sub(), t(2, 28), Due::PeriodEnd),
            ("not yet", sub(), t(2, 27), Due::Nothing),
            ("already done", sub(), t(1, 31), Due::Nothing),
            (
                "ended",
                Subscription {
                    status: Status::Canceled,
                    ..sub()
                },
                t(2, 28),
                Due::Nothing,
            ),
            (
                "cancel date first",
                Subscription {
                    cancel_at: Some(t(2, 10)),
                    ..sub()
                },
                t(2, 10),
                Due::CancelDate,
            ),
            (
                "retry",
                Subscription {
                    status: Status::PastDue,
                    next_retry_at: Some(t(2, 3)),
                    dunning_invoice: Some("in_1".into()),
                    ..sub()
                },
                t(2, 3),
                Due::Retry {
                    invoice: "in_1".into(),
                },
            ),
        ];
        for (row, s, at, expected) in rows {
            assert_eq!(due(&s, at), expected, "{row}");
        }
    }

    #[test]
    fn what_a_period_end_does() {
        let rows: Vec<(&str, Subscription, bool, PeriodEnd)> = vec![
            (
                "renew",
                sub(),
                true,
                PeriodEnd::Renew {
                    trial_ending: false,
                },
            ),
            (
                "cancel at period end",
                Subscription {
                    cancel_at_period_end: true,
                    ..sub()
                },
                true,
                PeriodEnd::End {
                    uncollectible: None,
                },
            ),
            (
                "still past due",
                Subscription {
                    status: Status::PastDue,
                    dunning_invoice: Some("in_1".into()),
                    ..sub()
                },
                true,
                PeriodEnd::End {
                    uncollectible: Some("in_1".into()),
                },
            ),
            (
                "trial ends with a card",
                Subscription {
                    status: Status::Trialing,
                    ..sub()
                },
                true,
                PeriodEnd::Renew { trial_ending: true },
            ),
            (
                "trial ends without a card",
                Subscription {
                    status: Status::Trialing,
                    ..sub()
                },
                false,
                PeriodEnd::End {
                    uncollectible: None,
                },
            ),
        ];
        for (row, s, card, expected) in rows {
            assert_eq!(period_end(&s, card), expected, "{row}");
        }
    }

    #[test]
    fn renewals_follow_the_calendar_and_apply_scheduled_changes() {
        let r = renewal(&sub(), t(2, 28), false, None);
        assert_eq!(r.period_end, Some(t(3, 31)), "Jan 31 → Feb 28 → Mar 31");
        assert_eq!((r.anchor, r.index), (t(1, 31), 1));
        assert_eq!(r.reason, Reason::SubscriptionCycle);
        let scheduled = PlanPrice {
            plan: "basic".into(),
            plan_name: "Basic".into(),
            group: "base".into(),
            is_default: false,
            trial_days: 0,
            price_id: None,
            charge_period: ChargePeriod::Yearly,
            amount_minor: 10_000,
            currency: Currency::USD,
        };
        let s = Subscription {
            scheduled_plan: Some("basic".into()),
            scheduled_quantity: Some(2),
            ..sub()
        };
        let r = renewal(&s, t(2, 28), false, Some(&scheduled));
        assert_eq!(
            (r.plan.as_str(), r.quantity, r.line.amount_minor),
            ("basic", 2, 20_000)
        );
        assert_eq!(
            (r.anchor, r.index),
            (t(2, 28), 0),
            "a new period starts a new cycle"
        );
        let trial = renewal(&sub(), t(2, 14), true, None);
        assert_eq!(trial.reason, Reason::TrialEnd);
        assert_eq!(trial.anchor, t(2, 14));
    }

    #[test]
    fn dunning_steps() {
        let days = [3, 5, 7];
        assert_eq!(
            after_charge(true, false, 100, &days).event,
            EventKind::SubscriptionRenewed
        );
        assert_eq!(
            after_charge(true, true, 100, &days).event,
            EventKind::SubscriptionActivated
        );
        let failed = after_charge(false, false, 0, &days);
        assert_eq!(failed.status, Status::PastDue);
        assert_eq!(failed.next_retry_at, Some(3 * 86_400));
        assert!(after_charge(false, false, 0, &[]).give_up);
        let dunning = Subscription {
            status: Status::PastDue,
            dunning_started_at: Some(0),
            ..sub()
        };
        assert_eq!(after_retry(&dunning, true, &days), AfterRetry::Recovered);
        assert_eq!(
            after_retry(&dunning, false, &days),
            AfterRetry::RetryAt {
                attempts: 1,
                at: 5 * 86_400
            }
        );
        let last = Subscription {
            dunning_attempts: 2,
            ..dunning
        };
        assert_eq!(after_retry(&last, false, &days), AfterRetry::GiveUp);
    }
}

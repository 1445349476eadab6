//! Meter windows (pure). A METER feature resets at its `resetPeriod`: `BILLING_PERIOD`
//! follows the current period of the subscription that grants it (a calendar month from the
//! customer's creation when only the free plan grants it); `DAILY`/`WEEKLY`/`MONTHLY`/`YEARLY`
//! are calendar cycles anchored at the customer's creation.

use chrono::TimeZone;

use crate::platform::period::ChargePeriod;

/// `[start, end)`; `end == None` never resets (a `ONE_TIME` purchase).
pub type Window = (i64, Option<i64>);

/// The cycle of `period` anchored at `anchor` that contains `now`.
pub fn cycle_window(anchor: i64, period: ChargePeriod, now: i64) -> Window {
    let Some(anchor_dt) = chrono::Utc.timestamp_opt(anchor, 0).single() else {
        return (anchor, None);
    };
    let at = |n: i64| -> Option<i64> {
        period
            .boundary(anchor_dt, u32::try_from(n).ok()?)
            .map(|d| d.timestamp())
    };
    if now < anchor {
        return (anchor, at(1));
    }
    let step = i64::from(period.nominal_days().max(1)) * 86_400;
    let mut n = ((now - anchor) / step - 1).max(0);
    // The estimate is within a step or two of the answer; walk to it.
    while n > 0 && at(n).is_some_and(|b| b > now) {
        n -= 1;
    }
    loop {
        match at(n + 1) {
            Some(next) if next <= now => n += 1,
            next => {
                return (
                    if n == 0 {
                        anchor
                    } else {
                        at(n).unwrap_or(anchor)
                    },
                    next,
                );
            }
        }
    }
}

/// The window of a meter with `reset_period`, for a customer created at `created`, whose
/// granting subscription (if any) is in its period `billing`.
pub fn window_from(
    created: i64,
    reset_period: Option<&str>,
    billing: Option<Window>,
    now: i64,
) -> Window {
    match reset_period.unwrap_or("BILLING_PERIOD") {
        "BILLING_PERIOD" => {
            billing.unwrap_or_else(|| cycle_window(created, ChargePeriod::Monthly, now))
        }
        other => match ChargePeriod::parse(other) {
            Some(period) => cycle_window(created, period, now),
            None => cycle_window(created, ChargePeriod::Monthly, now),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn t(y: i32, m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp()
    }

    #[test]
    fn monthly_windows_follow_the_calendar_from_the_anchor() {
        let anchor = t(2025, 1, 31);
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Monthly, t(2025, 2, 10)),
            (anchor, Some(t(2025, 2, 28)))
        );
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Monthly, t(2025, 3, 1)),
            (t(2025, 2, 28), Some(t(2025, 3, 31)))
        );
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Monthly, t(2025, 3, 31)),
            (t(2025, 3, 31), Some(t(2025, 4, 30)))
        );
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Monthly, t(2027, 6, 15)),
            (t(2027, 5, 31), Some(t(2027, 6, 30)))
        );
    }

    #[test]
    fn daily_windows_far_from_the_anchor() {
        let anchor = t(2020, 1, 1);
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Daily, t(2026, 3, 5) + 3600),
            (t(2026, 3, 5), Some(t(2026, 3, 6)))
        );
        assert_eq!(
            cycle_window(anchor, ChargePeriod::Daily, anchor - 10),
            (anchor, Some(t(2020, 1, 2)))
        );
    }
}

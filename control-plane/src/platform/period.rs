//! Charge periods and calendar-exact period boundaries.
//!
//! Period *n* of a subscription ends at `anchor + n × length`, always counted from the anchor,
//! never from the previous end: a monthly subscription anchored on Jan 31 ends its periods on
//! Feb 28 (29), Mar 31, Apr 30… rather than drifting to the 28th forever.

use chrono::{DateTime, Days, Months, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargePeriod {
    Monthly,
    Yearly,
    OneTime,
    Weekly,
    Daily,
    ThreeMonths,
    SixMonths,
    TwentyEightDays,
}

/// What the document promises of a charge period: one of [`ALL_PERIODS`].
pub const RULES: crate::platform::schema::TextRules = crate::platform::schema::TextRules {
    marker: "charge-period",
    min_length: None,
    max_length: None,
    pattern: Some(
        r"^(MONTHLY|YEARLY|ONE_TIME|WEEKLY|DAILY|THREE_MONTHS|SIX_MONTHS|TWENTY_EIGHT_DAYS)$",
    ),
};

pub const ALL_PERIODS: &str =
    "MONTHLY, YEARLY, ONE_TIME, WEEKLY, DAILY, THREE_MONTHS, SIX_MONTHS, TWENTY_EIGHT_DAYS";

enum Step {
    Months(u32),
    Days(u64),
    Never,
}

impl ChargePeriod {
    pub fn parse(s: &str) -> Option<ChargePeriod> {
        Some(match s {
            "MONTHLY" => ChargePeriod::Monthly,
            "YEARLY" => ChargePeriod::Yearly,
            "ONE_TIME" => ChargePeriod::OneTime,
            "WEEKLY" => ChargePeriod::Weekly,
            "DAILY" => ChargePeriod::Daily,
            "THREE_MONTHS" => ChargePeriod::ThreeMonths,
            "SIX_MONTHS" => ChargePeriod::SixMonths,
            "TWENTY_EIGHT_DAYS" => ChargePeriod::TwentyEightDays,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChargePeriod::Monthly => "MONTHLY",
            ChargePeriod::Yearly => "YEARLY",
            ChargePeriod::OneTime => "ONE_TIME",
            ChargePeriod::Weekly => "WEEKLY",
            ChargePeriod::Daily => "DAILY",
            ChargePeriod::ThreeMonths => "THREE_MONTHS",
            ChargePeriod::SixMonths => "SIX_MONTHS",
            ChargePeriod::TwentyEightDays => "TWENTY_EIGHT_DAYS",
        }
    }

    /// Kelviq's `recurrence` field.
    pub fn recurrence(self) -> &'static str {
        match self {
            ChargePeriod::Monthly => "month",
            ChargePeriod::Yearly => "year",
            ChargePeriod::OneTime => "one_time",
            ChargePeriod::Weekly => "week",
            ChargePeriod::Daily => "day",
            ChargePeriod::ThreeMonths => "three_months",
            ChargePeriod::SixMonths => "six_months",
            ChargePeriod::TwentyEightDays => "twenty_eight_days",
        }
    }

    /// Kelviq's `recurrenceUnit` and `recurrenceType` (`MONTH`, `YEAR`, `WEEK`, `DAY`); `None`
    /// for `ONE_TIME`.
    pub fn recurrence_parts(self) -> Option<(i64, &'static str)> {
        match self {
            ChargePeriod::Monthly => Some((1, "MONTH")),
            ChargePeriod::ThreeMonths => Some((3, "MONTH")),
            ChargePeriod::SixMonths => Some((6, "MONTH")),
            ChargePeriod::Yearly => Some((1, "YEAR")),
            ChargePeriod::Weekly => Some((1, "WEEK")),
            ChargePeriod::Daily => Some((1, "DAY")),
            ChargePeriod::TwentyEightDays => Some((28, "DAY")),
            ChargePeriod::OneTime => None,
        }
    }

    fn step(self) -> Step {
        match self {
            ChargePeriod::Monthly => Step::Months(1),
            ChargePeriod::ThreeMonths => Step::Months(3),
            ChargePeriod::SixMonths => Step::Months(6),
            ChargePeriod::Yearly => Step::Months(12),
            ChargePeriod::Weekly => Step::Days(7),
            ChargePeriod::Daily => Step::Days(1),
            ChargePeriod::TwentyEightDays => Step::Days(28),
            ChargePeriod::OneTime => Step::Never,
        }
    }

    /// Approximate length in days, used only to order prices of different periods.
    pub fn nominal_days(self) -> u32 {
        match self.step() {
            Step::Months(m) => m * 30 + m / 2,
            Step::Days(d) => d as u32,
            Step::Never => u32::MAX,
        }
    }

    /// End of period `n` (1-based) counted from `anchor`; `None` for `ONE_TIME`.
    pub fn boundary(self, anchor: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
        match self.step() {
            Step::Months(m) => anchor.checked_add_months(Months::new(m.checked_mul(n)?)),
            Step::Days(d) => anchor.checked_add_days(Days::new(d.checked_mul(u64::from(n))?)),
            Step::Never => None,
        }
    }

    /// End of the first period that starts at `anchor`, as Unix seconds.
    pub fn first_period_end(self, anchor_unix: i64) -> Option<i64> {
        let anchor = Utc.timestamp_opt(anchor_unix, 0).single()?;
        self.boundary(anchor, 1).map(|d| d.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn monthly_from_jan_31_follows_the_calendar() {
        let anchor = at(2025, 1, 31);
        let ends: Vec<_> = (1..=3)
            .map(|n| ChargePeriod::Monthly.boundary(anchor, n).unwrap())
            .collect();
        assert_eq!(
            ends,
            vec![at(2025, 2, 28), at(2025, 3, 31), at(2025, 4, 30)]
        );
        assert_eq!(
            ChargePeriod::Monthly.boundary(at(2024, 1, 31), 1),
            Some(at(2024, 2, 29))
        );
    }

    #[test]
    fn yearly_from_feb_29_lands_on_feb_28_then_back() {
        let anchor = at(2024, 2, 29);
        assert_eq!(
            ChargePeriod::Yearly.boundary(anchor, 1),
            Some(at(2025, 2, 28))
        );
        assert_eq!(
            ChargePeriod::Yearly.boundary(anchor, 4),
            Some(at(2028, 2, 29))
        );
    }

    #[test]
    fn fixed_length_periods_and_one_time() {
        let anchor = at(2025, 2, 25);
        assert_eq!(
            ChargePeriod::Weekly.boundary(anchor, 1),
            Some(at(2025, 3, 4))
        );
        assert_eq!(
            ChargePeriod::TwentyEightDays.boundary(anchor, 1),
            Some(at(2025, 3, 25))
        );
        assert_eq!(
            ChargePeriod::Daily.boundary(anchor, 4),
            Some(at(2025, 3, 1))
        );
        assert_eq!(
            ChargePeriod::ThreeMonths.boundary(at(2025, 11, 30), 1),
            Some(at(2026, 2, 28))
        );
        assert_eq!(ChargePeriod::OneTime.boundary(anchor, 1), None);
    }

    #[test]
    fn quarter_and_half_year_clamp_at_month_ends_and_recover() {
        let anchor = at(2023, 8, 31);
        let q: Vec<_> = (1..=3)
            .map(|n| ChargePeriod::ThreeMonths.boundary(anchor, n).unwrap())
            .collect();
        assert_eq!(q, vec![at(2023, 11, 30), at(2024, 2, 29), at(2024, 5, 31)]);
        let h: Vec<_> = (1..=3)
            .map(|n| ChargePeriod::SixMonths.boundary(anchor, n).unwrap())
            .collect();
        assert_eq!(h, vec![at(2024, 2, 29), at(2024, 8, 31), at(2025, 2, 28)]);
        assert_eq!(
            ChargePeriod::Weekly.boundary(at(2024, 2, 26), 1),
            Some(at(2024, 3, 4)),
            "crosses Feb 29"
        );
        assert_eq!(
            ChargePeriod::Daily.boundary(at(2024, 2, 28), 1),
            Some(at(2024, 2, 29))
        );
        assert_eq!(
            ChargePeriod::TwentyEightDays.boundary(at(2024, 2, 1), 1),
            Some(at(2024, 2, 29))
        );
    }

    #[test]
    fn names_round_trip() {
        for name in ALL_PERIODS.split(", ") {
            assert_eq!(
                ChargePeriod::parse(name).map(ChargePeriod::as_str),
                Some(name)
            );
        }
        assert_eq!(ChargePeriod::parse("monthly"), None);
    }
}

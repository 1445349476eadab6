//! Proration (SPEC §5): `round_half_up(price × remaining / period_length)` per line, with the
//! period's length and the remaining time in seconds of the real calendar period.

/// `amount × remaining / length`, rounded half up, in integer arithmetic (no floats).
/// `remaining` is clamped to `0..=length`; an empty period prorates to nothing.
pub fn prorate(amount_minor: i64, remaining_secs: i64, period_secs: i64) -> i64 {
    if period_secs <= 0 {
        return 0;
    }
    let remaining = i128::from(remaining_secs.clamp(0, period_secs));
    let num = i128::from(amount_minor) * remaining * 2 + i128::from(period_secs);
    let den = 2 * i128::from(period_secs);
    // Half up for non-negative amounts; prices are never negative (credits negate afterwards).
    i64::try_from(num.div_euclid(den)).unwrap_or(i64::MAX)
}

/// The two lines of an immediate upgrade within the same cycle: a credit for the unused part
/// of the old price and a charge for the rest of the period at the new one.
pub fn upgrade_in_cycle(
    old_total: i64,
    new_total: i64,
    now: i64,
    period_start: i64,
    period_end: i64,
) -> (i64, i64) {
    let length = period_end - period_start;
    let remaining = period_end - now;
    (
        -prorate(old_total, remaining, length),
        prorate(new_total, remaining, length),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t(y: i32, m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp()
    }

    /// Stripe's proration docs: a $10/month plan switched to $20/month halfway through the
    /// month nets +$5 (−$5 unused time, +$10 remaining time).
    #[test]
    fn stripe_ten_to_twenty_at_mid_period_nets_five_dollars() {
        let (credit, charge) =
            upgrade_in_cycle(1_000, 2_000, t(2026, 4, 16), t(2026, 4, 1), t(2026, 5, 1));
        assert_eq!((credit, charge), (-500, 1_000));
        assert_eq!(credit + charge, 500);
    }

    #[test]
    fn counts_seconds_of_the_real_month() {
        // February 2026 has 28 days: 7 days left is exactly a quarter.
        assert_eq!(prorate(4_900, 7 * 86_400, 28 * 86_400), 1_225);
        // March has 31: 10 days left of $49.00 is 1580.645… → 1581 (half up beyond .5).
        assert_eq!(prorate(4_900, 10 * 86_400, 31 * 86_400), 1_581);
    }

    #[test]
    fn rounds_half_up() {
        assert_eq!(prorate(1, 1, 2), 1); // 0.5 → 1
        assert_eq!(prorate(3, 1, 2), 2); // 1.5 → 2
        assert_eq!(prorate(5, 1, 4), 1); // 1.25 → 1
        assert_eq!(prorate(7, 1, 4), 2); // 1.75 → 2
    }

    #[test]
    fn clamps_and_handles_degenerate_periods() {
        assert_eq!(prorate(1_000, -5, 100), 0);
        assert_eq!(prorate(1_000, 500, 100), 1_000);
        assert_eq!(prorate(1_000, 10, 0), 0);
        assert_eq!(prorate(i64::MAX, 1, 1), i64::MAX);
    }
}

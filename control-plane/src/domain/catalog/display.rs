//! Prices and grants as a person reads them on the hosted pages: `$1,990.00 / year`,
//! `14 days free, then $1,990.00 / year`, `¥500 / month`, `API calls: 10,000`. Pure.
//!
//! The API keeps answering decimal strings in the major unit (`"1990.00"`); this is only for
//! people. Amounts stay integer minor units until the last step, scaled by the currency's ISO
//! 4217 exponent ([`crate::platform::money::exponent`]).

use tollgate_shared::FeatureType;

use crate::domain::catalog::model::{FeatureDef, GrantDef};
use crate::platform::money::Currency;
use crate::platform::money::symbol;
use crate::platform::period::ChargePeriod;

/// Digits grouped in threes with commas: `1990` → `1,990`.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `199000` usd → `$1,990.00`; `500` jpy → `¥500`; `-2450` usd → `-$24.50`; `1234` kwd →
/// `KWD 1.234`. `currency` is an ISO 4217 code in any case.
pub fn money(minor: i64, currency: Currency) -> String {
    let code = currency.as_str();
    let exp = currency.exponent();
    let magnitude = minor.unsigned_abs();
    let scale = 10u64.pow(exp);
    let whole = group_thousands(&(magnitude / scale).to_string());
    let number = if exp == 0 {
        whole
    } else {
        format!(
            "{whole}.{:0width$}",
            magnitude % scale,
            width = exp as usize
        )
    };
    let sign = if minor < 0 { "-" } else { "" };
    match symbol(code) {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{} {number}", code.to_ascii_uppercase()),
    }
}

/// What one charge period is called after "/": `month`, `3 months`; `None` for `ONE_TIME`.
pub fn per(period: ChargePeriod) -> Option<&'static str> {
    match period {
        ChargePeriod::Monthly => Some("month"),
        ChargePeriod::Yearly => Some("year"),
        ChargePeriod::Weekly => Some("week"),
        ChargePeriod::Daily => Some("day"),
        ChargePeriod::ThreeMonths => Some("3 months"),
        ChargePeriod::SixMonths => Some("6 months"),
        ChargePeriod::TwentyEightDays => Some("28 days"),
        ChargePeriod::OneTime => None,
    }
}

/// `$49.00 / month`, or `$299.00 once` for a one-time price.
pub fn price(total_minor: i64, currency: Currency, period: ChargePeriod) -> String {
    match per(period) {
        Some(p) => format!("{} / {p}", money(total_minor, currency)),
        None => format!("{} once", money(total_minor, currency)),
    }
}

/// The whole offer: `14 days free, then $1,990.00 / year`, or just the price without a trial.
/// A one-time price has no trial to offer (nothing recurs after it).
pub fn offer(
    total_minor: i64,
    currency: Currency,
    period: ChargePeriod,
    trial_days: u32,
) -> String {
    let price = price(total_minor, currency, period);
    match (trial_days, period) {
        (0, _) | (_, ChargePeriod::OneTime) => price,
        (1, _) => format!("1 day free, then {price}"),
        (days, _) => format!("{days} days free, then {price}"),
    }
}

/// One line per feature the plan grants, in the plan's order, named as the catalog names
/// them: `Export data`, `API calls: 10,000`, `Projects: unlimited`. Grants without access
/// are left out; a grant whose feature is gone shows its identifier.
pub fn feature_lines(grants: &[GrantDef], features: &[FeatureDef]) -> Vec<String> {
    grants
        .iter()
        .filter(|g| g.has_access)
        .map(|g| {
            let def = features.iter().find(|f| f.identifier == g.feature_id);
            let name = def.map_or(g.feature_id.as_str(), |f| f.name.as_str());
            match def.map(|f| f.feature_type) {
                Some(FeatureType::Boolean) => name.to_owned(),
                _ => match g.usage_limit {
                    Some(n) => format!(
                        "{name}: {}{}",
                        if n < 0 { "-" } else { "" },
                        group_thousands(&n.unsigned_abs().to_string())
                    ),
                    None => format!("{name}: unlimited"),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::money::Currency;

    fn c(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    #[test]
    fn money_with_symbol_and_the_currencys_exponent() {
        let cases: &[(i64, &str, &str)] = &[
            (199_000, "usd", "$1,990.00"),
            (199_000, "USD", "$1,990.00"),
            (4_900, "usd", "$49.00"),
            (5, "usd", "$0.05"),
            (0, "usd", "$0.00"),
            (-2_450, "usd", "-$24.50"),
            (100_000_000_000, "usd", "$1,000,000,000.00"),
            (500, "jpy", "¥500"),
            (1_500_000, "jpy", "¥1,500,000"),
            (4_900, "eur", "€49.00"),
            (4_900, "gbp", "£49.00"),
            (1_234, "kwd", "KWD 1.234"),
            (1_000_000, "bhd", "BHD 1,000.000"),
            (4_900, "chf", "CHF 49.00"),
            (4_900, "cad", "CA$49.00"),
            (50_000, "krw", "₩50,000"),
            (i64::MIN, "usd", "-$92,233,720,368,547,758.08"),
        ];
        for (minor, code, want) in cases {
            assert_eq!(money(*minor, c(code)), *want, "{minor} {code}");
        }
    }

    #[test]
    fn prices_and_offers() {
        let cases: &[(i64, &str, ChargePeriod, u32, &str)] = &[
            (
                199_000,
                "usd",
                ChargePeriod::Yearly,
                14,
                "14 days free, then $1,990.00 / year",
            ),
            (4_900, "usd", ChargePeriod::Monthly, 0, "$49.00 / month"),
            (
                4_900,
                "usd",
                ChargePeriod::Monthly,
                1,
                "1 day free, then $49.00 / month",
            ),
            (29_900, "usd", ChargePeriod::OneTime, 0, "$299.00 once"),
            (29_900, "usd", ChargePeriod::OneTime, 7, "$299.00 once"),
            (900, "jpy", ChargePeriod::ThreeMonths, 0, "¥900 / 3 months"),
            (
                900,
                "eur",
                ChargePeriod::TwentyEightDays,
                0,
                "€9.00 / 28 days",
            ),
        ];
        for (minor, code, period, trial, want) in cases {
            assert_eq!(offer(*minor, c(code), *period, *trial), *want);
        }
        assert_eq!(per(ChargePeriod::OneTime), None);
    }

    #[test]
    fn feature_lines_name_what_a_plan_grants() {
        let f = |id: &str, name: &str, t: FeatureType| FeatureDef {
            identifier: id.into(),
            name: name.into(),
            feature_type: t,
            reset_period: None,
            event_name: None,
        };
        let g = |id: &str, access: bool, limit: Option<i64>| GrantDef {
            feature_id: id.into(),
            has_access: access,
            usage_limit: limit,
        };
        let features = vec![
            f("export-data", "Export data", FeatureType::Boolean),
            f("api-calls", "API calls", FeatureType::Meter),
            f("team-size", "Team size", FeatureType::Customizable),
        ];
        let lines = feature_lines(
            &[
                g("export-data", true, None),
                g("api-calls", true, Some(10_000)),
                g("team-size", true, None),
                g("sso", false, None),
                g("gone", true, Some(3)),
            ],
            &features,
        );
        assert_eq!(
            lines,
            vec![
                "Export data",
                "API calls: 10,000",
                "Team size: unlimited",
                "gone: 3"
            ]
        );
    }
}

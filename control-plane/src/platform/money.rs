//! Money: integer minor units inside, decimal strings in the currency's major unit outside.

use std::str::FromStr;

use rust_decimal::Decimal;

/// A lower-case ISO 4217 code: three ASCII letters, so it is `Copy` and compares by value.
/// Every amount in the control plane travels with one; JSON and the database hold its code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const RULES: crate::platform::schema::TextRules = crate::platform::schema::TextRules {
        marker: "currency",
        min_length: None,
        max_length: None,
        pattern: Some(r"^[A-Za-z]{3}$"),
    };

    /// The US dollar: what a price-less default plan is "priced" in.
    pub const USD: Currency = Currency(*b"usd");

    pub fn parse(s: &str) -> Option<Currency> {
        let lower = s.trim().to_ascii_lowercase();
        let bytes: [u8; 3] = lower.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_lowercase)
            .then_some(Currency(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Three lower-case ASCII letters, checked by `parse`: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("xxx")
    }

    /// The code as people write it: `USD`.
    pub fn upper(self) -> String {
        self.as_str().to_ascii_uppercase()
    }

    /// Digits after the decimal point (ISO 4217 minor unit).
    pub fn exponent(self) -> u32 {
        exponent(self.as_str())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::parse(&code)
            .ok_or_else(|| serde::de::Error::custom("must be a 3-letter ISO 4217 code"))
    }
}

pub fn exponent(code: &str) -> u32 {
    match code {
        "bif" | "clp" | "djf" | "gnf" | "isk" | "jpy" | "kmf" | "krw" | "pyg" | "rwf" | "ugx"
        | "vnd" | "vuv" | "xaf" | "xof" | "xpf" => 0,
        "bhd" | "iqd" | "jod" | "kwd" | "lyd" | "omr" | "tnd" => 3,
        _ => 2,
    }
}

/// The symbol written before the amount, for currencies whose symbol is unambiguous enough;
/// others are written as their code (`CHF 49.00`). Dollars other than the US dollar carry
/// their country (`CA$`, `A$`), as Stripe's hosted pages do.
pub fn symbol(code: &str) -> Option<&'static str> {
    Some(match code {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        "cny" => "CN¥",
        "inr" => "₹",
        "krw" => "₩",
        "brl" => "R$",
        "cad" => "CA$",
        "aud" => "A$",
        "nzd" => "NZ$",
        "mxn" => "MX$",
        "hkd" => "HK$",
        "sgd" => "S$",
        "ils" => "₪",
        "php" => "₱",
        "vnd" => "₫",
        "try" => "₺",
        "ngn" => "₦",
        "uah" => "₴",
        "pln" => "zł",
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("'{0}' is not a decimal amount such as \"49.00\"")]
    NotDecimal(String),
    #[error("'{0}' has more decimal places than the currency allows")]
    TooPrecise(String),
    #[error("amounts cannot be negative")]
    Negative,
    #[error("amount is too large")]
    TooLarge,
}

/// `"49.00"` in usd → 4900.
/// The largest amount a price may have, in minor units (10^12: ten billion dollars). With
/// quantities capped at 10,000, every total and sum stays far inside `i64`.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

pub fn parse_amount(text: &str, currency: Currency) -> Result<i64, MoneyError> {
    // Digits with an optional fraction, nothing else: no signs, exponents, `_` or spaces.
    let plain = match text.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && !frac.is_empty()
                && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        }
        None => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
    };
    if !plain {
        return Err(if text.trim_start().starts_with('-') {
            MoneyError::Negative
        } else {
            MoneyError::NotDecimal(text.to_owned())
        });
    }
    let d = Decimal::from_str(text).map_err(|_| MoneyError::NotDecimal(text.to_owned()))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative);
    }
    let exp = currency.exponent();
    if d.normalize().scale() > exp {
        return Err(MoneyError::TooPrecise(text.to_owned()));
    }
    let minor = d
        .checked_mul(Decimal::from(10i64.pow(exp)))
        .ok_or(MoneyError::TooLarge)?;
    i64::try_from(minor.trunc())
        .ok()
        .filter(|m| *m <= MAX_AMOUNT_MINOR)
        .ok_or(MoneyError::TooLarge)
}

/// 4900 in usd → `"49.00"`; -250 → `"-2.50"`.
pub fn format_amount(minor: i64, currency: Currency) -> String {
    let exp = currency.exponent();
    let d = Decimal::new(minor, exp);
    format!("{d:.prec$}", prec = exp as usize)
}

/// 4900 in usd → 49.0, for Kelviq's fields that are JSON numbers in the major unit. Only for
/// display: every computation stays in integer minor units.
pub fn major_f64(minor: i64, currency: Currency) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    Decimal::new(minor, currency.exponent())
        .to_f64()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        c("USD")
    }

    fn c(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    #[test]
    fn parses_and_formats_in_minor_units() {
        assert_eq!(parse_amount("49.00", usd()), Ok(4900));
        assert_eq!(parse_amount("49", usd()), Ok(4900));
        for junk in ["1_000", "1e5", " 1 ", "+1", "1.", ".5", ""] {
            assert!(parse_amount(junk, usd()).is_err(), "{junk:?}");
        }
        assert_eq!(parse_amount("10000000000.00", usd()), Ok(MAX_AMOUNT_MINOR));
        assert_eq!(
            parse_amount("10000000000.01", usd()),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(parse_amount("0.1", usd()), Ok(10));
        assert_eq!(format_amount(4900, c("usd")), "49.00");
        assert_eq!(format_amount(-250, c("usd")), "-2.50");
        assert_eq!(format_amount(500, c("jpy")), "500");
        assert_eq!(format_amount(1234, c("kwd")), "1.234");
        assert_eq!(major_f64(4900, c("usd")), 49.0);
        assert_eq!(major_f64(-250, c("usd")), -2.5);
        assert_eq!(major_f64(500, c("jpy")), 500.0);
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert!(matches!(
            parse_amount("4.999", usd()),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_amount("abc", usd()),
            Err(MoneyError::NotDecimal(_))
        ));
        assert_eq!(parse_amount("-1.00", usd()), Err(MoneyError::Negative));
        assert!(parse_amount("1e40", usd()).is_err());
        assert!(Currency::parse("usdx").is_none());
        assert!(Currency::parse("u1d").is_none());
        assert_eq!(usd(), Currency::USD);
        assert_eq!(
            serde_json::to_value(Currency::USD).ok(),
            Some(serde_json::json!("usd"))
        );
        let eur: Currency = serde_json::from_str("\"EUR\"").expect("parses");
        assert_eq!((eur.as_str(), eur.upper()), ("eur", "EUR".to_owned()));
        assert!(serde_json::from_str::<Currency>("\"euro\"").is_err());
    }
}

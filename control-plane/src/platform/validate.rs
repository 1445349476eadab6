//! Validated request values. A handler parses raw input into these once, with a `parse()` that
//! names the field at fault; everything below the handler takes the validated type and never
//! checks again. A leaf: it imports nothing of the domains.

use std::fmt;

use crate::platform::schema::{NO_CONTROL_CHARACTERS, TextRules};

/// A request value that failed validation; `field` is named in the message so callers can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A subscription's seat count: 1-10,000 (so totals stay far inside `i64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub const MAX: i64 = 10_000;

    pub fn parse(field: &str, value: i64) -> Result<Quantity, Invalid> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Quantity(value))
        } else {
            Err(invalid(
                field,
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }

    pub fn parse_opt(field: &str, value: Option<i64>) -> Result<Option<Quantity>, Invalid> {
        value.map(|v| Quantity::parse(field, v)).transpose()
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A trial length: 0-730 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialDays(u32);

impl TrialDays {
    pub const MAX: i64 = 730;

    pub fn parse(field: &str, value: i64) -> Result<TrialDays, Invalid> {
        if (0..=Self::MAX).contains(&value) {
            Ok(TrialDays(value as u32))
        } else {
            Err(invalid(
                field,
                format!("must be between 0 and {}", Self::MAX),
            ))
        }
    }

    pub fn parse_opt(field: &str, value: Option<i64>) -> Result<Option<TrialDays>, Invalid> {
        value.map(|v| TrialDays::parse(field, v)).transpose()
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A caller's own id for a customer: 1-255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    /// The rules of every id a caller chooses (customer ids, offering and pricing-table ids).
    pub const RULES: TextRules = TextRules {
        marker: "external-id",
        min_length: Some(1),
        max_length: Some(Self::MAX_LEN),
        pattern: Some(NO_CONTROL_CHARACTERS),
    };
    pub const MAX_LEN: usize = 255;

    pub fn parse(field: &str, value: &str) -> Result<CustomerId, Invalid> {
        let ok = !value.is_empty()
            && value.chars().count() <= Self::MAX_LEN
            && !value.chars().any(char::is_control);
        if ok {
            Ok(CustomerId(value.to_owned()))
        } else {
            Err(invalid(
                field,
                "must be 1-255 characters without control characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a hosted page sends a person afterwards: an absolute http(s) URL without control
/// characters, on an allowed host when a list is configured. Stored as the parsed, normalized
/// URL, so what ends up in a `Location` header is what `url` would write, never raw input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUrl(String);

impl RedirectUrl {
    /// The longest URL accepted.
    pub const MAX_LEN: usize = 2048;

    /// What the document promises of an http(s) URL (redirects and webhook endpoints): a host
    /// whose last label is a name (the URL parser refuses a numeric one as a bad IPv4
    /// address), an optional port and a plain path.
    pub const RULES: TextRules = TextRules {
        marker: "http-url",
        min_length: None,
        max_length: Some(Self::MAX_LEN),
        pattern: Some(
            r"^https?://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/?=&-]*)?$",
        ),
    };

    pub fn parse(
        field: &str,
        value: &str,
        allowed_hosts: &[String],
    ) -> Result<RedirectUrl, Invalid> {
        if value.chars().any(char::is_control) {
            return Err(invalid(field, "must not contain control characters"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(invalid(
                field,
                format!("at most {} characters", Self::MAX_LEN),
            ));
        }
        let parsed = url::Url::parse(value)
            .map_err(|_| invalid(field, "must be an absolute http or https URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(field, "must be an absolute http or https URL"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(field, "must not carry a user name or password"));
        }
        if !allowed_hosts.is_empty()
            && !parsed
                .host_str()
                .is_some_and(|h| allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
        {
            return Err(invalid(field, "host is not in the allowed redirect hosts"));
        }
        // Stripe's `{CHECKOUT_SESSION_ID}` placeholder survives normalization percent-encoded
        // in a path; keep the braces readable so it can be filled in later.
        let normalized =
            String::from(parsed).replace("%7BCHECKOUT_SESSION_ID%7D", "{CHECKOUT_SESSION_ID}");
        Ok(RedirectUrl(normalized))
    }

    pub fn parse_opt(
        field: &str,
        value: Option<&str>,
        allowed_hosts: &[String],
    ) -> Result<Option<RedirectUrl>, Invalid> {
        value
            .map(|v| RedirectUrl::parse(field, v, allowed_hosts))
            .transpose()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An optional free-form label: at most `max` characters.
pub fn check_len(field: &str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("at most {max} characters")))
        }
        _ => Ok(()),
    }
}

/// What the document promises of a date filter ([`time_bound`]): a `YYYY-MM-DD` date, or a
/// date and time.
pub const DATE_OR_TIME: TextRules = TextRules {
    marker: "date-or-time",
    min_length: None,
    max_length: None,
    pattern: Some(
        r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])([ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][01][0-9]:[0-5][0-9])?)?$",
    ),
};

/// [`time_bound`] of an optional query parameter.
pub fn time_bound_opt(
    field: &str,
    text: Option<&str>,
    after: bool,
) -> Result<Option<i64>, Invalid> {
    text.map(|t| time_bound(field, t, after)).transpose()
}

/// A date filter's bound: `(from, to)` of the half-open interval it allows. A date covers its
/// whole UTC day; a time is exact.
pub fn time_bound(field: &str, text: &str, after: bool) -> Result<i64, Invalid> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let exact = DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc).timestamp())
        .ok()
        .or_else(|| {
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|d| d.and_utc().timestamp())
        });
    if let Some(t) = exact {
        return Ok(if after { t } else { t + 1 });
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp())
        .ok_or_else(|| invalid(field, "must be a YYYY-MM-DD date or an RFC 3339 time"))?;
    Ok(if after { day } else { day + 86_400 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_trials_have_ranges() {
        for (v, ok) in [
            (0, false),
            (1, true),
            (10_000, true),
            (10_001, false),
            (-3, false),
        ] {
            assert_eq!(Quantity::parse("quantity", v).is_ok(), ok, "{v}");
        }
        for (v, ok) in [(-1, false), (0, true), (730, true), (731, false)] {
            assert_eq!(TrialDays::parse("trialDays", v).is_ok(), ok, "{v}");
        }
        assert_eq!(
            Quantity::parse("q", 0).unwrap_err().field,
            "q",
            "errors name the field"
        );
    }

    #[test]
    fn customer_ids() {
        assert!(CustomerId::parse("customerId", "user-123").is_ok());
        assert!(CustomerId::parse("customerId", "").is_err());
        assert!(CustomerId::parse("customerId", "a\u{1}b").is_err());
        assert!(CustomerId::parse("customerId", &"x".repeat(256)).is_err());
    }

    #[test]
    fn redirect_urls_are_absolute_http_and_normalized() {
        let ok = |u: &str| RedirectUrl::parse("successUrl", u, &[]).map(|r| r.0);
        assert_eq!(
            ok("https://app.example.com/ok").as_deref(),
            Ok("https://app.example.com/ok")
        );
        assert_eq!(
            ok("HTTPS://App.Example.com").as_deref(),
            Ok("https://app.example.com/")
        );
        assert_eq!(
            ok("https://a.example.com/done/{CHECKOUT_SESSION_ID}").as_deref(),
            Ok("https://a.example.com/done/{CHECKOUT_SESSION_ID}")
        );
        for bad in [
            "/relative",
            "javascript:alert(1)",
            "ftp://x.example.com/",
            "https://a.example.com/\u{1}",
            "https://a.example.com/\nSet-Cookie: x=1",
            "https://user:pw@a.example.com/",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
        let allowed = vec!["app.example.com".to_owned()];
        assert!(RedirectUrl::parse("successUrl", "https://evil.example.net/", &allowed).is_err());
        assert!(RedirectUrl::parse("successUrl", "https://app.example.com/", &allowed).is_ok());
    }
}

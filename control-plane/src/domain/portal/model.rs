//! Portal sessions and the portal's forms as validated values. Pure: no I/O, no clock (callers
//! pass "now").
//!
//! A session is a capability: whoever holds its token may manage one customer's billing in one
//! mode until it expires. The token is random (32 alphanumerics, ~190 bits), handed out once,
//! and stored only as its SHA-256 — like API keys, it is high-entropy, so a slow hash would
//! protect nothing.

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use tollgate_shared::Mode;

use crate::domain::customers::model::CustomerError;
use crate::domain::payments::model::Decline;
use crate::domain::subscriptions::model::SubscriptionError;
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::period::ChargePeriod;
use crate::platform::schema::TextRules;
use crate::platform::validate::{Invalid, invalid};
use tollgate_shared::ErrorKind;

/// What the document promises of a portal token.
pub const TOKEN_RULES: TextRules = TextRules {
    marker: "portal-token",
    min_length: None,
    max_length: None,
    pattern: Some("^pts_(test|live)_[A-Za-z0-9]{32}$"),
};

/// A portal form's subscription id.
pub const SUBSCRIPTION_RULES: TextRules = TextRules {
    marker: "portal-subscription",
    min_length: None,
    max_length: None,
    pattern: Some("^[A-Za-z0-9-]{1,64}$"),
};

/// A portal form's price choice: `plan:PERIOD` ([`PriceChoice`]).
pub const PRICE_CHOICE_RULES: TextRules = TextRules {
    marker: "price-choice",
    min_length: None,
    max_length: None,
    pattern: Some(
        "^[A-Za-z0-9._-]{1,64}:(MONTHLY|YEARLY|ONE_TIME|WEEKLY|DAILY|THREE_MONTHS|SIX_MONTHS|TWENTY_EIGHT_DAYS)$",
    ),
};

/// Every portal token starts with this, then the mode: `pts_test_…`, `pts_live_…`.
pub const TOKEN_PREFIX: &str = "pts_";

/// Lifetimes an operator may configure: a minute to a day. A portal link is meant to be
/// opened right after the app made it.
pub const TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=86_400;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No session has this token (or it is malformed).
    #[error("this portal link is not valid")]
    UnknownToken,
    #[error("this portal link has expired")]
    Expired,
    /// A form without this session's nonce, or posted from another site.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A subscription that is not this session's customer's (or does not exist).
    #[error("no such subscription for this customer")]
    NotYours,
    /// What was previewed is no longer what the change would do (the price or the
    /// subscription changed meanwhile): nothing was done.
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error("{0}")]
    Declined(#[from] Decline),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A stored portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    /// The nonce every form of this session carries (see docs/billing.md, "Customer portal").
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PortalSession {
    /// Whether the session may still be used at `now` (the server's time: a portal link's
    /// lifetime is wall-clock, whatever test clock its customer lives on).
    pub fn check(&self, now: i64) -> Result<(), PortalError> {
        if now >= self.expires_at {
            Err(PortalError::Expired)
        } else {
            Ok(())
        }
    }

    /// Whether `nonce` (from a posted form) is this session's, compared in constant time.
    pub fn csrf_matches(&self, nonce: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), nonce.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn random_alphanumeric(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A fresh token for a session of `mode`.
pub fn new_token(mode: Mode) -> String {
    format!("{TOKEN_PREFIX}{mode}_{}", random_alphanumeric(32))
}

/// A fresh per-session form nonce.
pub fn new_csrf() -> String {
    random_alphanumeric(32)
}

/// What is stored instead of the token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` has the shape of one we hand out; anything else is refused before it
/// reaches the database.
pub fn plausible_token(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    let body = rest
        .strip_prefix("test_")
        .or_else(|| rest.strip_prefix("live_"));
    body.is_some_and(|b| b.len() == 32 && b.bytes().all(|c| c.is_ascii_alphanumeric()))
}

/// The page a session's token opens.
pub fn portal_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/portal/{token}")
}

/// A price picked in the switch form: `pro:YEARLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChoice {
    pub plan: String,
    pub period: ChargePeriod,
}

impl PriceChoice {
    pub fn parse(field: &str, value: &str) -> Result<PriceChoice, Invalid> {
        let (plan, period) = value
            .split_once(':')
            .ok_or_else(|| invalid(field, "choose a plan"))?;
        let plan_ok = !plan.is_empty()
            && plan.len() <= 64
            && plan
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let period = ChargePeriod::parse(period).filter(|_| plan_ok);
        match period {
            Some(period) => Ok(PriceChoice {
                plan: plan.to_owned(),
                period,
            }),
            None => Err(invalid(field, "choose a plan")),
        }
    }

    /// The form value this choice is sent as.
    pub fn value(plan: &str, period: ChargePeriod) -> String {
        format!("{plan}:{}", period.as_str())
    }
}

/// A subscription id as a form sends it: checked for shape only; whose it is, the store says.
pub fn subscription_field(value: Option<&str>) -> Result<String, Invalid> {
    match value {
        Some(v)
            if !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Ok(v.to_owned())
        }
        _ => Err(invalid("subscription", "missing or malformed")),
    }
}

/// What the page says after a form did its work (`?done=…`). Fixed texts: nothing from the
/// query string is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Upgraded,
    Scheduled,
    CancelScheduled,
    Resumed,
    CardReplaced,
    Unchanged,
}

impl Notice {
    pub const ALL: [Notice; 6] = [
        Notice::Upgraded,
        Notice::Scheduled,
        Notice::CancelScheduled,
        Notice::Resumed,
        Notice::CardReplaced,
        Notice::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Upgraded => "upgraded",
            Notice::Scheduled => "scheduled",
            Notice::CancelScheduled => "cancel-scheduled",
            Notice::Resumed => "resumed",
            Notice::CardReplaced => "card-replaced",
            Notice::Unchanged => "unchanged",
        }
    }

    pub fn parse(s: &str) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| n.as_str() == s)
    }

    pub fn text(self) -> &'static str {
        match self {
            Notice::Upgraded => "Your plan was changed.",
            Notice::Scheduled => "Your plan will change at the end of the current period.",
            Notice::CancelScheduled => {
                "Your subscription will end at the end of the current period."
            }
            Notice::Resumed => "Your subscription will continue as before.",
            Notice::CardReplaced => "Your card was replaced.",
            Notice::Unchanged => "Nothing needed to change.",
        }
    }
}

impl DomainError for PortalError {
    fn failure(&self) -> Failure<'_> {
        match self {
            PortalError::Customer(c) => c.failure(),
            PortalError::Subscription(s) => s.failure(),
            PortalError::Db(error) => Failure::Database {
                context: "portal",
                error,
            },
            PortalError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            PortalError::UnknownToken | PortalError::NotYours => Failure::Kind(ErrorKind::NotFound),
            // An expired link is "forbidden" to the API envelope; the hosted page says 410.
            PortalError::Expired | PortalError::Forbidden(_) => Failure::Kind(ErrorKind::Forbidden),
            PortalError::Stale(_) => Failure::Kind(ErrorKind::Conflict),
            PortalError::Declined(_) => Failure::Kind(ErrorKind::PaymentRequired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_stored_hashed() {
        let a = new_token(Mode::Test);
        let b = new_token(Mode::Live);
        assert!(a.starts_with("pts_test_") && b.starts_with("pts_live_"));
        assert_ne!(a, new_token(Mode::Test));
        assert!(plausible_token(&a) && plausible_token(&b));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        for bad in [
            "",
            "pts_",
            "pts_test_short",
            "sk_test_abcdefghijklmnopqrstuvwxyz123456",
            "pts_prod_abcdefghijklmnopqrstuvwxyz123456",
            "pts_test_abcdefghijklmnopqrstuvwxyz12345/",
            "pts_test_abcdefghijklmnopqrstuvwxyz1234567",
        ] {
            assert!(!plausible_token(bad), "{bad}");
        }
    }

    #[test]
    fn sessions_expire_and_check_their_nonce() {
        let s = PortalSession {
            id: "ps".into(),
            mode: Mode::Test,
            customer_id: "c".into(),
            csrf: "abc".into(),
            created_at: 100,
            expires_at: 200,
        };
        assert!(s.check(199).is_ok());
        assert!(matches!(s.check(200), Err(PortalError::Expired)));
        assert!(s.csrf_matches("abc"));
        assert!(!s.csrf_matches("abd"));
        assert!(!s.csrf_matches("ab"));
        assert!(!s.csrf_matches(""));
    }

    #[test]
    fn form_values() {
        assert_eq!(
            PriceChoice::parse("price", "pro:YEARLY").unwrap(),
            PriceChoice {
                plan: "pro".into(),
                period: ChargePeriod::Yearly
            }
        );
        assert_eq!(
            PriceChoice::value("pro", ChargePeriod::Monthly),
            "pro:MONTHLY"
        );
        for bad in [
            "",
            "pro",
            "pro:",
            ":MONTHLY",
            "pro:FORTNIGHTLY",
            "p r o:MONTHLY",
        ] {
            assert!(PriceChoice::parse("price", bad).is_err(), "{bad}");
        }
        assert!(subscription_field(Some("0192-ab")).is_ok());
        for bad in [None, Some(""), Some("a'b"), Some(&"x".repeat(65)[..])] {
            assert!(subscription_field(bad).is_err(), "{bad:?}");
        }
        for n in Notice::ALL {
            assert_eq!(Notice::parse(n.as_str()), Some(n));
        }
        assert_eq!(Notice::parse("<script>"), None);
    }
}

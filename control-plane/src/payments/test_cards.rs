//! The test processor. Card numbers and payment-method tokens behave like Stripe's test cards
//! (SPEC §5, docs/payments.md); live mode has no processor configured and declines everything.

use std::collections::HashMap;

/// Every test card is a Visa (Stripe's `4242…` family).
pub const TEST_CARD_BRAND: &str = "visa";

use futures_util::future::BoxFuture;
use tollgate_shared::Mode;

use crate::domain::payments::model::{ChargeOutcome, Decline};
use crate::payments::{
    ChargeRequest, InboundError, InboundEvent, PaymentProcessor, ProcessorError, SavedMethod,
    declined,
};
use crate::platform::schema::TextRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCard {
    /// `pm_card_visa` / 4242 4242 4242 4242: every charge succeeds.
    Visa,
    /// `pm_card_chargeDeclined` / 4000 0000 0000 0002: declined at checkout.
    Declined,
    /// `pm_card_chargeCustomerFail` / 4000 0000 0000 0341: attaches, every later charge fails.
    FailsLater,
    /// `pm_card_authenticationRequired` / 4000 0025 0000 3155: every charge needs 3-D Secure.
    AuthenticationRequired,
    /// `pm_card_visa_chargeDeclinedInsufficientFunds` / 4000 0000 0000 9995: attaches, every
    /// charge declines for insufficient funds.
    InsufficientFunds,
}

impl TestCard {
    pub fn from_token(token: &str) -> Option<TestCard> {
        match token {
            "pm_card_visa" => Some(TestCard::Visa),
            "pm_card_chargeDeclined" => Some(TestCard::Declined),
            "pm_card_chargeCustomerFail" => Some(TestCard::FailsLater),
            "pm_card_authenticationRequired" => Some(TestCard::AuthenticationRequired),
            "pm_card_visa_chargeDeclinedInsufficientFunds" => Some(TestCard::InsufficientFunds),
            _ => None,
        }
    }

    pub fn from_number(number: &str) -> Option<TestCard> {
        let digits: String = number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        match digits.as_str() {
            "4242424242424242" => Some(TestCard::Visa),
            "4000000000000002" => Some(TestCard::Declined),
            "4000000000000341" => Some(TestCard::FailsLater),
            "4000002500003155" => Some(TestCard::AuthenticationRequired),
            "4000000000009995" => Some(TestCard::InsufficientFunds),
            _ => None,
        }
    }

    pub fn last4(self) -> &'static str {
        match self {
            TestCard::Visa => "4242",
            TestCard::Declined => "0002",
            TestCard::FailsLater => "0341",
            TestCard::AuthenticationRequired => "3155",
            TestCard::InsufficientFunds => "9995",
        }
    }

    /// Stored with the payment method so later charges (renewals) know how to behave.
    pub fn behaviour(self) -> &'static str {
        match self {
            TestCard::FailsLater => "fails_later",
            TestCard::AuthenticationRequired => "requires_action",
            TestCard::InsufficientFunds => "insufficient_funds",
            TestCard::Visa | TestCard::Declined => "succeeds",
        }
    }
}

impl TestCard {
    /// A test payment-method token.
    pub const TOKEN_RULES: TextRules = TextRules {
        marker: "test-payment-method",
        min_length: None,
        max_length: None,
        pattern: Some(
            r"^(pm_card_visa|pm_card_chargeDeclined|pm_card_chargeCustomerFail|pm_card_authenticationRequired|pm_card_visa_chargeDeclinedInsufficientFunds)$",
        ),
    };
    /// A card number as a person types it ([`read_card`] reads it).
    pub const NUMBER_RULES: TextRules = TextRules {
        marker: "card-number",
        min_length: None,
        max_length: None,
        pattern: Some(r"^[0-9 ]{12,30}$"),
    };
    /// `MM/YY` or `MM/YYYY`.
    pub const EXPIRY_RULES: TextRules = TextRules {
        marker: "card-expiry",
        min_length: None,
        max_length: None,
        pattern: Some(r"^ *(0[1-9]|1[0-2]) */ *([0-9]{2}|[0-9]{4}) *$"),
    };
    pub const CVC_RULES: TextRules = TextRules {
        marker: "card-cvc",
        min_length: None,
        max_length: None,
        pattern: Some(r"^[0-9]{3,4}$"),
    };
}

/// How a charge of the card whose stored behaviour is `card` goes. A `fails_later` card
/// (0341) pays the charge made while the person is there entering it (a checkout's first
/// invoice) and declines every later one.
pub fn charge_outcome(
    mode: Mode,
    card: Option<&str>,
    off_session: bool,
    key: &str,
) -> ChargeOutcome {
    if mode == Mode::Live {
        return declined(Decline::NoLiveProvider);
    }
    let reference = Some(format!("ch_test_{}", key.trim_start_matches("pi_")));
    match card {
        Some("succeeds") => ChargeOutcome::Succeeded { reference },
        Some("fails_later") if !off_session => ChargeOutcome::Succeeded { reference },
        Some("requires_action") => ChargeOutcome::RequiresAction { reference },
        Some("insufficient_funds") => ChargeOutcome::Failed {
            reference,
            decline: Decline::InsufficientFunds,
            message: Decline::InsufficientFunds.to_string(),
        },
        Some(_) => ChargeOutcome::Failed {
            reference,
            decline: Decline::CardDeclined,
            message: Decline::CardDeclined.to_string(),
        },
        None => declined(Decline::NoPaymentMethod),
    }
}

/// The test processor: pure, so asking twice answers the same (which is what an idempotency
/// key promises of a real one).
pub struct TestProcessor;

impl PaymentProcessor for TestProcessor {
    fn name(&self) -> &'static str {
        "test"
    }

    fn ensure_customer<'a>(
        &'a self,
        _customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProcessorError>> {
        Box::pin(async { Ok(None) })
    }

    fn save_payment_method<'a>(
        &'a self,
        _customer_id: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Result<SavedMethod, Decline>, ProcessorError>> {
        Box::pin(async move {
            Ok(
                verify_card(Mode::Test, TestCard::from_token(token)).map(|c| SavedMethod {
                    reference: c.behaviour().to_owned(),
                    last4: c.last4().to_owned(),
                    brand: TEST_CARD_BRAND.to_owned(),
                }),
            )
        })
    }

    fn charge<'a>(
        &'a self,
        req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(async move {
            Ok(charge_outcome(
                req.mode,
                req.payment_method,
                req.off_session,
                req.idempotency_key,
            ))
        })
    }

    fn confirm<'a>(
        &'a self,
        _idempotency_key: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        // The hosted authentication page only asks to confirm once the person completed it.
        Box::pin(async move {
            Ok(ChargeOutcome::Succeeded {
                reference: Some(reference.to_owned()),
            })
        })
    }

    fn refund<'a>(
        &'a self,
        reference: &'a str,
        _amount_minor: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Result<Option<String>, String>, ProcessorError>> {
        Box::pin(async move { Ok(Ok(Some(format!("re_test_{reference}_{idempotency_key}")))) })
    }

    fn retrieve<'a>(
        &'a self,
        _req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>> {
        // Nothing is remembered: charging again with the same key answers the same.
        Box::pin(async { Ok(None) })
    }

    fn parse_event(
        &self,
        _signature: Option<&str>,
        _body: &[u8],
        _now: i64,
    ) -> Result<InboundEvent, InboundError> {
        // The test processor settles everything itself; it sends no events.
        Err(InboundError::Unsupported)
    }
}

/// The first charge, made at checkout.
pub fn charge_at_checkout(mode: Mode, card: Option<TestCard>) -> Result<TestCard, Decline> {
    verify_card(mode, card)
}

/// Whether `card` may go on file: what the provider checks before it accepts a card, at
/// checkout or when a customer replaces theirs in the portal (Stripe refuses a card that
/// declines when it is set up, as it refuses it at payment).
pub fn verify_card(mode: Mode, card: Option<TestCard>) -> Result<TestCard, Decline> {
    if mode == Mode::Live {
        return Err(Decline::NoLiveProvider);
    }
    match card {
        None => Err(Decline::UnknownCard),
        Some(TestCard::Declined) => Err(Decline::CardDeclined),
        Some(card) => Ok(card),
    }
}

/// Checks what a person typed into a card form (the checkout page, the portal's "replace
/// card") before anything is charged or stored; `Err` is shown on the page.
pub fn read_card(
    form: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<TestCard>, &'static str> {
    let number: String = form
        .get("card_number")
        .map(String::as_str)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Your card number is incomplete.");
    }
    let expiry = form
        .get("expiry")
        .map(String::as_str)
        .unwrap_or("")
        .replace(' ', "");
    let (mm, yy) = expiry
        .split_once('/')
        .ok_or("Your card's expiry date is incomplete.")?;
    let month: u32 = mm
        .parse()
        .map_err(|_| "Your card's expiry date is incomplete.")?;
    let year: i32 = yy
        .parse()
        .map_err(|_| "Your card's expiry date is incomplete.")?;
    let year = if year < 100 { 2000 + year } else { year };
    if !(1..=12).contains(&month) {
        return Err("Your card's expiry month is invalid.");
    }
    use chrono::Datelike;
    if (year, month) < (now.year(), now.month()) {
        return Err("Your card's expiry date is in the past.");
    }
    let cvc = form.get("cvc").map(String::as_str).unwrap_or("");
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Your card's security code is incomplete.");
    }
    Ok(TestCard::from_number(&number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_behave_like_stripes() {
        assert_eq!(
            charge_at_checkout(Mode::Test, TestCard::from_number("4242 4242 4242 4242")),
            Ok(TestCard::Visa)
        );
        assert_eq!(
            charge_at_checkout(Mode::Test, TestCard::from_token("pm_card_chargeDeclined")),
            Err(Decline::CardDeclined)
        );
        assert_eq!(
            charge_at_checkout(
                Mode::Test,
                TestCard::from_token("pm_card_chargeCustomerFail")
            ),
            Ok(TestCard::FailsLater)
        );
        assert_eq!(
            charge_at_checkout(Mode::Test, TestCard::from_number("1234")),
            Err(Decline::UnknownCard)
        );
        assert_eq!(
            charge_at_checkout(Mode::Live, Some(TestCard::Visa)),
            Err(Decline::NoLiveProvider)
        );
        let cases = [
            ("4242 4242 4242 4242", "succeeds"),
            ("4000 0025 0000 3155", "requires_action"),
            ("4000 0000 0000 9995", "insufficient_funds"),
            ("4000 0000 0000 0341", "card_declined"),
        ];
        for (number, expected) in cases {
            let card = TestCard::from_number(number).expect("a test card");
            let outcome = charge_outcome(Mode::Test, Some(card.behaviour()), true, "pi_1");
            let got = match outcome {
                ChargeOutcome::Succeeded { .. } => "succeeds",
                ChargeOutcome::RequiresAction { .. } => "requires_action",
                ChargeOutcome::Failed { decline, .. } => decline.code(),
            };
            assert_eq!(got, expected, "{number}");
        }
        // 0341 pays on-session (a checkout's first charge), and only then.
        assert!(matches!(
            charge_outcome(Mode::Test, Some("fails_later"), false, "pi_1"),
            ChargeOutcome::Succeeded { .. }
        ));
        assert_eq!(
            charge_outcome(Mode::Test, None, true, "pi_1"),
            declined(Decline::NoPaymentMethod)
        );
    }
}

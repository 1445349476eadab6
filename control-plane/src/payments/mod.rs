//! Payment processors: the boundary between Tollgate and whoever moves the money.
//!
//! A processor is called only by the payments worker (`workers::payments`), outside the
//! writer's unit of work: a unit writes a payment intent (`domain::payments`), the worker
//! charges it with the intent's id as the idempotency key, and a later unit settles it
//! (`workflows::settle`). docs/payments.md describes the states.
//!
//! * [`test_cards`] — the test processor: Stripe's test cards, simulated.
//! * [`stripe`] — Stripe, over its REST API; its webhook signatures.
//! * [`Processors`] — which processor each mode uses.

pub mod stripe;
pub mod test_cards;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tollgate_shared::Mode;

use crate::domain::payments::model::{ChargeOutcome, Decline};
use crate::platform::money::Currency;

/// A charge the worker asks of a processor.
#[derive(Debug, Clone, Copy)]
pub struct ChargeRequest<'a> {
    /// The payment intent's id: the processor's idempotency key, so asking twice (a retry
    /// after a crash) charges once.
    pub idempotency_key: &'a str,
    pub mode: Mode,
    pub customer_id: &'a str,
    /// The card on file: a test card's behaviour, or a processor payment method id.
    pub payment_method: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: Currency,
    /// A renewal or retry, with no customer present (Stripe's `off_session`).
    pub off_session: bool,
}

/// A card a person entered on a hosted page (checkout, the portal's "replace card").
#[derive(Debug, Clone)]
pub enum EnteredCard {
    /// What was typed into the test-mode form (the test processor checks it where it is used).
    Test(Option<test_cards::TestCard>),
    /// A card the processor has already saved (Stripe: a confirmed SetupIntent's payment
    /// method, attached to the customer's Stripe customer).
    Saved {
        brand: String,
        last4: String,
        reference: String,
    },
}

impl EnteredCard {
    /// `(brand, last4, reference)` to put on file; a test card is checked by `check` first
    /// (at checkout it must pay, in the portal only be valid).
    pub fn on_file(
        &self,
        check: impl FnOnce(Option<test_cards::TestCard>) -> Result<test_cards::TestCard, Decline>,
    ) -> Result<(String, String, String), Decline> {
        Ok(match self {
            EnteredCard::Test(card) => {
                let card = check(*card)?;
                (
                    test_cards::TEST_CARD_BRAND.to_owned(),
                    card.last4().to_owned(),
                    card.behaviour().to_owned(),
                )
            }
            EnteredCard::Saved {
                brand,
                last4,
                reference,
            } => (brand.clone(), last4.clone(), reference.clone()),
        })
    }
}

/// A processor that could not be asked (network, 5xx): the worker tries again later.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ProcessorError(pub String);

/// A card saved with the processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMethod {
    /// What later charges name: a test card's behaviour, or a processor payment method id.
    pub reference: String,
    /// `visa`, `mastercard`, … as the processor names it.
    pub brand: String,
    pub last4: String,
}

/// A processor's event (a webhook) whose signature checked out.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub id: String,
    /// The processor's event type (`payment_intent.succeeded`, …).
    pub kind: String,
    /// The object it is about.
    pub object: serde_json::Value,
}

/// Why an inbound event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Signature(#[from] stripe::SignatureError),
    #[error("this processor sends no events")]
    Unsupported,
}

/// What moves money. Every call may go over the network, so none runs inside a unit of work.
pub trait PaymentProcessor: Send + Sync {
    /// `test`, `stripe`, or `none`.
    fn name(&self) -> &'static str;
    /// The processor's customer for ours, made if new (Stripe mirrors customers lazily).
    fn ensure_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProcessorError>>;
    /// Saves a card (a token or a payment method id) for later charges.
    fn save_payment_method<'a>(
        &'a self,
        customer_id: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Result<SavedMethod, Decline>, ProcessorError>>;
    /// Charges the card, with `idempotency_key` so a retry charges once.
    fn charge<'a>(
        &'a self,
        req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>>;
    /// Finishes a charge the customer has authenticated (3-D Secure).
    fn confirm<'a>(
        &'a self,
        idempotency_key: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>>;
    /// Gives back `amount_minor` of the charge `reference`: `Ok(reference)` of the refund, or
    /// `Err(reason)` when the processor refuses it.
    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_minor: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Result<Option<String>, String>, ProcessorError>>;
    /// What became of the charge `req` asked for (found by its idempotency key), if the
    /// processor has one: asked before a claimed intent is charged again (the previous worker
    /// may have died after the call and before the settle).
    fn retrieve<'a>(
        &'a self,
        req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>>;
    /// Verifies an inbound event's signature (`signature`, over `body`, at `now`) and parses
    /// it.
    fn parse_event(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<InboundEvent, InboundError>;
}

/// Which processor each mode uses.
#[derive(Clone)]
pub struct Processors {
    test: Arc<dyn PaymentProcessor>,
    live: Arc<dyn PaymentProcessor>,
    stripe_test: Option<Arc<stripe::StripeProcessor>>,
    stripe_live: Option<Arc<stripe::StripeProcessor>>,
}

/// Which processor each mode uses, by name (`test`, `stripe`, `none`), for the units of work
/// that write payment intents: they record it, and a mode with none declines at once. Set once
/// at start ([`Processors::configured`]); until then, the test processor and none.
static NAMES: std::sync::OnceLock<(&'static str, &'static str)> = std::sync::OnceLock::new();

fn set_names(test: &'static str, live: &'static str) {
    let _ = NAMES.set((test, live));
}

/// The name of the processor `mode` charges through.
pub fn processor_name(mode: Mode) -> &'static str {
    let (test, live) = NAMES.get().copied().unwrap_or(("test", "none"));
    match mode {
        Mode::Test => test,
        Mode::Live => live,
    }
}

impl Processors {
    /// Without Stripe: the test cards in test mode, nothing in live mode (every live charge
    /// declines, saying Stripe is not configured).
    pub fn simulated() -> Processors {
        Processors {
            test: Arc::new(test_cards::TestProcessor),
            live: Arc::new(Unconfigured),
            stripe_test: None,
            stripe_live: None,
        }
    }

    /// Stripe in each mode that has a secret key; otherwise as [`Processors::simulated`].
    pub fn configured(
        test: Option<stripe::StripeConfig>,
        live: Option<stripe::StripeConfig>,
    ) -> Result<Processors, ProcessorError> {
        let stripe_test = test
            .map(stripe::StripeProcessor::new)
            .transpose()?
            .map(Arc::new);
        let stripe_live = live
            .map(stripe::StripeProcessor::new)
            .transpose()?
            .map(Arc::new);
        let test: Arc<dyn PaymentProcessor> = match &stripe_test {
            Some(s) => s.clone(),
            None => Arc::new(test_cards::TestProcessor),
        };
        let live: Arc<dyn PaymentProcessor> = match &stripe_live {
            Some(s) => s.clone(),
            None => Arc::new(Unconfigured),
        };
        set_names(test.name(), live.name());
        Ok(Processors {
            test,
            live,
            stripe_test,
            stripe_live,
        })
    }

    /// The mode's Stripe account, if it has one.
    pub fn stripe(&self, mode: Mode) -> Option<&Arc<stripe::StripeProcessor>> {
        match mode {
            Mode::Test => self.stripe_test.as_ref(),
            Mode::Live => self.stripe_live.as_ref(),
        }
    }

    pub fn for_mode(&self, mode: Mode) -> &Arc<dyn PaymentProcessor> {
        match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }
    }
}

/// A mode with no processor: every charge declines.
pub struct Unconfigured;

impl PaymentProcessor for Unconfigured {
    fn name(&self) -> &'static str {
        "none"
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
        _token: &'a str,
    ) -> BoxFuture<'a, Result<Result<SavedMethod, Decline>, ProcessorError>> {
        Box::pin(async { Ok(Err(Decline::NoLiveProvider)) })
    }

    fn charge<'a>(
        &'a self,
        _req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(async { Ok(declined(Decline::NoLiveProvider)) })
    }

    fn confirm<'a>(
        &'a self,
        _idempotency_key: &'a str,
        _reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(async { Ok(declined(Decline::NoLiveProvider)) })
    }

    fn refund<'a>(
        &'a self,
        _reference: &'a str,
        _amount_minor: i64,
        _idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Result<Option<String>, String>, ProcessorError>> {
        Box::pin(async { Ok(Err(Decline::NoLiveProvider.to_string())) })
    }

    fn retrieve<'a>(
        &'a self,
        _req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>> {
        Box::pin(async { Ok(None) })
    }

    fn parse_event(
        &self,
        _signature: Option<&str>,
        _body: &[u8],
        _now: i64,
    ) -> Result<InboundEvent, InboundError> {
        Err(InboundError::Unsupported)
    }
}

/// A charge refused for `decline`, with its message.
pub fn declined(decline: Decline) -> ChargeOutcome {
    ChargeOutcome::Failed {
        reference: None,
        decline,
        message: decline.to_string(),
    }
}

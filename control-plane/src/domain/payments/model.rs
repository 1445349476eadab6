//! The vocabulary of payments, whichever processor takes them: how a charge went, and why a
//! card or a charge was refused. Pure types; the processors live in `crate::payments`.

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum Decline {
    #[error("Your card was declined.")]
    CardDeclined,
    #[error("Your card number is not a test card; in test mode use 4242 4242 4242 4242.")]
    UnknownCard,
    #[error("Live payments need Stripe, and it is not configured (--stripe-live-secret-key).")]
    NoLiveProvider,
    #[error("The customer has no payment method on file.")]
    NoPaymentMethod,
    #[error("Your card has insufficient funds.")]
    InsufficientFunds,
    #[error("The card's authentication (3-D Secure) failed.")]
    AuthenticationFailed,
    #[error("The payment was not authenticated in time.")]
    Expired,
}

/// How a charge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    Paid,
    Failed(Decline),
    /// A payment intent was written; the payments worker settles it after the unit commits.
    Pending(String),
}

impl Decline {
    /// The code stored with a failed intent (and shown in its view).
    pub fn code(self) -> &'static str {
        match self {
            Decline::CardDeclined => "card_declined",
            Decline::UnknownCard => "unknown_card",
            Decline::NoLiveProvider => "processor_not_configured",
            Decline::NoPaymentMethod => "no_payment_method",
            Decline::InsufficientFunds => "insufficient_funds",
            Decline::AuthenticationFailed => "authentication_failed",
            Decline::Expired => "expired",
        }
    }

    pub fn from_code(code: &str) -> Decline {
        match code {
            "unknown_card" => Decline::UnknownCard,
            "processor_not_configured" => Decline::NoLiveProvider,
            "no_payment_method" => Decline::NoPaymentMethod,
            "insufficient_funds" => Decline::InsufficientFunds,
            "authentication_failed" => Decline::AuthenticationFailed,
            "expired" => Decline::Expired,
            _ => Decline::CardDeclined,
        }
    }
}

/// Where a payment intent is (docs/payments.md draws the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    /// Written by a unit of work; the payments worker has not settled it yet.
    Processing,
    /// The customer must authenticate (3-D Secure) on the hosted authentication page.
    RequiresAction,
    Succeeded,
    Failed,
    /// Never charged: the authentication was not done in time, or what it paid for went away.
    Canceled,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Failed => "failed",
            IntentStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<IntentStatus> {
        [
            IntentStatus::Processing,
            IntentStatus::RequiresAction,
            IntentStatus::Succeeded,
            IntentStatus::Failed,
            IntentStatus::Canceled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Still waiting for the processor or the customer.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            IntentStatus::Processing | IntentStatus::RequiresAction
        )
    }
}

/// What settling an intent does besides paying its invoice: the change it pays for waits for
/// the money (Stripe's `pending_if_incomplete`), so a declined card changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Purpose {
    /// The first invoice of an `incomplete` subscription: paid → it starts; failed → it ends
    /// (or, for a checkout's, stays `incomplete` so the customer can try another card).
    Start {
        subscription: String,
        checkout_session: Option<String>,
    },
    /// An upgrade's invoice: paid → the change is applied; failed → nothing changes.
    Update {
        subscription: String,
        plan: String,
        period: String,
        quantity: i64,
        /// `same`, `new`, or the trial's end as a number.
        cycle: CycleSpec,
    },
    /// A renewal's invoice: failed → `past_due` and dunning.
    Renewal {
        subscription: String,
        trial_ending: bool,
    },
    /// A dunning retry of the subscription's open invoice.
    Retry { subscription: String },
    /// Any other invoice (a final one): failed → it stays `open`.
    Invoice,
}

/// [`crate::domain::subscriptions::model::Cycle`], as stored with an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "until", rename_all = "snake_case")]
pub enum CycleSpec {
    Same,
    New,
    TrialUntil(i64),
}

/// A `payment_intents` row.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub mode: tollgate_shared::Mode,
    pub customer_id: String,
    pub invoice_id: String,
    pub subscription_id: Option<String>,
    pub amount_minor: i64,
    pub currency: crate::platform::money::Currency,
    pub purpose: Purpose,
    pub status: IntentStatus,
    pub processor: String,
    pub payment_method: Option<String>,
    pub processor_ref: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub decline_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

/// A payment intent as `GET /api/v1/payments/` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentView {
    pub id: String,
    pub customer_id: String,
    pub invoice_id: String,
    pub subscription_id: Option<String>,
    pub amount_units: i64,
    /// A decimal string in the currency's major unit.
    pub amount: String,
    #[schema(value_type = String)]
    pub currency: crate::platform::money::Currency,
    /// `processing`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// `test`, `stripe`, or `none` (a mode with no processor configured).
    pub processor: String,
    /// The processor's id for the charge.
    pub processor_reference: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Why it failed: `card_declined`, `insufficient_funds`, `authentication_failed`, ….
    pub decline_code: Option<String>,
    /// While `requires_action`: the Tollgate-hosted page where the customer authenticates.
    pub next_action_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub updated_on: String,
}

impl IntentView {
    pub fn new(i: &Intent, action_url: Option<String>) -> IntentView {
        IntentView {
            id: i.id.clone(),
            customer_id: i.customer_id.clone(),
            invoice_id: i.invoice_id.clone(),
            subscription_id: i.subscription_id.clone(),
            amount_units: i.amount_minor,
            amount: crate::platform::money::format_amount(i.amount_minor, i.currency),
            currency: i.currency,
            status: i.status.as_str().to_owned(),
            processor: i.processor.clone(),
            processor_reference: i.processor_ref.clone(),
            attempts: i.attempts,
            last_error: i.last_error.clone(),
            decline_code: i.decline_code.clone(),
            next_action_url: (i.status == IntentStatus::RequiresAction)
                .then_some(action_url)
                .flatten(),
            created_on: crate::platform::clock::rfc3339(i.created_at),
            updated_on: crate::platform::clock::rfc3339(i.updated_at),
        }
    }
}

/// What the processor said about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        reference: Option<String>,
    },
    RequiresAction {
        reference: Option<String>,
    },
    Failed {
        reference: Option<String>,
        decline: Decline,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_and_codes_round_trip() {
        let p = Purpose::Update {
            subscription: "s".into(),
            plan: "pro".into(),
            period: "MONTHLY".into(),
            quantity: 2,
            cycle: CycleSpec::TrialUntil(5),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Purpose>(&text).unwrap(), p);
        for d in [
            Decline::CardDeclined,
            Decline::UnknownCard,
            Decline::NoLiveProvider,
            Decline::NoPaymentMethod,
            Decline::InsufficientFunds,
            Decline::AuthenticationFailed,
            Decline::Expired,
        ] {
            assert_eq!(Decline::from_code(d.code()), d);
        }
        for s in [
            "processing",
            "requires_action",
            "succeeded",
            "failed",
            "canceled",
        ] {
            assert_eq!(IntentStatus::parse(s).map(IntentStatus::as_str), Some(s));
        }
    }
}

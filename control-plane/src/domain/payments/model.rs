//! The vocabulary of payments, whichever processor takes them: how a charge went, and why a
//! card or a charge was refused. Pure types; the processors live in `crate::payments`.

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum Decline {
    #[error("Your card was declined.")]
    CardDeclined,
    #[error("Your card number is not a test card; in test mode use 4242 4242 4242 4242.")]
    UnknownCard,
    #[error("Live payments need a payment provider, and none is configured.")]
    NoLiveProvider,
    #[error("The customer has no payment method on file.")]
    NoPaymentMethod,
}

/// How a charge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    Paid,
    Failed(Decline),
}

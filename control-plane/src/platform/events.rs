//! [`EventKind`]: every webhook event type Tollgate emits, named once. The wire name
//! (`subscription.updated`) is [`EventKind::as_str`]; endpoints subscribe by these names (or
//! `*`), and the OpenAPI document lists [`EventKind::ALL`].

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    CustomerCreated,
    CustomerUpdated,
    CustomerArchived,
    CheckoutCompleted,
    SubscriptionCreated,
    SubscriptionActivated,
    SubscriptionUpdated,
    SubscriptionCanceled,
    SubscriptionRenewed,
    SubscriptionPastDue,
    InvoicePaid,
    InvoicePaymentFailed,
    RefundCreated,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRequiresAction,
    ChargeDisputed,
    EntitlementsUpdated,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 18] = [
        EventKind::CustomerCreated,
        EventKind::CustomerUpdated,
        EventKind::CustomerArchived,
        EventKind::CheckoutCompleted,
        EventKind::SubscriptionCreated,
        EventKind::SubscriptionActivated,
        EventKind::SubscriptionUpdated,
        EventKind::SubscriptionCanceled,
        EventKind::SubscriptionRenewed,
        EventKind::SubscriptionPastDue,
        EventKind::InvoicePaid,
        EventKind::InvoicePaymentFailed,
        EventKind::RefundCreated,
        EventKind::PaymentSucceeded,
        EventKind::PaymentFailed,
        EventKind::PaymentRequiresAction,
        EventKind::ChargeDisputed,
        EventKind::EntitlementsUpdated,
    ];

    /// The wire name: the webhook payload's `type`, and what endpoints subscribe to.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CustomerCreated => "customer.created",
            EventKind::CustomerUpdated => "customer.updated",
            EventKind::CustomerArchived => "customer.archived",
            EventKind::CheckoutCompleted => "checkout.completed",
            EventKind::SubscriptionCreated => "subscription.created",
            EventKind::SubscriptionActivated => "subscription.activated",
            EventKind::SubscriptionUpdated => "subscription.updated",
            EventKind::SubscriptionCanceled => "subscription.canceled",
            EventKind::SubscriptionRenewed => "subscription.renewed",
            EventKind::SubscriptionPastDue => "subscription.past_due",
            EventKind::InvoicePaid => "invoice.paid",
            EventKind::InvoicePaymentFailed => "invoice.payment_failed",
            EventKind::RefundCreated => "refund.created",
            EventKind::PaymentSucceeded => "payment.succeeded",
            EventKind::PaymentFailed => "payment.failed",
            EventKind::PaymentRequiresAction => "payment.requires_action",
            EventKind::ChargeDisputed => "charge.disputed",
            EventKind::EntitlementsUpdated => "entitlements.updated",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert!(seen.insert(kind.as_str()), "{kind} twice");
        }
        assert_eq!(EventKind::parse("subscription.deleted"), None);
    }
}

//! Refund rules and shapes.

use serde::Serialize;
use tollgate_shared::Mode;

use crate::platform::db::sql::{FromRow, Row};
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::money::Currency;
use crate::platform::money::{major_f64, symbol};
use crate::platform::validate::{Invalid, invalid};
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("order '{0}' not found")]
    OrderNotFound(String),
    #[error("refund '{0}' not found")]
    NotFound(String),
    #[error("order '{0}' has nothing left to refund")]
    FullyRefunded(String),
    /// Not a paid invoice with something charged (open, a credit note, free).
    #[error("orderId: '{0}' is not a paid invoice with something charged")]
    NotRefundable(String),
    /// More asked back to the card than the card paid (and is not yet refunded); the rest of
    /// the invoice was paid from credit and goes back to credit.
    #[error(
        "{field}: {asked} minor units exceeds what the card paid and is not yet refunded \
         ({card_refundable} minor units); the part paid from the customer's credit balance goes \
         back to credit with a refund that gives no amount"
    )]
    ExceedsCardPayment {
        field: &'static str,
        asked: i64,
        card_refundable: i64,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Kelviq's refund reasons a caller may give.
pub const REASONS: [&str; 4] = ["DUPLICATE", "FRAUDULENT", "REQUESTED_BY_CUSTOMER", "OTHER"];

/// A `refunds` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub invoice_id: String,
    pub credit_note_id: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub reason: Option<String>,
    pub internal_note: Option<String>,
    pub status: String,
    pub created_at: i64,
    /// What went back to the customer's credit balance: the part of the invoice that credit
    /// had paid (`amount_minor` is what went back to the card).
    pub credit_minor: i64,
    /// The payment intent whose charge the card part goes back through.
    pub intent_id: Option<String>,
    /// The processor's id for the refund (`re_…`), once it made it.
    pub processor_ref: Option<String>,
    pub failure_reason: Option<String>,
}

impl FromRow for Refund {
    fn from_row(r: &Row) -> Result<Self, sqlx::Error> {
        Ok(Refund {
            id: r.try_get("id")?,
            mode: r.try_get::<Mode>("mode")?,
            customer_id: r.try_get("customer_id")?,
            invoice_id: r.try_get("invoice_id")?,
            credit_note_id: r.try_get("credit_note_id")?,
            amount_minor: r.try_get("amount_minor")?,
            currency: r.try_get("currency")?,
            reason: r.try_get("reason")?,
            internal_note: r.try_get("internal_note")?,
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            credit_minor: r.try_get("credit_minor")?,
            intent_id: r.try_get("intent_id")?,
            processor_ref: r.try_get("processor_ref")?,
            failure_reason: r.try_get("failure_reason")?,
        })
    }
}

/// `amount` (a major-unit number) in minor units of `currency`, refused when it has more
/// decimals than the currency or is not positive.
pub fn minor_of(field: &str, amount: f64, currency: Currency) -> Result<i64, Invalid> {
    if !amount.is_finite() || amount <= 0.0 {
        return Err(invalid(field, "must be a positive number"));
    }
    let scaled = amount * 10f64.powi(currency.exponent() as i32);
    let rounded = scaled.round();
    // A float like 12.34 is 1233.9999…: anything within a millionth of a minor unit is exact.
    if (scaled - rounded).abs() > 1e-6 {
        return Err(invalid(
            field,
            format!("has more decimal places than {} allows", currency.upper()),
        ));
    }
    if rounded > 1e15 {
        return Err(invalid(field, "is too large"));
    }
    Ok(rounded as i64)
}

/// How much to refund: `amountUnits` (minor units) or `amount` (major), which must agree when
/// both are given; neither is everything left. Never more than is left.
pub fn amount_to_refund(
    units: Option<i64>,
    amount: Option<f64>,
    currency: Currency,
    refundable: i64,
) -> Result<i64, Invalid> {
    let from_amount = amount
        .map(|a| minor_of("amount", a, currency))
        .transpose()?;
    let asked = match (units, from_amount) {
        (Some(u), _) if u < 1 => return Err(invalid("amountUnits", "must be 1 or more")),
        (Some(u), Some(a)) if u != a => {
            return Err(invalid(
                "amount",
                "disagrees with amountUnits; give one of them",
            ));
        }
        (Some(u), _) => u,
        (None, Some(a)) => a,
        (None, None) => refundable,
    };
    if asked > refundable {
        let field = if units.is_some() {
            "amountUnits"
        } else {
            "amount"
        };
        return Err(invalid(
            field,
            format!("exceeds what is left to refund ({refundable} minor units)"),
        ));
    }
    Ok(asked)
}

/// The order a refund is against, as Kelviq's `order` object.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The invoice id.
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    #[schema(value_type = String)]
    pub currency: Currency,
    /// The invoice's total, a decimal string.
    pub total: String,
    pub amount_units: i64,
    /// What the customer's credit balance paid of it, in minor units; the card paid the rest.
    pub credit_applied_units: i64,
    /// Refunded so far (to the card and to credit), in minor units.
    pub refunded_units: i64,
}

/// Kelviq's `RefundResponse`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundView {
    pub id: String,
    /// `DUPLICATE`, `FRAUDULENT`, `REQUESTED_BY_CUSTOMER` or `OTHER`; null when none was given.
    pub reason: Option<String>,
    pub amount_units: i64,
    /// In the currency's major unit, a number.
    pub amount: f64,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub internal_note: Option<String>,
    /// Why the processor refused the refund (`FAILED`).
    pub failure_reason: Option<String>,
    /// `SUCCEEDED`; `PENDING` while the processor (Stripe) has not made it yet; `FAILED` when
    /// it refused.
    pub status: String,
    /// The processor's id for the refund (`re_…` at Stripe), once made.
    pub processor_reference: Option<String>,
    /// The credit note: an invoice of reason `credit_note`.
    pub credit_note_id: String,
    /// What went back to the customer's credit balance instead of the card (the part of the
    /// invoice credit had paid), in minor units; `amountUnits` is what went back to the card.
    pub credit_units: i64,
    #[schema(format = DateTime)]
    pub created_on: String,
    pub order: OrderView,
}

impl RefundView {
    pub fn new(r: &Refund, order: OrderView) -> RefundView {
        RefundView {
            id: r.id.clone(),
            reason: r.reason.clone(),
            amount_units: r.amount_minor,
            amount: major_f64(r.amount_minor, r.currency),
            currency: r.currency,
            internal_note: r.internal_note.clone(),
            failure_reason: r.failure_reason.clone(),
            status: r.status.clone(),
            processor_reference: r.processor_ref.clone(),
            credit_note_id: r.credit_note_id.clone(),
            credit_units: r.credit_minor,
            created_on: crate::platform::clock::rfc3339(r.created_at),
            order,
        }
    }
}

/// Kelviq's `currencySymbol`: the symbol the hosted pages write, or the upper-case code.
pub fn currency_symbol(currency: Currency) -> String {
    symbol(currency.as_str()).map_or_else(|| currency.upper(), str::to_owned)
}

impl DomainError for RefundError {
    fn failure(&self) -> Failure<'_> {
        match self {
            RefundError::Invalid(_) | RefundError::ExceedsCardPayment { .. } => {
                Failure::Kind(ErrorKind::BadRequest)
            }
            RefundError::Db(error) => Failure::Database {
                context: "refunds",
                error,
            },
            RefundError::OrderNotFound(_) | RefundError::NotFound(_) => {
                Failure::Kind(ErrorKind::NotFound)
            }
            RefundError::FullyRefunded(_) | RefundError::NotRefundable(_) => {
                Failure::Kind(ErrorKind::Conflict)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    #[test]
    fn amounts_in_minor_units() {
        assert_eq!(minor_of("amount", 12.34, c("usd")), Ok(1234));
        assert_eq!(minor_of("amount", 500.0, c("jpy")), Ok(500));
        assert!(minor_of("amount", 1.001, c("usd")).is_err());
        assert!(minor_of("amount", -1.0, c("usd")).is_err());
        assert!(minor_of("amount", f64::NAN, c("usd")).is_err());
        assert!(minor_of("amount", 1e30, c("usd")).is_err());
    }

    #[test]
    fn full_partial_and_too_much() {
        assert_eq!(amount_to_refund(None, None, c("usd"), 4_900), Ok(4_900));
        assert_eq!(
            amount_to_refund(Some(1_000), None, c("usd"), 4_900),
            Ok(1_000)
        );
        assert_eq!(
            amount_to_refund(None, Some(10.0), c("usd"), 4_900),
            Ok(1_000)
        );
        assert_eq!(
            amount_to_refund(Some(1_000), Some(10.0), c("usd"), 4_900),
            Ok(1_000)
        );
        assert_eq!(
            amount_to_refund(Some(1_000), Some(11.0), c("usd"), 4_900)
                .unwrap_err()
                .field,
            "amount"
        );
        assert_eq!(
            amount_to_refund(Some(5_000), None, c("usd"), 4_900)
                .unwrap_err()
                .field,
            "amountUnits"
        );
        assert_eq!(
            amount_to_refund(Some(0), None, c("usd"), 4_900)
                .unwrap_err()
                .field,
            "amountUnits"
        );
    }
}

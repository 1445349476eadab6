//! Invoice shapes: what is being billed ([`Draft`]), and what callers see ([`InvoiceView`]).

use serde::Serialize;

use crate::platform::clock::rfc3339;
use crate::platform::money::Currency;
use crate::platform::money::format_amount;
use tollgate_shared::Mode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub description: String,
    pub amount_minor: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub proration: bool,
    pub plan: Option<String>,
}

/// Why an invoice exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    SubscriptionCreate,
    SubscriptionCycle,
    SubscriptionUpdate,
    TrialEnd,
    /// Pending proration lines of a subscription that ended.
    SubscriptionFinal,
    /// The credit note of a refund: a negative total, already paid back.
    CreditNote,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SubscriptionCreate => "subscription_create",
            Reason::SubscriptionCycle => "subscription_cycle",
            Reason::SubscriptionUpdate => "subscription_update",
            Reason::TrialEnd => "trial_end",
            Reason::SubscriptionFinal => "subscription_final",
            Reason::CreditNote => "credit_note",
        }
    }
}

pub struct Draft<'a> {
    pub mode: Mode,
    pub customer_id: &'a str,
    pub subscription_id: Option<&'a str>,
    pub currency: Currency,
    pub reason: Reason,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    pub description: String,
    /// A decimal string; negative for a credit.
    pub amount: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub proration: bool,
    pub plan_identifier: Option<String>,
}

impl LineView {
    pub fn new(line: &Line, currency: Currency) -> LineView {
        LineView {
            description: line.description.clone(),
            amount: format_amount(line.amount_minor, currency),
            period_start: line.period_start.map(rfc3339),
            period_end: line.period_end.map(rfc3339),
            proration: line.proration,
            plan_identifier: line.plan.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub total: String,
    pub reason: String,
    pub created_at: String,
    pub paid_at: Option<String>,
    /// When the processor reported the charge that paid it disputed (a chargeback).
    pub disputed_at: Option<String>,
    pub lines: Vec<LineView>,
}

//! Subscriptions as stored (a typed row) and as callers see them (Kelviq's view).

use serde::Serialize;
use tollgate_shared::Mode;

use crate::platform::clock::{date, rfc3339};
use crate::platform::db::sql::{FromRow, Row};
use crate::platform::http::error::{DomainError, Failure};
use crate::platform::money::Currency;
use crate::platform::money::format_amount;
use crate::platform::period::ChargePeriod;
use crate::platform::validate::Invalid;
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Subscription '{0}' not found")]
    NotFound(String),
    #[error("subscription is {status}; {action} is not possible")]
    NotChangeable {
        status: Status,
        action: &'static str,
    },
    #[error("{0}")]
    Payment(#[from] crate::domain::payments::model::Decline),
    #[error("cancellationDate: must be after the subscription's current time")]
    CancelDateNotAhead,
    #[error("customer '{0}' has no card on file: put one on file first, or use checkout")]
    NoCard(String),
    #[error("customer already has subscription '{id}' in group '{group}': change it with update")]
    AlreadySubscribed { id: String, group: String },
    /// Another change of the group waits for its payment (`payment`); one at a time.
    #[error(
        "a payment ('{payment}') for another change in group '{group}' is in progress; try again \
         once it has settled (GET /api/v1/payments/{payment})"
    )]
    PaymentInProgress { payment: String, group: String },
    /// The plan or its price at the asked period does not exist (404).
    #[error(transparent)]
    Catalog(crate::domain::catalog::model::CatalogError),
    #[error(transparent)]
    Customer(#[from] crate::domain::customers::model::CustomerError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<crate::domain::catalog::model::CatalogError> for SubscriptionError {
    fn from(e: crate::domain::catalog::model::CatalogError) -> Self {
        use crate::domain::catalog::model::CatalogError;
        match e {
            CatalogError::Invalid(i) => SubscriptionError::Invalid(i),
            CatalogError::Db(d) => SubscriptionError::Db(d),
            other => SubscriptionError::Catalog(other),
        }
    }
}

/// What an immediate change does to the billing cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The current period goes on (same charge period).
    Same,
    /// A new cycle starts now (a new charge period, or a trial ended now: then the
    /// subscription is `active` from now on).
    New,
    /// The subscription is `trialing` from now until this time; its first charged cycle is
    /// anchored there.
    TrialUntil(i64),
}

/// SPEC §5's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Awaiting a checkout; grants nothing.
    Incomplete,
    Trialing,
    Active,
    /// A renewal failed; access is kept while dunning retries.
    PastDue,
    Canceled,
    /// Its first payment failed (Stripe's name): it never started and granted nothing.
    IncompleteExpired,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Incomplete,
        Status::Trialing,
        Status::Active,
        Status::PastDue,
        Status::Canceled,
        Status::IncompleteExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Incomplete => "incomplete",
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
            Status::IncompleteExpired => "incomplete_expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a subscription in this status grants its plan's entitlements.
    pub fn is_granting(self) -> bool {
        matches!(self, Status::Trialing | Status::Active | Status::PastDue)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SQL for "a granting status", to put after `status IN`.
pub const GRANTING: &str = "('trialing','active','past_due')";

/// A `subscriptions` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub plan: String,
    pub group: String,
    pub period: ChargePeriod,
    /// Unit price at the time of the (last) change, in minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    pub quantity: i64,
    pub status: Status,
    pub started_at: i64,
    pub period_start: i64,
    /// `None` for `ONE_TIME`.
    pub period_end: Option<i64>,
    pub trial_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub scheduled_plan: Option<String>,
    pub scheduled_period: Option<String>,
    pub scheduled_quantity: Option<i64>,
    pub created_at: i64,
    /// Period n of the current cycle ends at `cycle_anchor + n × period`.
    pub cycle_anchor: i64,
    pub cycle_index: i64,
    pub dunning_invoice: Option<String>,
    pub dunning_attempts: i64,
    pub next_retry_at: Option<i64>,
    pub dunning_started_at: Option<i64>,
}

impl Subscription {
    pub fn total(&self) -> i64 {
        self.amount.saturating_mul(self.quantity)
    }

    /// A downgrade, a cancellation at period end or on a date is waiting.
    pub fn pending_change(&self) -> bool {
        self.scheduled_plan.is_some() || self.cancel_at_period_end || self.cancel_at.is_some()
    }

    /// The next time the billing clock has something to do for it.
    pub fn next_due(&self) -> Option<i64> {
        [self.period_end, self.cancel_at, self.next_retry_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The stored columns [`Subscription`]'s `FromRow` reads (`cycle_anchor` is read through a
/// fallback, see [`select_list`]).
const STORED: [&str; 27] = [
    "id",
    "mode",
    "customer_id",
    "plan_identifier",
    "grp",
    "charge_period",
    "amount_minor",
    "currency",
    "quantity",
    "status",
    "started_at",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "scheduled_plan",
    "scheduled_period",
    "scheduled_quantity",
    "created_at",
    "cycle_index",
    "dunning_invoice",
    "dunning_attempts",
    "next_retry_at",
    "dunning_started_at",
];

/// The select list for a [`Subscription`], its columns prefixed with `alias.` when given.
pub fn select_list(alias: Option<&str>) -> String {
    let p = alias.map(|a| format!("{a}.")).unwrap_or_default();
    let mut out: Vec<String> = STORED.iter().map(|c| format!("{p}{c}")).collect();
    out.push(format!(
        "COALESCE({p}cycle_anchor, {p}current_period_start) AS cycle_anchor"
    ));
    out.join(", ")
}

/// The one builder of subscriptions for unit tests.
#[cfg(test)]
impl Subscription {
    /// One active seat of `plan` at `amount` (minor units of usd) per `period`, in test mode and
    /// group `base`, its first period starting at `start`. Tests change what they need with
    /// struct update syntax: `Subscription { status: Status::PastDue, ..Subscription::test(…) }`.
    pub fn test(plan: &str, period: ChargePeriod, amount: i64, start: i64) -> Subscription {
        Subscription {
            id: "s".into(),
            mode: Mode::Test,
            customer_id: "c".into(),
            plan: plan.into(),
            group: "base".into(),
            period,
            amount,
            currency: Currency::USD,
            quantity: 1,
            status: Status::Active,
            started_at: start,
            period_start: start,
            period_end: period.first_period_end(start),
            trial_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            scheduled_plan: None,
            scheduled_period: None,
            scheduled_quantity: None,
            created_at: start,
            cycle_anchor: start,
            cycle_index: 0,
            dunning_invoice: None,
            dunning_attempts: 0,
            next_retry_at: None,
            dunning_started_at: None,
        }
    }
}

impl FromRow for Subscription {
    fn from_row(r: &Row) -> Result<Self, sqlx::Error> {
        let decode = |column: &str, what: &str| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: format!("unknown {what}").into(),
        };
        let mode: String = r.try_get("mode")?;
        let period: String = r.try_get("charge_period")?;
        let status: String = r.try_get("status")?;
        Ok(Subscription {
            id: r.try_get("id")?,
            mode: Mode::parse(&mode).ok_or_else(|| decode("mode", "mode"))?,
            customer_id: r.try_get("customer_id")?,
            plan: r.try_get("plan_identifier")?,
            group: r.try_get("grp")?,
            period: ChargePeriod::parse(&period)
                .ok_or_else(|| decode("charge_period", "charge period"))?,
            amount: r.try_get("amount_minor")?,
            currency: r.try_get("currency")?,
            quantity: r.try_get("quantity")?,
            status: Status::parse(&status).ok_or_else(|| decode("status", "status"))?,
            started_at: r.try_get("started_at")?,
            period_start: r.try_get("current_period_start")?,
            period_end: r.try_get("current_period_end")?,
            trial_end: r.try_get("trial_end")?,
            cancel_at_period_end: r.try_get::<i64>("cancel_at_period_end")? != 0,
            cancel_at: r.try_get("cancel_at")?,
            canceled_at: r.try_get("canceled_at")?,
            ended_at: r.try_get("ended_at")?,
            scheduled_plan: r.try_get("scheduled_plan")?,
            scheduled_period: r.try_get("scheduled_period")?,
            scheduled_quantity: r.try_get("scheduled_quantity")?,
            created_at: r.try_get("created_at")?,
            cycle_anchor: r.try_get("cycle_anchor")?,
            cycle_index: r.try_get("cycle_index")?,
            dunning_invoice: r.try_get("dunning_invoice")?,
            dunning_attempts: r.try_get("dunning_attempts")?,
            next_retry_at: r.try_get("next_retry_at")?,
            dunning_started_at: r.try_get("dunning_started_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanRef {
    pub name: String,
    pub identifier: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledChange {
    pub plan_identifier: String,
    pub charge_period: String,
    pub effective_at: Option<String>,
}

/// Kelviq's `product`: Tollgate's plan group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductRef {
    pub id: String,
    pub identifier: String,
    pub name: String,
}

/// A license key issued with the subscription (Kelviq's `SubscriptionLicense`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionLicense {
    pub id: String,
    pub license_key: String,
    pub activated_on: Option<String>,
    pub expires_on: Option<String>,
    pub activation_usage: i64,
    pub activation_limit: i64,
    pub enabled: bool,
}

/// Kelviq's subscription fields (`SubscriptionData` of its SDKs) plus the lifecycle fields of
/// SPEC §4.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    /// `incomplete`, `trialing`, `active`, `past_due` or `canceled`.
    pub status: String,
    pub plan: PlanRef,
    /// Unit price × quantity, a decimal string in the currency's major unit.
    pub amount: String,
    pub recurrence: String,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub start_date: String,
    pub end_date: Option<String>,
    pub customer_id: String,
    pub charge_period: String,
    pub quantity: i64,
    pub current_period_start: String,
    pub current_period_end: Option<String>,
    pub trial_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub scheduled_change: Option<ScheduledChange>,
    /// `SUBSCRIPTION`, or `ONE_TIME` for a one-time purchase.
    #[schema(pattern = "^(SUBSCRIPTION|ONE_TIME)$")]
    pub billing_type: &'static str,
    #[schema(format = DateTime)]
    pub billing_period_start_time: String,
    #[schema(format = DateTime)]
    pub billing_period_end_time: Option<String>,
    /// Whole days left of the trial (rounded up); 0 when not trialing.
    #[schema(minimum = 0)]
    pub trial_days_remaining: i64,
    /// `1` for monthly, `3` for three months, `28` for 28 days; null for ONE_TIME.
    pub recurrence_unit: Option<i64>,
    /// `MONTH`, `YEAR`, `WEEK` or `DAY`; null for ONE_TIME.
    pub recurrence_type: Option<&'static str>,
    /// When the next renewal invoice is due; null when the subscription will not renew.
    #[schema(format = DateTime)]
    pub next_invoice_date: Option<String>,
    /// Always null: there is no external billing system behind Tollgate.
    pub external_subscription_id: Option<String>,
    /// The plan's group, as Kelviq's product.
    pub product: ProductRef,
    /// Kelviq's features, files and links: Tollgate lists the plan's features at the edge and
    /// has no files or links, so these are empty.
    #[schema(value_type = Vec<Object>)]
    pub features: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub files: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub links: Vec<serde_json::Value>,
    /// License keys issued with the subscription.
    pub license: Vec<SubscriptionLicense>,
    #[serde(skip)]
    #[schema(ignore)]
    pub trial_end_unix: Option<i64>,
}

impl SubscriptionView {
    pub fn new(s: &Subscription, plan_name: String) -> SubscriptionView {
        let end = s.ended_at.or(s.cancel_at).or(if s.cancel_at_period_end {
            s.period_end
        } else {
            None
        });
        SubscriptionView {
            id: s.id.clone(),
            status: s.status.as_str().to_owned(),
            plan: PlanRef {
                name: plan_name,
                identifier: s.plan.clone(),
            },
            amount: format_amount(s.total(), s.currency),
            recurrence: s.period.recurrence().to_owned(),
            currency: s.currency,
            start_date: date(s.started_at),
            end_date: end.map(date),
            customer_id: s.customer_id.clone(),
            charge_period: s.period.as_str().to_owned(),
            quantity: s.quantity,
            current_period_start: rfc3339(s.period_start),
            current_period_end: s.period_end.map(rfc3339),
            trial_end: s.trial_end.map(rfc3339),
            cancel_at_period_end: s.cancel_at_period_end,
            scheduled_change: s
                .scheduled_plan
                .clone()
                .map(|plan_identifier| ScheduledChange {
                    plan_identifier,
                    charge_period: s.scheduled_period.clone().unwrap_or_default(),
                    effective_at: s.period_end.map(rfc3339),
                }),
            billing_type: if s.period == ChargePeriod::OneTime {
                "ONE_TIME"
            } else {
                "SUBSCRIPTION"
            },
            billing_period_start_time: rfc3339(s.period_start),
            billing_period_end_time: s.period_end.map(rfc3339),
            trial_days_remaining: 0,
            recurrence_unit: s.period.recurrence_parts().map(|p| p.0),
            recurrence_type: s.period.recurrence_parts().map(|p| p.1),
            next_invoice_date: s
                .period_end
                .filter(|_| {
                    s.status.is_granting() && !s.cancel_at_period_end && s.cancel_at.is_none()
                })
                .map(rfc3339),
            external_subscription_id: None,
            product: ProductRef {
                id: s.group.clone(),
                identifier: s.group.clone(),
                name: s.group.clone(),
            },
            features: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            license: Vec::new(),
            trial_end_unix: s.trial_end.filter(|_| s.status == Status::Trialing),
        }
    }

    /// Fills in what depends on the time of reading: the trial days left at `now`.
    pub fn at(mut self, now: i64) -> SubscriptionView {
        self.trial_days_remaining = self
            .trial_end_unix
            .map_or(0, |end| ((end - now).max(0) + 86_399) / 86_400);
        self
    }
}

impl DomainError for SubscriptionError {
    fn failure(&self) -> Failure<'_> {
        match self {
            SubscriptionError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            SubscriptionError::NotFound(_) => Failure::Kind(ErrorKind::NotFound),
            // Relative to the subscription's clock: a conflict with its state, not a malformed
            // request.
            SubscriptionError::NotChangeable { .. } | SubscriptionError::CancelDateNotAhead => {
                Failure::Kind(ErrorKind::Conflict)
            }
            SubscriptionError::Payment(_) | SubscriptionError::NoCard(_) => {
                Failure::Kind(ErrorKind::PaymentRequired)
            }
            SubscriptionError::AlreadySubscribed { .. }
            | SubscriptionError::PaymentInProgress { .. } => Failure::Kind(ErrorKind::Conflict),
            SubscriptionError::Catalog(c) => c.failure(),
            SubscriptionError::Customer(c) => c.failure(),
            SubscriptionError::Db(error) => Failure::Database {
                context: "subscriptions",
                error,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_grant() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        let granting: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_granting())
            .collect();
        assert_eq!(
            granting,
            [Status::Trialing, Status::Active, Status::PastDue]
        );
        assert_eq!(GRANTING, "('trialing','active','past_due')");
    }
}

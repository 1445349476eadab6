//! What an update would do, without doing it: Kelviq's `update/preview/`, and the proration
//! preview the customer portal shows before a customer confirms a switch.
//!
//! The preview asks the same decision as the real update ([`lifecycle::decide`], with the same
//! proration code), so the invoice it shows is the invoice the update makes: the lines of the
//! change, after the subscription's pending `PRORATE_NEXT_INVOICE` lines (an invoice claims
//! them), collected from the customer's credit first. [`preview`] is pure; its I/O half
//! (`workflows::update::preview_update`) reads what it needs and calls it.

use serde::Serialize;

use crate::domain::subscriptions::lifecycle;

use crate::domain::catalog::model::FeatureDef;
use crate::domain::catalog::model::PlanPrice;
use crate::domain::invoices::model::{Line, LineView};
use crate::domain::subscriptions::lifecycle::{
    Action, ChangeRequest, Cycle, Decision, Proration, TrialEnd,
};
use crate::domain::subscriptions::model::{Status, Subscription};
use crate::domain::subscriptions::renewal::renewal;
use crate::platform::clock::rfc3339;
use crate::platform::money::Currency;
use crate::platform::money::{format_amount, major_f64};
use crate::platform::validate::{Invalid, Quantity, invalid};
use tollgate_shared::FeatureType;

/// One of Kelviq's `features: [{identifier, quantity}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureQuantity {
    pub identifier: String,
    pub quantity: i64,
}

/// An update as a caller asks for it (Kelviq's `update` and `update/preview` bodies, the
/// portal's switch form), before anything is resolved against the catalog.
#[derive(Debug, Clone)]
pub struct UpdateAsk {
    pub plan_identifier: String,
    pub charge_period: String,
    /// The new quantity; unchanged when `None` (and no feature quantity sets it).
    pub quantity: Option<i64>,
    pub proration: Proration,
    pub trial_end: Option<TrialEnd>,
    /// Quantities of the target plan's CUSTOMIZABLE features (docs/api-notes.md): they set the
    /// subscription's quantity, so they must agree with each other and with `quantity`.
    pub features: Vec<FeatureQuantity>,
}

impl UpdateAsk {
    /// A switch to `plan` at `period`, every option at its default.
    pub fn to(plan: impl Into<String>, period: impl Into<String>) -> UpdateAsk {
        UpdateAsk {
            plan_identifier: plan.into(),
            charge_period: period.into(),
            quantity: None,
            proration: Proration::ImmediateCharge,
            trial_end: None,
            features: Vec::new(),
        }
    }
}

/// The invoice the subscription gets next (at its period's end) once the change is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextInvoice {
    /// When it is made and charged.
    pub at: i64,
    pub lines: Vec<Line>,
    pub total_minor: i64,
}

/// What an update would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePreview {
    pub subscription_id: String,
    pub action: Action,
    pub currency: Currency,
    /// The customer's time the preview was made at (a test clock's, for its customers).
    pub at: i64,
    /// When the change takes effect: now, or the period's end for a scheduled change.
    pub effective_at: i64,
    /// What each period costs after the change (price × quantity); 0 for ONE_TIME.
    pub recurring_minor: i64,
    /// The lines of the invoice the change makes now, in the order the invoice lists them
    /// (pending lines first); empty when nothing is invoiced now.
    pub lines_now: Vec<Line>,
    /// The total of `lines_now`.
    pub total_now_minor: i64,
    /// What the card is charged now: the total after the customer's credit (0 when the total
    /// is a credit, which goes to the balance instead).
    pub charged_now_minor: i64,
    /// The customer's credit the invoice made now uses.
    pub credit_applied_minor: i64,
    /// The next invoice after the change, if the subscription renews.
    pub next_invoice: Option<NextInvoice>,
}

/// What the preview reads besides the subscription.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Lines waiting for the subscription's next invoice (`PRORATE_NEXT_INVOICE`).
    pub pending_lines: Vec<Line>,
    /// The customer's credit balance, in minor units.
    pub balance_minor: i64,
    /// The price the scheduled change (already on the subscription) renews into.
    pub scheduled: Option<PlanPrice>,
}

/// The preview of `req` on `current` at the customer's time `now`: pure, the same decision as
/// the real update.
pub fn preview(
    current: &Subscription,
    req: &ChangeRequest,
    ctx: &Context,
    now: i64,
) -> Result<UpdatePreview, Invalid> {
    // A subscription that exists has been paid for, so "has a card" is true, as in
    // `workflows::subscribe::change`.
    let decision = lifecycle::decide(Some(current), req, true, now)?;
    let action = decision.action();
    let target = &req.target;
    let mut lines_now = Vec::new();
    let mut deferred = ctx.pending_lines.clone();
    let (after, scheduled, effective_at): (Subscription, Option<&PlanPrice>, i64) = match &decision
    {
        Decision::ChangeNow {
            quantity,
            cycle,
            invoice,
            ..
        } => {
            if let Some(plan) = invoice {
                if plan.deferred {
                    deferred.extend(plan.lines.iter().cloned());
                } else {
                    // The invoice made now claims the pending lines ahead of its own.
                    lines_now.append(&mut deferred);
                    lines_now.extend(plan.lines.iter().cloned());
                }
            }
            (changed(current, target, *quantity, *cycle, now), None, now)
        }
        Decision::Schedule {
            quantity, to_free, ..
        } => {
            let mut after = current.clone();
            after.scheduled_plan = Some(target.plan.clone());
            after.scheduled_period = Some(target.charge_period.as_str().to_owned());
            after.scheduled_quantity = Some(*quantity);
            after.cancel_at_period_end = *to_free;
            after.cancel_at = None;
            let at = current.period_end.unwrap_or(now);
            (after, (!*to_free).then_some(target), at)
        }
        Decision::Resume => {
            let mut after = current.clone();
            after.scheduled_plan = None;
            after.scheduled_period = None;
            after.scheduled_quantity = None;
            after.cancel_at_period_end = false;
            after.cancel_at = None;
            (after, None, now)
        }
        Decision::NoOp
        | Decision::DefaultPlan
        | Decision::StartNow { .. }
        | Decision::Checkout { .. } => (current.clone(), ctx.scheduled.as_ref(), now),
    };
    let total_now_minor: i64 = lines_now.iter().map(|l| l.amount_minor).sum();
    // As `collect::create_and_collect`: credit first for a positive total; a negative total
    // becomes credit.
    let credit_applied_minor = if total_now_minor > 0 {
        ctx.balance_minor.clamp(0, total_now_minor)
    } else {
        0
    };
    let charged_now_minor = (total_now_minor - credit_applied_minor).max(0);
    let recurring_minor = if after.period_end.is_none() {
        0
    } else {
        match scheduled {
            Some(p) => p
                .amount_minor
                .saturating_mul(after.scheduled_quantity.unwrap_or(after.quantity)),
            None => after.total(),
        }
    };
    Ok(UpdatePreview {
        subscription_id: current.id.clone(),
        action,
        currency: target.currency,
        at: now,
        effective_at,
        recurring_minor,
        lines_now,
        total_now_minor,
        charged_now_minor,
        credit_applied_minor,
        next_invoice: next_invoice(&after, scheduled, deferred),
    })
}

/// The subscription as an immediate change leaves it (what `store::change_now` writes).
fn changed(
    current: &Subscription,
    target: &PlanPrice,
    quantity: i64,
    cycle: Cycle,
    now: i64,
) -> Subscription {
    let mut after = current.clone();
    after.plan = target.plan.clone();
    after.period = target.charge_period;
    after.amount = target.amount_minor;
    after.currency = target.currency;
    after.quantity = quantity;
    after.scheduled_plan = None;
    after.scheduled_period = None;
    after.scheduled_quantity = None;
    after.cancel_at_period_end = false;
    after.cancel_at = None;
    match cycle {
        Cycle::Same => {}
        Cycle::New => {
            after.period_start = now;
            after.period_end = target.charge_period.first_period_end(now);
            after.cycle_anchor = now;
            after.cycle_index = 0;
            if after.status == Status::Trialing {
                after.status = Status::Active;
                after.trial_end = Some(now);
            }
        }
        Cycle::TrialUntil(at) => {
            after.period_start = now;
            after.period_end = Some(at);
            after.cycle_anchor = at;
            after.cycle_index = 0;
            after.status = Status::Trialing;
            after.trial_end = Some(at);
        }
    }
    after
}

/// The invoice the billing clock makes at the period's end: the pending lines, then the
/// renewal (the scheduled change applied). None when the subscription ends there instead, or
/// never renews (ONE_TIME).
fn next_invoice(
    after: &Subscription,
    scheduled: Option<&PlanPrice>,
    pending: Vec<Line>,
) -> Option<NextInvoice> {
    let at = after.period_end?;
    if after.cancel_at_period_end || after.cancel_at.is_some_and(|c| c <= at) {
        return None;
    }
    let trial_ending = after.status == Status::Trialing;
    let mut lines = pending;
    lines.push(renewal(after, at, trial_ending, scheduled).line);
    let total_minor = lines.iter().map(|l| l.amount_minor).sum();
    Some(NextInvoice {
        at,
        lines,
        total_minor,
    })
}

/// Kelviq's `features` quantities as the subscription's quantity: each must name a
/// CUSTOMIZABLE feature the target plan grants, and all must agree (Tollgate bills one
/// quantity per subscription).
pub fn feature_quantity(
    asked: &[FeatureQuantity],
    quantity: Option<i64>,
    features: &[FeatureDef],
    granted: &[&str],
) -> Result<i64, Invalid> {
    let mut agreed = quantity;
    for (i, f) in asked.iter().enumerate() {
        let field = format!("features[{i}]");
        let def = features
            .iter()
            .find(|d| d.identifier == f.identifier)
            .ok_or_else(|| {
                invalid(
                    format!("{field}.identifier"),
                    format!("no feature '{}'", f.identifier),
                )
            })?;
        if def.feature_type != FeatureType::Customizable {
            return Err(invalid(
                format!("{field}.identifier"),
                format!(
                    "feature '{}' is not CUSTOMIZABLE; only CUSTOMIZABLE features take a quantity",
                    f.identifier
                ),
            ));
        }
        if !granted.contains(&f.identifier.as_str()) {
            return Err(invalid(
                format!("{field}.identifier"),
                format!("the plan does not grant feature '{}'", f.identifier),
            ));
        }
        Quantity::parse(&format!("{field}.quantity"), f.quantity)?;
        match agreed {
            Some(q) if q != f.quantity => {
                return Err(invalid(
                    format!("{field}.quantity"),
                    "feature quantities must agree with each other and with quantity: a subscription has one quantity",
                ));
            }
            _ => agreed = Some(f.quantity),
        }
    }
    agreed.ok_or_else(|| invalid("features", "must not be empty"))
}

/// One line of Kelviq's preview invoice.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLineItem {
    pub description: String,
    /// In the currency's major unit, as a JSON number (Kelviq's shape); negative for a credit.
    pub amount: f64,
    /// In the currency's minor units (cents).
    pub amount_units: i64,
}

/// An invoice in the preview: Kelviq's fields (`amountDue`, `amountDueUnits`,
/// `nextPaymentAttempt`, `lineItems`) plus Tollgate's invoice lines and total.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewInvoice {
    /// What the card is charged, in the major unit (a number).
    pub amount_due: f64,
    /// The same in minor units.
    pub amount_due_units: i64,
    /// When the invoice is made and charged (RFC 3339): now, or the period's end.
    #[schema(format = DateTime)]
    pub next_payment_attempt: String,
    pub line_items: Vec<PreviewLineItem>,
    /// Tollgate: the invoice's total as a decimal string (before credit).
    pub total: String,
    /// Tollgate: the customer credit the invoice uses, as a decimal string.
    pub credit_applied: String,
    /// Tollgate: the lines exactly as the invoice will list them.
    pub lines: Vec<LineView>,
}

/// `POST /api/v1/subscriptions/{id}/update/preview/`: Kelviq's `SubscriptionUpdatePreviewResponse`
/// fields plus Tollgate's.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePreviewView {
    pub subscription_id: String,
    /// What the update would do: `upgraded`, `downgrade_scheduled`, `cancel_scheduled`,
    /// `resumed`, `quantity_changed`, `trial_changed` or `no_op`.
    #[schema(value_type = String)]
    pub action: Action,
    #[schema(value_type = String)]
    pub currency: Currency,
    /// What each period costs after the change (major unit, a number); 0 for ONE_TIME.
    pub recurring_amount: f64,
    pub recurring_amount_units: i64,
    /// What the card is charged now (major unit, a number).
    pub amount_charged_immediately: f64,
    pub amount_charged_immediately_units: i64,
    /// When the change takes effect (RFC 3339).
    #[schema(format = DateTime)]
    pub effective_at: String,
    /// The invoice the update makes now, or null when it invoices nothing now. The real update
    /// returns this same invoice.
    pub invoice: Option<PreviewInvoice>,
    /// Kelviq's `nextInvoice`: the first invoice after the change — the one made now if any,
    /// else the one at the period's end (null when the subscription ends there).
    pub next_invoice: Option<PreviewInvoice>,
    /// Tollgate: the invoice at the period's end after the change (null when it ends there, or
    /// never renews).
    pub upcoming_invoice: Option<PreviewInvoice>,
}

fn invoice_view(
    lines: &[Line],
    total: i64,
    credit: i64,
    at: i64,
    currency: Currency,
) -> PreviewInvoice {
    let due = (total - credit).max(0);
    PreviewInvoice {
        amount_due: major_f64(due, currency),
        amount_due_units: due,
        next_payment_attempt: rfc3339(at),
        line_items: lines
            .iter()
            .map(|l| PreviewLineItem {
                description: l.description.clone(),
                amount: major_f64(l.amount_minor, currency),
                amount_units: l.amount_minor,
            })
            .collect(),
        total: format_amount(total, currency),
        credit_applied: format_amount(credit, currency),
        lines: lines.iter().map(|l| LineView::new(l, currency)).collect(),
    }
}

impl UpdatePreviewView {
    pub fn new(p: &UpdatePreview) -> UpdatePreviewView {
        let c = p.currency;
        let invoice = (!p.lines_now.is_empty()).then(|| {
            invoice_view(
                &p.lines_now,
                p.total_now_minor,
                p.credit_applied_minor,
                p.at,
                c,
            )
        });
        let upcoming = p
            .next_invoice
            .as_ref()
            .map(|n| invoice_view(&n.lines, n.total_minor, 0, n.at, c));
        UpdatePreviewView {
            subscription_id: p.subscription_id.clone(),
            action: p.action,
            currency: p.currency,
            recurring_amount: major_f64(p.recurring_minor, c),
            recurring_amount_units: p.recurring_minor,
            amount_charged_immediately: major_f64(p.charged_now_minor, c),
            amount_charged_immediately_units: p.charged_now_minor,
            effective_at: rfc3339(p.effective_at),
            next_invoice: invoice.clone().or_else(|| upcoming.clone()),
            invoice,
            upcoming_invoice: upcoming,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::platform::period::ChargePeriod;

    fn t(m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0)
            .unwrap()
            .timestamp()
    }

    fn price(plan: &str, amount: i64) -> PlanPrice {
        PlanPrice::test(plan, ChargePeriod::Monthly, amount)
    }

    fn on_pro() -> Subscription {
        Subscription::test("pro", ChargePeriod::Monthly, 4_900, t(4, 1))
    }

    #[test]
    fn an_upgrade_previews_the_prorated_invoice_and_the_next_renewal() {
        let req = ChangeRequest::to(price("enterprise", 19_900));
        let p = preview(&on_pro(), &req, &Context::default(), t(4, 16)).unwrap();
        assert_eq!(p.action, Action::Upgraded);
        let amounts: Vec<i64> = p.lines_now.iter().map(|l| l.amount_minor).collect();
        assert_eq!(amounts, vec![-2_450, 9_950]);
        assert_eq!((p.total_now_minor, p.charged_now_minor), (7_500, 7_500));
        assert_eq!(p.recurring_minor, 19_900);
        let next = p.next_invoice.unwrap();
        assert_eq!((next.at, next.total_minor), (t(5, 1), 19_900));
    }

    #[test]
    fn credit_pays_first_and_pending_lines_are_claimed() {
        let req = ChangeRequest::to(price("enterprise", 19_900));
        let pending = Line {
            description: "earlier".into(),
            amount_minor: 500,
            period_start: None,
            period_end: None,
            proration: true,
            plan: None,
        };
        let ctx = Context {
            pending_lines: vec![pending],
            balance_minor: 1_000,
            scheduled: None,
        };
        let p = preview(&on_pro(), &req, &ctx, t(4, 16)).unwrap();
        assert_eq!(p.lines_now.len(), 3);
        assert_eq!(p.total_now_minor, 8_000);
        assert_eq!(
            (p.credit_applied_minor, p.charged_now_minor),
            (1_000, 7_000)
        );
        assert_eq!(p.next_invoice.unwrap().lines.len(), 1);
    }

    #[test]
    fn deferred_proration_goes_onto_the_next_invoice() {
        let req = ChangeRequest {
            proration: Proration::NextInvoice,
            ..ChangeRequest::to(price("enterprise", 19_900))
        };
        let p = preview(&on_pro(), &req, &Context::default(), t(4, 16)).unwrap();
        assert!(p.lines_now.is_empty());
        assert_eq!(p.charged_now_minor, 0);
        assert_eq!(p.next_invoice.unwrap().total_minor, 7_500 + 19_900);
    }

    #[test]
    fn a_downgrade_charges_nothing_now_and_renews_into_the_lower_price() {
        let on_ent = Subscription {
            plan: "enterprise".into(),
            amount: 19_900,
            ..on_pro()
        };
        let p = preview(
            &on_ent,
            &ChangeRequest::to(price("pro", 4_900)),
            &Context::default(),
            t(4, 16),
        )
        .unwrap();
        assert_eq!(p.action, Action::DowngradeScheduled);
        assert_eq!((p.effective_at, p.charged_now_minor), (t(5, 1), 0));
        assert_eq!(p.next_invoice.unwrap().total_minor, 4_900);
    }

    #[test]
    fn a_trial_until_a_date_invoices_nothing_now_and_charges_then() {
        let req = ChangeRequest {
            trial_end: Some(TrialEnd::At(t(5, 20))),
            ..ChangeRequest::to(price("enterprise", 19_900))
        };
        let p = preview(&on_pro(), &req, &Context::default(), t(4, 16)).unwrap();
        assert_eq!(p.action, Action::TrialChanged);
        assert!(p.lines_now.is_empty());
        let next = p.next_invoice.unwrap();
        assert_eq!((next.at, next.total_minor), (t(5, 20), 19_900));
        let past = ChangeRequest {
            trial_end: Some(TrialEnd::At(t(4, 1))),
            ..req
        };
        assert_eq!(
            preview(&on_pro(), &past, &Context::default(), t(4, 16))
                .unwrap_err()
                .field,
            "trialEnd"
        );
    }

    #[test]
    fn feature_quantities_must_be_customizable_granted_and_agree() {
        let def = |id: &str, ty| FeatureDef {
            identifier: id.into(),
            name: id.into(),
            feature_type: ty,
            reset_period: None,
            event_name: None,
        };
        let features = [
            def("seats", FeatureType::Customizable),
            def("api", FeatureType::Meter),
        ];
        let fq = |id: &str, q| FeatureQuantity {
            identifier: id.into(),
            quantity: q,
        };
        assert_eq!(
            feature_quantity(&[fq("seats", 5)], None, &features, &["seats"]),
            Ok(5)
        );
        let err = |asked: &[FeatureQuantity], q| {
            feature_quantity(asked, q, &features, &["seats", "api"])
                .unwrap_err()
                .field
        };
        assert_eq!(err(&[fq("api", 5)], None), "features[0].identifier");
        assert_eq!(err(&[fq("nope", 5)], None), "features[0].identifier");
        assert_eq!(err(&[fq("seats", 5)], Some(4)), "features[0].quantity");
        assert_eq!(err(&[fq("seats", 0)], None), "features[0].quantity");
        assert_eq!(
            feature_quantity(&[fq("seats", 5)], None, &features, &[])
                .unwrap_err()
                .field,
            "features[0].identifier"
        );
    }
}

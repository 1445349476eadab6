//! Refunds: a credit note against a paid invoice, and the views refunds are read in.

use tollgate_shared::Mode;

use crate::domain::customers::store as customers;
use crate::domain::invoices::model::{Draft, Line, Reason};
use crate::domain::invoices::store as invoices;
use crate::domain::invoices::store::{NewInvoice, Paid};
use crate::domain::payments::store as intents;
use crate::domain::refunds::model::{OrderView, Refund, RefundError, RefundView, amount_to_refund};
use crate::domain::refunds::store;
use crate::platform::db::Uow;
use crate::platform::db::sql::Conn;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::ids;
use crate::platform::money::format_amount;

/// What a caller asks to refund, validated for shape by the route.
#[derive(Debug, Clone, Copy)]
pub struct RefundAsk<'a> {
    pub order_id: &'a str,
    pub amount_units: Option<i64>,
    pub amount: Option<f64>,
    pub reason: Option<&'a str>,
    pub internal_note: Option<&'a str>,
}

/// Refunds a paid invoice (or a charge's newest paid invoice), wholly or in part, as a credit
/// note: never more than was charged and not yet refunded. Records `refund.created`.
pub async fn refund(
    uow: &mut Uow,
    mode: Mode,
    req: &RefundAsk<'_>,
) -> Result<RefundView, RefundError> {
    let refund = record(uow, mode, req, None).await?;
    created(uow, &refund).await
}

/// The view of a refund just recorded, with `refund.created` emitted.
async fn created(uow: &mut Uow, refund: &Refund) -> Result<RefundView, RefundError> {
    let view = view(uow.conn(), refund).await?;
    uow.emit(
        refund.mode,
        EventKind::RefundCreated,
        Subject::Data(serde_json::to_value(&view).unwrap_or_default()),
        refund.created_at,
    );
    Ok(view)
}

/// Records a refund made at the processor rather than through Tollgate (Stripe's dashboard):
/// the processor says the card has had `card_refunded` back in all, and whatever of that
/// Tollgate has no refund for (made or on its way) becomes one, already succeeded under
/// `processor_ref`. `None` when nothing is missing. Records `refund.created`.
pub async fn refunded_at_processor(
    uow: &mut Uow,
    mode: Mode,
    invoice_id: &str,
    card_refunded: i64,
    processor_ref: &str,
) -> Result<Option<RefundView>, RefundError> {
    let invoice = order(uow.conn(), mode, invoice_id).await?;
    customers::lock(uow, mode, &invoice.customer_id).await?;
    let (to_card, _) = store::refunded(uow.conn(), mode, &invoice.id).await?;
    let card_refundable = (invoice.total - invoice.credit_applied - to_card).max(0);
    let missing = (card_refunded - to_card).min(card_refundable);
    if missing <= 0 || invoice.status != "paid" {
        return Ok(None);
    }
    let ask = RefundAsk {
        order_id: &invoice.id,
        amount_units: Some(missing),
        amount: None,
        reason: None,
        internal_note: Some("Refunded at the processor"),
    };
    let refund = record(uow, mode, &ask, Some(processor_ref)).await?;
    Ok(Some(created(uow, &refund).await?))
}

/// Writes the refund `req` asks for: the credit note, credit given back, and the refund row.
/// `made_at_processor` is the processor's reference of a refund it has already made.
async fn record(
    uow: &mut Uow,
    mode: Mode,
    req: &RefundAsk<'_>,
    made_at_processor: Option<&str>,
) -> Result<Refund, RefundError> {
    let invoice = order(uow.conn(), mode, req.order_id).await?;
    // Refunds of one customer's invoices queue up, so two cannot both take what is left.
    customers::lock(uow, mode, &invoice.customer_id).await?;
    if invoice.status != "paid" || invoice.total <= 0 || invoice.reason == "credit_note" {
        return Err(RefundError::NotRefundable(req.order_id.to_owned()));
    }
    let (to_card, to_credit) = store::refunded(uow.conn(), mode, &invoice.id).await?;
    let card_refundable = (invoice.total - invoice.credit_applied - to_card).max(0);
    let credit_refundable = (invoice.credit_applied - to_credit).max(0);
    if card_refundable + credit_refundable <= 0 {
        return Err(RefundError::FullyRefunded(invoice.id.clone()));
    }
    let asked = amount_to_refund(
        req.amount_units,
        req.amount,
        invoice.currency,
        card_refundable + credit_refundable,
    )?;
    let explicit = req.amount_units.is_some() || req.amount.is_some();
    // The card gets back at most what the card paid. A refund of "everything" also returns to
    // the customer's credit balance what credit paid; an amount is a card refund only.
    let (amount, credit) = match explicit {
        true if asked > card_refundable => {
            return Err(RefundError::ExceedsCardPayment {
                field: if req.amount_units.is_some() {
                    "amountUnits"
                } else {
                    "amount"
                },
                asked,
                card_refundable,
            });
        }
        true => (asked, 0),
        false => (card_refundable, credit_refundable),
    };
    let now = customers::now_of(uow, mode, &invoice.customer_id).await?;
    let id = ids::new("re");
    let credit_note = ids::new("in");
    let draft = Draft {
        mode,
        customer_id: &invoice.customer_id,
        subscription_id: invoice.subscription_id.as_deref(),
        currency: invoice.currency,
        reason: Reason::CreditNote,
        lines: Vec::new(),
    };
    let line = Line {
        description: format!(
            "Refund {id} of invoice {} ({} {})",
            invoice.id,
            format_amount(amount + credit, invoice.currency),
            invoice.currency.upper()
        ),
        amount_minor: -(amount + credit),
        period_start: None,
        period_end: None,
        proration: false,
        plan: None,
    };
    invoices::insert_line(uow, &draft, Some(&credit_note), &line).await?;
    if credit > 0 {
        customers::add_balance(uow, mode, &invoice.customer_id, invoice.currency, credit).await?;
    }
    invoices::insert(
        uow,
        &draft,
        NewInvoice {
            id: &credit_note,
            // The money is back with the customer: the credit note is settled.
            status: "paid",
            total: -(amount + credit),
            // The note itself is settled, not paid from credit: the credit part was given back.
            credit_applied: 0,
            created_at: now,
            paid_at: Some(now),
        },
    )
    .await?;
    // The card part goes back through the processor that charged it: Stripe is asked by the
    // payments worker after this unit (`PENDING` until then); the test processor's refunds
    // are made at once.
    let charge = intents::paid_invoice(uow.conn(), mode, &invoice.id).await?;
    let (status, processor_ref) = match &charge {
        _ if made_at_processor.is_some() => ("SUCCEEDED", made_at_processor.map(str::to_owned)),
        Some(i) if amount > 0 && i.processor == "stripe" && i.processor_ref.is_some() => {
            uow.payment_pending(&i.id);
            ("PENDING", None)
        }
        Some(_) if amount > 0 => ("SUCCEEDED", Some(format!("re_test_{id}"))),
        _ => ("SUCCEEDED", None),
    };
    let refund = Refund {
        id,
        mode,
        customer_id: invoice.customer_id.clone(),
        invoice_id: invoice.id.clone(),
        credit_note_id: credit_note,
        amount_minor: amount,
        currency: invoice.currency,
        reason: req.reason.map(str::to_owned),
        internal_note: req.internal_note.map(str::to_owned),
        status: status.to_owned(),
        created_at: now,
        credit_minor: credit,
        intent_id: charge.map(|i| i.id),
        processor_ref,
        failure_reason: None,
    };
    store::insert(uow, &refund).await?;
    Ok(refund)
}

/// The paid invoice `order_id` names: an invoice id, or a charge's (a subscription's) id,
/// meaning its newest paid invoice.
async fn order(conn: &mut Conn, mode: Mode, order_id: &str) -> Result<Paid, RefundError> {
    let found = match invoices::get(conn, mode, order_id).await? {
        Some(i) => Some(i),
        None => invoices::latest_paid_of_subscription(conn, mode, order_id).await?,
    };
    found.ok_or_else(|| RefundError::OrderNotFound(order_id.to_owned()))
}

async fn order_view(conn: &mut Conn, i: &Paid) -> Result<OrderView, sqlx::Error> {
    Ok(OrderView {
        id: i.id.clone(),
        customer_id: i.customer_id.clone(),
        subscription_id: i.subscription_id.clone(),
        currency: i.currency,
        total: format_amount(i.total, i.currency),
        amount_units: i.total,
        credit_applied_units: i.credit_applied,
        refunded_units: {
            let (card, credit) = store::refunded(conn, i.mode, &i.id).await?;
            card + credit
        },
    })
}

pub async fn view(conn: &mut Conn, r: &Refund) -> Result<RefundView, RefundError> {
    let invoice = invoices::get(conn, r.mode, &r.invoice_id)
        .await?
        .ok_or_else(|| RefundError::OrderNotFound(r.invoice_id.clone()))?;
    Ok(RefundView::new(r, order_view(conn, &invoice).await?))
}

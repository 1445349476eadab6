//! Writing an invoice and collecting it: the customer's credit in the invoice's currency first,
//! then the card on file, through a payment intent the payments worker charges after the unit
//! commits (`workers::payments`, `workflows::settle`). Nothing here calls a processor.

use tollgate_shared::Mode;

use crate::domain::customers::store as customers;
use crate::domain::invoices::model::Draft;
use crate::domain::invoices::store;
use crate::domain::invoices::store::NewInvoice;
use crate::domain::payments::model::{Decline, Payment, Purpose};
use crate::domain::payments::store as intents;
use crate::domain::payments::store::NewIntent;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::ids;
use crate::platform::money::Currency;

pub struct Created {
    pub id: String,
    pub total: i64,
    pub payment: Payment,
}

/// What an intent charges, for whom, and why.
struct CardCharge<'a> {
    mode: Mode,
    customer_id: &'a str,
    invoice_id: &'a str,
    subscription_id: Option<&'a str>,
    amount: i64,
    currency: Currency,
    purpose: Purpose,
    now: i64,
}

/// Asks for `amount` from the card on file: a payment intent for the worker, or at once a
/// decline that needs no processor (no card; a mode without a processor).
async fn charge_card(uow: &mut Uow, c: CardCharge<'_>) -> Result<Payment, sqlx::Error> {
    if c.amount <= 0 {
        return Ok(Payment::Paid);
    }
    let processor = crate::payments::processor_name(c.mode);
    if processor == "none" {
        return Ok(Payment::Failed(Decline::NoLiveProvider));
    }
    let Some(card) = customers::card_on_file(uow.conn(), c.mode, c.customer_id).await? else {
        return Ok(Payment::Failed(Decline::NoPaymentMethod));
    };
    // Its id opens the authentication page: unguessable.
    let id = ids::unguessable("pi");
    intents::insert(
        uow,
        NewIntent {
            id: &id,
            mode: c.mode,
            customer_id: c.customer_id,
            invoice_id: c.invoice_id,
            subscription_id: c.subscription_id,
            amount_minor: c.amount,
            currency: c.currency,
            purpose: &c.purpose,
            processor,
            payment_method: Some(&card),
            created_at: c.now,
        },
    )
    .await?;
    Ok(Payment::Pending(id))
}

/// Writes the invoice with its lines (plus the subscription's pending lines) and collects it:
/// credit balance first, then the card through a payment intent whose settling does what
/// `purpose` says. An invoice waiting for its intent is `open`, its credit already applied.
pub async fn create_and_collect(
    uow: &mut Uow,
    now: i64,
    draft: Draft<'_>,
    purpose: Purpose,
) -> Result<Created, sqlx::Error> {
    let id = ids::new("in");
    for line in &draft.lines {
        store::insert_line(uow, &draft, Some(&id), line).await?;
    }
    if let Some(sub) = draft.subscription_id {
        store::claim_pending_lines(uow, draft.mode, sub, &id).await?;
    }
    let total = store::lines_total(uow.conn(), &id).await?;
    let balance =
        customers::balance(uow.conn(), draft.mode, draft.customer_id, draft.currency).await?;
    // Negative totals become credit; positive ones use credit before the card.
    let from_balance = if total > 0 {
        balance.clamp(0, total)
    } else {
        total
    };
    let payment = charge_card(
        uow,
        CardCharge {
            mode: draft.mode,
            customer_id: draft.customer_id,
            invoice_id: &id,
            subscription_id: draft.subscription_id,
            amount: total - from_balance,
            currency: draft.currency,
            purpose,
            now,
        },
    )
    .await?;
    let paid = payment == Payment::Paid;
    // A declined charge leaves the credit for the retry; a pending one holds it (the settle
    // gives it back if what it paid for is voided).
    let credit_applied = match payment {
        Payment::Failed(_) => 0,
        Payment::Paid | Payment::Pending(_) => from_balance,
    };
    if credit_applied != 0 {
        customers::add_balance(
            uow,
            draft.mode,
            draft.customer_id,
            draft.currency,
            -credit_applied,
        )
        .await?;
    }
    store::insert(
        uow,
        &draft,
        NewInvoice {
            id: &id,
            status: if paid { "paid" } else { "open" },
            total,
            credit_applied,
            created_at: now,
            paid_at: paid.then_some(now),
        },
    )
    .await?;
    let event = match payment {
        Payment::Paid => Some(EventKind::InvoicePaid),
        Payment::Failed(_) => Some(EventKind::InvoicePaymentFailed),
        // The settle says which.
        Payment::Pending(_) => None,
    };
    if let Some(event) = event {
        uow.emit(draft.mode, event, Subject::Invoice(id.clone()), now);
    }
    Ok(Created { id, total, payment })
}

/// Lines that wait for the subscription's next invoice (`PRORATE_NEXT_INVOICE`).
pub async fn add_pending(uow: &mut Uow, draft: &Draft<'_>) -> Result<(), sqlx::Error> {
    for line in &draft.lines {
        store::insert_line(uow, draft, None, line).await?;
    }
    Ok(())
}

/// Retries an open invoice's charge: the customer's credit in the invoice's currency first
/// (it may have grown since the first attempt), then the card for the rest through a payment
/// intent. Marks it paid when credit covers it.
pub async fn retry(
    uow: &mut Uow,
    now: i64,
    mode: Mode,
    invoice_id: &str,
    purpose: Purpose,
) -> Result<Payment, sqlx::Error> {
    let Some(due) = store::due(uow.conn(), mode, invoice_id).await? else {
        return Ok(Payment::Paid);
    };
    if due.status != "open" {
        return Ok(Payment::Paid);
    }
    let balance = customers::balance(uow.conn(), mode, &due.customer_id, due.currency).await?;
    let owed = due.total - due.credit_applied;
    let from_balance = balance.clamp(0, owed.max(0));
    if from_balance != 0 {
        customers::add_balance(uow, mode, &due.customer_id, due.currency, -from_balance).await?;
        store::set_credit_applied(uow, invoice_id, due.credit_applied + from_balance).await?;
    }
    let subscription = match &purpose {
        Purpose::Retry { subscription } => Some(subscription.clone()),
        _ => None,
    };
    let payment = charge_card(
        uow,
        CardCharge {
            mode,
            customer_id: &due.customer_id,
            invoice_id,
            subscription_id: subscription.as_deref(),
            amount: owed - from_balance,
            currency: due.currency,
            purpose,
            now,
        },
    )
    .await?;
    if payment == Payment::Paid {
        store::mark_paid(uow, invoice_id, due.credit_applied + from_balance, now).await?;
        uow.emit(
            mode,
            EventKind::InvoicePaid,
            Subject::Invoice(invoice_id.to_owned()),
            now,
        );
    }
    Ok(payment)
}

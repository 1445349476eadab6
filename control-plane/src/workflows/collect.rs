//! Writing an invoice and collecting it: the customer's credit in the invoice's currency first,
//! then the card on file.
//! Emits `invoice.paid` or `invoice.payment_failed` through the unit of work.

use tollgate_shared::Mode;

use crate::domain::customers::store as customers;
use crate::domain::invoices::model::Draft;
use crate::domain::invoices::store;
use crate::domain::invoices::store::NewInvoice;
use crate::domain::payments::model::Payment;
use crate::payments::test_cards::charge_off_session;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::ids;

pub struct Created {
    pub id: String,
    pub total: i64,
    pub payment: Payment,
}

/// A later (off-session) charge of the card on file: renewals, upgrades, trial ends, retries.
pub async fn charge_card(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    amount: i64,
) -> Result<Payment, sqlx::Error> {
    let card = customers::card_on_file(uow.conn(), mode, customer_id).await?;
    Ok(charge_off_session(mode, card.as_deref(), amount))
}

/// Writes the invoice with its lines (plus the subscription's pending lines) and collects it:
/// credit balance first, then the card. A failed charge leaves the invoice `open`.
pub async fn create_and_collect(
    uow: &mut Uow,
    now: i64,
    draft: Draft<'_>,
) -> Result<Created, sqlx::Error> {
    create(uow, now, draft, true).await
}

/// Records an invoice already paid by other means (the checkout page's charge).
pub async fn record_paid(
    uow: &mut Uow,
    now: i64,
    draft: Draft<'_>,
) -> Result<Created, sqlx::Error> {
    create(uow, now, draft, false).await
}

async fn create(
    uow: &mut Uow,
    now: i64,
    draft: Draft<'_>,
    collect: bool,
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
    // Negative totals become credit; positive ones use credit before the card. Paid by other
    // means (the checkout page's charge): the credit stays for later.
    let from_balance = match (collect, total > 0) {
        (false, _) => 0,
        (true, true) => balance.clamp(0, total),
        (true, false) => total,
    };
    let due = total - from_balance;
    let payment = if collect {
        charge_card(uow, draft.mode, draft.customer_id, due).await?
    } else {
        Payment::Paid
    };
    let paid = payment == Payment::Paid;
    // Credit is only taken when the invoice is paid; a failed charge leaves it for the retry.
    let credit_applied = if paid { from_balance } else { 0 };
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
    let event = if paid {
        EventKind::InvoicePaid
    } else {
        EventKind::InvoicePaymentFailed
    };
    uow.emit(draft.mode, event, Subject::Invoice(id.clone()), now);
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
/// (it may have grown since the first attempt), then the card for the rest. Marks it paid on
/// success.
pub async fn retry(
    uow: &mut Uow,
    now: i64,
    mode: Mode,
    invoice_id: &str,
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
    let payment = charge_card(uow, mode, &due.customer_id, owed - from_balance).await?;
    if payment == Payment::Paid {
        if from_balance != 0 {
            customers::add_balance(uow, mode, &due.customer_id, due.currency, -from_balance)
                .await?;
        }
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

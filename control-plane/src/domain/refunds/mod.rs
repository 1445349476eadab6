//! Refunds of paid invoices (and so of one-off charges), and the transactions list. A refund
//! leaves a credit note: an invoice of reason `credit_note` with one negative line
//! (`workflows::refund`).
//!
//! * [`model`] — the rules (how much may be refunded, the amount asked), views (pure).
//! * [`store`] — the `refunds` table.

pub mod model;
pub mod store;

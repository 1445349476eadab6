//! Refunds of paid invoices (and so of one-off charges), and the transactions list: every
//! payment and every refund, as Kelviq's SDKs read them.
//!
//! * [`model`] — the rules (how much may be refunded, the amount asked), views (pure).
//! * [`store`] — the `refunds` table.
//! * [`routes`] — `/api/v1/refunds/` and `/api/v1/transaction/`.
//!
//! A refund goes back to the card in full (the test-mode provider never fails one), and
//! leaves a credit note: an invoice of reason `credit_note` with one negative line. It emits
//! `refund.created`. It does not change what the customer is subscribed to.

pub mod model;
pub mod store;

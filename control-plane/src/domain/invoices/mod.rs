//! Invoices and their lines. Amounts are minor units of the invoice's currency; a credit line
//! is negative. A customer's credit balance (from prorated decreases) is applied before the
//! card is charged.
//!
//! * [`model`] — lines, drafts, views.
//! * [`store`] — the `invoices` and `invoice_lines` tables.
//! * [`collect`] — writing an invoice and collecting it (credit, then the card on file).
pub mod model;
pub mod proration;
pub mod store;

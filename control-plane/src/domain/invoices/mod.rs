//! Invoices and their lines. Amounts are minor units of the invoice's currency; a credit line
//! is negative.
//!
//! * [`model`] — lines, drafts, views.
//! * [`store`] — the `invoices` and `invoice_lines` tables.
//! * [`proration`] — what the unused and the new part of a period cost (pure).

pub mod model;
pub mod proration;
pub mod store;

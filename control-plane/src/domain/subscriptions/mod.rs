//! Subscriptions: rows, their public view, and every transition — start (from a paid checkout
//! or a card on file), switch plan, schedule, cancel, resume, end.
//!
//! * [`model`] — the typed row, statuses, the Kelviq view.
//! * [`store`] — the `subscriptions` table.
//! * [`lifecycle`] — PayKit's behaviour table as one pure decision.
//! * [`preview`] — what an update would do, without doing it (same decision, same proration).
//! * [`read`] — the view Kelviq's SDKs read, with license keys and trial days left.
//! * [`apply`] — carrying a decision out (rows, invoices, events).
//! * [`routes`] — listing and reading subscriptions. The calls that change them are the API
//!   dialects' (`crate::dialects`).
pub mod lifecycle;
pub mod model;
pub mod preview;
pub mod renewal;
pub mod store;

//! Subscriptions: rows, their public view, and the rules of every transition.
//!
//! * [`model`] — the typed row, statuses, the Kelviq view.
//! * [`store`] — the `subscriptions` table.
//! * [`lifecycle`] — PayKit's behaviour table as one pure decision, and the one cancellation
//!   and resumption rule.
//! * [`renewal`] — what a period end does, and how dunning goes on (pure).
//! * [`preview`] — what an update would do, without doing it (same decision, same proration).

pub mod lifecycle;
pub mod model;
pub mod preview;
pub mod renewal;
pub mod store;

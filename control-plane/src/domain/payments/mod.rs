//! Payments as the domains see them.
//!
//! * [`store`] — the `payment_intents` table.
//! * [`model`] — a charge's outcome ([`model::Payment`]) and a refusal's reason
//!   ([`model::Decline`]).

pub mod model;
pub mod store;

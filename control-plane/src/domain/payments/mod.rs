//! Payments as the domains see them.
//!
//! * [`model`] — a charge's outcome ([`model::Payment`]) and a refusal's reason
//!   ([`model::Decline`]).

pub mod model;

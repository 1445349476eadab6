//! Compiling what a customer is entitled to (SPEC §6). The unit of work compiles each touched
//! customer once, in the transaction that changed them, and stores the result for the edges.
//!
//! Granting subscriptions are those `trialing`, `active` or `past_due`; a group without one
//! falls back to its default plan. BOOLEAN features are granted if any plan grants them;
//! METER and CUSTOMIZABLE limits add up across groups, and any unlimited grant wins.
//!
//! * [`model`] — the rules, as pure functions (combining grants, meter windows, patching a
//!   meter after a usage report).
//! * [`compile`] — gathering a customer's inputs from their owners' stores and compiling.
//! * [`store`] — the `customer_entitlements` table (the compiled view the edges serve).

pub mod compile;
pub mod model;
pub mod store;

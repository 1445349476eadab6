//! License keys (Kelviq's `license.activate`, `deactivate`, `validate`): a plan may grant each
//! of its subscriptions a key that allows a number of activations at once. Keys are issued by
//! `workflows::subscribe` when a subscription starts on (or switches to) such a plan.
//!
//! * [`model`] — the rows, the validity rule (pure), key minting, the views.
//! * [`store`] — the `licenses` and `license_instances` tables.

pub mod model;
pub mod store;

//! License keys (Kelviq's `license.activate`, `deactivate`, `validate`): a plan may grant each
//! of its subscriptions a key that allows a number of activations at once.
//!
//! * [`model`] — the rows, the validity rule (pure), key minting, the views.
//! * [`store`] — the `licenses` and `license_instances` tables.
//! * [`routes`] — `POST /api/v1/license/{activate,deactivate,validate}/`.
//!
//! Keys are issued by `subscriptions::apply` when a subscription starts on (or switches to) a
//! plan with `licenseActivationLimit`; a key is valid while its subscription grants.

pub mod model;
pub mod store;

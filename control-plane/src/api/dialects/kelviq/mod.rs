//! Kelviq's dialect beyond what lives with its domain's routes: the subscription calls its
//! SDKs make (`create`, `update`, `update/preview`, `cancel`, `resume`) and its reporting
//! calls (`report/usage`, `report/event`). Plan changes go through the same decision as
//! PayKit's `subscribe`: an upgrade switches now with a prorated invoice, a downgrade waits for
//! the period's end.
//!
//! * [`changes`] — `update` and `update/preview` (one parser, one decision).
//! * [`cancel`] — `cancel` and `resume`.
//! * [`create`] — `subscriptions/create/`: a direct start on the card on file.
//! * [`charges`] — `charges/`: a ONE_TIME plan bought now on the card on file.
//! * [`reporting`] — `report/usage/` and `report/event/`.

pub mod cancel;
pub mod changes;
pub mod charges;
pub mod create;
pub mod reporting;

pub use cancel::*;
pub use changes::*;
pub use charges::*;
pub use create::*;
pub use reporting::*;

use chrono::{DateTime, NaiveDate, Utc};
use tollgate_shared::Mode;

use crate::domain::customers::store as customers;
use crate::domain::subscriptions::model::{Subscription, SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::db::Uow;
use crate::platform::validate::{Invalid, invalid};
use crate::workflows::views as read;

/// The subscription `id` of `mode`, with its customer locked for the rest of the unit.
pub(crate) async fn locked(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<Subscription, SubscriptionError> {
    let sub = subscriptions::get(uow.conn(), mode, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))?;
    customers::lock(uow, mode, &sub.customer_id).await?;
    // Read again under the lock: another writer may have changed it meanwhile.
    subscriptions::get(uow.conn(), mode, id)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
}

pub(crate) async fn view_of(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<SubscriptionView, SubscriptionError> {
    let now = uow.now();
    read::full(uow.conn(), mode, id, now)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
}

/// What a direct start (`subscriptions/create`, a charge) checks under the customer's lock:
/// no subscription in the target's group yet (409) and a card on file (402).
pub(crate) async fn lock_for_direct_start(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<(), SubscriptionError> {
    customers::lock(uow, mode, customer_id).await?;
    if let Some(current) =
        subscriptions::current_in_group(uow.conn(), mode, customer_id, group).await?
    {
        return Err(SubscriptionError::AlreadySubscribed {
            id: current.id,
            group: group.to_owned(),
        });
    }
    if customers::card_on_file(uow.conn(), mode, customer_id)
        .await?
        .is_none()
    {
        return Err(SubscriptionError::NoCard(customer_id.to_owned()));
    }
    Ok(())
}

pub(crate) fn parse_when(field: &str, text: &str) -> Result<i64, Invalid> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.with_timezone(&Utc).timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
        .ok_or_else(|| invalid(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

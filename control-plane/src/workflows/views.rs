//! A subscription as Kelviq's SDKs read it: the stored view plus what lives elsewhere (its
//! license keys) and what depends on the time of reading (trial days left).

use tollgate_shared::Mode;

use crate::domain::licenses::store as licenses;
use crate::domain::subscriptions::model::{SubscriptionError, SubscriptionView};
use crate::domain::subscriptions::store;
use crate::platform::db::Uow;
use crate::platform::db::sql::Conn;

/// Fills in a view read from the subscriptions table.
pub async fn complete(
    conn: &mut Conn,
    mode: Mode,
    mut view: SubscriptionView,
    now: i64,
) -> Result<SubscriptionView, sqlx::Error> {
    view.license = licenses::for_subscription(conn, mode, &view.id).await?;
    Ok(view.at(now))
}

/// The subscription `id` of `mode`, complete; `None` when there is none.
pub async fn full(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
    now: i64,
) -> Result<Option<SubscriptionView>, sqlx::Error> {
    match store::view(conn, mode, id).await? {
        Some(v) => Ok(Some(complete(conn, mode, v, now).await?)),
        None => Ok(None),
    }
}

/// The subscription `id` as the unit leaves it, complete, at the unit's time.
pub async fn subscription(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
) -> Result<SubscriptionView, SubscriptionError> {
    let now = uow.now();
    full(uow.conn(), mode, id, now)
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
}

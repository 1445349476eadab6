//! What happens to a customer beyond their own row.

use tollgate_shared::Mode;

use crate::domain::customers::model::{CustomerError, CustomerView};
use crate::domain::customers::store;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::workflows::subscribe::end_now;

/// Archives a customer (once; archiving again changes nothing): nothing renews, retries or
/// grants for them any more, so every subscription that has not ended ends now. Answers the
/// customer as left.
pub async fn archive(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
) -> Result<CustomerView, CustomerError> {
    store::lock(uow, mode, customer_id).await?;
    store::get(uow.conn(), mode, customer_id).await?;
    let now = store::now_of(uow, mode, customer_id).await?;
    if store::archive(uow, mode, customer_id, now).await? {
        for sub in subscriptions::live(uow.conn(), mode, customer_id).await? {
            end_now(uow, &sub, now).await?;
        }
        uow.emit(
            mode,
            EventKind::CustomerArchived,
            Subject::Customer(customer_id.to_owned()),
            now,
        );
    }
    store::get(uow.conn(), mode, customer_id).await
}

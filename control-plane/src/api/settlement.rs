//! Doors that answer at once (PayKit `subscribe`, Kelviq `create`/`update`, one-off charges,
//! checkout completion, the portal's plan switch) wait for the payment their unit of work asked
//! for, up to [`WAIT`], and then answer what it became: the same answer as before payments
//! were settled outside the writer. Past the bound they answer the pending state
//! (docs/payments.md).
//!
//! The door's unit notes the intents it wrote ([`Waiting::note`]); after it commits, the door
//! waits for the first of them to leave `processing`, then renders its answer in a second unit,
//! which also replaces the stored idempotent answer, so a replay gets the settled answer too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_shared::Mode;

use crate::api::state::AppState;
use crate::domain::idempotency::model::IdemClaim;
use crate::domain::idempotency::store as idempotency;
use crate::domain::payments::model::{Decline, Intent, IntentStatus};
use crate::domain::payments::store as intents;
use crate::domain::subscriptions::model::SubscriptionError;
use crate::platform::db::Uow;
use crate::platform::http::error::ApiError;
use crate::platform::http::reply::Reply;

/// The longest a door waits for its payment to settle.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often a waiting door re-reads, besides being woken by this replica's worker (another
/// replica's worker may settle it).
const POLL: Duration = Duration::from_millis(100);

/// The payment intent a door's unit of work wrote, if any.
#[derive(Clone, Default)]
pub struct Waiting(Arc<Mutex<Option<String>>>);

impl Waiting {
    /// Called at the end of the door's unit (a unit may run again: the last run counts).
    pub fn note(&self, uow: &Uow) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = uow.payments().first().cloned();
        }
    }

    fn intent(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// The URL of the hosted page where a customer authenticates intent `id`.
pub fn action_url(public_url: &str, id: &str) -> String {
    format!("{public_url}/pay/{id}/authenticate")
}

/// Waits (at most [`WAIT`]) until intent `id` is no longer `processing`; answers it as last
/// read.
pub async fn wait_for(state: &AppState, mode: Mode, id: &str) -> Result<Option<Intent>, ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let settled = state.payments.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let intent = {
            let mut conn = state.db.read().await?;
            intents::get(&mut conn, mode, id).await?
        };
        match &intent {
            Some(i) if i.status == IntentStatus::Processing => {}
            _ => return Ok(intent),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(intent);
        }
        let nap = POLL.min(deadline - now);
        tokio::select! {
            _ = &mut settled => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// Waits (at most [`WAIT`]) until refund `id` is no longer `PENDING`.
pub async fn wait_for_refund(state: &AppState, mode: Mode, id: &str) -> Result<(), ApiError> {
    use crate::domain::refunds::store as refunds;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let settled = state.payments.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let pending = {
            let mut conn = state.db.read().await?;
            refunds::get(&mut conn, mode, id)
                .await?
                .is_some_and(|r| r.status == "PENDING")
        };
        let now = tokio::time::Instant::now();
        if !pending || now >= deadline {
            return Ok(());
        }
        let nap = POLL.min(deadline - now);
        tokio::select! {
            _ = &mut settled => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// Waits until no intent of a customer on test clock `clock` is `processing` (at most
/// [`WAIT`]): a test clock's advance answers once the charges it caused have settled.
pub async fn wait_for_clock(state: &AppState, clock: &str) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let settled = state.payments.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let open = {
            let mut conn = state.db.read().await?;
            intents::processing_on_clock(&mut conn, clock).await?
        };
        let now = tokio::time::Instant::now();
        if open == 0 || now >= deadline {
            return Ok(());
        }
        let nap = POLL.min(deadline - now);
        tokio::select! {
            _ = &mut settled => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// After a door's unit answered `first`: when it wrote a payment intent, waits for it and
/// answers `render`'s reply instead (a declined payment answers the decline, as a 402),
/// stored as the idempotent answer under `claim`. `render` is given the first answer's body.
pub async fn settle_then<R>(
    state: &AppState,
    mode: Mode,
    claim: Option<IdemClaim>,
    first: Reply,
    waiting: &Waiting,
    render: R,
) -> Reply
where
    R: AsyncFnMut(&mut Uow, &Intent, &serde_json::Value) -> Result<Reply, ApiError>
        + Send
        + 'static,
{
    if !first.status.is_success() || first.replayed {
        return first;
    }
    let Some(id) = waiting.intent() else {
        return first;
    };
    let intent = match wait_for(state, mode, &id).await {
        Ok(Some(i)) => i,
        Ok(None) => return first,
        Err(e) => return Reply::from_error(&e),
    };
    let mut render = render;
    let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap_or_default();
    let rendered = state
        .writer
        .run("payment answer", async move |uow| {
            let reply = match intent.status {
                IntentStatus::Failed | IntentStatus::Canceled => {
                    let decline = intent
                        .decline_code
                        .as_deref()
                        .map_or(Decline::CardDeclined, Decline::from_code);
                    Reply::from_error(&ApiError::from(SubscriptionError::Payment(decline)))
                }
                _ => match render(uow, &intent, &body).await {
                    Ok(r) => r,
                    Err(e) => Reply::from_error(&e),
                },
            };
            if let Some(claim) = &claim {
                idempotency::complete(uow.conn(), claim, &reply).await?;
            }
            Ok(reply)
        })
        .await;
    match rendered {
        Ok(mut reply) => {
            // What the settle committed is what this answer shows: an edge that has applied
            // the newest version serves it.
            reply.version = Some(state.sync.latest().max(first.version.unwrap_or(0)));
            reply
        }
        Err(e) => Reply::from_error(&e),
    }
}

/// [`settle_then`] for a door whose answer carries `subscription`, `invoice` and (PayKit)
/// `requiredAction`: those re-read into its first answer once the payment settled.
pub async fn settle_then_views(
    state: &AppState,
    mode: Mode,
    claim: Option<IdemClaim>,
    first: Reply,
    waiting: &Waiting,
) -> Reply {
    let public_url = state.config.public_url.clone();
    settle_then(
        state,
        mode,
        claim,
        first,
        waiting,
        async move |uow, intent, body| {
            Ok(Reply::ok(
                &patch_views(uow, intent, body, &public_url).await?,
            ))
        },
    )
    .await
}

/// A subscription and its invoice, re-read into a door's first answer (`subscription`,
/// `invoice`), and PayKit's `requiredAction` when the customer must authenticate.
pub async fn patch_views(
    uow: &mut Uow,
    intent: &Intent,
    body: &serde_json::Value,
    public_url: &str,
) -> Result<serde_json::Value, ApiError> {
    use crate::domain::invoices::store as invoices;
    use crate::domain::subscriptions::store as subscriptions;
    let mut body = body.clone();
    if let Some(id) = &intent.subscription_id
        && body.get("subscription").is_some()
    {
        let view = subscriptions::view(uow.conn(), intent.mode, id).await?;
        body["subscription"] = serde_json::to_value(view).unwrap_or_default();
    }
    if body.get("invoice").is_some() {
        let view = invoices::view(uow.conn(), intent.mode, &intent.invoice_id).await?;
        body["invoice"] = serde_json::to_value(view).unwrap_or_default();
    }
    if body.get("requiredAction").is_some() {
        body["requiredAction"] = match intent.status {
            IntentStatus::RequiresAction => serde_json::json!({
                "type": "redirect_to_url",
                "url": action_url(public_url, &intent.id),
            }),
            _ => serde_json::Value::Null,
        };
    }
    Ok(body)
}

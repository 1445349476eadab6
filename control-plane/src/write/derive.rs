//! What the writer does with a unit's records before releasing its savepoint: recompile each
//! touched customer once (or patch the stored compile when only meters moved), publish the
//! results, and write the webhook outbox — in the unit's own transaction, so none of it can
//! exist without the change that caused it.

use crate::platform::db::Conn;
use serde_json::{Value, json};
use tollgate_shared::sync::{Change, ModeDefaults};
use tollgate_shared::{CustomerEntitlements, Mode};

use crate::domain::customers::store as customers;
use crate::domain::entitlements::{compile, model as entitlements_model, store as entitlements};
use crate::domain::invoices::store as invoices;
use crate::domain::subscriptions::store as subscriptions;
use crate::domain::webhooks::model::new_event_id;
use crate::domain::webhooks::store as webhooks;
use crate::domain::webhooks::store::Listener;
use crate::platform::clock::rfc3339;
use crate::platform::db::Uow;
use crate::platform::db::uow::{Event, Subject, Touch};
use crate::platform::events::EventKind;

/// Which endpoints listen to what, read once per batch (and again after a unit changed them).
#[derive(Default)]
pub(super) struct EndpointCache {
    listeners: Option<Vec<Listener>>,
}

impl EndpointCache {
    pub fn invalidate(&mut self) {
        self.listeners = None;
    }

    async fn targets(
        &mut self,
        conn: &mut Conn,
        mode: Mode,
        kind: EventKind,
    ) -> Result<Vec<String>, sqlx::Error> {
        if self.listeners.is_none() {
            self.listeners = Some(webhooks::listeners(conn).await?);
        }
        Ok(self
            .listeners
            .iter()
            .flatten()
            .filter(|l| l.mode == mode && l.wants(kind))
            .map(|l| l.endpoint_id.clone())
            .collect())
    }

    async fn anyone_listens(
        &mut self,
        conn: &mut Conn,
        mode: Mode,
        kind: EventKind,
    ) -> Result<bool, sqlx::Error> {
        Ok(!self.targets(conn, mode, kind).await?.is_empty())
    }
}

/// Derives the unit's side effects. Returns the changes for its change-log entry and whether
/// it queued webhook deliveries.
pub(super) async fn derive(
    uow: &mut Uow,
    endpoints: &mut EndpointCache,
) -> Result<(Vec<Change>, bool), sqlx::Error> {
    let records = uow.take_records();
    if records.endpoints_changed {
        endpoints.invalidate();
    }
    let now = uow.now();
    let conn = uow.conn();
    let mut changes = records.changes;
    let mut events = records.events;
    let touched = records.touched;

    // A catalog edit: the mode's new defaults go out with the edit itself.
    for (mode, scope) in records.catalog {
        let defaults = compile::defaults(conn, mode).await?;
        changes.push(Change::Defaults(ModeDefaults {
            mode,
            entitlements: defaults,
        }));
        // Its customers are recompiled after, in bounded chunks of their own (workers::recompile),
        // so an edit never holds the write path for the whole mode.
        crate::domain::recompiles::store::enqueue(conn, mode, &scope, now).await?;
    }

    for ((mode, customer_id), touch) in touched {
        if let Touch::Patched {
            entitlements: list,
            next_change_at,
        } = touch
        {
            entitlements::save(conn, mode, &customer_id, &list, next_change_at).await?;
            publish(
                conn,
                endpoints,
                &mut changes,
                &mut events,
                mode,
                customer_id,
                list,
                now,
            )
            .await?;
            continue;
        }
        let stored = entitlements::stored(conn, mode, &customer_id).await?;
        let (list, next_change_at) = match (touch, &stored) {
            (Touch::Meters(meters), Some(row)) => {
                let mut list = row.entitlements.clone();
                for (feature, usage) in &meters {
                    entitlements_model::patch_meter(&mut list, feature, *usage);
                }
                (list, row.next_change_at)
            }
            _ => {
                let compiled = compile::customer(conn, mode, &customer_id, now).await?;
                (compiled.entitlements, compiled.next_change_at)
            }
        };
        let unchanged = stored
            .as_ref()
            .is_some_and(|s| s.entitlements == list && s.next_change_at == next_change_at);
        if unchanged {
            continue;
        }
        entitlements::save(conn, mode, &customer_id, &list, next_change_at).await?;
        if stored.as_ref().is_some_and(|s| s.entitlements == list) {
            // Only the next self-change time moved: nothing for edges or listeners.
            continue;
        }
        publish(
            conn,
            endpoints,
            &mut changes,
            &mut events,
            mode,
            customer_id,
            list,
            now,
        )
        .await?;
    }

    let mut queued = false;
    for event in events {
        queued |= outbox(conn, endpoints, event).await?;
    }
    Ok((changes, queued))
}

/// A customer's new entitlements go to the edges (a change) and to listeners (an event).
#[allow(clippy::too_many_arguments)]
async fn publish(
    conn: &mut Conn,
    endpoints: &mut EndpointCache,
    changes: &mut Vec<Change>,
    events: &mut Vec<Event>,
    mode: Mode,
    customer_id: String,
    list: Vec<tollgate_shared::Entitlement>,
    now: i64,
) -> Result<(), sqlx::Error> {
    if endpoints
        .anyone_listens(conn, mode, EventKind::EntitlementsUpdated)
        .await?
    {
        events.push(Event {
            mode,
            kind: EventKind::EntitlementsUpdated,
            subject: Subject::Data(json!({"customerId": customer_id, "entitlements": list})),
            at: now,
        });
    }
    changes.push(Change::Customer(CustomerEntitlements {
        mode,
        customer_id,
        entitlements: list,
    }));
    Ok(())
}

/// Writes one event and a delivery per listening endpoint. Returns whether any was queued.
async fn outbox(
    conn: &mut Conn,
    endpoints: &mut EndpointCache,
    event: Event,
) -> Result<bool, sqlx::Error> {
    let targets = endpoints.targets(conn, event.mode, event.kind).await?;
    if targets.is_empty() {
        return Ok(false);
    }
    let data = match event.subject {
        Subject::Data(v) => v,
        Subject::Subscription(id) => view(subscriptions::view(conn, event.mode, &id).await?),
        Subject::Invoice(id) => view(invoices::view(conn, event.mode, &id).await?),
        Subject::Customer(id) => view(customers::find(conn, event.mode, &id).await?),
    };
    if data.is_null() {
        // The object is gone within the same unit: there is nothing to report.
        return Ok(false);
    }
    let id = new_event_id();
    let payload =
        json!({"type": event.kind.as_str(), "timestamp": rfc3339(event.at), "data": data});
    webhooks::insert_event(
        conn, &id, event.mode, event.kind, &payload, event.at, &targets,
    )
    .await?;
    Ok(true)
}

fn view<T: serde::Serialize>(v: Option<T>) -> Value {
    v.and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null)
}

//! The unit of work: one request's (or one billing step's) writes, inside the writer's
//! transaction and its own savepoint.
//!
//! Domain code decides and writes its own rows through `&mut Uow`, and *records* what it
//! touched: customers whose grants or usage changed, domain events, and changes edges must
//! hear about. It never recompiles entitlements, writes the webhook outbox, appends the change
//! log or stores an idempotent response itself: the writer (`crate::write`) derives all of that
//! from these records before the savepoint is released, in the same transaction.
//!
//! A unit may run more than once before it commits (the writer retries a unit that lost a
//! PostgreSQL deadlock), so domain code must not have effects outside the database.

use std::collections::BTreeMap;

use tollgate_shared::sync::Change;
use tollgate_shared::{Entitlement, Mode};

use crate::platform::db::{Backend, Conn};
use crate::platform::events::EventKind;

/// What happened to a customer's inputs in this unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// Grants may have changed: compile from scratch.
    Full,
    /// Only these meters moved, to these values (usage in their current window): patch the
    /// stored compile instead of running it again.
    Meters(Vec<(String, i64)>),
    /// The domain already patched the stored compile (a usage report read it anyway): store
    /// this as it is.
    Patched {
        entitlements: Vec<Entitlement>,
        next_change_at: Option<i64>,
    },
}

/// Whose entitlements a catalog edit can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogTouch {
    /// A feature was added or changed, or a default plan: every customer of the mode.
    Everyone,
    /// Only customers subscribed to these plans.
    Plans(Vec<String>),
}

/// The object a webhook event is about. Its payload is that object's view as the unit leaves
/// it, rendered when the outbox row is written.
#[derive(Debug, Clone)]
pub enum Subject {
    Subscription(String),
    Invoice(String),
    Customer(String),
    /// A payload given whole.
    Data(serde_json::Value),
}

#[derive(Debug, Clone)]
pub struct Event {
    pub mode: Mode,
    pub kind: EventKind,
    pub subject: Subject,
    /// When it happened, in the affected customer's time (a test clock's, if they live on one).
    pub at: i64,
}

/// What one unit recorded; the writer takes it after the unit's code returns.
#[derive(Debug, Default)]
pub struct Records {
    pub touched: BTreeMap<(Mode, String), Touch>,
    pub events: Vec<Event>,
    /// Changes to publish as they are (keys, defaults), ahead of derived customer changes.
    pub changes: Vec<Change>,
    /// Modes whose catalog changed: new defaults, and the affected customers recompiled.
    pub catalog: BTreeMap<Mode, CatalogTouch>,
    /// Webhook endpoints changed: the writer's cache of who listens must be re-read.
    pub endpoints_changed: bool,
    /// Payment intents this unit wrote (or put back) for the payments worker: it is woken
    /// after the commit, and a door that answers at once waits for them.
    pub payments: Vec<String>,
}

impl Records {
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
            && self.events.is_empty()
            && self.changes.is_empty()
            && self.catalog.is_empty()
    }
}

pub struct Uow {
    conn: Conn,
    backend: Backend,
    now: i64,
    records: Records,
}

impl Uow {
    pub fn new(conn: Conn, backend: Backend) -> Uow {
        Uow {
            conn,
            backend,
            now: 0,
            records: Records::default(),
        }
    }

    /// The writer's connection, inside the batch transaction and this unit's savepoint.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The server's time when this unit started (one value for the whole unit). A customer on
    /// a test clock has their own "now": ask the customers store for it.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The customer's compiled entitlements must be recompiled before commit.
    pub fn touch(&mut self, mode: Mode, customer_id: &str) {
        self.records
            .touched
            .insert((mode, customer_id.to_owned()), Touch::Full);
    }

    /// Only a meter of the customer moved, to `usage` in its current window.
    pub fn touch_meter(&mut self, mode: Mode, customer_id: &str, feature_id: &str, usage: i64) {
        let entry = self
            .records
            .touched
            .entry((mode, customer_id.to_owned()))
            .or_insert_with(|| Touch::Meters(Vec::new()));
        if let Touch::Meters(meters) = entry {
            match meters.iter_mut().find(|(f, _)| f == feature_id) {
                Some(m) => m.1 = usage,
                None => meters.push((feature_id.to_owned(), usage)),
            }
        }
    }

    /// The customer's stored compile, already patched by the caller (only meters moved).
    pub fn patched(
        &mut self,
        mode: Mode,
        customer_id: &str,
        entitlements: Vec<Entitlement>,
        next_change_at: Option<i64>,
    ) {
        let key = (mode, customer_id.to_owned());
        if self.records.touched.get(&key) == Some(&Touch::Full) {
            return;
        }
        self.records.touched.insert(
            key,
            Touch::Patched {
                entitlements,
                next_change_at,
            },
        );
    }

    /// Records a domain event; its outbox rows are written before commit.
    pub fn emit(&mut self, mode: Mode, kind: EventKind, subject: Subject, at: i64) {
        self.records.events.push(Event {
            mode,
            kind,
            subject,
            at,
        });
    }

    /// A change edges must hear about that is not a customer's entitlements (keys, defaults).
    pub fn publish(&mut self, change: Change) {
        self.records.changes.push(change);
    }

    /// The catalog of `mode` changed: its defaults and the customers `scope` names recompile.
    pub fn catalog_changed(&mut self, mode: Mode, scope: CatalogTouch) {
        let entry = self
            .records
            .catalog
            .entry(mode)
            .or_insert(CatalogTouch::Plans(Vec::new()));
        match (entry, scope) {
            (CatalogTouch::Everyone, _) => {}
            (entry, CatalogTouch::Everyone) => *entry = CatalogTouch::Everyone,
            (CatalogTouch::Plans(listed), CatalogTouch::Plans(plans)) => {
                for p in plans {
                    if !listed.contains(&p) {
                        listed.push(p);
                    }
                }
            }
        }
    }

    pub fn endpoints_changed(&mut self) {
        self.records.endpoints_changed = true;
    }

    /// Whether this unit wrote a payment intent for the worker.
    pub fn payments_pending(&self) -> bool {
        !self.records.payments.is_empty()
    }

    /// The payment intents this unit wrote so far.
    pub fn payments(&self) -> &[String] {
        &self.records.payments
    }

    /// Payment intent `id` is waiting for the payments worker (woken once the unit commits),
    /// and this unit's answer depends on it.
    pub fn payment_pending(&mut self, id: &str) {
        self.records.payments.push(id.to_owned());
    }

    /// For the writer: starts a unit at `now`, with nothing recorded.
    pub fn begin_unit(&mut self, now: i64) {
        self.now = now;
        self.records = Records::default();
    }

    /// For the writer: what the unit recorded.
    pub fn take_records(&mut self) -> Records {
        std::mem::take(&mut self.records)
    }

    /// For the writer: gives the connection back (to close or replace it).
    pub fn into_conn(self) -> Conn {
        self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_accumulate_and_full_wins() {
        let mut r = Records::default();
        let key = (Mode::Test, "c".to_owned());
        r.touched
            .insert(key.clone(), Touch::Meters(vec![("a".into(), 1)]));
        assert!(!r.is_empty());
        r.touched.insert(key.clone(), Touch::Full);
        assert_eq!(r.touched.get(&key), Some(&Touch::Full));
    }
}

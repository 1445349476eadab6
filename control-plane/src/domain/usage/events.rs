//! Reported events (Kelviq's `report_event`): the `usage_events` table, one row per
//! idempotency key, and what an event does to the meters that count its name.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_shared::{Entitlement, Mode};

use crate::workflows::usage as report;

use crate::domain::catalog::store as catalog;
use crate::domain::customers::model::CustomerError;
use crate::domain::customers::store as customers;
use crate::domain::usage::store::Report;
use crate::platform::db::Uow;
use crate::platform::db::sql;
use crate::workflows::usage::UsageError;

/// An event as reported.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub customer_id: &'a str,
    pub event_name: &'a str,
    pub idempotency_key: &'a str,
    /// As the caller sent it (Kelviq's `YYYY-MM-DD HH:MM:SS.ffffff`).
    pub timestamp: &'a str,
    pub resource_id: Option<&'a str>,
    pub properties: Option<&'a Value>,
}

impl NewEvent<'_> {
    /// What makes two reports under one key the same event.
    pub fn hash(&self) -> String {
        let canonical = serde_json::json!([
            self.customer_id,
            self.event_name,
            self.timestamp,
            self.resource_id,
            self.properties,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What recording an event did.
#[derive(Debug)]
pub enum Recorded {
    /// Stored now; the meters counting its name moved (each as it now stands).
    New(Vec<Entitlement>),
    /// The same event was reported before under this key: nothing moved again.
    Duplicate,
    /// The key was used for another event.
    Conflict,
}

/// Stores the event once per key and counts it on every METER whose `eventName` it has.
pub async fn record(uow: &mut Uow, mode: Mode, e: &NewEvent<'_>) -> Result<Recorded, UsageError> {
    // Events of a customer that does not exist (or is archived) are refused, counted or not.
    let known = customers::find(uow.conn(), mode, e.customer_id)
        .await?
        .is_some_and(|c| !c.archived);
    if !known {
        return Err(CustomerError::NotFound(e.customer_id.to_owned()).into());
    }
    let hash = e.hash();
    let now = uow.now();
    let inserted = sql::query(
        "INSERT INTO usage_events (mode, idempotency_key, customer_id, event_name, occurred_at, resource_id,
           properties, request_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (mode, idempotency_key) DO NOTHING",
    )
    .bind(mode.as_str())
    .bind(e.idempotency_key)
    .bind(e.customer_id)
    .bind(e.event_name)
    .bind(e.timestamp)
    .bind(e.resource_id)
    .bind(e.properties.map(Value::to_string))
    .bind(&hash)
    .bind(now)
    .execute(uow.conn())
    .await?;
    if inserted == 0 {
        let stored: Option<String> = sql::query(
            "SELECT request_hash FROM usage_events WHERE mode = $1 AND idempotency_key = $2",
        )
        .bind(mode.as_str())
        .bind(e.idempotency_key)
        .scalar_optional(uow.conn())
        .await?;
        return Ok(if stored.as_deref() == Some(hash.as_str()) {
            Recorded::Duplicate
        } else {
            Recorded::Conflict
        });
    }
    let meters = catalog::meters_counting(uow.conn(), mode, e.event_name).await?;
    let mut moved = Vec::with_capacity(meters.len());
    for feature in &meters {
        moved.push(report::record(uow, mode, e.customer_id, feature, Report::Delta(1)).await?);
    }
    if meters.len() > 1 {
        // Each report patched the compile it read, which did not hold the others' patches:
        // compile once from the counters instead.
        uow.touch(mode, e.customer_id);
    }
    Ok(Recorded::New(moved))
}

//! Webhooks (SPEC §7): a durable outbox written in the same transaction as the change it
//! reports, delivered at least once with exponential backoff, signed per the Standard Webhooks
//! spec (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`).
//!
//! * [`routes`] — `/api/v1/webhook-endpoints/` and their deliveries.
//! * [`delivery`] — the worker that sends what is due.

pub mod delivery;
pub mod routes;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;
use tollgate_shared::Mode;

use crate::clock::rfc3339;
use crate::db::WriteTx;

/// Every event type Tollgate emits.
pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "checkout.completed",
    "subscription.created",
    "subscription.activated",
    "subscription.updated",
    "subscription.canceled",
    "subscription.renewed",
    "subscription.past_due",
    "invoice.paid",
    "invoice.payment_failed",
    "entitlements.updated",
];

pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut key);
    format!("whsec_{}", B64.encode(key))
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the secret's
/// base64 part decoded (Standard Webhooks).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Records `event_type` for every enabled endpoint of `mode` that subscribes to it, in the
/// caller's transaction: the event exists exactly when the change does.
pub async fn emit(
    tx: &mut WriteTx,
    mode: Mode,
    now: i64,
    event_type: &str,
    data: impl Serialize,
) -> Result<(), sqlx::Error> {
    let endpoints = sqlx::query(
        "SELECT id, events FROM webhook_endpoints WHERE mode = ? AND disabled_at IS NULL",
    )
    .bind(mode.as_str())
    .fetch_all(tx.conn())
    .await?;
    let targets: Vec<String> = endpoints
        .into_iter()
        .filter_map(|r| {
            let events: Vec<String> =
                serde_json::from_str(r.try_get::<&str, _>("events").ok()?).ok()?;
            events
                .iter()
                .any(|e| e == "*" || e == event_type)
                .then(|| r.try_get("id").ok())
                .flatten()
        })
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let payload = json!({"type": event_type, "timestamp": rfc3339(now), "data": data});
    sqlx::query(
        "INSERT INTO webhook_events (id, mode, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(mode.as_str())
    .bind(event_type)
    .bind(payload.to_string())
    .bind(now)
    .execute(tx.conn())
    .await?;
    for endpoint in targets {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, next_attempt_at, created_at)
             VALUES (?, ?, ?, 'pending', 0, ?)",
        )
        .bind(format!("whd_{}", uuid::Uuid::new_v4().simple()))
        .bind(&id)
        .bind(endpoint)
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    tx.webhooks = true;
    Ok(())
}

/// Whether any endpoint of `mode` listens at all; lets callers skip building payloads.
pub async fn listening(tx: &mut WriteTx, mode: Mode) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT 1 FROM webhook_endpoints WHERE mode = ? AND disabled_at IS NULL LIMIT 1",
    )
    .bind(mode.as_str())
    .fetch_optional(tx.conn())
    .await?
    .is_some())
}

/// Emits a subscription event carrying the subscription's current view.
pub async fn emit_subscription(
    tx: &mut WriteTx,
    mode: Mode,
    now: i64,
    event_type: &str,
    id: &str,
) -> Result<(), sqlx::Error> {
    if !listening(tx, mode).await? {
        return Ok(());
    }
    let view = match crate::subscriptions::get(tx.conn(), mode, id).await {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(crate::subscriptions::SubscriptionError::Db(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    emit(tx, mode, now, event_type, view).await
}

/// Emits `invoice.paid` or `invoice.payment_failed` with the invoice's view.
pub async fn emit_invoice(
    tx: &mut WriteTx,
    mode: Mode,
    now: i64,
    paid: bool,
    id: &str,
) -> Result<(), sqlx::Error> {
    if !listening(tx, mode).await? {
        return Ok(());
    }
    let view = crate::billing::invoices::view(tx.conn(), mode, id).await?;
    let event = if paid {
        "invoice.paid"
    } else {
        "invoice.payment_failed"
    };
    emit(tx, mode, now, event, view).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (standard-webhooks/spec, libraries' tests).
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_fresh_and_decodable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(sign(&a, "msg", 1, b"{}").is_some());
    }
}

//! Webhook events and signatures (pure): the event types, secrets, and the Standard Webhooks
//! signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Every event type Tollgate emits.
pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.archived",
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

pub const ENTITLEMENTS_UPDATED: &str = "entitlements.updated";

/// A new event id (`msg_…`): the `webhook-id` header, stable across retries.
pub fn new_event_id() -> String {
    crate::ids::new("msg")
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

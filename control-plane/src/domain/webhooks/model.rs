//! Webhook events and signatures (pure): the event types, secrets, and the Standard Webhooks
//! signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

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

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Standard Webhooks: base64 HMAC keyed with the secret's base64 part decoded.
    #[default]
    Standard,
    /// Kelviq's SDKs' `validate_event`: hex HMAC keyed with the secret's UTF-8 bytes.
    Kelviq,
}

impl Scheme {
    pub const NAMES: [&'static str; 2] = ["standard", "kelviq"];

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "standard" => Some(Scheme::Standard),
            "kelviq" => Some(Scheme::Kelviq),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Standard => "standard",
            Scheme::Kelviq => "kelviq",
        }
    }

    /// The `webhook-signature` header for a delivery (same `webhook-id` and
    /// `webhook-timestamp` headers either way).
    pub fn sign(self, secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
        match self {
            Scheme::Standard => sign(secret, msg_id, timestamp, body),
            Scheme::Kelviq => Some(sign_kelviq(secret, msg_id, timestamp, body)),
        }
    }
}

/// `v1,<hex HMAC-SHA256(secret's UTF-8 bytes, "{id}.{timestamp}.{body}")>`: what Kelviq's
/// `validate_event` (Python and Node) recomputes. The whole secret, `whsec_` prefix included,
/// is the key.
pub fn sign_kelviq(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1,{hex}")
}

/// A new event id (`msg_…`): the `webhook-id` header, stable across retries.
pub fn new_event_id() -> String {
    crate::platform::ids::new("msg")
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

    /// The same computation as Kelviq's Python SDK: `hmac.new(secret.encode('utf-8'),
    /// f"{id}.{timestamp}.{body}".encode('utf-8'), hashlib.sha256).hexdigest()`.
    #[test]
    fn signs_like_kelviqs_validate_event() {
        let sig = sign_kelviq("whsec_test", "msg_1", 1_700_000_000, br#"{"a":1}"#);
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test",b"msg_1.1700000000.{\"a\":1}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sig,
            "v1,cf6cc835e9f9103d20014892a979896477e6a510408e00249ac5789b620d5750"
        );
        assert_eq!(Scheme::parse("kelviq"), Some(Scheme::Kelviq));
        assert_eq!(Scheme::parse("other"), None);
    }

    #[test]
    fn secrets_are_fresh_and_decodable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(sign(&a, "msg", 1, b"{}").is_some());
    }
}

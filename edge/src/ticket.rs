//! Stream tickets: the credential inside the event-stream URL an OFREP bulk evaluation
//! advertises (ADR-0008 `eventStreams`).
//!
//! A browser's `EventSource` cannot send an `Authorization` header, so the URL must carry the
//! credential, and a URL ends up in logs. The ticket is therefore not the caller's key but a
//! grant derived from it: one customer of one mode, until an expiry, signed with HMAC-SHA256
//! under the SHA-256 hash of the key that asked for it. Every edge holds the same key hashes
//! (the snapshot delivers them) and no one else does, so any edge behind a load balancer can
//! verify a ticket another edge minted, and revoking the key voids its tickets everywhere.
//! A customer-token caller gets its token in the URL instead: it already names one customer,
//! expires, and is all the edge can check (edges cannot sign tokens).
//!
//! Format: `st_<t|l>.<expires, unix seconds>.<key id>.<base64url(customer id)>.<mac>`, with
//! the key id the first 8 bytes of the key hash in hex and the mac the first 16 bytes of
//! HMAC-SHA256(key hash, "tollgate-stream-ticket\0" + everything before the last dot),
//! base64url. Every character is URL- and JSON-safe.
//!
//! Expiries are rounded up to the hour and at least an hour away, so every bulk answer within
//! an hour carries the same URL (and its `ETag` stays put).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tollgate_shared::keys::KeyHash;
use tollgate_shared::{KeyKind, Mode};

use crate::store::Auth;

pub const TICKET_PREFIX: &str = "st_";
const CONTEXT: &[u8] = b"tollgate-stream-ticket\0";
const MAC_BYTES: usize = 16;
/// Tickets are good for one to two hours.
pub const TICKET_HOURS: i64 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("malformed stream ticket")]
    Malformed,
    #[error("stream ticket signature is invalid, or its key was revoked")]
    BadSignature,
    #[error("stream ticket has expired; evaluate again for a new one")]
    Expired,
}

/// What a valid ticket grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub mode: Mode,
    pub customer_id: String,
    pub key: KeyHash,
    pub expires: i64,
}

fn mac(key: &KeyHash, payload: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(CONTEXT);
    m.update(payload);
    m
}

fn key_id(key: &KeyHash) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The expiry a ticket minted at `now` gets: the top of the hour after the next one.
pub fn expiry_for(now: i64) -> i64 {
    (now.div_euclid(3_600) + 1 + TICKET_HOURS) * 3_600
}

/// A ticket for one customer, signed with `key` (the hash of the caller's key).
pub fn mint(key: &KeyHash, mode: Mode, customer_id: &str, expires: i64) -> String {
    let m = match mode {
        Mode::Test => 't',
        Mode::Live => 'l',
    };
    let payload = format!(
        "{m}.{expires}.{}.{}",
        key_id(key),
        B64.encode(customer_id.as_bytes())
    );
    let tag = mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{TICKET_PREFIX}{payload}.{}", B64.encode(&tag[..MAC_BYTES]))
}

/// Checks `ticket` against the keys the edge holds now, and its expiry.
pub fn verify(ticket: &str, auth: &Auth, now: i64) -> Result<Grant, TicketError> {
    let body = ticket
        .strip_prefix(TICKET_PREFIX)
        .ok_or(TicketError::Malformed)?;
    let (payload, tag) = body.rsplit_once('.').ok_or(TicketError::Malformed)?;
    let mut parts = payload.split('.');
    let (Some(m), Some(expires), Some(kid), Some(customer), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TicketError::Malformed);
    };
    let mode = match m {
        "t" => Mode::Test,
        "l" => Mode::Live,
        _ => return Err(TicketError::Malformed),
    };
    let expires: i64 = expires.parse().map_err(|_| TicketError::Malformed)?;
    let customer_id = B64
        .decode(customer)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(TicketError::Malformed)?;
    let tag = B64.decode(tag).map_err(|_| TicketError::Malformed)?;
    if tag.len() != MAC_BYTES || kid.len() != 16 {
        return Err(TicketError::Malformed);
    }
    let key = auth
        .keys
        .iter()
        .filter(|(hash, (key_mode, kind))| {
            *key_mode == mode
                && matches!(kind, KeyKind::Publishable | KeyKind::Secret)
                && key_id(hash) == kid
        })
        .map(|(hash, _)| *hash)
        .find(|hash| {
            mac(hash, payload.as_bytes())
                .verify_truncated_left(&tag)
                .is_ok()
        })
        .ok_or(TicketError::BadSignature)?;
    if now >= expires {
        return Err(TicketError::Expired);
    }
    Ok(Grant {
        mode,
        customer_id,
        key,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::keys::hash_key;

    fn auth_with(keys: &[(&str, Mode, KeyKind)]) -> Auth {
        let mut auth = Auth::default();
        for (k, mode, kind) in keys {
            auth.keys.insert(hash_key(k), (*mode, *kind));
        }
        auth
    }

    #[test]
    fn a_ticket_grants_one_customer_until_it_expires_or_its_key_goes() {
        let pk = "pk_test_aaaaaaaaaaaaaaaa";
        let auth = auth_with(&[
            (pk, Mode::Test, KeyKind::Publishable),
            ("sk_live_bbbbbbbbbbbbbbbb", Mode::Live, KeyKind::Secret),
        ]);
        let now = 1_800_000_000;
        let exp = expiry_for(now);
        assert!(exp > now + 3_600 && exp <= now + 7_200 && exp % 3_600 == 0);
        let id = "user \"ü\"/1?&=";
        let t = mint(&hash_key(pk), Mode::Test, id, exp);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        let g = verify(&t, &auth, now).unwrap();
        assert_eq!((g.mode, g.customer_id.as_str()), (Mode::Test, id));
        assert_eq!(verify(&t, &auth, exp), Err(TicketError::Expired));
        // Another customer, mode or expiry breaks the signature.
        let forged = t.replacen(".dXNlc", ".dXNlZ", 1);
        assert_ne!(forged, t);
        assert!(verify(&forged, &auth, now).is_err());
        let live = t.replacen("st_t.", "st_l.", 1);
        assert_eq!(verify(&live, &auth, now), Err(TicketError::BadSignature));
        let later = t.replacen(&exp.to_string(), &(exp + 3_600).to_string(), 1);
        assert_eq!(verify(&later, &auth, now), Err(TicketError::BadSignature));
        // The key revoked: its tickets stop working.
        let revoked = auth_with(&[("sk_live_bbbbbbbbbbbbbbbb", Mode::Live, KeyKind::Secret)]);
        assert_eq!(verify(&t, &revoked, now), Err(TicketError::BadSignature));
        for bad in [
            "",
            "st_",
            "st_t.1.2.3",
            "pk_test_x",
            "st_x.1.0011223344556677.YQ.AAAA",
        ] {
            assert!(verify(bad, &auth, now).is_err(), "{bad}");
        }
    }
}

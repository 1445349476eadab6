//! API keys: what kind a key is, which mode it belongs to, how it is hashed for storage and
//! how it is read out of an `Authorization` header (Bearer, or Basic with an empty password).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Test and live data are separate worlds; every stored row and every key belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `sk_…`: the whole control-plane API, and edge reads (Kelviq's server SDKs use it there).
    Secret,
    /// `pk_…`: edge reads only.
    Publishable,
    /// `esk_…`: lets an edge subscribe to the sync stream; no mode, it sees both.
    EdgeSync,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
            KeyKind::EdgeSync => "edge_sync",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(KeyKind::Secret),
            "publishable" => Some(KeyKind::Publishable),
            "edge_sync" => Some(KeyKind::EdgeSync),
            _ => None,
        }
    }
}

/// What a key's prefix claims. The claim is only trusted once the key's hash is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyClaim {
    pub kind: KeyKind,
    pub mode: Option<Mode>,
}

pub const EDGE_SYNC_PREFIX: &str = "esk_";

/// Reads the kind and mode from a key's prefix; `None` for anything that is not a key.
pub fn classify(key: &str) -> Option<KeyClaim> {
    let (kind, mode, rest) = if let Some(r) = key.strip_prefix("sk_test_") {
        (KeyKind::Secret, Some(Mode::Test), r)
    } else if let Some(r) = key.strip_prefix("sk_live_") {
        (KeyKind::Secret, Some(Mode::Live), r)
    } else if let Some(r) = key.strip_prefix("pk_test_") {
        (KeyKind::Publishable, Some(Mode::Test), r)
    } else if let Some(r) = key.strip_prefix("pk_live_") {
        (KeyKind::Publishable, Some(Mode::Live), r)
    } else if let Some(r) = key.strip_prefix(EDGE_SYNC_PREFIX) {
        (KeyKind::EdgeSync, None, r)
    } else {
        return None;
    };
    let plausible = (8..=128).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    plausible.then_some(KeyClaim { kind, mode })
}

/// Makes a fresh random key of the given kind (mode is ignored for edge sync keys).
pub fn generate(kind: KeyKind, mode: Mode) -> String {
    let body: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    match kind {
        KeyKind::Secret => format!("sk_{mode}_{body}"),
        KeyKind::Publishable => format!("pk_{mode}_{body}"),
        KeyKind::EdgeSync => format!("{EDGE_SYNC_PREFIX}{body}"),
    }
}

/// Keys are high-entropy random strings, so a plain SHA-256 is the right storage hash: there is
/// nothing for a slow password hash to protect, and the edge has to hash on every request.
pub type KeyHash = [u8; 32];

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hash_hex(hash: &KeyHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hash_hex(hex: &str) -> Option<KeyHash> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Extracts the credential from `Authorization: Bearer <key>` or `Basic base64(<key>:)`.
/// Borrowed for Bearer (the edge's common case), owned for Basic.
pub fn credential_from_header(value: &[u8]) -> Option<Cow<'_, str>> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then_some(Cow::Borrowed(rest));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = match decoded.split_once(':') {
            Some((user, _password)) => user.to_owned(),
            None => decoded,
        };
        return (!user.is_empty()).then_some(Cow::Owned(user));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_classify_as_what_they_are() {
        for (kind, mode) in [
            (KeyKind::Secret, Mode::Test),
            (KeyKind::Secret, Mode::Live),
            (KeyKind::Publishable, Mode::Test),
            (KeyKind::Publishable, Mode::Live),
        ] {
            let key = generate(kind, mode);
            assert_eq!(
                classify(&key),
                Some(KeyClaim {
                    kind,
                    mode: Some(mode)
                })
            );
        }
        let esk = generate(KeyKind::EdgeSync, Mode::Test);
        assert_eq!(classify(&esk).map(|c| c.kind), Some(KeyKind::EdgeSync));
    }

    #[test]
    fn junk_is_not_a_key() {
        assert_eq!(classify("sk_test_"), None);
        assert_eq!(classify("hello"), None);
        assert_eq!(classify("sk_prod_abcdefgh12"), None);
        assert_eq!(classify("sk_test_abc def ghij"), None);
    }

    #[test]
    fn bearer_and_basic_yield_the_same_key() {
        let key = "sk_test_51O62xYzAbcDef123";
        assert_eq!(
            credential_from_header(format!("Bearer {key}").as_bytes()).as_deref(),
            Some(key)
        );
        // The 4geeks seed's own example header.
        let basic = b"Basic c2tfdGVzdF81MU82MnhZekFiY0RlZjEyMzo=";
        assert_eq!(credential_from_header(basic).as_deref(), Some(key));
        assert_eq!(credential_from_header(b"Basic !!!"), None);
        assert_eq!(credential_from_header(b"Bearer "), None);
        assert_eq!(credential_from_header(b"Token abc"), None);
    }

    #[test]
    fn hash_hex_round_trips() {
        let h = hash_key("pk_test_abcdefgh");
        assert_eq!(parse_hash_hex(&hash_hex(&h)), Some(h));
        assert_eq!(parse_hash_hex("zz"), None);
    }
}

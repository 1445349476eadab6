//! Customer tokens (SPEC §2): a short-lived credential that reads one customer's entitlements at
//! the edge and nothing else. Ed25519, so edges hold only the public half and cannot mint tokens.
//!
//! Format: `ct_<base64url(claims JSON)>.<base64url(signature over the claims bytes)>`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::keys::Mode;

pub const TOKEN_PREFIX: &str = "ct_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Mode the customer lives in.
    pub m: Mode,
    /// The customer's external id.
    pub c: String,
    /// Expiry, seconds since the Unix epoch.
    pub e: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed customer token")]
    Malformed,
    #[error("customer token signature is invalid")]
    BadSignature,
    #[error("customer token has expired")]
    Expired,
}

pub fn signing_key_from_bytes(bytes: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(bytes)
}

pub fn new_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

pub fn decode_verifying_key(s: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(s).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

pub fn mint(key: &SigningKey, claims: &TokenClaims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let sig = key.sign(&payload);
    format!(
        "{TOKEN_PREFIX}{}.{}",
        B64.encode(&payload),
        B64.encode(sig.to_bytes())
    )
}

/// Checks the signature against any of `keys` (more than one while a key rotates) and expiry.
pub fn verify(
    token: &str,
    keys: &[VerifyingKey],
    now_unix: i64,
) -> Result<TokenClaims, TokenError> {
    let body = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenError::Malformed)?;
    let (payload_b64, sig_b64) = body.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = B64.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    let sig: [u8; 64] = B64
        .decode(sig_b64)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(TokenError::Malformed)?;
    let sig = Signature::from_bytes(&sig);
    if !keys.iter().any(|k| k.verify(&payload, &sig).is_ok()) {
        return Err(TokenError::BadSignature);
    }
    let claims: TokenClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.e <= now_unix {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            m: Mode::Test,
            c: "user-123".into(),
            e: 2_000,
        }
    }

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let key = new_signing_key();
        let token = mint(&key, &claims());
        let vk = [key.verifying_key()];
        assert_eq!(verify(&token, &vk, 1_000), Ok(claims()));
        assert_eq!(verify(&token, &vk, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let key = new_signing_key();
        let token = mint(&key, &claims());
        let other = [new_signing_key().verifying_key()];
        assert_eq!(verify(&token, &other, 0), Err(TokenError::BadSignature));
        let forged = mint(
            &key,
            &TokenClaims {
                c: "someone-else".into(),
                ..claims()
            },
        );
        let (_, forged_sig) = forged.split_once('.').unwrap();
        let (orig_payload, _) = token.split_once('.').unwrap();
        let spliced = format!("{orig_payload}.{forged_sig}");
        assert_eq!(
            verify(&spliced, &[key.verifying_key()], 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify("ct_nope", &[key.verifying_key()], 0),
            Err(TokenError::Malformed)
        );
        let vk = decode_verifying_key(&encode_verifying_key(&key.verifying_key())).unwrap();
        assert_eq!(verify(&token, &[vk], 0), Ok(claims()));
    }
}

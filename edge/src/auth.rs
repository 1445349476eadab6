//! Who may read entitlements at the edge: publishable or secret keys of a mode (checked by
//! hash against the set the snapshot delivered), or a customer token scoped to one customer.

use tollgate_shared::keys::{EDGE_SYNC_PREFIX, credential_from_header, hash_key};
use tollgate_shared::token::{self, TOKEN_PREFIX};
use tollgate_shared::{KeyKind, Mode};

use crate::store::{Auth, now_ms};

#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    /// A client or server key: any customer of its mode.
    Key(Mode),
    /// A customer token: that one customer only.
    Customer { mode: Mode, customer_id: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header: send a publishable key as 'Bearer pk_…'")]
    Missing,
    #[error("invalid API key or customer token")]
    Invalid,
    #[error("edge sync keys cannot read entitlements; use a publishable key")]
    WrongKind,
    #[error("{0}")]
    Token(#[from] token::TokenError),
}

pub fn authenticate(auth: &Auth, header: Option<&[u8]>) -> Result<Caller, AuthError> {
    let credential =
        credential_from_header(header.ok_or(AuthError::Missing)?).ok_or(AuthError::Invalid)?;
    if credential.starts_with(TOKEN_PREFIX) {
        let now = (now_ms() / 1000) as i64;
        let claims = token::verify(&credential, &auth.token_keys, now)?;
        return Ok(Caller::Customer {
            mode: claims.m,
            customer_id: claims.c,
        });
    }
    // Edges never receive sync-key hashes, so recognise the kind by its prefix.
    if credential.starts_with(EDGE_SYNC_PREFIX) {
        return Err(AuthError::WrongKind);
    }
    match auth.keys.get(&hash_key(&credential)) {
        Some((mode, KeyKind::Publishable | KeyKind::Secret)) => Ok(Caller::Key(*mode)),
        Some((_, KeyKind::EdgeSync)) => Err(AuthError::WrongKind),
        None => Err(AuthError::Invalid),
    }
}

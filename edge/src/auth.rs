//! Who may read entitlements at the edge: publishable or secret keys of a mode (checked by
//! hash against the set the snapshot delivered), or a customer token scoped to one customer.
//!
//! [`KeyCache`] remembers, per connection, the last key header that was accepted, so the
//! requests that follow on a keep-alive connection skip parsing and hashing it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use tollgate_shared::keys::{EDGE_SYNC_PREFIX, credential_from_header, hash_key};
use tollgate_shared::token::{self, TOKEN_PREFIX};
use tollgate_shared::{KeyKind, Mode};

use crate::hub::Credential;
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
    authenticate_credential(auth, &credential)
}

/// The credential of a request: `Authorization` (Bearer or Basic), else `X-API-Key` (OFREP's
/// API-key scheme: the key itself).
pub fn request_credential<'h>(
    authorization: Option<&'h [u8]>,
    api_key: Option<&'h [u8]>,
) -> Result<Cow<'h, str>, AuthError> {
    match (authorization, api_key) {
        (Some(h), _) => credential_from_header(h).ok_or(AuthError::Invalid),
        (None, Some(k)) => std::str::from_utf8(k)
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Cow::Borrowed)
            .ok_or(AuthError::Invalid),
        (None, None) => Err(AuthError::Missing),
    }
}

/// Checks a bare credential (a key or a customer token).
pub fn authenticate_credential(auth: &Auth, credential: &str) -> Result<Caller, AuthError> {
    authenticate_for_stream(auth, credential).map(|(caller, _)| caller)
}

/// [`authenticate_credential`], plus what a stream must check again later (revocation,
/// expiry).
pub fn authenticate_for_stream(
    auth: &Auth,
    credential: &str,
) -> Result<(Caller, Credential), AuthError> {
    if credential.starts_with(TOKEN_PREFIX) {
        let now = (now_ms() / 1000) as i64;
        let claims = token::verify(credential, &auth.token_keys, now)?;
        let held = Credential::Token {
            token: credential.into(),
            expires: claims.e,
        };
        return Ok((
            Caller::Customer {
                mode: claims.m,
                customer_id: claims.c,
            },
            held,
        ));
    }
    // Edges never receive sync-key hashes, so recognise the kind by its prefix.
    if credential.starts_with(EDGE_SYNC_PREFIX) {
        return Err(AuthError::WrongKind);
    }
    let hash = hash_key(credential);
    match auth.keys.get(&hash) {
        Some((mode, KeyKind::Publishable | KeyKind::Secret)) => Ok((
            Caller::Key(*mode),
            Credential::Key {
                hash,
                expires: None,
            },
        )),
        Some((_, KeyKind::EdgeSync)) => Err(AuthError::WrongKind),
        None => Err(AuthError::Invalid),
    }
}

/// Whether a stream's credential is still good against the current keys.
pub fn still_valid(auth: &Auth, credential: &Credential) -> bool {
    match credential {
        Credential::Key { hash, .. } => matches!(
            auth.keys.get(hash),
            Some((_, KeyKind::Publishable | KeyKind::Secret))
        ),
        Credential::Token { token, .. } => {
            let now = (now_ms() / 1000) as i64;
            token::verify(token, &auth.token_keys, now).is_ok()
        }
    }
}

/// Longest `Authorization` header [`KeyCache`] keeps (real ones are under 100 bytes).
const MAX_CACHED_HEADER: usize = 256;

/// The last key one connection authenticated with, and the mode it resolved to.
///
/// Keep-alive clients send the same `Authorization` header on every request, so comparing the
/// raw header with the last accepted one replaces parsing it, a SHA-256 and a map lookup. An
/// entry is only valid for the [`Auth`] it was checked against (compared by identity): any
/// snapshot or delta that changes keys publishes a new `Auth`, so a revoked key is refused on
/// the very next request. Only keys are cached; customer tokens expire and are always verified.
/// Not `Sync`: it lives inside one connection's service, which handles one request at a time.
#[derive(Debug, Default)]
pub struct KeyCache {
    last: RefCell<Option<CachedKey>>,
}

#[derive(Debug)]
struct CachedKey {
    header: Box<[u8]>,
    auth: Arc<Auth>,
    mode: Mode,
}

impl KeyCache {
    /// [`authenticate`], answered from the cache when `header` is the last accepted one.
    pub fn authenticate(
        &self,
        auth: &Arc<Auth>,
        header: Option<&[u8]>,
    ) -> Result<Caller, AuthError> {
        if let Some(mode) = self.cached(auth, header) {
            return Ok(Caller::Key(mode));
        }
        let caller = authenticate(auth, header)?;
        if let (Caller::Key(mode), Some(h)) = (&caller, header) {
            self.remember(auth, h, *mode);
        }
        Ok(caller)
    }

    /// [`KeyCache::authenticate`] for a request that may carry its key in `X-API-Key`.
    pub fn authenticate_request(
        &self,
        auth: &Arc<Auth>,
        authorization: Option<&[u8]>,
        api_key: Option<&[u8]>,
    ) -> Result<Caller, AuthError> {
        match (authorization, api_key) {
            // Not cached: the cache compares `Authorization` headers.
            (None, Some(raw)) => {
                authenticate_credential(auth, &request_credential(None, Some(raw))?)
            }
            (header, _) => self.authenticate(auth, header),
        }
    }

    fn cached(&self, auth: &Arc<Auth>, header: Option<&[u8]>) -> Option<Mode> {
        let header = header?;
        let last = self.last.try_borrow().ok()?;
        let c = last.as_ref()?;
        (Arc::ptr_eq(&c.auth, auth) && *c.header == *header).then_some(c.mode)
    }

    fn remember(&self, auth: &Arc<Auth>, header: &[u8], mode: Mode) {
        if header.len() > MAX_CACHED_HEADER {
            return;
        }
        if let Ok(mut last) = self.last.try_borrow_mut() {
            *last = Some(CachedKey {
                header: header.into(),
                auth: auth.clone(),
                mode,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::keys::hash_key;

    fn auth_with(key: &str) -> Arc<Auth> {
        let mut auth = Auth::default();
        auth.keys
            .insert(hash_key(key), (Mode::Test, KeyKind::Publishable));
        Arc::new(auth)
    }

    #[test]
    fn cache_answers_the_same_header_for_the_same_auth_only() {
        let cache = KeyCache::default();
        let auth = auth_with("pk_test_abcdefgh");
        let good: &[u8] = b"Bearer pk_test_abcdefgh";
        assert_eq!(
            cache.authenticate(&auth, Some(good)),
            Ok(Caller::Key(Mode::Test))
        );
        assert_eq!(
            cache.authenticate(&auth, Some(good)),
            Ok(Caller::Key(Mode::Test))
        );
        // Another header is checked for real, and a failure does not poison the cache.
        assert_eq!(
            cache.authenticate(&auth, Some(b"Bearer pk_test_zzzzzzzz")),
            Err(AuthError::Invalid)
        );
        assert_eq!(cache.authenticate(&auth, None), Err(AuthError::Missing));
        assert_eq!(
            cache.authenticate(&auth, Some(good)),
            Ok(Caller::Key(Mode::Test))
        );
        // A new key set without the key (a revocation) is consulted, not the cache.
        let revoked = Arc::new(Auth::default());
        assert_eq!(
            cache.authenticate(&revoked, Some(good)),
            Err(AuthError::Invalid)
        );
    }
}

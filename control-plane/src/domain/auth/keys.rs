//! Credential lookups for every request, with a short-lived cache in front of the `api_keys`
//! table: a request pays a hash and a map lookup, not a database round trip.
//!
//! Revocation is immediate on the replica that revoked (the writer tells [`KeyCache::forget`]);
//! other replicas on the same PostgreSQL see it within [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use tollgate_shared::KeyKind;
use tollgate_shared::keys::{KeyHash, classify, credential_from_header, hash_hex, hash_key};

use crate::domain::auth::model::{AuthError, FoundKey};
use crate::domain::auth::store;
use crate::platform::db::Db;

/// How long a successful lookup is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; a full cache is cleared (it refills from the database).
pub const CACHE_MAX: usize = 10_000;

#[derive(Clone)]
pub struct KeyCache {
    db: Db,
    // A std Mutex: held for a map operation only, never across an `.await`.
    entries: Arc<Mutex<HashMap<String, (FoundKey, Instant)>>>,
    /// Well-formed keys the database did not have, and when it said so: asked again only
    /// after [`CACHE_TTL`], so a client repeating an unknown key costs no query each time (a
    /// key made since is found within that second). At most [`CACHE_MAX`]; a full map is
    /// cleared.
    unknown: Arc<Mutex<HashMap<String, Instant>>>,
}

impl KeyCache {
    pub fn new(db: Db) -> KeyCache {
        KeyCache {
            db,
            entries: Arc::default(),
            unknown: Arc::default(),
        }
    }

    fn known_unknown(&self, hex: &str) -> bool {
        self.unknown
            .lock()
            .ok()
            .and_then(|map| map.get(hex).map(|at| at.elapsed() < CACHE_TTL))
            .unwrap_or(false)
    }

    fn note_unknown(&self, hex: String) {
        if let Ok(mut map) = self.unknown.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(hex, Instant::now());
        }
    }

    /// Drops cached keys by hash (after a revocation).
    pub fn forget(&self, hashes: &[String]) {
        if let Ok(mut map) = self.entries.lock() {
            for h in hashes {
                map.remove(h);
            }
        }
    }

    /// The valid key a request carries, checked against its claimed kind and mode.
    pub async fn lookup(&self, headers: &HeaderMap) -> Result<(FoundKey, KeyHash), AuthError> {
        let header = headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
        let credential = credential_from_header(header.as_bytes()).ok_or(AuthError::Invalid)?;
        let claim = classify(&credential).ok_or(AuthError::Invalid)?;
        let hash = hash_key(&credential);
        let hex = hash_hex(&hash);
        let cached = self.entries.lock().ok().and_then(|map| {
            map.get(&hex)
                .filter(|(_, at)| at.elapsed() < CACHE_TTL)
                .map(|(k, _)| k.clone())
        });
        let found = match cached {
            Some(k) => k,
            None => {
                if self.known_unknown(&hex) {
                    metrics::counter!("tollgate_auth_unknown_key_cache_hits_total").increment(1);
                    return Err(AuthError::Invalid);
                }
                let mut conn = self.db.read().await?;
                let Some(found) = store::find_by_hash(&mut conn, &hex).await? else {
                    self.note_unknown(hex);
                    return Err(AuthError::Invalid);
                };
                if let Ok(mut map) = self.entries.lock() {
                    if map.len() >= CACHE_MAX {
                        map.clear();
                    }
                    map.insert(hex, (found.clone(), Instant::now()));
                }
                found
            }
        };
        if found.kind != claim.kind || found.mode != claim.mode {
            return Err(AuthError::Invalid);
        }
        Ok((found, hash))
    }

    /// The idempotency scope of the valid secret key a request carries, if it carries one:
    /// its mode (`mode:test`, `mode:live`). Scoped by mode, not by key, a retry sent with the
    /// new key after a rotation finds the first answer, as Stripe's keys do; requests that
    /// would fail authentication never reach the idempotency store.
    pub async fn idempotency_scope(&self, headers: &HeaderMap) -> Option<String> {
        match self.lookup(headers).await {
            Ok((found, _)) if found.kind == KeyKind::Secret => {
                found.mode.map(|m| format!("mode:{}", m.as_str()))
            }
            _ => None,
        }
    }
}

//! API keys on the control plane: who is calling (and in which mode), key creation, listing,
//! revocation, and the bootstrap keys of a fresh install. Keys are stored as SHA-256 hashes;
//! a key is shown once, when it is made. Every key edges must know about (secret and
//! publishable) goes through the change log, so a revoked key stops working at every edge.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sqlx::Row;
use tollgate_shared::keys::{self, KeyHash, classify, credential_from_header, hash_hex, hash_key};
use tollgate_shared::sync::{Change, EdgeKey};
use tollgate_shared::{KeyKind, Mode};

use crate::app::AppState;
use crate::db::WriteTx;
use crate::sync::changelog;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid API key or missing Authorization header")]
    Missing,
    #[error("Invalid API key or missing Authorization header")]
    Invalid,
    #[error("{0}")]
    WrongKind(&'static str),
    #[error("this operation needs a live-mode secret key")]
    WrongMode,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A caller holding a valid secret key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub mode: Mode,
    pub key_id: String,
    /// Scopes idempotency keys to the credential that sent them.
    pub credential_hash: KeyHash,
}

/// A caller holding a valid edge sync key.
#[derive(Debug, Clone)]
pub struct EdgeCaller {
    pub key_id: String,
}

struct Found {
    id: String,
    kind: KeyKind,
    mode: Option<Mode>,
}

/// The id of the valid secret key a request carries, if it carries one. Idempotency keys are
/// scoped by it, so the same key sent as Bearer or as Basic is one scope, and requests that
/// would fail authentication never reach the idempotency store.
pub async fn secret_key_id(state: &AppState, headers: &axum::http::HeaderMap) -> Option<String> {
    match lookup_headers(state, headers).await {
        Ok((found, _)) if found.kind == KeyKind::Secret && found.mode.is_some() => Some(found.id),
        _ => None,
    }
}

async fn lookup(state: &AppState, parts: &Parts) -> Result<(Found, KeyHash), AuthError> {
    lookup_headers(state, &parts.headers).await
}

async fn lookup_headers(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(Found, KeyHash), AuthError> {
    let header = headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let credential = credential_from_header(header.as_bytes()).ok_or(AuthError::Invalid)?;
    let claim = classify(&credential).ok_or(AuthError::Invalid)?;
    let hash = hash_key(&credential);
    let row =
        sqlx::query("SELECT id, kind, mode FROM api_keys WHERE hash = ? AND revoked_at IS NULL")
            .bind(hash_hex(&hash))
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or(AuthError::Invalid)?;
    let kind = KeyKind::parse(row.try_get("kind")?).ok_or(AuthError::Invalid)?;
    let mode = row
        .try_get::<Option<String>, _>("mode")?
        .as_deref()
        .and_then(Mode::parse);
    if kind != claim.kind || mode != claim.mode {
        return Err(AuthError::Invalid);
    }
    Ok((
        Found {
            id: row.try_get("id")?,
            kind,
            mode,
        },
        hash,
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (found, hash) = lookup(state, parts).await?;
        match (found.kind, found.mode) {
            (KeyKind::Secret, Some(mode)) => Ok(Caller {
                mode,
                key_id: found.id,
                credential_hash: hash,
            }),
            (KeyKind::Publishable, _) => Err(AuthError::WrongKind(
                "publishable keys only read entitlements at the edge; use a secret key (sk_…)",
            )
            .into()),
            _ => Err(AuthError::WrongKind(
                "edge sync keys only open the sync stream; use a secret key (sk_…)",
            )
            .into()),
        }
    }
}

impl FromRequestParts<AppState> for EdgeCaller {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (found, _) = lookup(state, parts).await?;
        match found.kind {
            KeyKind::EdgeSync => Ok(EdgeCaller { key_id: found.id }),
            _ => Err(AuthError::WrongKind("the sync stream needs an edge sync key (esk_…)").into()),
        }
    }
}

pub struct NewKey {
    pub id: String,
    pub key: String,
    pub created_at: i64,
}

/// Stores `key` (already generated or supplied) and tells the edges about it.
pub async fn insert_key(
    tx: &mut WriteTx,
    now: i64,
    kind: KeyKind,
    mode: Option<Mode>,
    key: &str,
    name: Option<&str>,
) -> Result<NewKey, sqlx::Error> {
    let id = format!("key_{}", uuid::Uuid::new_v4().simple());
    let hash = hash_hex(&hash_key(key));
    let prefix: String = key.chars().take(12).collect();
    sqlx::query("INSERT INTO api_keys (id, kind, mode, hash, prefix, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&id)
        .bind(kind.as_str())
        .bind(mode.map(Mode::as_str))
        .bind(&hash)
        .bind(&prefix)
        .bind(name)
        .bind(now)
        .execute(tx.conn())
        .await?;
    if let (Some(mode), KeyKind::Secret | KeyKind::Publishable) = (mode, kind) {
        changelog::append(
            tx,
            now,
            vec![Change::KeyAdded(EdgeKey { hash, mode, kind })],
        )
        .await?;
    }
    Ok(NewKey {
        id,
        key: key.to_owned(),
        created_at: now,
    })
}

/// The bootstrap keys of SPEC §8: taken from configuration when given, otherwise generated
/// once (when no active key of that kind exists) and returned so the caller can print them.
pub async fn bootstrap(
    state: &AppState,
    configured: &BootstrapKeys,
) -> anyhow::Result<Vec<(String, String)>> {
    let wanted: [(&str, KeyKind, Option<Mode>, Option<&String>); 4] = [
        (
            "secret key (test)",
            KeyKind::Secret,
            Some(Mode::Test),
            configured.secret.as_ref(),
        ),
        (
            "publishable key (test)",
            KeyKind::Publishable,
            Some(Mode::Test),
            configured.publishable.as_ref(),
        ),
        (
            "secret key (live)",
            KeyKind::Secret,
            Some(Mode::Live),
            configured.live_secret.as_ref(),
        ),
        (
            "edge sync key",
            KeyKind::EdgeSync,
            None,
            configured.edge_sync.as_ref(),
        ),
    ];
    let mut tx = state.db.write().await?;
    let now = state.clock.unix();
    let mut printed = Vec::new();
    for (label, kind, mode, given) in wanted {
        match given {
            Some(key) => {
                let claim = classify(key)
                    .ok_or_else(|| anyhow::anyhow!("configured {label} is not a valid key"))?;
                anyhow::ensure!(
                    claim.kind == kind && claim.mode == mode,
                    "configured {label} has the wrong prefix for its kind and mode"
                );
                let exists = sqlx::query("SELECT 1 FROM api_keys WHERE hash = ?")
                    .bind(hash_hex(&hash_key(key)))
                    .fetch_optional(tx.conn())
                    .await?
                    .is_some();
                if !exists {
                    insert_key(&mut tx, now, kind, mode, key, Some("configured")).await?;
                }
            }
            None => {
                let any = sqlx::query(
                    "SELECT 1 FROM api_keys WHERE kind = ? AND mode IS ? AND revoked_at IS NULL",
                )
                .bind(kind.as_str())
                .bind(mode.map(Mode::as_str))
                .fetch_optional(tx.conn())
                .await?
                .is_some();
                if !any {
                    let key = keys::generate(kind, mode.unwrap_or(Mode::Test));
                    insert_key(
                        &mut tx,
                        now,
                        kind,
                        mode,
                        &key,
                        Some("generated at first start"),
                    )
                    .await?;
                    printed.push((label.to_owned(), key));
                }
            }
        }
    }
    state.commit(tx).await?;
    Ok(printed)
}

#[derive(Debug, Clone, Default)]
pub struct BootstrapKeys {
    pub secret: Option<String>,
    pub publishable: Option<String>,
    pub live_secret: Option<String>,
    pub edge_sync: Option<String>,
}

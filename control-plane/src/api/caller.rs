//! `Caller` and `EdgeCaller` as axum extractors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tollgate_shared::KeyKind;

use crate::api::state::AppState;
use crate::domain::auth::model::{AuthError, Caller, EdgeCaller};
use crate::platform::http::error::ApiError;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (found, hash) = state.auth.lookup(&parts.headers).await?;
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
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (found, _) = state.auth.lookup(&parts.headers).await?;
        match found.kind {
            KeyKind::EdgeSync => Ok(EdgeCaller { key_id: found.id }),
            _ => Err(AuthError::WrongKind("the sync stream needs an edge sync key (esk_…)").into()),
        }
    }
}

//! The bootstrap keys of SPEC §8: taken from configuration when given, otherwise generated once
//! (when no active key of that kind exists) and returned so the caller can print them.

use tollgate_shared::keys::{self, classify, hash_hex, hash_key};
use tollgate_shared::{ErrorKind, KeyKind, Mode};

use crate::domain::auth::model::BootstrapKeys;
use crate::domain::auth::store;
use crate::platform::http::error::ApiError;
use crate::write::Writer;

/// Returns `(label, key)` for each key generated now.
pub async fn bootstrap(
    writer: &Writer,
    configured: &BootstrapKeys,
) -> anyhow::Result<Vec<(String, String)>> {
    let wanted: Vec<(&'static str, KeyKind, Option<Mode>, Option<String>)> = vec![
        (
            "secret key (test)",
            KeyKind::Secret,
            Some(Mode::Test),
            configured.secret.clone(),
        ),
        (
            "publishable key (test)",
            KeyKind::Publishable,
            Some(Mode::Test),
            configured.publishable.clone(),
        ),
        (
            "secret key (live)",
            KeyKind::Secret,
            Some(Mode::Live),
            configured.live_secret.clone(),
        ),
        (
            "edge sync key",
            KeyKind::EdgeSync,
            None,
            configured.edge_sync.clone(),
        ),
    ];
    for (label, kind, mode, given) in &wanted {
        if let Some(key) = given {
            let claim = classify(key)
                .ok_or_else(|| anyhow::anyhow!("configured {label} is not a valid key"))?;
            anyhow::ensure!(
                claim.kind == *kind && claim.mode == *mode,
                "configured {label} has the wrong prefix for its kind and mode"
            );
        }
    }
    let printed = writer
        .run("bootstrap_keys", async move |uow| {
            let mut printed = Vec::new();
            for (label, kind, mode, given) in &wanted {
                match given {
                    Some(key) => {
                        if !store::hash_exists(uow.conn(), &hash_hex(&hash_key(key))).await? {
                            store::insert(uow, *kind, *mode, key, Some("configured")).await?;
                        }
                    }
                    None => {
                        if !store::any_active(uow.conn(), *kind, *mode).await? {
                            let key = keys::generate(*kind, mode.unwrap_or(Mode::Test));
                            store::insert(
                                uow,
                                *kind,
                                *mode,
                                &key,
                                Some("generated at first start"),
                            )
                            .await?;
                            printed.push((label.to_string(), key));
                        }
                    }
                }
            }
            Ok::<_, ApiError>(printed)
        })
        .await
        .map_err(|e| match e.kind {
            ErrorKind::Internal => anyhow::anyhow!("storing the bootstrap keys failed"),
            _ => anyhow::anyhow!("storing the bootstrap keys failed: {e}"),
        })?;
    Ok(printed)
}

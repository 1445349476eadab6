//! The declarative catalog file: `{"features":[…],"plans":[…]}` in the API's request shapes.
//! Applied at start to both modes: missing entries are created, changed ones updated,
//! entries absent from the file are left alone (removing a plan is an explicit act).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use tollgate_shared::Mode;

use super::model::{FeatureInput, PlanInput};
use super::store::{self, OnExisting};
use crate::app::AppState;
use crate::entitlements;

#[derive(Debug, Deserialize)]
pub struct CatalogFile {
    #[serde(default)]
    pub features: Vec<FeatureInput>,
    #[serde(default)]
    pub plans: Vec<PlanInput>,
}

pub fn read(path: &Path) -> anyhow::Result<CatalogFile> {
    let text =
        std::fs::read(path).with_context(|| format!("reading catalog file {}", path.display()))?;
    crate::extract::parse_json(&text)
        .map_err(|e| anyhow::anyhow!("catalog file {}: {}", path.display(), e.message))
}

/// Returns how many features and plans changed per mode.
pub async fn apply(state: &AppState, file: &CatalogFile) -> anyhow::Result<usize> {
    let mut changed = 0;
    let features = file
        .features
        .iter()
        .map(|f| {
            f.validate()
                .with_context(|| format!("feature '{}'", f.identifier))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plans = file
        .plans
        .iter()
        .map(|p| {
            p.validate()
                .with_context(|| format!("plan '{}'", p.identifier))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for mode in [Mode::Test, Mode::Live] {
        let now = state.clock.unix();
        let mut tx = state.db.write().await?;
        let mut mode_changed = 0;
        for f in &features {
            if store::write_feature(&mut tx, mode, f, now, OnExisting::Replace)
                .await
                .map_err(|e| anyhow::anyhow!("feature '{}': {e}", f.identifier))?
            {
                mode_changed += 1;
            }
        }
        for p in &plans {
            if store::write_plan(&mut tx, mode, p, now, OnExisting::Replace)
                .await
                .map_err(|e| anyhow::anyhow!("plan '{}': {e}", p.identifier))?
            {
                mode_changed += 1;
            }
        }
        if mode_changed > 0 {
            entitlements::recompile_mode(&mut tx, now, mode).await?;
        }
        state.commit(tx).await?;
        changed += mode_changed;
    }
    Ok(changed)
}

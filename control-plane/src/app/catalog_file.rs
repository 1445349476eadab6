//! The declarative catalog file: `{"features":[…],"plans":[…]}` in the API's request shapes.
//! Applied at start to both modes: missing entries are created, changed ones updated,
//! entries absent from the file are left alone (removing a plan is an explicit act).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use tollgate_shared::Mode;

use crate::domain::catalog::model::{FeatureInput, PlanInput};
use crate::domain::catalog::store;
use crate::domain::catalog::store::OnExisting;
use crate::platform::http::error::ApiError;
use crate::write::Writer;

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
    crate::platform::http::extract::parse_json(&text)
        .map_err(|e| anyhow::anyhow!("catalog file {}: {}", path.display(), e.message))
}

/// Returns how many features and plans changed, over both modes.
pub async fn apply(writer: &Writer, file: &CatalogFile) -> anyhow::Result<usize> {
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
    let mut changed = 0;
    for mode in [Mode::Test, Mode::Live] {
        let (features, plans) = (features.clone(), plans.clone());
        changed += writer
            .run("apply_catalog_file", async move |uow| {
                let mut changed = 0;
                for f in &features {
                    if store::write_feature(uow, mode, f, OnExisting::Replace)
                        .await
                        .map_err(|e| file_error("feature", &f.identifier, e))?
                    {
                        changed += 1;
                    }
                }
                for p in &plans {
                    if store::write_plan(uow, mode, p, OnExisting::Replace)
                        .await
                        .map_err(|e| file_error("plan", &p.identifier, e))?
                    {
                        changed += 1;
                    }
                }
                Ok::<usize, ApiError>(changed)
            })
            .await
            .map_err(|e| anyhow::anyhow!("applying the catalog file: {}", e.message))?;
    }
    Ok(changed)
}

fn file_error(what: &str, id: &str, e: crate::domain::catalog::model::CatalogError) -> ApiError {
    let mut out = ApiError::from(e);
    out.message = format!("{what} '{id}': {}", out.message);
    out
}

//! Catalog rows. Writes take a [`WriteTx`] so callers recompile entitlements in the same
//! transaction; reads take any connection.

use sqlx::{Row, SqliteConnection};
use tollgate_shared::Mode;

use super::CatalogError;
use super::model::{FeatureDef, FeatureView, GrantView, PlanDef, PlanView, PriceView};
use super::period::ChargePeriod;
use crate::db::WriteTx;
use crate::error::invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    Fail,
    Replace,
}

/// Returns whether anything changed.
pub async fn write_feature(
    tx: &mut WriteTx,
    mode: Mode,
    def: &FeatureDef,
    now: i64,
    on_existing: OnExisting,
) -> Result<bool, CatalogError> {
    if let Some(existing) = feature_def(tx.conn(), mode, &def.identifier).await? {
        if on_existing == OnExisting::Fail {
            return Err(CatalogError::Exists(format!(
                "feature '{}' already exists",
                def.identifier
            )));
        }
        if existing == *def {
            return Ok(false);
        }
        if existing.feature_type != def.feature_type {
            return Err(invalid(
                "type",
                "a feature's type cannot change; create a new feature",
            )
            .into());
        }
    }
    sqlx::query(
        "INSERT INTO features (mode, identifier, name, type, reset_period, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (mode, identifier) DO UPDATE SET name = excluded.name, reset_period = excluded.reset_period",
    )
    .bind(mode.as_str())
    .bind(&def.identifier)
    .bind(&def.name)
    .bind(def.feature_type.as_str())
    .bind(&def.reset_period)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(true)
}

async fn feature_def(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<Option<FeatureDef>, sqlx::Error> {
    let row = sqlx::query("SELECT identifier, name, type, reset_period FROM features WHERE mode = ? AND identifier = ?")
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(FeatureDef {
            identifier: r.try_get("identifier")?,
            name: r.try_get("name")?,
            feature_type: tollgate_shared::FeatureType::parse(r.try_get("type")?)
                .unwrap_or(tollgate_shared::FeatureType::Boolean),
            reset_period: r.try_get("reset_period")?,
        })
    })
    .transpose()
}

pub async fn feature_view(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<FeatureView, CatalogError> {
    let def = feature_def(conn, mode, id)
        .await?
        .ok_or_else(|| CatalogError::FeatureNotFound(id.to_owned()))?;
    Ok(FeatureView {
        identifier: def.identifier,
        name: def.name,
        feature_type: def.feature_type.as_str().to_owned(),
        reset_period: def.reset_period,
    })
}

/// One page of a catalog table's identifiers for `mode`, with the total count.
async fn page_of_ids(
    conn: &mut SqliteConnection,
    table: CatalogTable,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<String>, i64), sqlx::Error> {
    let (table, order) = match table {
        CatalogTable::Features => ("features", "identifier"),
        CatalogTable::Plans => ("plans", "grp, identifier"),
    };
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE mode = ?"))
        .bind(mode.as_str())
        .fetch_one(&mut *conn)
        .await?;
    let ids = sqlx::query_scalar(&format!(
        "SELECT identifier FROM {table} WHERE mode = ? ORDER BY {order} LIMIT ? OFFSET ?"
    ))
    .bind(mode.as_str())
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((ids, count))
}

#[derive(Clone, Copy)]
enum CatalogTable {
    Features,
    Plans,
}

pub async fn list_features(
    conn: &mut SqliteConnection,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FeatureView>, i64), CatalogError> {
    let (ids, count) = page_of_ids(conn, CatalogTable::Features, mode, limit, offset).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(feature_view(conn, mode, &id).await?);
    }
    Ok((out, count))
}

/// Creates or replaces a plan with its prices and grants. Price ids stay stable per charge
/// period across edits. Returns whether anything changed.
pub async fn write_plan(
    tx: &mut WriteTx,
    mode: Mode,
    def: &PlanDef,
    now: i64,
    on_existing: OnExisting,
) -> Result<bool, CatalogError> {
    for (i, g) in def.grants.iter().enumerate() {
        if feature_def(tx.conn(), mode, &g.feature_id).await?.is_none() {
            return Err(invalid(
                format!("features[{i}].featureId"),
                format!("no feature '{}'", g.feature_id),
            )
            .into());
        }
    }
    let existing = plan_def(tx.conn(), mode, &def.identifier).await?;
    if existing.is_some() && on_existing == OnExisting::Fail {
        return Err(CatalogError::Exists(format!(
            "plan '{}' already exists",
            def.identifier
        )));
    }
    if existing.as_ref() == Some(def) {
        return Ok(false);
    }
    if def.is_default {
        let other: Option<String> = sqlx::query_scalar(
            "SELECT identifier FROM plans WHERE mode = ? AND grp = ? AND is_default = 1 AND identifier <> ?",
        )
        .bind(mode.as_str())
        .bind(&def.group)
        .bind(&def.identifier)
        .fetch_optional(tx.conn())
        .await?;
        if let Some(other) = other {
            return Err(CatalogError::Exists(format!(
                "group '{}' already has default plan '{other}'",
                def.group
            )));
        }
    }
    let public_key = format!("plan_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    sqlx::query(
        "INSERT INTO plans (mode, identifier, public_key, name, grp, is_default, trial_days, created_at, modified_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (mode, identifier) DO UPDATE SET name = excluded.name, grp = excluded.grp,
           is_default = excluded.is_default, trial_days = excluded.trial_days, modified_at = excluded.modified_at",
    )
    .bind(mode.as_str())
    .bind(&def.identifier)
    .bind(public_key)
    .bind(&def.name)
    .bind(&def.group)
    .bind(def.is_default)
    .bind(def.trial_days)
    .bind(now)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let kept: Vec<&str> = def
        .prices
        .iter()
        .map(|p| p.charge_period.as_str())
        .collect();
    let old_periods: Vec<String> = sqlx::query_scalar(
        "SELECT charge_period FROM prices WHERE mode = ? AND plan_identifier = ?",
    )
    .bind(mode.as_str())
    .bind(&def.identifier)
    .fetch_all(tx.conn())
    .await?;
    for old in old_periods.iter().filter(|p| !kept.contains(&p.as_str())) {
        sqlx::query(
            "DELETE FROM prices WHERE mode = ? AND plan_identifier = ? AND charge_period = ?",
        )
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(old)
        .execute(tx.conn())
        .await?;
    }
    for p in &def.prices {
        sqlx::query(
            "INSERT INTO prices (id, mode, plan_identifier, charge_period, amount_minor, currency) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (mode, plan_identifier, charge_period)
             DO UPDATE SET amount_minor = excluded.amount_minor, currency = excluded.currency",
        )
        .bind(format!("price_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]))
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(p.charge_period.as_str())
        .bind(p.amount_minor)
        .bind(&p.currency)
        .execute(tx.conn())
        .await?;
    }
    sqlx::query("DELETE FROM plan_features WHERE mode = ? AND plan_identifier = ?")
        .bind(mode.as_str())
        .bind(&def.identifier)
        .execute(tx.conn())
        .await?;
    for g in &def.grants {
        sqlx::query(
            "INSERT INTO plan_features (mode, plan_identifier, feature_identifier, has_access, usage_limit)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(&g.feature_id)
        .bind(g.has_access)
        .bind(g.usage_limit)
        .execute(tx.conn())
        .await?;
    }
    Ok(true)
}

pub async fn plan_def(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<Option<PlanDef>, sqlx::Error> {
    let Some(row) = sqlx::query("SELECT identifier, name, grp, is_default, trial_days FROM plans WHERE mode = ? AND identifier = ?")
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let prices = prices(conn, mode, id)
        .await?
        .into_iter()
        .filter_map(|p| {
            Some(super::model::PriceDef {
                charge_period: ChargePeriod::parse(&p.charge_period)?,
                amount_minor: p.amount_minor,
                currency: p.currency,
            })
        })
        .collect::<Vec<_>>();
    let grants = sqlx::query(
        "SELECT feature_identifier, has_access, usage_limit FROM plan_features
         WHERE mode = ? AND plan_identifier = ? ORDER BY rowid",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(super::model::GrantDef {
            feature_id: r.try_get("feature_identifier")?,
            has_access: r.try_get::<i64, _>("has_access")? != 0,
            usage_limit: r.try_get("usage_limit")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(PlanDef {
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        group: row.try_get("grp")?,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
        trial_days: row.try_get::<i64, _>("trial_days")? as u32,
        prices,
        grants,
    }))
}

/// A price row as stored.
#[derive(Debug, Clone)]
pub struct PriceRow {
    pub id: String,
    pub charge_period: String,
    pub amount_minor: i64,
    pub currency: String,
}

pub async fn prices(
    conn: &mut SqliteConnection,
    mode: Mode,
    plan: &str,
) -> Result<Vec<PriceRow>, sqlx::Error> {
    sqlx::query(
        "SELECT id, charge_period, amount_minor, currency FROM prices WHERE mode = ? AND plan_identifier = ? ORDER BY rowid",
    )
    .bind(mode.as_str())
    .bind(plan)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(PriceRow {
            id: r.try_get("id")?,
            charge_period: r.try_get("charge_period")?,
            amount_minor: r.try_get("amount_minor")?,
            currency: r.try_get("currency")?,
        })
    })
    .collect()
}

pub async fn plan_view(
    conn: &mut SqliteConnection,
    mode: Mode,
    id: &str,
) -> Result<PlanView, CatalogError> {
    let def = plan_def(conn, mode, id)
        .await?
        .ok_or_else(|| CatalogError::PlanNotFound(id.to_owned()))?;
    let public_key: String =
        sqlx::query_scalar("SELECT public_key FROM plans WHERE mode = ? AND identifier = ?")
            .bind(mode.as_str())
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let prices = prices(conn, mode, id)
        .await?
        .into_iter()
        .map(|p| PriceView::new(p.id, &p.charge_period, p.amount_minor, p.currency))
        .collect();
    Ok(PlanView {
        identifier: def.identifier,
        name: def.name,
        group: def.group,
        is_default: def.is_default,
        trial_days: def.trial_days,
        public_key,
        prices,
        features: def
            .grants
            .into_iter()
            .map(|g| GrantView {
                feature_id: g.feature_id,
                has_access: g.has_access,
                usage_limit: g.usage_limit,
            })
            .collect(),
    })
}

pub async fn list_plans(
    conn: &mut SqliteConnection,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PlanView>, i64), CatalogError> {
    let (ids, count) = page_of_ids(conn, CatalogTable::Plans, mode, limit, offset).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(plan_view(conn, mode, &id).await?);
    }
    Ok((out, count))
}

/// What checkout and subscriptions need to know about a plan's price for one period.
#[derive(Debug, Clone)]
pub struct PlanPrice {
    pub plan: String,
    pub plan_name: String,
    pub group: String,
    pub is_default: bool,
    pub trial_days: u32,
    pub price_id: Option<String>,
    pub charge_period: ChargePeriod,
    pub amount_minor: i64,
    pub currency: String,
}

/// Resolves `plan` at `period` (or its only price when `period` is `None`), naming the field
/// at fault when either does not exist.
pub async fn resolve_price(
    conn: &mut SqliteConnection,
    mode: Mode,
    plan: &str,
    period: Option<&str>,
) -> Result<PlanPrice, CatalogError> {
    let def = plan_def(conn, mode, plan)
        .await?
        .ok_or_else(|| invalid("planIdentifier", format!("no plan '{plan}'")))?;
    let rows = prices(conn, mode, plan).await?;
    // A default plan without prices is free at any period: subscribing to it means "fall back
    // to the free plan", whatever period the caller names.
    if rows.is_empty() && def.is_default {
        let charge_period = match period {
            Some(p) => ChargePeriod::parse(p).ok_or_else(|| {
                invalid(
                    "chargePeriod",
                    format!("must be one of {}", super::period::ALL_PERIODS),
                )
            })?,
            None => ChargePeriod::Monthly,
        };
        return Ok(PlanPrice {
            plan: def.identifier,
            plan_name: def.name,
            group: def.group,
            is_default: true,
            trial_days: def.trial_days,
            price_id: None,
            charge_period,
            amount_minor: 0,
            currency: "usd".into(),
        });
    }
    let row = match period {
        Some(p) => {
            ChargePeriod::parse(p).ok_or_else(|| {
                invalid(
                    "chargePeriod",
                    format!("must be one of {}", super::period::ALL_PERIODS),
                )
            })?;
            rows.into_iter()
                .find(|r| r.charge_period == p)
                .ok_or_else(|| invalid("chargePeriod", format!("plan '{plan}' has no {p} price")))?
        }
        None if rows.len() == 1 => rows
            .into_iter()
            .next()
            .ok_or_else(|| invalid("chargePeriod", "required"))?,
        None if rows.is_empty() && def.is_default => {
            return Ok(PlanPrice {
                plan: def.identifier,
                plan_name: def.name,
                group: def.group,
                is_default: true,
                trial_days: def.trial_days,
                price_id: None,
                charge_period: ChargePeriod::Monthly,
                amount_minor: 0,
                currency: "usd".into(),
            });
        }
        None => {
            return Err(invalid(
                "chargePeriod",
                format!("required: plan '{plan}' has several prices"),
            )
            .into());
        }
    };
    Ok(PlanPrice {
        plan: def.identifier,
        plan_name: def.name,
        group: def.group,
        is_default: def.is_default,
        trial_days: def.trial_days,
        charge_period: ChargePeriod::parse(&row.charge_period).unwrap_or(ChargePeriod::Monthly),
        price_id: Some(row.id),
        amount_minor: row.amount_minor,
        currency: row.currency,
    })
}

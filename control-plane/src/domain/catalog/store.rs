//! The catalog's tables — `features`, `plans`, `prices`, `plan_features` — and every statement
//! on them. Writes take the unit of work and record what a change means for customers; reads
//! take any connection.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use tollgate_shared::{FeatureType, Mode};

use crate::domain::catalog::model::{
    CatalogError, FeatureDef, FeatureView, GrantDef, GrantView, PlanDef, PlanPrice, PlanView,
    PriceDef, PriceRow, PriceView,
};
use crate::platform::db::Uow;
use crate::platform::db::uow::CatalogTouch;
use crate::platform::ids;
use crate::platform::period::ChargePeriod;
use crate::platform::validate::invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    Fail,
    Replace,
}

/// Creates or updates a feature. Returns whether anything changed.
pub async fn write_feature(
    uow: &mut Uow,
    mode: Mode,
    def: &FeatureDef,
    on_existing: OnExisting,
) -> Result<bool, CatalogError> {
    if let Some(existing) = feature_def(uow.conn(), mode, &def.identifier).await? {
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
    let now = uow.now();
    sql::query(
        "INSERT INTO features (mode, identifier, name, type, reset_period, created_at, event_name) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (mode, identifier) DO UPDATE SET name = excluded.name, reset_period = excluded.reset_period,
           event_name = excluded.event_name",
    )
    .bind(mode.as_str())
    .bind(&def.identifier)
    .bind(&def.name)
    .bind(def.feature_type.as_str())
    .bind(&def.reset_period)
    .bind(now)
    .bind(&def.event_name)
    .execute(uow.conn())
    .await?;
    // A new feature (or a new reset period) shows in every customer's list.
    uow.catalog_changed(mode, CatalogTouch::Everyone);
    Ok(true)
}

pub async fn feature_def(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<FeatureDef>, sqlx::Error> {
    let row = sql::query(
        "SELECT identifier, name, type, reset_period, event_name FROM features WHERE mode = $1 AND identifier = $2",
    )
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| feature_from_row(&r)).transpose()
}

fn feature_from_row(r: &sql::Row) -> Result<FeatureDef, sqlx::Error> {
    Ok(FeatureDef {
        identifier: r.try_get("identifier")?,
        name: r.try_get("name")?,
        feature_type: FeatureType::parse(&r.try_get::<String>("type")?)
            .unwrap_or(FeatureType::Boolean),
        reset_period: r.try_get("reset_period")?,
        event_name: r.try_get("event_name")?,
    })
}

/// The METER features of a mode that count reported events named `event_name`.
pub async fn meters_counting(
    conn: &mut Conn,
    mode: Mode,
    event_name: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sql::query(
        "SELECT identifier FROM features WHERE mode = $1 AND event_name = $2 AND type = 'METER' ORDER BY identifier",
    )
    .bind(mode.as_str())
    .bind(event_name)
    .scalars(conn)
    .await
}

/// Every feature of a mode, in identifier order (the order entitlements are listed in).
pub async fn features(conn: &mut Conn, mode: Mode) -> Result<Vec<FeatureDef>, sqlx::Error> {
    sql::query(
        "SELECT identifier, name, type, reset_period, event_name FROM features WHERE mode = $1 ORDER BY identifier",
    )
    .bind(mode.as_str())
    .fetch_all(conn)
    .await?
    .iter()
    .map(feature_from_row)
    .collect()
}

pub async fn feature_view(
    conn: &mut Conn,
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
        event_name: def.event_name,
    })
}

pub async fn list_features(
    conn: &mut Conn,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FeatureView>, i64), CatalogError> {
    let count: i64 = sql::query("SELECT COUNT(*) FROM features WHERE mode = $1")
        .bind(mode.as_str())
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(
        "SELECT identifier, name, type, reset_period, event_name FROM features WHERE mode = $1
         ORDER BY identifier LIMIT $2 OFFSET $3",
    )
    .bind(mode.as_str())
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let def = feature_from_row(r)?;
            Ok(FeatureView {
                identifier: def.identifier,
                name: def.name,
                feature_type: def.feature_type.as_str().to_owned(),
                reset_period: def.reset_period,
                event_name: def.event_name,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((items, count))
}

/// Creates or replaces a plan with its prices and grants. Price ids stay stable per charge
/// period across edits. Returns whether anything changed.
pub async fn write_plan(
    uow: &mut Uow,
    mode: Mode,
    def: &PlanDef,
    on_existing: OnExisting,
) -> Result<bool, CatalogError> {
    for (i, g) in def.grants.iter().enumerate() {
        if feature_def(uow.conn(), mode, &g.feature_id)
            .await?
            .is_none()
        {
            return Err(invalid(
                format!("features[{i}].featureId"),
                format!("no feature '{}'", g.feature_id),
            )
            .into());
        }
    }
    let existing = plan_def(uow.conn(), mode, &def.identifier).await?;
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
        let other: Option<String> = sql::query(
            "SELECT identifier FROM plans WHERE mode = $1 AND grp = $2 AND is_default = 1 AND identifier <> $3",
        )
        .bind(mode.as_str())
        .bind(&def.group)
        .bind(&def.identifier)
        .scalar_optional(uow.conn())
        .await?;
        if let Some(other) = other {
            return Err(CatalogError::Exists(format!(
                "group '{}' already has default plan '{other}'",
                def.group
            )));
        }
    }
    let now = uow.now();
    sql::query(
        "INSERT INTO plans (mode, identifier, public_key, name, grp, is_default, trial_days, created_at, modified_at,
           license_activation_limit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
         ON CONFLICT (mode, identifier) DO UPDATE SET name = excluded.name, grp = excluded.grp,
           is_default = excluded.is_default, trial_days = excluded.trial_days, modified_at = excluded.modified_at,
           license_activation_limit = excluded.license_activation_limit",
    )
    .bind(mode.as_str())
    .bind(&def.identifier)
    .bind(ids::new("plan"))
    .bind(&def.name)
    .bind(&def.group)
    .bind(i64::from(def.is_default))
    .bind(i64::from(def.trial_days))
    .bind(now)
    .bind(def.license_activation_limit)
    .execute(uow.conn())
    .await?;
    let kept: Vec<&str> = def
        .prices
        .iter()
        .map(|p| p.charge_period.as_str())
        .collect();
    let old_periods: Vec<String> =
        sql::query("SELECT charge_period FROM prices WHERE mode = $1 AND plan_identifier = $2")
            .bind(mode.as_str())
            .bind(&def.identifier)
            .scalars(uow.conn())
            .await?;
    for old in old_periods.iter().filter(|p| !kept.contains(&p.as_str())) {
        sql::query(
            "DELETE FROM prices WHERE mode = $1 AND plan_identifier = $2 AND charge_period = $3",
        )
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(old)
        .execute(uow.conn())
        .await?;
    }
    for (position, p) in def.prices.iter().enumerate() {
        sql::query(
            "INSERT INTO prices (id, mode, plan_identifier, charge_period, amount_minor, currency, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (mode, plan_identifier, charge_period)
             DO UPDATE SET amount_minor = excluded.amount_minor, currency = excluded.currency,
               position = excluded.position",
        )
        .bind(ids::new("price"))
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(p.charge_period.as_str())
        .bind(p.amount_minor)
        .bind(p.currency)
        .bind(position as i64)
        .execute(uow.conn())
        .await?;
    }
    sql::query("DELETE FROM plan_features WHERE mode = $1 AND plan_identifier = $2")
        .bind(mode.as_str())
        .bind(&def.identifier)
        .execute(uow.conn())
        .await?;
    for (position, g) in def.grants.iter().enumerate() {
        sql::query(
            "INSERT INTO plan_features (mode, plan_identifier, feature_identifier, has_access, usage_limit, position)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(mode.as_str())
        .bind(&def.identifier)
        .bind(&g.feature_id)
        .bind(i64::from(g.has_access))
        .bind(g.usage_limit)
        .bind(position as i64)
        .execute(uow.conn())
        .await?;
    }
    // Who is affected: a default plan's grants reach everyone without a subscription in its
    // group; any other plan's only its subscribers.
    let touches_defaults = def.is_default || existing.as_ref().is_some_and(|e| e.is_default);
    uow.catalog_changed(
        mode,
        if touches_defaults {
            CatalogTouch::Everyone
        } else {
            CatalogTouch::Plans(vec![def.identifier.clone()])
        },
    );
    Ok(true)
}

pub async fn plan_def(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<PlanDef>, sqlx::Error> {
    let Some(row) = sql::query(
        "SELECT identifier, name, grp, is_default, trial_days, license_activation_limit FROM plans WHERE mode = $1 AND identifier = $2",
    )
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
        .map(|p| {
            Ok(PriceDef {
                charge_period: ChargePeriod::parse(&p.charge_period).ok_or_else(|| {
                    sqlx::Error::Decode(
                        format!("price row: '{}' is not a charge period", p.charge_period).into(),
                    )
                })?,
                amount_minor: p.amount_minor,
                currency: p.currency,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let grants = grants(conn, mode, id).await?;
    Ok(Some(PlanDef {
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        group: row.try_get("grp")?,
        is_default: row.try_get::<i64>("is_default")? != 0,
        trial_days: u32::try_from(row.try_get::<i64>("trial_days")?).unwrap_or(0),
        prices,
        grants,
        license_activation_limit: row.try_get("license_activation_limit")?,
    }))
}

/// A plan's grants in definition order.
pub async fn grants(conn: &mut Conn, mode: Mode, plan: &str) -> Result<Vec<GrantDef>, sqlx::Error> {
    sql::query(
        "SELECT feature_identifier, has_access, usage_limit FROM plan_features
         WHERE mode = $1 AND plan_identifier = $2 ORDER BY position, feature_identifier",
    )
    .bind(mode.as_str())
    .bind(plan)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(GrantDef {
            feature_id: r.try_get("feature_identifier")?,
            has_access: r.try_get::<i64>("has_access")? != 0,
            usage_limit: r.try_get("usage_limit")?,
        })
    })
    .collect()
}

/// The default (free) plans of a mode: `(identifier, group)`.
pub async fn default_plans(
    conn: &mut Conn,
    mode: Mode,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sql::query(
        "SELECT identifier, grp FROM plans WHERE mode = $1 AND is_default = 1 ORDER BY identifier",
    )
    .bind(mode.as_str())
    .fetch_all_as(conn)
    .await
}

pub async fn prices(conn: &mut Conn, mode: Mode, plan: &str) -> Result<Vec<PriceRow>, sqlx::Error> {
    sql::query(
        "SELECT id, charge_period, amount_minor, currency FROM prices WHERE mode = $1 AND plan_identifier = $2
         ORDER BY position, id",
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

pub async fn plan_view(conn: &mut Conn, mode: Mode, id: &str) -> Result<PlanView, CatalogError> {
    let def = plan_def(conn, mode, id)
        .await?
        .ok_or_else(|| CatalogError::PlanNotFound(id.to_owned()))?;
    let public_key: String =
        sql::query("SELECT public_key FROM plans WHERE mode = $1 AND identifier = $2")
            .bind(mode.as_str())
            .bind(id)
            .scalar(&mut *conn)
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
        license_activation_limit: def.license_activation_limit,
    })
}

pub async fn list_plans(
    conn: &mut Conn,
    mode: Mode,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PlanView>, i64), CatalogError> {
    let count: i64 = sql::query("SELECT COUNT(*) FROM plans WHERE mode = $1")
        .bind(mode.as_str())
        .scalar(&mut *conn)
        .await?;
    let ids: Vec<String> = sql::query(
        "SELECT identifier FROM plans WHERE mode = $1 ORDER BY grp, identifier LIMIT $2 OFFSET $3",
    )
    .bind(mode.as_str())
    .bind(limit)
    .bind(offset)
    .scalars(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(plan_view(conn, mode, &id).await?);
    }
    Ok((out, count))
}

/// Resolves `plan` at `period` (or its only price when `period` is `None`), naming the field
/// at fault when either does not exist ([`PlanDef::price_at`] decides).
pub async fn resolve_price(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
    period: Option<&str>,
) -> Result<PlanPrice, CatalogError> {
    let def = plan_def(conn, mode, plan)
        .await?
        .ok_or_else(|| CatalogError::PlanNotFound(plan.to_owned()))?;
    let rows = prices(conn, mode, plan).await?;
    def.price_at(rows, period)
}

/// 4geeks' `plan_id`: a price id (`price_…`) or a public plan key (`plan_…`), resolved to
/// `(plan identifier, charge period if the id named one)`.
pub async fn plan_by_public_id(
    conn: &mut Conn,
    mode: Mode,
    public_id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    let by_price =
        sql::query("SELECT plan_identifier, charge_period FROM prices WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(public_id)
            .fetch_optional_as::<(String, String)>(&mut *conn)
            .await?;
    if let Some((plan, period)) = by_price {
        return Ok(Some((plan, Some(period))));
    }
    let by_key: Option<String> =
        sql::query("SELECT identifier FROM plans WHERE mode = $1 AND public_key = $2")
            .bind(mode.as_str())
            .bind(public_id)
            .scalar_optional(conn)
            .await?;
    Ok(by_key.map(|p| (p, None)))
}

/// The price id of `plan` at `period`, if it has one.
pub async fn price_id(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
    period: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql::query(
        "SELECT id FROM prices WHERE mode = $1 AND plan_identifier = $2 AND charge_period = $3",
    )
    .bind(mode.as_str())
    .bind(plan)
    .bind(period)
    .scalar_optional(conn)
    .await
}

/// The display name of a plan (its identifier when the plan is gone).
/// The activations a license key of `plan` allows; `None` when the plan grants no license.
pub async fn license_limit(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(
        sql::query(
            "SELECT license_activation_limit FROM plans WHERE mode = $1 AND identifier = $2",
        )
        .bind(mode.as_str())
        .bind(plan)
        .scalar_optional::<Option<i64>>(conn)
        .await?
        .flatten(),
    )
}

pub async fn plan_name(conn: &mut Conn, mode: Mode, plan: &str) -> Result<String, sqlx::Error> {
    Ok(
        sql::query("SELECT name FROM plans WHERE mode = $1 AND identifier = $2")
            .bind(mode.as_str())
            .bind(plan)
            .scalar_optional::<String>(conn)
            .await?
            .unwrap_or_else(|| plan.to_owned()),
    )
}

/// Every plan of a group, with prices and grants, in identifier order.
pub async fn plans_in_group(
    conn: &mut Conn,
    mode: Mode,
    group: &str,
) -> Result<Vec<PlanDef>, sqlx::Error> {
    let ids: Vec<String> =
        sql::query("SELECT identifier FROM plans WHERE mode = $1 AND grp = $2 ORDER BY identifier")
            .bind(mode.as_str())
            .bind(group)
            .scalars(&mut *conn)
            .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(def) = plan_def(conn, mode, &id).await? {
            out.push(def);
        }
    }
    Ok(out)
}

//! Compiling what a customer is entitled to (SPEC §6), always inside the transaction that
//! changed it, and recording the result for the edges.
//!
//! Granting subscriptions are those `trialing`, `active` or `past_due`; a group without one
//! falls back to its default plan. BOOLEAN features are granted if any plan grants them;
//! METER and CUSTOMIZABLE limits add up across groups, and any unlimited grant wins.

use std::collections::{BTreeMap, HashSet};

use sqlx::{Row, SqliteConnection};
use tollgate_shared::entitlement::Limit;
use tollgate_shared::sync::{Change, ModeDefaults};
use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType, Mode};

use crate::clock::rfc3339;
use crate::db::WriteTx;
use crate::sync::changelog;

pub const GRANTING: &str = "('trialing','active','past_due')";

struct Grant {
    has_access: bool,
    limit: Option<i64>,
    /// When the granting period ends (a METER's reset), if the grant comes from a subscription.
    period_end: Option<i64>,
}

async fn features(
    conn: &mut SqliteConnection,
    mode: Mode,
) -> Result<Vec<(String, FeatureType)>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT identifier, type FROM features WHERE mode = ? ORDER BY identifier")
            .bind(mode.as_str())
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let id: String = r.try_get("identifier").ok()?;
            let ty = FeatureType::parse(r.try_get("type").ok()?)?;
            Some((id, ty))
        })
        .collect())
}

async fn plan_grants(
    conn: &mut SqliteConnection,
    mode: Mode,
    plan: &str,
    period_end: Option<i64>,
    into: &mut BTreeMap<String, Vec<Grant>>,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT feature_identifier, has_access, usage_limit FROM plan_features WHERE mode = ? AND plan_identifier = ?",
    )
    .bind(mode.as_str())
    .bind(plan)
    .fetch_all(conn)
    .await?;
    for r in rows {
        into.entry(r.try_get("feature_identifier")?)
            .or_default()
            .push(Grant {
                has_access: r.try_get::<i64, _>("has_access")? != 0,
                limit: r.try_get("usage_limit")?,
                period_end,
            });
    }
    Ok(())
}

/// The default plans' entitlements: what a customer with no subscriptions gets.
pub async fn compile_defaults(
    conn: &mut SqliteConnection,
    mode: Mode,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let defaults: Vec<String> = sqlx::query_scalar(
        "SELECT identifier FROM plans WHERE mode = ? AND is_default = 1 ORDER BY identifier",
    )
    .bind(mode.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut grants = BTreeMap::new();
    for plan in &defaults {
        plan_grants(conn, mode, plan, None, &mut grants).await?;
    }
    let features = features(conn, mode).await?;
    Ok(combine(&features, &grants))
}

pub async fn compile_customer(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let subs = sqlx::query(&format!(
        "SELECT plan_identifier, grp, current_period_end FROM subscriptions
         WHERE mode = ? AND customer_id = ? AND status IN {GRANTING}"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut grants = BTreeMap::new();
    let mut covered = HashSet::new();
    for s in &subs {
        let grp: String = s.try_get("grp")?;
        covered.insert(grp);
        let plan: String = s.try_get("plan_identifier")?;
        plan_grants(
            conn,
            mode,
            &plan,
            s.try_get("current_period_end")?,
            &mut grants,
        )
        .await?;
    }
    let defaults =
        sqlx::query("SELECT identifier, grp FROM plans WHERE mode = ? AND is_default = 1")
            .bind(mode.as_str())
            .fetch_all(&mut *conn)
            .await?;
    for d in defaults {
        let grp: String = d.try_get("grp")?;
        if !covered.contains(&grp) {
            let plan: String = d.try_get("identifier")?;
            plan_grants(conn, mode, &plan, None, &mut grants).await?;
        }
    }
    let features = features(conn, mode).await?;
    Ok(combine(&features, &grants))
}

fn combine(
    features: &[(String, FeatureType)],
    grants: &BTreeMap<String, Vec<Grant>>,
) -> Vec<Entitlement> {
    features
        .iter()
        .map(|(id, ty)| {
            let granting: Vec<&Grant> = grants
                .get(id)
                .map(|g| g.iter().filter(|g| g.has_access).collect())
                .unwrap_or_default();
            let granted = !granting.is_empty();
            let limit = if granting.iter().any(|g| g.limit.is_none()) {
                Limit::Unlimited
            } else {
                Limit::Max(
                    granting
                        .iter()
                        .filter_map(|g| g.limit)
                        .fold(0i64, i64::saturating_add),
                )
            };
            match ty {
                FeatureType::Boolean => Entitlement {
                    feature_id: id.clone(),
                    feature_type: *ty,
                    has_access: granted,
                    usage_limit: Limit::NotApplicable,
                    current_usage: None,
                    remaining: None,
                    reset_at: None,
                    hard_limit: None,
                },
                FeatureType::Customizable => Entitlement {
                    feature_id: id.clone(),
                    feature_type: *ty,
                    has_access: granted,
                    usage_limit: limit,
                    current_usage: None,
                    remaining: None,
                    reset_at: None,
                    hard_limit: None,
                },
                FeatureType::Meter => {
                    // Usage reporting arrives with the usage-meter work; until then usage is 0.
                    let usage = 0i64;
                    let (has_access, remaining) = match limit {
                        Limit::Max(max) => (granted && usage < max, Some((max - usage).max(0))),
                        _ => (granted, None),
                    };
                    let reset_at = granting
                        .iter()
                        .filter_map(|g| g.period_end)
                        .min()
                        .map(rfc3339);
                    Entitlement {
                        feature_id: id.clone(),
                        feature_type: *ty,
                        has_access,
                        usage_limit: limit,
                        current_usage: Some(usage),
                        remaining,
                        reset_at,
                        hard_limit: Some(true),
                    }
                }
            }
        })
        .collect()
}

/// Recompiles each customer, stores the result and appends one change-log entry for them all.
pub async fn recompile(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    customer_ids: &[String],
) -> Result<(), sqlx::Error> {
    let mut changes = Vec::with_capacity(customer_ids.len());
    for customer_id in customer_ids {
        let entitlements = compile_customer(tx.conn(), mode, customer_id).await?;
        let json =
            serde_json::to_string(&entitlements).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let unchanged: Option<String> = sqlx::query_scalar(
            "SELECT entitlements FROM customer_entitlements WHERE mode = ? AND customer_id = ?",
        )
        .bind(mode.as_str())
        .bind(customer_id)
        .fetch_optional(tx.conn())
        .await?;
        if unchanged.as_deref() == Some(json.as_str()) {
            continue;
        }
        sqlx::query(
            "INSERT INTO customer_entitlements (mode, customer_id, entitlements, version) VALUES (?, ?, ?, 0)
             ON CONFLICT (mode, customer_id) DO UPDATE SET entitlements = excluded.entitlements",
        )
        .bind(mode.as_str())
        .bind(customer_id)
        .bind(&json)
        .execute(tx.conn())
        .await?;
        changes.push(Change::Customer(CustomerEntitlements {
            mode,
            customer_id: customer_id.clone(),
            entitlements,
        }));
    }
    changelog::append(tx, now, changes).await?;
    Ok(())
}

/// After a catalog edit: new defaults, and every known customer of the mode recompiled.
pub async fn recompile_mode(tx: &mut WriteTx, now: i64, mode: Mode) -> Result<(), sqlx::Error> {
    let entitlements = compile_defaults(tx.conn(), mode).await?;
    changelog::append(
        tx,
        now,
        vec![Change::Defaults(ModeDefaults { mode, entitlements })],
    )
    .await?;
    let customers: Vec<String> =
        sqlx::query_scalar("SELECT customer_id FROM customer_entitlements WHERE mode = ?")
            .bind(mode.as_str())
            .fetch_all(tx.conn())
            .await?;
    recompile(tx, now, mode, &customers).await
}

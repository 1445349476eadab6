//! Compiling what a customer is entitled to (SPEC §6), always inside the transaction that
//! changed it, and recording the result for the edges.
//!
//! Granting subscriptions are those `trialing`, `active` or `past_due`; a group without one
//! falls back to its default plan. BOOLEAN features are granted if any plan grants them;
//! METER and CUSTOMIZABLE limits add up across groups, and any unlimited grant wins.

use std::collections::BTreeMap;

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
}

/// A METER's state in its current window.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    usage: i64,
    reset_at: Option<i64>,
}

/// A customer's compiled entitlements and when they next change by themselves (a meter
/// window ending), so the billing clock can republish them then.
pub struct Compiled {
    pub entitlements: Vec<Entitlement>,
    pub next_change_at: Option<i64>,
}

struct Feature {
    id: String,
    ty: FeatureType,
    reset_period: Option<String>,
}

async fn features(conn: &mut SqliteConnection, mode: Mode) -> Result<Vec<Feature>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT identifier, type, reset_period FROM features WHERE mode = ? ORDER BY identifier",
    )
    .bind(mode.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Feature {
                id: r.try_get("identifier").ok()?,
                ty: FeatureType::parse(r.try_get("type").ok()?)?,
                reset_period: r.try_get("reset_period").ok()?,
            })
        })
        .collect())
}

async fn plan_grants(
    conn: &mut SqliteConnection,
    mode: Mode,
    plan: &str,
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
        plan_grants(conn, mode, plan, &mut grants).await?;
    }
    let features = features(conn, mode).await?;
    Ok(combine(&features, &grants, &BTreeMap::new()))
}

/// `real_now` is the server's time; a customer on a test clock is compiled at the clock's time.
pub async fn compile_customer(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<Compiled, sqlx::Error> {
    // Five queries, whatever the catalog's size: this runs inside every write that touches the
    // customer, usage reports included.
    let customer: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT c.created_at, t.frozen_time FROM customers c LEFT JOIN test_clocks t ON t.id = c.test_clock
         WHERE c.mode = ? AND c.customer_id = ?",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (created, now) = match customer {
        Some((created, frozen)) => (created, frozen.unwrap_or(real_now)),
        None => (real_now, real_now),
    };
    // The plans that grant: every granting subscription's, plus the default plan of each
    // group the customer has no granting subscription in.
    let rows = sqlx::query(&format!(
        "SELECT pf.feature_identifier, pf.has_access, pf.usage_limit FROM plan_features pf
         WHERE pf.mode = ?1 AND pf.plan_identifier IN (
           SELECT s.plan_identifier FROM subscriptions s WHERE s.mode = ?1 AND s.customer_id = ?2 AND s.status IN {GRANTING}
           UNION ALL
           SELECT p.identifier FROM plans p WHERE p.mode = ?1 AND p.is_default = 1 AND p.grp NOT IN (
             SELECT s.grp FROM subscriptions s WHERE s.mode = ?1 AND s.customer_id = ?2 AND s.status IN {GRANTING}))"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut grants: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    for r in rows {
        grants
            .entry(r.try_get("feature_identifier")?)
            .or_default()
            .push(Grant {
                has_access: r.try_get::<i64, _>("has_access")? != 0,
                limit: r.try_get("usage_limit")?,
            });
    }
    let features = features(conn, mode).await?;
    let mut meters = BTreeMap::new();
    if features.iter().any(|f| f.ty == FeatureType::Meter) {
        let billing = crate::usage::billing_windows(conn, mode, customer_id).await?;
        let counters: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT feature_id, window_start, value FROM usage_counters WHERE mode = ? AND customer_id = ?")
                .bind(mode.as_str())
                .bind(customer_id)
                .fetch_all(&mut *conn)
                .await?;
        for f in features.iter().filter(|f| f.ty == FeatureType::Meter) {
            let (start, end) = crate::usage::window_from(
                created,
                f.reset_period.as_deref(),
                billing.get(&f.id).copied(),
                now,
            );
            let usage = counters
                .iter()
                .find(|(id, s, _)| *id == f.id && *s == start)
                .map_or(0, |c| c.2);
            meters.insert(
                f.id.clone(),
                Meter {
                    usage,
                    reset_at: end,
                },
            );
        }
    }
    let next_change_at = meters.values().filter_map(|m| m.reset_at).min();
    Ok(Compiled {
        entitlements: combine(&features, &grants, &meters),
        next_change_at,
    })
}

fn combine(
    features: &[Feature],
    grants: &BTreeMap<String, Vec<Grant>>,
    meters: &BTreeMap<String, Meter>,
) -> Vec<Entitlement> {
    features
        .iter()
        .map(|Feature { id, ty, .. }| {
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
                    let meter = meters.get(id).copied().unwrap_or_default();
                    let usage = meter.usage;
                    let (has_access, remaining) = match limit {
                        Limit::Max(max) => (granted && usage < max, Some((max - usage).max(0))),
                        _ => (granted, None),
                    };
                    let reset_at = meter.reset_at.map(rfc3339);
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

/// Recompiles each customer, stores the result and appends one change-log entry for those
/// whose entitlements changed.
/// Returns each customer's entitlements as compiled, in `customer_ids` order.
pub async fn recompile(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    customer_ids: &[String],
) -> Result<Vec<Vec<Entitlement>>, sqlx::Error> {
    recompile_after(tx, now, mode, customer_ids, Vec::new()).await
}

/// [`recompile`], with `leading` changes put first in the same change-log entry.
async fn recompile_after(
    tx: &mut WriteTx,
    now: i64,
    mode: Mode,
    customer_ids: &[String],
    leading: Vec<Change>,
) -> Result<Vec<Vec<Entitlement>>, sqlx::Error> {
    let mut compiled_all = Vec::with_capacity(customer_ids.len());
    let mut changes = leading;
    changes.reserve(customer_ids.len());
    for customer_id in customer_ids {
        let Compiled {
            entitlements,
            next_change_at,
        } = compile_customer(tx.conn(), mode, customer_id, now).await?;
        let json =
            serde_json::to_string(&entitlements).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT entitlements FROM customer_entitlements WHERE mode = ? AND customer_id = ?",
        )
        .bind(mode.as_str())
        .bind(customer_id)
        .fetch_optional(tx.conn())
        .await?;
        sqlx::query(
            "INSERT INTO customer_entitlements (mode, customer_id, entitlements, version, next_change_at) VALUES (?, ?, ?, 0, ?)
             ON CONFLICT (mode, customer_id) DO UPDATE SET entitlements = excluded.entitlements,
               next_change_at = excluded.next_change_at",
        )
        .bind(mode.as_str())
        .bind(customer_id)
        .bind(&json)
        .bind(next_change_at)
        .execute(tx.conn())
        .await?;
        if stored.as_deref() != Some(json.as_str()) {
            changes.push(Change::Customer(CustomerEntitlements {
                mode,
                customer_id: customer_id.clone(),
                entitlements: entitlements.clone(),
            }));
        }
        compiled_all.push(entitlements);
    }
    if !changes.is_empty() && crate::webhooks::listening(tx, mode).await? {
        for change in &changes {
            if let Change::Customer(c) = change {
                let data = serde_json::json!({"customerId": c.customer_id, "entitlements": c.entitlements});
                crate::webhooks::emit(tx, mode, now, "entitlements.updated", data).await?;
            }
        }
    }
    changelog::append(tx, now, changes).await?;
    Ok(compiled_all)
}

/// After a catalog edit: new defaults, and every known customer of the mode recompiled.
/// New defaults and every customer land in one delta, so no edge serves new defaults next to
/// old customer bodies.
pub async fn recompile_mode(tx: &mut WriteTx, now: i64, mode: Mode) -> Result<(), sqlx::Error> {
    let entitlements = compile_defaults(tx.conn(), mode).await?;
    let customers: Vec<String> =
        sqlx::query_scalar("SELECT customer_id FROM customer_entitlements WHERE mode = ?")
            .bind(mode.as_str())
            .fetch_all(tx.conn())
            .await?;
    let defaults = vec![Change::Defaults(ModeDefaults { mode, entitlements })];
    recompile_after(tx, now, mode, &customers, defaults).await?;
    Ok(())
}

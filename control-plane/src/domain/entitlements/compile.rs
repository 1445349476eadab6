//! Gathers a customer's inputs — their clock, granting subscriptions, the plans' grants, the
//! catalog's features, their usage — from the stores that own them, and compiles.

use std::collections::HashMap;

use crate::platform::db::Conn;
use tollgate_shared::{Entitlement, FeatureType, Mode};

use crate::domain::entitlements::model;

use crate::domain::catalog::store as catalog;
use crate::domain::customers::store as customers;
use crate::domain::entitlements::model::{Compiled, Grants};
use crate::domain::subscriptions::store as subscriptions;
use crate::domain::usage::store as usage;
use crate::domain::usage::window::Window;

/// What a customer with no subscriptions gets: the default plans' entitlements.
pub async fn defaults(conn: &mut Conn, mode: Mode) -> Result<Vec<Entitlement>, sqlx::Error> {
    let mut grants = Grants::new();
    for (plan, _) in catalog::default_plans(conn, mode).await? {
        for g in catalog::grants(conn, mode, &plan).await? {
            grants.entry(g.feature_id.clone()).or_default().push(g);
        }
    }
    let features = catalog::features(conn, mode).await?;
    Ok(model::combine(&features, &grants, &Default::default()).entitlements)
}

/// Compiles one customer. `real_now` is the server's time; a customer on a test clock is
/// compiled at the clock's time.
pub async fn customer(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<Compiled, sqlx::Error> {
    let (created, now) = customers::clock(conn, mode, customer_id, real_now)
        .await?
        .unwrap_or((real_now, real_now));
    // An archived customer compiles to the default plans, whatever is left of their history.
    let subs = if customers::is_archived(conn, mode, customer_id).await? {
        Vec::new()
    } else {
        subscriptions::granting(conn, mode, customer_id).await?
    };
    // The plans that grant: every granting subscription's, plus the default plan of each
    // group the customer has no granting subscription in. A plan counts once.
    let mut plans: Vec<String> = Vec::new();
    for s in &subs {
        if !plans.contains(&s.plan) {
            plans.push(s.plan.clone());
        }
    }
    for (plan, group) in catalog::default_plans(conn, mode).await? {
        if !subs.iter().any(|s| s.group == group) && !plans.contains(&plan) {
            plans.push(plan);
        }
    }
    let mut by_plan = HashMap::new();
    let mut grants = Grants::new();
    for plan in &plans {
        let list = catalog::grants(conn, mode, plan).await?;
        for g in &list {
            grants
                .entry(g.feature_id.clone())
                .or_default()
                .push(g.clone());
        }
        by_plan.insert(plan.clone(), list);
    }
    let features = catalog::features(conn, mode).await?;
    let mut meters = Default::default();
    if features
        .iter()
        .any(|f| f.feature_type == FeatureType::Meter)
    {
        // BILLING_PERIOD meters follow the current period of the earliest-started granting
        // subscription that grants them (`subs` is ordered by period start).
        let mut billing: HashMap<String, Window> = HashMap::new();
        for s in &subs {
            for g in by_plan.get(&s.plan).into_iter().flatten() {
                if g.has_access {
                    billing
                        .entry(g.feature_id.clone())
                        .or_insert((s.period_start, s.period_end));
                }
            }
        }
        let counters = usage::counters(conn, mode, customer_id).await?;
        meters = model::meters(&features, created, now, &billing, &counters);
    }
    Ok(model::combine(&features, &grants, &meters))
}

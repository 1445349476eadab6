//! The entitlement rules as pure functions.

use std::collections::{BTreeMap, HashMap};

use tollgate_shared::entitlement::Limit;
use tollgate_shared::{Entitlement, FeatureType};

use crate::domain::catalog::model::{FeatureDef, GrantDef};
use crate::domain::usage::window::{Window, window_from};
use crate::platform::clock::rfc3339;

/// A METER's state in its current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meter {
    pub usage: i64,
    /// When the window ends; `None` never.
    pub reset_at: Option<i64>,
}

/// A customer's compiled entitlements and when they next change by themselves (a meter
/// window ending), so the billing clock can republish them then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub entitlements: Vec<Entitlement>,
    pub next_change_at: Option<i64>,
}

/// The grants that apply to a customer, by feature.
pub type Grants = BTreeMap<String, Vec<GrantDef>>;

/// The window of each METER feature and its usage there. `billing` is, per feature, the
/// current period of the (earliest started) granting subscription that grants it; `counters`
/// are `(feature, window_end, usage)`.
pub fn meters(
    features: &[FeatureDef],
    created: i64,
    now: i64,
    billing: &HashMap<String, Window>,
    counters: &[(String, i64, i64)],
) -> BTreeMap<String, Meter> {
    features
        .iter()
        .filter(|f| f.feature_type == FeatureType::Meter)
        .map(|f| {
            let (_, end) = window_from(
                created,
                f.reset_period.as_deref(),
                billing.get(&f.identifier).copied(),
                now,
            );
            let key = end.unwrap_or(crate::domain::usage::store::NEVER);
            let usage = counters
                .iter()
                .find(|(id, e, _)| *id == f.identifier && *e == key)
                .map_or(0, |c| c.2);
            (
                f.identifier.clone(),
                Meter {
                    usage,
                    reset_at: end,
                },
            )
        })
        .collect()
}

/// Every feature of the catalog as this customer sees it, in identifier order.
pub fn combine(
    features: &[FeatureDef],
    grants: &Grants,
    meters: &BTreeMap<String, Meter>,
) -> Compiled {
    let entitlements = features
        .iter()
        .map(|f| {
            let granting: Vec<&GrantDef> = grants
                .get(&f.identifier)
                .map(|g| g.iter().filter(|g| g.has_access).collect())
                .unwrap_or_default();
            let granted = !granting.is_empty();
            let limit = if granting.iter().any(|g| g.usage_limit.is_none()) {
                Limit::Unlimited
            } else {
                Limit::Max(
                    granting
                        .iter()
                        .filter_map(|g| g.usage_limit)
                        .fold(0i64, i64::saturating_add),
                )
            };
            let base = Entitlement {
                feature_id: f.identifier.clone(),
                feature_type: f.feature_type,
                has_access: granted,
                usage_limit: Limit::NotApplicable,
                current_usage: None,
                remaining: None,
                reset_at: None,
                hard_limit: None,
            };
            match f.feature_type {
                FeatureType::Boolean => base,
                FeatureType::Customizable => Entitlement {
                    usage_limit: limit,
                    ..base
                },
                FeatureType::Meter => {
                    let meter = meters.get(&f.identifier).copied().unwrap_or_default();
                    let mut e = Entitlement {
                        usage_limit: limit,
                        reset_at: meter.reset_at.map(rfc3339),
                        hard_limit: Some(true),
                        ..base
                    };
                    set_usage(&mut e, granted, meter.usage);
                    e
                }
            }
        })
        .collect();
    Compiled {
        entitlements,
        next_change_at: meters.values().filter_map(|m| m.reset_at).min(),
    }
}

fn set_usage(e: &mut Entitlement, granted: bool, usage: i64) {
    e.current_usage = Some(usage);
    match e.usage_limit {
        Limit::Max(max) => {
            e.has_access = granted && usage < max;
            e.remaining = Some((max - usage).max(0));
        }
        _ => {
            e.has_access = granted;
            e.remaining = None;
        }
    }
}

/// After a usage report only one meter moved: its entry changes, nothing else. Equal to
/// compiling from scratch, because grants (and so the limit) did not change — a limited
/// meter with no granting plan has a limit of 0 and stays without access.
pub fn patch_meter(list: &mut [Entitlement], feature_id: &str, usage: i64) -> bool {
    let Some(e) = list
        .iter_mut()
        .find(|e| e.feature_id == feature_id && e.feature_type == FeatureType::Meter)
    else {
        return false;
    };
    let granted = match e.usage_limit {
        Limit::Max(max) => max > 0 || e.has_access,
        _ => e.has_access,
    };
    set_usage(e, granted, usage);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(id: &str, t: FeatureType) -> FeatureDef {
        FeatureDef {
            identifier: id.into(),
            name: id.into(),
            feature_type: t,
            reset_period: (t == FeatureType::Meter).then(|| "BILLING_PERIOD".into()),
            event_name: None,
        }
    }

    fn grant(id: &str, access: bool, limit: Option<i64>) -> GrantDef {
        GrantDef {
            feature_id: id.into(),
            has_access: access,
            usage_limit: limit,
        }
    }

    fn grants(list: &[GrantDef]) -> Grants {
        let mut out = Grants::new();
        for g in list {
            out.entry(g.feature_id.clone()).or_default().push(g.clone());
        }
        out
    }

    #[test]
    fn spec_rules_as_a_table() {
        let features = [
            feature("api", FeatureType::Meter),
            feature("export", FeatureType::Boolean),
            feature("seats", FeatureType::Customizable),
        ];
        let meter = |usage| {
            BTreeMap::from([(
                "api".to_owned(),
                Meter {
                    usage,
                    reset_at: Some(100),
                },
            )])
        };
        // (grants, usage) → (api access, api remaining, export access, seats limit)
        type Expect = (bool, Option<i64>, bool, Limit);
        let cases: Vec<(Vec<GrantDef>, i64, Expect)> = vec![
            (vec![], 0, (false, Some(0), false, Limit::Max(0))),
            (
                vec![grant("api", true, Some(10))],
                3,
                (true, Some(7), false, Limit::Max(0)),
            ),
            (
                vec![grant("api", true, Some(10))],
                10,
                (false, Some(0), false, Limit::Max(0)),
            ),
            (
                vec![grant("api", true, Some(10)), grant("api", true, Some(5))],
                12,
                (true, Some(3), false, Limit::Max(0)),
            ),
            (
                vec![grant("api", true, None), grant("api", true, Some(5))],
                99,
                (true, None, false, Limit::Max(0)),
            ),
            (
                vec![grant("api", false, None)],
                0,
                (false, Some(0), false, Limit::Max(0)),
            ),
            (
                vec![
                    grant("export", true, None),
                    grant("seats", true, Some(5)),
                    grant("seats", true, Some(1)),
                ],
                0,
                (false, Some(0), true, Limit::Max(6)),
            ),
            (
                vec![grant("seats", true, None)],
                0,
                (false, Some(0), false, Limit::Unlimited),
            ),
        ];
        for (i, (g, usage, (api, remaining, export, seats))) in cases.into_iter().enumerate() {
            let c = combine(&features, &grants(&g), &meter(usage));
            let by = |id: &str| {
                c.entitlements
                    .iter()
                    .find(|e| e.feature_id == id)
                    .unwrap()
                    .clone()
            };
            assert_eq!(by("api").has_access, api, "row {i}");
            assert_eq!(by("api").remaining, remaining, "row {i}");
            assert_eq!(by("export").has_access, export, "row {i}");
            assert_eq!(by("seats").usage_limit, seats, "row {i}");
            assert_eq!(c.next_change_at, Some(100));
        }
    }

    #[test]
    fn patching_a_meter_equals_compiling_again() {
        let features = [
            feature("api", FeatureType::Meter),
            feature("x", FeatureType::Boolean),
        ];
        for g in [
            vec![grant("api", true, Some(10))],
            vec![grant("api", true, None)],
            vec![],
            vec![grant("api", false, Some(10))],
        ] {
            for (before, after) in [(0, 3), (3, 10), (10, 2), (9, 11), (5, 0)] {
                let meters = |usage| {
                    BTreeMap::from([(
                        "api".to_owned(),
                        Meter {
                            usage,
                            reset_at: Some(100),
                        },
                    )])
                };
                let mut patched = combine(&features, &grants(&g), &meters(before)).entitlements;
                assert!(patch_meter(&mut patched, "api", after));
                let fresh = combine(&features, &grants(&g), &meters(after)).entitlements;
                assert_eq!(patched, fresh, "{g:?} {before}→{after}");
            }
        }
        let mut list = combine(&features, &Grants::new(), &BTreeMap::new()).entitlements;
        assert!(!patch_meter(&mut list, "x", 1), "not a meter");
        assert!(!patch_meter(&mut list, "nope", 1));
    }
}

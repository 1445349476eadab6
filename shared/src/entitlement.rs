//! The compiled entitlement model. The control plane computes these (SPEC §6) and the edge
//! serves them verbatim, so the field names here *are* the public response shape.

use serde::{Deserialize, Serialize};

use crate::keys::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureType {
    Boolean,
    Meter,
    Customizable,
}

impl FeatureType {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Boolean => "BOOLEAN",
            FeatureType::Meter => "METER",
            FeatureType::Customizable => "CUSTOMIZABLE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "BOOLEAN" => Some(FeatureType::Boolean),
            "METER" => Some(FeatureType::Meter),
            "CUSTOMIZABLE" => Some(FeatureType::Customizable),
            _ => None,
        }
    }
}

/// One feature as a customer sees it. `usage_limit == None` with `has_access` means unlimited.
///
/// METER-only fields (`current_usage`, `remaining`, `reset_at`, `hard_limit`) are left out of
/// the JSON for other types, matching Kelviq's responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub feature_id: String,
    pub feature_type: FeatureType,
    pub has_access: bool,
    #[serde(default, skip_serializing_if = "skip_limit")]
    pub usage_limit: Limit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_usage: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<bool>,
}

/// A numeric grant. Serialized as a number, or `null` for unlimited; BOOLEAN features carry
/// [`Limit::NotApplicable`] and omit the field entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    #[default]
    NotApplicable,
    Unlimited,
    Max(i64),
}

fn skip_limit(limit: &Limit) -> bool {
    matches!(limit, Limit::NotApplicable)
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Max(n) => s.serialize_i64(*n),
            _ => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<i64>::deserialize(d)? {
            Some(n) => Limit::Max(n),
            None => Limit::Unlimited,
        })
    }
}

/// Everything one customer of one mode is entitled to, in feature-identifier order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEntitlements {
    pub mode: Mode,
    pub customer_id: String,
    pub entitlements: Vec<Entitlement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter() -> Entitlement {
        Entitlement {
            feature_id: "api-calls".into(),
            feature_type: FeatureType::Meter,
            has_access: true,
            usage_limit: Limit::Max(1000),
            current_usage: Some(45),
            remaining: Some(955),
            reset_at: Some("2026-12-01T00:00:00Z".into()),
            hard_limit: Some(true),
        }
    }

    #[test]
    fn boolean_entitlement_omits_meter_fields() {
        let e = Entitlement {
            feature_id: "export-data".into(),
            feature_type: FeatureType::Boolean,
            has_access: true,
            usage_limit: Limit::NotApplicable,
            current_usage: None,
            remaining: None,
            reset_at: None,
            hard_limit: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"featureId":"export-data","featureType":"BOOLEAN","hasAccess":true}"#
        );
    }

    #[test]
    fn unlimited_is_null_and_round_trips() {
        let mut e = meter();
        e.usage_limit = Limit::Unlimited;
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""usageLimit":null"#), "{json}");
        let back: Entitlement = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        let back: Entitlement =
            serde_json::from_str(&serde_json::to_string(&meter()).unwrap()).unwrap();
        assert_eq!(back, meter());
    }
}

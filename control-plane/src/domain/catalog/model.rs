//! Catalog request shapes (the catalog file uses the same ones), their validation, and views.

use serde::{Deserialize, Serialize};
use tollgate_shared::FeatureType;

use crate::platform::http::error::{DomainError, Failure};
use crate::platform::money::{Currency, format_amount, parse_amount};
use crate::platform::period::{ALL_PERIODS, ChargePeriod};
use crate::platform::schema::TextRules;
use crate::platform::validate::{Invalid, invalid};
use tollgate_shared::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("feature '{0}' not found")]
    FeatureNotFound(String),
    #[error("plan '{0}' not found")]
    PlanNotFound(String),
    /// The plan exists but has no price at the asked charge period.
    #[error("plan '{0}' has no {1} price")]
    PriceNotFound(String, String),
    #[error("{0}")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A feature. Keys may also be sent in snake_case.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureInput {
    /// 1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
    #[schema(example = "api-calls", format = "identifier")]
    pub identifier: String,
    /// 1-200 characters, not all blank.
    #[schema(min_length = 1, max_length = 200, format = "non-blank")]
    pub name: String,
    /// `BOOLEAN`, `METER` or `CUSTOMIZABLE`.
    #[serde(rename = "type")]
    #[schema(example = "METER", pattern = r"^(BOOLEAN|METER|CUSTOMIZABLE)$")]
    pub feature_type: String,
    /// METER only: `BILLING_PERIOD` (default), `DAILY`, `WEEKLY`, `MONTHLY` or `YEARLY`.
    #[serde(default)]
    #[schema(pattern = r"^(BILLING_PERIOD|DAILY|WEEKLY|MONTHLY|YEARLY)$")]
    pub reset_period: Option<String>,
    /// METER only: the meter counts reported events of this name (Kelviq's `report_event`),
    /// one per event, besides usage reported directly. 1-255 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, format = "non-blank")]
    pub event_name: Option<String>,
}

/// A plan with its prices and grants. Keys may also be sent in snake_case.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanInput {
    /// 1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit. Required to
    /// create a plan; when replacing one, the path's.
    #[serde(default)]
    #[schema(required = true, example = "team", format = "identifier")]
    pub identifier: String,
    /// 1-200 characters, not all blank.
    #[schema(min_length = 1, max_length = 200, format = "non-blank")]
    pub name: String,
    /// Plans of one group are alternatives to each other (default `default`); an identifier.
    #[serde(default)]
    #[schema(format = "identifier")]
    pub group: Option<String>,
    /// The plan every customer of the group has without a subscription; one per group.
    #[serde(default)]
    pub is_default: bool,
    /// 0-730.
    #[serde(default)]
    #[schema(maximum = 730)]
    pub trial_days: u32,
    /// At most one price per charge period, all in one currency; a default plan's are 0.
    #[serde(default)]
    #[schema(max_items = 8)]
    pub prices: Vec<PriceInput>,
    /// Each feature at most once; every one must exist in the catalog.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub features: Vec<GrantInput>,
    /// Each subscription to the plan is issued a license key allowing this many activations
    /// at once (1-10000); left out or `null`: no license.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub license_activation_limit: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceInput {
    /// `MONTHLY`, `YEARLY`, `ONE_TIME`, `WEEKLY`, `DAILY`, `THREE_MONTHS`, `SIX_MONTHS` or
    /// `TWENTY_EIGHT_DAYS`.
    #[schema(example = "MONTHLY", format = "charge-period")]
    pub charge_period: String,
    /// A decimal string in major units with no more decimals than the currency has, e.g.
    /// `"100.00"` (at most ten billion dollars).
    #[schema(example = "49.00", pattern = r"^[0-9]{1,9}(\.[0-9]{1,2})?$")]
    pub amount: String,
    /// A 3-letter ISO 4217 code.
    #[schema(example = "usd", format = "currency")]
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantInput {
    /// A feature of the catalog.
    #[schema(example = "api-calls", format = "identifier")]
    pub feature_id: String,
    /// Defaults to true: listing a feature on a plan grants it.
    #[serde(default)]
    pub has_access: Option<bool>,
    /// Missing or `null`: unlimited.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub usage_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDef {
    pub identifier: String,
    pub name: String,
    pub feature_type: FeatureType,
    pub reset_period: Option<String>,
    pub event_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceDef {
    pub charge_period: ChargePeriod,
    pub amount_minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantDef {
    pub feature_id: String,
    pub has_access: bool,
    pub usage_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDef {
    pub identifier: String,
    pub name: String,
    pub group: String,
    pub is_default: bool,
    pub trial_days: u32,
    pub prices: Vec<PriceDef>,
    pub grants: Vec<GrantDef>,
    pub license_activation_limit: Option<i64>,
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
    pub currency: Currency,
}

/// A price row as stored.
#[derive(Debug, Clone)]
pub struct PriceRow {
    pub id: String,
    pub charge_period: String,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// The one builder of prices for unit tests.
#[cfg(test)]
impl PlanPrice {
    /// `plan` (named after itself, in group `base`, no trial, not the default) at `amount`
    /// minor units of usd per `period`.
    pub fn test(plan: &str, period: ChargePeriod, amount: i64) -> PlanPrice {
        PlanPrice {
            plan: plan.into(),
            plan_name: plan.into(),
            group: "base".into(),
            is_default: false,
            trial_days: 0,
            price_id: None,
            charge_period: period,
            amount_minor: amount,
            currency: Currency::USD,
        }
    }
}

impl PlanDef {
    /// This plan's price at `period` (or its only price when `period` is `None`), from its
    /// stored `prices`; the error names the field at fault. A default plan without prices is
    /// free at any period.
    pub fn price_at(
        self,
        rows: Vec<PriceRow>,
        period: Option<&str>,
    ) -> Result<PlanPrice, CatalogError> {
        let def = self;
        let plan = def.identifier.clone();
        let plan = plan.as_str();
        let free = |charge_period: ChargePeriod, def: PlanDef| PlanPrice {
            plan: def.identifier,
            plan_name: def.name,
            group: def.group,
            is_default: true,
            trial_days: def.trial_days,
            price_id: None,
            charge_period,
            amount_minor: 0,
            currency: Currency::USD,
        };
        // A default plan without prices is free at any period: subscribing to it means "fall back
        // to the free plan", whatever period the caller names.
        if rows.is_empty() && def.is_default {
            let charge_period = match period {
                Some(p) => ChargePeriod::parse(p).ok_or_else(|| no_period(p))?,
                None => ChargePeriod::Monthly,
            };
            return Ok(free(charge_period, def));
        }
        let row = match period {
            Some(p) => {
                ChargePeriod::parse(p).ok_or_else(|| no_period(p))?;
                rows.into_iter()
                    .find(|r| r.charge_period == p)
                    .ok_or_else(|| CatalogError::PriceNotFound(plan.to_owned(), p.to_owned()))?
            }
            None if rows.len() == 1 => rows
                .into_iter()
                .next()
                .ok_or_else(|| invalid("chargePeriod", "required"))?,
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
            charge_period: ChargePeriod::parse(&row.charge_period).ok_or_else(|| {
                CatalogError::Db(sqlx::Error::Decode(
                    format!("price row: '{}' is not a charge period", row.charge_period).into(),
                ))
            })?,
            price_id: Some(row.id),
            amount_minor: row.amount_minor,
            currency: row.currency,
        })
    }
}

fn no_period(period: &str) -> Invalid {
    invalid(
        "chargePeriod",
        format!(
            "'{period}' is not one of {}",
            crate::platform::period::ALL_PERIODS
        ),
    )
}

/// What the document promises of an identifier ([`check_identifier`]).
pub const IDENTIFIER: TextRules = TextRules {
    marker: "identifier",
    min_length: None,
    max_length: None,
    pattern: Some(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
};

/// Identifiers end up in URLs and, at the edge, are matched byte-for-byte inside prepared
/// JSON, so they are limited to characters JSON never escapes.
pub fn check_identifier(field: &str, id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(invalid(field, "must be 1-200 characters"));
    }
    Ok(())
}

pub const RESET_PERIODS: &str = "BILLING_PERIOD, DAILY, WEEKLY, MONTHLY, YEARLY";

impl FeatureInput {
    pub fn validate(&self) -> Result<FeatureDef, Invalid> {
        check_identifier("identifier", &self.identifier)?;
        check_name("name", &self.name)?;
        let feature_type = FeatureType::parse(&self.feature_type)
            .ok_or_else(|| invalid("type", "must be one of BOOLEAN, METER, CUSTOMIZABLE"))?;
        let reset_period = match (feature_type, self.reset_period.as_deref()) {
            (FeatureType::Meter, None) => Some("BILLING_PERIOD".to_owned()),
            (FeatureType::Meter, Some(p)) if RESET_PERIODS.split(", ").any(|x| x == p) => {
                Some(p.to_owned())
            }
            (FeatureType::Meter, Some(_)) => {
                return Err(invalid(
                    "resetPeriod",
                    format!("must be one of {RESET_PERIODS}"),
                ));
            }
            (_, None) => None,
            (_, Some(_)) => return Err(invalid("resetPeriod", "only METER features reset")),
        };
        let event_name = match (feature_type, self.event_name.as_deref()) {
            (_, None) => None,
            (FeatureType::Meter, Some(e)) if !e.trim().is_empty() && e.chars().count() <= 255 => {
                Some(e.to_owned())
            }
            (FeatureType::Meter, Some(_)) => {
                return Err(invalid("eventName", "must be 1-255 characters"));
            }
            (_, Some(_)) => return Err(invalid("eventName", "only METER features count events")),
        };
        Ok(FeatureDef {
            identifier: self.identifier.clone(),
            name: self.name.clone(),
            feature_type,
            reset_period,
            event_name,
        })
    }
}

impl PlanInput {
    pub fn validate(&self) -> Result<PlanDef, Invalid> {
        check_identifier("identifier", &self.identifier)?;
        check_name("name", &self.name)?;
        let group = self.group.clone().unwrap_or_else(|| "default".to_owned());
        check_identifier("group", &group)?;
        if self.trial_days > 730 {
            return Err(invalid("trialDays", "must be between 0 and 730"));
        }
        let mut prices: Vec<PriceDef> = Vec::new();
        for (i, p) in self.prices.iter().enumerate() {
            let charge_period = ChargePeriod::parse(&p.charge_period).ok_or_else(|| {
                invalid(
                    format!("prices[{i}].chargePeriod"),
                    format!("must be one of {ALL_PERIODS}"),
                )
            })?;
            if prices.iter().any(|x| x.charge_period == charge_period) {
                return Err(invalid(
                    format!("prices[{i}].chargePeriod"),
                    "a plan has one price per charge period",
                ));
            }
            let currency = Currency::parse(&p.currency).ok_or_else(|| {
                invalid(
                    format!("prices[{i}].currency"),
                    "must be a 3-letter ISO 4217 code",
                )
            })?;
            let amount_minor = parse_amount(&p.amount, currency)
                .map_err(|e| invalid(format!("prices[{i}].amount"), e.to_string()))?;
            if prices
                .first()
                .is_some_and(|first| first.currency != currency)
            {
                return Err(invalid(
                    format!("prices[{i}].currency"),
                    "all prices of a plan share one currency",
                ));
            }
            if self.is_default && amount_minor > 0 {
                return Err(invalid(
                    format!("prices[{i}].amount"),
                    "a default (free) plan's prices must be 0",
                ));
            }
            prices.push(PriceDef {
                charge_period,
                amount_minor,
                currency,
            });
        }
        let mut grants: Vec<GrantDef> = Vec::new();
        for (i, g) in self.features.iter().enumerate() {
            check_identifier(&format!("features[{i}].featureId"), &g.feature_id)?;
            if grants.iter().any(|x| x.feature_id == g.feature_id) {
                return Err(invalid(format!("features[{i}].featureId"), "listed twice"));
            }
            if g.usage_limit.is_some_and(|l| l < 0) {
                return Err(invalid(
                    format!("features[{i}].usageLimit"),
                    "must be 0 or more, or null for unlimited",
                ));
            }
            grants.push(GrantDef {
                feature_id: g.feature_id.clone(),
                has_access: g.has_access.unwrap_or(true),
                usage_limit: g.usage_limit,
            });
        }
        if let Some(limit) = self.license_activation_limit
            && !(1..=10_000).contains(&limit)
        {
            return Err(invalid(
                "licenseActivationLimit",
                "must be between 1 and 10000, or null for no license",
            ));
        }
        Ok(PlanDef {
            identifier: self.identifier.clone(),
            name: self.name.clone(),
            group,
            is_default: self.is_default,
            trial_days: self.trial_days,
            prices,
            grants,
            license_activation_limit: self.license_activation_limit,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureView {
    pub identifier: String,
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: String,
    pub reset_period: Option<String>,
    /// The reported event a METER counts, if any.
    pub event_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    pub id: String,
    pub charge_period: String,
    pub amount: String,
    #[schema(value_type = String)]
    pub currency: Currency,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub feature_id: String,
    pub has_access: bool,
    pub usage_limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub identifier: String,
    pub name: String,
    pub group: String,
    pub is_default: bool,
    pub trial_days: u32,
    /// Public key for the 4geeks dialect.
    pub public_key: String,
    pub prices: Vec<PriceView>,
    pub features: Vec<GrantView>,
    /// Activations each issued license key allows; null when the plan grants no license.
    pub license_activation_limit: Option<i64>,
}

impl PriceView {
    pub fn new(id: String, charge_period: &str, amount_minor: i64, currency: Currency) -> Self {
        PriceView {
            id,
            charge_period: charge_period.to_owned(),
            amount: format_amount(amount_minor, currency),
            currency,
        }
    }
}

impl DomainError for CatalogError {
    fn failure(&self) -> Failure<'_> {
        match self {
            CatalogError::Invalid(_) => Failure::Kind(ErrorKind::BadRequest),
            CatalogError::FeatureNotFound(_)
            | CatalogError::PlanNotFound(_)
            | CatalogError::PriceNotFound(..) => Failure::Kind(ErrorKind::NotFound),
            CatalogError::Exists(_) => Failure::Kind(ErrorKind::Conflict),
            CatalogError::Db(error) => Failure::Database {
                context: "catalog",
                error,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<PlanDef, Invalid> {
        serde_json::from_str::<PlanInput>(json).unwrap().validate()
    }

    #[test]
    fn spec_example_plan_validates() {
        let def = plan(
            r#"{"identifier":"pro","name":"Pro","group":"base","isDefault":false,"trialDays":0,
            "prices":[{"chargePeriod":"MONTHLY","amount":"100.00","currency":"usd"}],
            "features":[{"featureId":"export-data","hasAccess":true},{"featureId":"api-calls","usageLimit":1000}]}"#,
        )
        .unwrap();
        assert_eq!(def.prices[0].amount_minor, 10_000);
        assert_eq!(def.grants[1].usage_limit, Some(1000));
        assert!(def.grants[1].has_access);
    }

    #[test]
    fn bad_plans_name_the_field() {
        let e = plan(r#"{"identifier":"p","name":"P","prices":[{"chargePeriod":"HOURLY","amount":"1","currency":"usd"}]}"#)
            .unwrap_err();
        assert_eq!(e.field, "prices[0].chargePeriod");
        let e = plan(r#"{"identifier":"p","name":"P","prices":[{"chargePeriod":"MONTHLY","amount":"1.001","currency":"usd"}]}"#)
            .unwrap_err();
        assert_eq!(e.field, "prices[0].amount");
        let e = plan(r#"{"identifier":"has space","name":"P"}"#).unwrap_err();
        assert_eq!(e.field, "identifier");
        let e =
            plan(r#"{"identifier":"p","name":"P","features":[{"featureId":"a","usageLimit":-1}]}"#)
                .unwrap_err();
        assert_eq!(e.field, "features[0].usageLimit");
    }
}

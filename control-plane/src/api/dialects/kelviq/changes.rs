//! `update` and `update/preview`: one body, one parser, one decision.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::idempotency::Idem;
use crate::api::settlement::{self, Waiting};
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::invoices::model::InvoiceView;
use crate::domain::subscriptions::lifecycle;
use crate::domain::subscriptions::lifecycle::{Proration, TrialEnd};
use crate::domain::subscriptions::model::SubscriptionView;
use crate::domain::subscriptions::preview::{FeatureQuantity, UpdateAsk, UpdatePreviewView};
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::{ApiJson, ApiPath};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::{Invalid, Quantity, check_len, invalid};

use crate::api::dialects::kelviq::parse_when;
use crate::platform::schema::CrossFieldRules;
use crate::platform::schema::TextRules;
use crate::workflows::update;
use serde_json::json;

/// One of Kelviq's `features` entries.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureQuantityRequest {
    /// A CUSTOMIZABLE feature the target plan grants.
    #[schema(example = "team-size", format = "identifier")]
    pub(crate) identifier: String,
    /// 1-10000; sets the subscription's quantity.
    #[schema(minimum = 1, maximum = 10000)]
    pub(crate) quantity: i64,
}

/// The plan to switch to. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    /// A plan of the subscription's group.
    #[schema(example = "pro", format = "identifier")]
    plan_identifier: String,
    /// One of the plan's price periods, e.g. `MONTHLY`.
    #[schema(example = "MONTHLY", format = "charge-period")]
    charge_period: String,
    /// 1-10000; unchanged when left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    /// `IMMEDIATE_CHARGE` (default), `PRORATE_NEXT_INVOICE` or `NO_PRORATION`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "proration")]
    proration_behavior: Option<String>,
    /// Deprecated spelling of `prorationBehavior` that older Kelviq SDKs send; used when
    /// `prorationBehavior` is absent.
    #[serde(default)]
    #[schema(deprecated)]
    probation_behaviour: Option<String>,
    /// Quantities of CUSTOMIZABLE features the target plan grants: they set the subscription's
    /// quantity, so they must agree with each other (and with `quantity`).
    #[serde(default)]
    #[schema(max_items = 64)]
    features: Option<Vec<FeatureQuantityRequest>>,
    /// `now` ends a trial now (the first period is charged now); an ISO 8601 time in the
    /// future (`2026-12-31 23:59:59`, UTC when it has no offset) makes the subscription trial
    /// on the target plan until then.
    #[serde(default)]
    #[schema(format = "trial-end")]
    trial_end: Option<String>,
    /// Accepted and ignored (Kelviq's fraud signal; there is no fraud screening here).
    #[serde(default)]
    #[schema(max_length = 64)]
    ip_address: Option<String>,
    /// Accepted and ignored: Tollgate has no offerings, pricing tables or rules.
    #[serde(default)]
    #[schema(max_length = 255)]
    offering_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(max_length = 255)]
    pricing_table_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(max_length = 255)]
    rule_id: Option<String>,
    /// `activate_on_payment` only. A change that must be paid is charged before anything
    /// changes (a declined card changes nothing), which is what it asks for.
    #[serde(default)]
    #[schema(pattern = "^activate_on_payment$")]
    payment_behavior: Option<String>,
}

impl CrossFieldRules for UpdateRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // Feature quantities set the subscription's quantity, so they must agree with each other
        // and with `quantity`: documented as one or the other, one feature (several that agree
        // are accepted too).
        vec![
            ("/not", json!({"required": ["quantity", "features"]})),
            ("/properties/features/maxItems", json!(1)),
            (
                "/properties/probationBehaviour/pattern",
                json!(Proration::RULES.pattern),
            ),
        ]
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResponse {
    subscription_id: String,
    subscription: SubscriptionView,
    /// The prorated invoice, when the change was charged (or credited) now.
    invoice: Option<InvoiceView>,
    /// `upgraded`, `downgrade_scheduled`, `cancel_scheduled`, `resumed`, `quantity_changed`,
    /// `trial_changed` or `no_op`.
    #[schema(value_type = String)]
    action: lifecycle::Action,
}

fn proration(field: &str, value: Option<&str>) -> Result<Proration, Invalid> {
    Proration::parse(value).ok_or_else(|| {
        invalid(
            field,
            format!("must be one of {}", Proration::NAMES.join(", ")),
        )
    })
}

/// Kelviq's `trialEnd`: `now`, or an ISO 8601 time (RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS`
/// without an offset, read as UTC, or a bare date).
fn trial_end(text: &str) -> Result<TrialEnd, Invalid> {
    if text == "now" {
        return Ok(TrialEnd::Now);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(TrialEnd::At(dt.with_timezone(&Utc).timestamp()));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(TrialEnd::At(dt.and_utc().timestamp()));
        }
    }
    parse_when("trialEnd", text).map(TrialEnd::At).map_err(|_| {
        invalid(
            "trialEnd",
            "must be 'now' or an ISO 8601 time such as '2026-12-31 23:59:59'",
        )
    })
}

/// What the document promises of `trialEnd`: `now`, or a date and time.
pub const TRIAL_END_RULES: TextRules = TextRules {
    marker: "trial-end",
    min_length: None,
    max_length: None,
    pattern: Some(
        r"^(now|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][01][0-9]:[0-5][0-9])?)$",
    ),
};

/// The body of `update` and `update/preview` as a validated [`UpdateAsk`].
fn ask_of(
    plan_identifier: String,
    charge_period: String,
    quantity: Option<i64>,
    proration_behavior: (&str, Option<&str>),
    trial: Option<&str>,
    features: Option<Vec<FeatureQuantityRequest>>,
) -> Result<UpdateAsk, Invalid> {
    check_len("planIdentifier", Some(&plan_identifier), 64)?;
    check_len("chargePeriod", Some(&charge_period), 32)?;
    let features = feature_quantities(features)?;
    Ok(UpdateAsk {
        plan_identifier,
        charge_period,
        quantity: Quantity::parse_opt("quantity", quantity)?.map(Quantity::get),
        proration: proration(proration_behavior.0, proration_behavior.1)?,
        trial_end: trial.map(trial_end).transpose()?,
        features,
    })
}

/// Kelviq's `features` entries (create, charge, update): at most 64.
pub(super) fn feature_quantities(
    features: Option<Vec<FeatureQuantityRequest>>,
) -> Result<Vec<FeatureQuantity>, Invalid> {
    let features = features.unwrap_or_default();
    if features.len() > 64 {
        return Err(invalid("features", "at most 64 entries"));
    }
    Ok(features
        .into_iter()
        .map(|f| FeatureQuantity {
            identifier: f.identifier,
            quantity: f.quantity,
        })
        .collect())
}

/// Change a subscription's plan.
///
/// PayKit's rules: an upgrade (a higher price, or the same plan on a longer period) switches
/// now with a prorated invoice; a downgrade is scheduled for the period's end; the current plan
/// resumes a pending change, and a new quantity updates in place. `trialEnd` changes the trial
/// now, whatever the direction.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/update",
    tag = "subscriptions",
    operation_id = "updateSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The changed subscription", body = UpdateResponse),
        (status = 400, description = "A field is invalid, or the plan is in another group", body = ErrorEnvelope),
        (status = 402, description = "The card on file was declined; nothing changed", body = ErrorEnvelope),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription's status does not allow a change", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> Result<Reply, ApiError> {
    let (field, behavior) = match (&req.proration_behavior, &req.probation_behaviour) {
        (Some(p), _) => ("prorationBehavior", Some(p.as_str())),
        (None, Some(p)) => ("probationBehaviour", Some(p.as_str())),
        (None, None) => ("prorationBehavior", None),
    };
    if let Some(p) = req.payment_behavior.as_deref()
        && p != "activate_on_payment"
    {
        return Err(invalid("paymentBehavior", "must be activate_on_payment").into());
    }
    check_len("ipAddress", req.ip_address.as_deref(), 64)?;
    check_len("offeringId", req.offering_id.as_deref(), 255)?;
    check_len("pricingTableId", req.pricing_table_id.as_deref(), 255)?;
    check_len("ruleId", req.rule_id.as_deref(), 255)?;
    let ask = ask_of(
        req.plan_identifier,
        req.charge_period,
        req.quantity,
        (field, behavior),
        req.trial_end.as_deref(),
        req.features,
    )?;
    let mode = caller.mode;
    let waiting = Waiting::default();
    let noted = waiting.clone();
    let first = state
        .writer
        .reply(claim.clone(), "update_subscription", async move |uow| {
            let updated = update::update(uow, mode, &id, &ask).await?;
            noted.note(uow);
            Ok(Reply::ok(&UpdateResponse {
                subscription_id: id.clone(),
                subscription: updated.subscription,
                invoice: updated.invoice,
                action: updated.applied.action,
            }))
        })
        .await;
    Ok(settlement::settle_then_views(&state, mode, claim, first, &waiting).await)
}

/// The body of `update/preview/`: the same fields as `update`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRequest {
    #[schema(example = "pro", format = "identifier")]
    plan_identifier: String,
    #[schema(example = "MONTHLY", format = "charge-period")]
    charge_period: String,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "proration")]
    proration_behavior: Option<String>,
    #[serde(default)]
    #[schema(max_items = 64)]
    features: Option<Vec<FeatureQuantityRequest>>,
    #[serde(default)]
    #[schema(format = "trial-end")]
    trial_end: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(max_length = 64)]
    ip_address: Option<String>,
}

impl CrossFieldRules for PreviewRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("/not", json!({"required": ["quantity", "features"]})),
            ("/properties/features/maxItems", json!(1)),
        ]
    }
}

/// Preview a subscription update.
///
/// What `update` with the same body would do, computed by the same decision and proration
/// code, without changing anything: the invoice it would make now (`invoice`, equal to the
/// one `update` returns), what is charged now, and the next invoice.
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/update/preview",
    tag = "subscriptions",
    operation_id = "previewSubscriptionUpdate",
    params(("id" = String, Path, description = "The subscription id")),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "What the update would do", body = UpdatePreviewView),
        (status = 400, description = "A field is invalid, or the plan is in another group", body = ErrorEnvelope),
        (status = 404, description = "No such subscription", body = ErrorEnvelope),
        (status = 409, description = "The subscription's status does not allow a change", body = ErrorEnvelope),
    )
)]
pub async fn preview_update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<UpdatePreviewView>, ApiError> {
    check_len("ipAddress", req.ip_address.as_deref(), 64)?;
    let ask = ask_of(
        req.plan_identifier,
        req.charge_period,
        req.quantity,
        ("prorationBehavior", req.proration_behavior.as_deref()),
        req.trial_end.as_deref(),
        req.features,
    )?;
    let mut conn = state.db.read().await?;
    let real_now = state.clock.unix();
    let p = update::preview_update(&mut conn, caller.mode, &id, &ask, real_now)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(UpdatePreviewView::new(&p)))
}

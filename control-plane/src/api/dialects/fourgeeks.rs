//! The 4geeks dialect (SPEC §4, seeds/4geeks-subscriptions-api.md): `/v1/subscriptions` with
//! snake_case fields, Basic auth, 4geeks' response envelopes and `count, current_page,
//! total_pages` pagination — mapped onto the same customers, checkout and lifecycle services.
//! Creating always goes through the hosted checkout (a pending subscription and a
//! `checkout_url`), as 4geeks does.

use crate::platform::db::sql::Conn;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_shared::{ErrorKind, Mode};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::catalog::model::CatalogError;
use crate::domain::catalog::model::PlanPrice;
use crate::domain::catalog::store::{plan_by_public_id, resolve_price};
use crate::domain::checkout::model::checkout_url;
use crate::domain::subscriptions::lifecycle::CancelAt;
use crate::domain::subscriptions::model::Status;
use crate::domain::subscriptions::model::SubscriptionError;
use crate::domain::subscriptions::store::{self as subscriptions, ByPrice, PriceListed};
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, RedirectUrl};
use crate::workflows::cancel as cancellation;
use crate::workflows::subscribe;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = FourGeeksCreateRequest)]
pub struct CreateRequest {
    /// A price id (`price_…`), a public plan key (`plan_…`, its only price), or a plan identifier.
    #[serde(default, rename = "planId")]
    #[schema(value_type = String, example = "sso-lifetime", format = "external-id")]
    plan_id: Option<Value>,
    /// An existing customer; when left out a guest customer is created.
    #[serde(default, rename = "customerId")]
    #[schema(value_type = Option<String>, example = "user-123", format = "external-id")]
    customer_id: Option<Value>,
    /// 1-10000 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<i64>,
    /// 0-730.
    #[serde(default, rename = "trialDays")]
    #[schema(maximum = 730)]
    trial_days: Option<u32>,
    /// Where the customer returns after checkout (absolute http/https).
    #[serde(default, rename = "returnUrl")]
    #[schema(value_type = String, example = "https://app.example.com/done", format = "http-url")]
    return_url: Option<Value>,
}

impl CrossFieldRules for CreateRequest {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        // Required, but read leniently (4geeks' own messages for a missing field).
        vec![("/required", json!(["planId", "returnUrl"]))]
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadRequest, message)
}

fn required_string(v: &Option<Value>, field: &str) -> ApiResult<String> {
    match v {
        None | Some(Value::Null) => Err(bad(format!("Missing required field: {field}"))),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(bad(format!("{field}: must be a non-empty string"))),
    }
}

/// Resolves 4geeks' `plan_id` onto a plan and period.
async fn resolve(conn: &mut Conn, mode: Mode, plan_id: &str) -> ApiResult<PlanPrice> {
    let (plan, period) = plan_by_public_id(conn, mode, plan_id)
        .await?
        .unwrap_or_else(|| (plan_id.to_owned(), None));
    resolve_price(conn, mode, &plan, period.as_deref())
        .await
        .map_err(|e| match e {
            // The request is well formed; the plan it names is ambiguous as the catalog stands
            // (several prices), so this is a conflict with state, not a malformed field.
            CatalogError::Invalid(i) if i.field == "chargePeriod" => ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "plan_id: plan '{plan}' has several prices; send one of its price ids (price_…)"
                ),
            ),
            CatalogError::Invalid(_) => bad(format!("plan_id: no plan or price '{plan_id}'")),
            other => ApiError::from(other),
        })
}

/// Create subscription (checkout link): a pending subscription and its hosted checkout URL.
#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "4geeks",
    operation_id = "fourgeeksCreateSubscription",
    request_body(content = CreateRequest, description = "snake_case: plan_id, customer_id, quantity, trial_days, return_url"),
    responses(
        (status = 201, description = "`{code, title, content, data:{subscription_id, checkout_url, test}}`"),
        (status = 400, description = "Missing or invalid field", body = ErrorEnvelope),
        (status = 409, description = "The customer already has a plan in this group, or `plan_id` names a plan with several prices (send a price id)", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<Reply, ApiError> {
    let plan_id = required_string(&req.plan_id, "plan_id")?;
    let return_url = required_string(&req.return_url, "return_url")?;
    let return_url = RedirectUrl::parse("return_url", &return_url, &state.config.redirect_hosts)?;
    let customer_id = match &req.customer_id {
        None | Some(Value::Null) => crate::platform::ids::new("cus"),
        Some(_) => required_string(&req.customer_id, "customer_id")?,
    };
    CustomerId::parse("customer_id", &customer_id)
        .map_err(|e| bad(format!("customer_id: {}", e.message)))?;
    if req.quantity.is_some_and(|q| !(1..=10_000).contains(&q)) {
        return Err(bad("quantity: must be between 1 and 10000"));
    }
    if req.trial_days.is_some_and(|d| d > 730) {
        return Err(bad("trial_days: must be between 0 and 730"));
    }
    let mode = caller.mode;
    let public_url = state.config.public_url.clone();
    Ok(state
        .writer
        .reply(claim, "fourgeeks_create", async move |uow| {
            let target = resolve(uow.conn(), mode, &plan_id).await?;
            if target.is_default {
                return Err(bad("plan_id: the free default plan needs no subscription"));
            }
            let (id, session) = subscribe::through_checkout(
                uow,
                mode,
                &customer_id,
                target,
                req.quantity,
                req.trial_days,
                &return_url,
            )
            .await?;
            Ok(Reply::created(&json!({
                "code": 201,
                "title": "Subscription created",
                "content": "Checkout URL generated. Redirect the customer to complete payment.",
                "data": {
                    "subscription_id": id,
                    "checkout_url": checkout_url(&public_url, &session),
                    "test": mode == Mode::Test,
                }
            })))
        })
        .await)
}

/// 4geeks' statuses: ours, with `incomplete` called `pending`.
fn status_name(status: &str) -> &str {
    if status == "incomplete" {
        "pending"
    } else {
        status
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    subscription_id: String,
    plan_id: Option<String>,
    customer_id: String,
    status: String,
    next_billing_date: Option<String>,
    test: bool,
}

fn summary(r: &PriceListed, mode: Mode) -> Summary {
    Summary {
        subscription_id: r.id.clone(),
        plan_id: r.price_id.clone(),
        customer_id: r.customer_id.clone(),
        next_billing_date: r
            .current_period_end
            .filter(|_| Status::parse(&r.status).is_some_and(Status::is_granting))
            .map(crate::platform::clock::date),
        status: status_name(&r.status).to_owned(),
        test: mode == Mode::Test,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    page: Option<u32>,
    page_size: Option<u32>,
    status: Option<String>,
    plan_id: Option<String>,
    test: Option<bool>,
}

/// List subscriptions: `{count, current_page, total_pages, results}`.
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "4geeks",
    operation_id = "fourgeeksListSubscriptions",
    params(ListQuery),
    responses(
        (status = 200, description = "`{count, current_page, total_pages, results:[{subscription_id, plan_id, customer_id, status, next_billing_date, test}]}`"),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let page = crate::platform::http::extract::Page::parse(q.page, q.page_size)?;
    let mode = caller.mode;
    // `test=false` with a test key (or `true` with a live one) asks for the other world: empty.
    let other_world = q.test.is_some_and(|t| t != (mode == Mode::Test));
    let status = q
        .status
        .as_deref()
        .map(|s| if s == "pending" { "incomplete" } else { s });
    let mut conn = state.db.read().await?;
    let (rows, count) = subscriptions::page_by_price(
        &mut conn,
        mode,
        ByPrice {
            status,
            price_id: q.plan_id.as_deref(),
            none: other_world,
        },
        page.limit(),
        page.offset(),
    )
    .await?;
    let results: Vec<Summary> = rows.iter().map(|r| summary(r, mode)).collect();
    let total_pages = (count + page.limit() - 1) / page.limit();
    Ok(Json(
        json!({"count": count, "current_page": page.page, "total_pages": total_pages, "results": results}),
    ))
}

/// Retrieve a subscription by id — or, for a public plan key (`plan_…`), list its subscriptions.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    tag = "4geeks",
    operation_id = "fourgeeksGetSubscription",
    params(("id" = String, Path, description = "A subscription id, or a public plan key `plan_…`")),
    responses(
        (status = 200, description = "The subscription, or an array of a plan's subscriptions"),
        (status = 404, description = "Subscription not found", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let mode = caller.mode;
    let mut conn = state.db.read().await?;
    if id.starts_with("plan_") {
        let plan = match plan_by_public_id(&mut conn, mode, &id).await? {
            Some((plan, None)) => plan,
            _ => return Err(ApiError::new(ErrorKind::NotFound, "Plan not found")),
        };
        let rows = subscriptions::on_plan_by_price(&mut conn, mode, &plan, 1000).await?;
        let items: Vec<Value> = rows
            .iter()
            .map(|r| summary(r, mode))
            .map(|s| json!({"subscription_id": s.subscription_id, "customer_id": s.customer_id, "status": s.status, "next_billing_date": s.next_billing_date, "test": s.test}))
            .collect();
        return Ok(Json(Value::Array(items)));
    }
    let row = subscriptions::by_price(&mut conn, mode, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "Subscription not found"))?;
    let s = summary(&row, mode);
    let rfc = |t: Option<i64>| t.map(crate::platform::clock::rfc3339);
    Ok(Json(json!({
        "subscription_id": s.subscription_id,
        "plan_id": s.plan_id,
        "customer_id": s.customer_id,
        "status": s.status,
        "current_period_start": rfc(row.current_period_start),
        "current_period_end": rfc(row.current_period_end),
        "next_billing_date": s.next_billing_date,
        "trial_end": rfc(row.trial_end),
        "created_at": rfc(Some(row.created_at)),
        "test": s.test,
    })))
}

/// Cancel a subscription now.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}",
    tag = "4geeks",
    operation_id = "fourgeeksCancelSubscription",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "`{code, title, content, subscription_id}`"),
        (status = 404, description = "Subscription not found", body = ErrorEnvelope),
        (status = 409, description = "Already canceled", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Reply, ApiError> {
    let mode = caller.mode;
    Ok(state
        .writer
        .reply(None, "fourgeeks_cancel", async move |uow| {
            cancellation::cancel(uow, mode, &id, CancelAt::Now)
                .await
                .map_err(|e| match e {
                    SubscriptionError::NotFound(_) => {
                        ApiError::new(ErrorKind::NotFound, "Subscription not found")
                    }
                    SubscriptionError::NotChangeable { status, .. } => ApiError::new(
                        ErrorKind::Conflict,
                        format!("Cancellation cannot be completed: the subscription is {status}"),
                    ),
                    other => ApiError::from(other),
                })?;
            Ok(Reply::ok(&json!({
                "code": 200,
                "title": "Subscription cancelled",
                "content": "The subscription has been successfully cancelled.",
                "subscription_id": id,
            })))
        })
        .await)
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, cancel))
}

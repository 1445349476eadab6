//! `/api/v1/customers/`: create (201), get, list, update, and customer tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_shared::token::{TokenClaims, mint};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::customers::model::METADATA_MAX_KEYS;
use crate::domain::customers::model::{CustomerView, NewCustomer, check_email, check_metadata};
use crate::domain::customers::store;
use crate::domain::test_clocks::store as test_clocks;
use crate::platform::clock::rfc3339;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath, ApiQuery, Page, Paginated, list_url};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::schema::CrossFieldRules;
use crate::platform::validate::{CustomerId, check_len, invalid};
use crate::workflows::customers;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A new customer. Every field is optional. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCustomer {
    /// Your id for the customer (1-255 characters); a `cus_…` id is generated when left out.
    #[serde(default)]
    #[schema(example = "user-123", format = "external-id")]
    customer_id: Option<String>,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: Option<String>,
    #[serde(default)]
    #[schema(example = "ada@example.com", format = "email-address")]
    email: Option<String>,
    /// A JSON object of at most 50 keys and 8 KiB, stored as given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Test mode: the id of a test clock this customer lives on (their subscriptions start,
    /// renew and are prorated at the clock's time).
    #[serde(default)]
    #[schema(example = "clock_01jexample", pattern = r"^clock_[A-Za-z0-9]{1,64}$")]
    test_clock: Option<String>,
}

impl CrossFieldRules for CreateCustomer {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![(
            "/properties/metadata/maxProperties",
            json!(METADATA_MAX_KEYS),
        )]
    }
}

/// Create a customer.
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    operation_id = "createCustomer",
    request_body(content = CreateCustomer, description = "Every field is optional; an empty body reads as `{}`"),
    responses(
        (status = 201, description = "The customer was created", body = CustomerView),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 409, description = "A customer with this `customerId` exists", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(input): ApiJson<CreateCustomer>,
) -> Result<Reply, ApiError> {
    let customer_id = match &input.customer_id {
        Some(id) => CustomerId::parse("customerId", id)?.into_string(),
        None => crate::platform::ids::new("cus"),
    };
    if let Some(email) = &input.email {
        check_email(email)?;
    }
    check_len("name", input.name.as_deref(), 200)?;
    let metadata = input
        .metadata
        .clone()
        .unwrap_or(Value::Object(Default::default()));
    check_metadata(&metadata)?;
    if input.test_clock.is_some() && caller.mode != tollgate_shared::Mode::Test {
        return Err(invalid("testClock", "test clocks exist in test mode only").into());
    }
    let mode = caller.mode;
    let key = customer_id.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), claim, "create_customer", async move |uow| {
            let created_at = match &input.test_clock {
                Some(clock) => test_clocks::frozen_time(uow.conn(), clock)
                    .await?
                    // A missing reference, like an unknown plan: 404.
                    .ok_or_else(|| {
                        ApiError::new(
                            tollgate_shared::ErrorKind::NotFound,
                            format!("testClock: test clock '{clock}' not found"),
                        )
                    })?,
                None => uow.now(),
            };
            let view = store::insert(
                uow,
                mode,
                NewCustomer {
                    customer_id: &customer_id,
                    name: input.name.as_deref(),
                    email: input.email.as_deref(),
                    metadata: &metadata,
                    test_clock: input.test_clock.as_deref(),
                    created_at,
                },
            )
            .await?;
            Ok(Reply::created(&view))
        })
        .await)
}

/// Get a customer.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{customer_id}",
    tag = "customers",
    operation_id = "getCustomer",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
) -> ApiResult<Json<CustomerView>> {
    let mut conn = state.db.read().await?;
    Ok(Json(
        store::get(&mut conn, caller.mode, &customer_id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only customers with exactly this email.
    #[param(max_length = 254)]
    email: Option<String>,
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Results per page, 1-100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// List customers.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    operation_id = "listCustomers",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of customers, newest first", body = Paginated<CustomerView>),
        (status = 400, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Paginated<CustomerView>>> {
    let page = Page::parse(q.page, q.page_size)?;
    let mut conn = state.db.read().await?;
    let (items, count) = store::list(
        &mut conn,
        caller.mode,
        q.email.as_deref(),
        page.limit(),
        page.offset(),
    )
    .await?;
    let base = list_url(
        &state.config.public_url,
        "/api/v1/customers/",
        &[("email", q.email.as_deref())],
    );
    Ok(Json(Paginated::new(items, count, page, &base)))
}

/// Changes to a customer; fields left out keep their value. Keys may also be sent in
/// snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCustomer {
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: Option<String>,
    #[serde(default)]
    #[schema(example = "ada@example.com", format = "email-address")]
    email: Option<String>,
    /// Replaces the stored metadata whole: a JSON object of at most 50 keys and 8 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

impl CrossFieldRules for UpdateCustomer {
    fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
        vec![(
            "/properties/metadata/maxProperties",
            json!(METADATA_MAX_KEYS),
        )]
    }
}

/// Update a customer.
///
/// Partial update: fields left out keep their value; `metadata` is replaced whole. PUT and
/// PATCH behave the same.
#[utoipa::path(
    method(patch, put),
    path = "/api/v1/customers/{customer_id}",
    tag = "customers",
    operation_id = "updateCustomer",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    request_body(content = UpdateCustomer, description = "Every field is optional; an empty body reads as `{}`"),
    responses(
        (status = 200, description = "The updated customer", body = CustomerView),
        (status = 400, description = "A field is invalid", body = ErrorEnvelope),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(input): ApiJson<UpdateCustomer>,
) -> Result<Reply, ApiError> {
    if let Some(email) = &input.email {
        check_email(email)?;
    }
    check_len("name", input.name.as_deref(), 200)?;
    if let Some(m) = &input.metadata {
        check_metadata(m)?;
    }
    let mode = caller.mode;
    let key = customer_id.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), None, "update_customer", async move |uow| {
            let view = store::update(
                uow,
                mode,
                &customer_id,
                input.name.as_deref(),
                input.email.as_deref(),
                input.metadata.as_ref(),
            )
            .await?;
            Ok(Reply::ok(&view))
        })
        .await)
}

/// Kelviq's answer to an archive.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveResponse {
    message: String,
    customer: CustomerView,
}

/// Archive a customer.
///
/// Kelviq's `DELETE`: the customer leaves lists and compiles to the default plans at the
/// edge; their subscriptions end now (`subscription.canceled`), and their invoices, refunds
/// and history stay readable. `GET` still answers (with `archived: true`); starting anything
/// new for them is a 409. Archiving an archived customer answers the same again.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{customer_id}",
    tag = "customers",
    operation_id = "archiveCustomer",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    responses(
        (status = 200, description = "The customer is archived", body = ArchiveResponse),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Reply, ApiError> {
    let mode = caller.mode;
    let key = customer_id.clone();
    Ok(state
        .writer
        .reply_for(Some(&key), None, "archive_customer", async move |uow| {
            let customer = customers::archive(uow, mode, &customer_id).await?;
            Ok(Reply::ok(&ArchiveResponse {
                message: "Customer archived successfully.".to_owned(),
                customer,
            }))
        })
        .await)
}

/// Options for a customer token. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// Lifetime in seconds, 60-86400 (default 3600).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 86400)]
    ttl_seconds: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    token: String,
    customer_id: String,
    expires_at: String,
}

/// Mint a customer token.
///
/// A short-lived token that reads this one customer's entitlements at the edge.
#[utoipa::path(
    post,
    path = "/api/v1/customers/{customer_id}/token",
    tag = "customers",
    operation_id = "createCustomerToken",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    request_body(content = TokenRequest, description = "Every field is optional; an empty body reads as `{}`"),
    responses(
        (status = 201, description = "A customer token (`ct_…`)", body = TokenResponse),
        (status = 400, description = "`ttlSeconds` is out of range", body = ErrorEnvelope),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn mint_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(input): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let ttl = input.ttl_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&ttl) {
        return Err(invalid("ttlSeconds", "must be between 60 and 86400").into());
    }
    let mut conn = state.db.read().await?;
    store::get(&mut conn, caller.mode, &customer_id).await?;
    let expires = state.clock.unix() + i64::from(ttl);
    let token = mint(
        &state.token_key,
        &TokenClaims {
            m: caller.mode,
            c: customer_id.clone(),
            e: expires,
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            customer_id,
            expires_at: rfc3339(expires),
        }),
    ))
}

/// Credit in one currency.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    /// Lower-case ISO 4217 code.
    #[schema(value_type = String)]
    currency: crate::platform::money::Currency,
    /// Decimal string in the currency's major unit ("12.50", "1000" for yen).
    amount: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalancesView {
    customer_id: String,
    /// One entry per currency with credit; a credit only ever pays invoices in its currency.
    balances: Vec<BalanceView>,
}

/// A customer's credit balance, per currency.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{customer_id}/balances",
    tag = "customers",
    operation_id = "getCustomerBalances",
    params(("customer_id" = String, Path, description = "The customer's `customerId`")),
    responses(
        (status = 200, description = "The customer's credit, per currency", body = BalancesView),
        (status = 404, description = "No such customer", body = ErrorEnvelope),
    )
)]
pub async fn balances(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<String>,
) -> ApiResult<Json<BalancesView>> {
    let mut conn = state.db.read().await?;
    // 404 for an unknown customer, as everywhere else.
    store::get(&mut conn, caller.mode, &customer_id).await?;
    let balances = store::balances(&mut conn, caller.mode, &customer_id)
        .await?
        .into_iter()
        .map(|(currency, minor)| BalanceView {
            amount: crate::platform::money::format_amount(minor, currency),
            currency,
        })
        .collect();
    Ok(Json(BalancesView {
        customer_id,
        balances,
    }))
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, archive))
        .routes(routes!(mint_token))
        .routes(routes!(balances))
}

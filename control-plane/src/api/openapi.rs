//! The OpenAPI document, generated from the code: handlers carry `#[utoipa::path]`, request
//! and response types derive `ToSchema`/`IntoParams`. [`ApiDoc`] describes every route of
//! `app::router` plus, under the `edge` tag, the entitlement reads that edge nodes serve
//! ([`EdgeApiDoc`]; the edge crate itself stays free of utoipa). `docs/openapi.json` is this
//! document, checked by a test.

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::platform::http::schema::ErrorEnvelope;

/// Request bodies above this are refused with 413 (the default of `--body-limit-bytes`).
const BODY_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate control plane",
        description = "Subscription billing with an entitlements edge.

**Authentication.** Send a secret key (`sk_test_…` or `sk_live_…`; the key decides the mode) \
as `Authorization: Bearer <key>`, or as HTTP Basic with the key as the username and an empty \
password. The sync stream takes an edge sync key (`esk_…`) the same way.

**Bodies.** JSON keys are camelCase as documented; their snake_case spellings \
(`plan_identifier` for `planIdentifier`) are accepted too. `metadata` objects are stored \
untouched. An empty body reads as `{}`.

**Paths** may end with a slash (`/api/v1/customers/`); it is ignored.

**Text** anywhere (body, query, path, form) must not contain the NUL character (`\\u0000`): \
it is refused with 400. Numbers written with a zero fraction (`3.0`) are read as integers.

**Errors** are `{\"error\":{\"code\",\"type\",\"message\"}}` (see `ErrorEnvelope`).

**Idempotency.** Every `POST` under `/api/v1/` takes an optional `Idempotency-Key` header: \
a retry with the same key and request replays the first response.

**Lists** take `page` (from 1) and `page_size` (1-100, default 10) and answer \
`{count, next, previous, results}`.

**Edge.** Operations tagged `edge` are served by edge nodes, not by the control plane."
    ),
    paths(
        crate::api::routes::customers::create,
        crate::api::routes::customers::list,
        crate::api::routes::customers::get,
        crate::api::routes::customers::balances,
        crate::api::routes::customers::update,
        crate::api::routes::customers::archive,
        crate::api::routes::customers::mint_token,
        crate::api::routes::catalog::create_feature,
        crate::api::routes::catalog::list_features,
        crate::api::routes::catalog::get_feature,
        crate::api::routes::catalog::create_plan,
        crate::api::routes::catalog::list_plans,
        crate::api::routes::catalog::get_plan,
        crate::api::routes::catalog::replace_plan,
        crate::api::routes::checkout::create,
        crate::api::routes::checkout::complete,
        crate::api::pages::checkout::show,
        crate::api::pages::checkout::pay,
        crate::api::routes::portal::create_session,
        crate::platform::http::hosted::stylesheet,
        crate::platform::http::hosted::icon,
        crate::api::pages::portal::show,
        crate::api::pages::portal::preview,
        crate::api::pages::portal::switch,
        crate::api::pages::portal::cancel,
        crate::api::pages::portal::resume,
        crate::api::pages::portal::card,
        crate::api::routes::subscriptions::list,
        crate::api::routes::subscriptions::get,
        crate::api::dialects::kelviq::create,
        crate::api::dialects::kelviq::update,
        crate::api::dialects::kelviq::preview_update,
        crate::api::dialects::kelviq::cancel,
        crate::api::dialects::kelviq::resume,
        crate::api::dialects::paykit::subscribe,
        crate::api::routes::licenses::activate,
        crate::api::routes::licenses::deactivate,
        crate::api::routes::licenses::validate,
        crate::api::routes::invoices::list,
        crate::api::routes::invoices::get,
        crate::api::dialects::kelviq::create_charge,
        crate::api::routes::refunds::create,
        crate::api::routes::refunds::list,
        crate::api::routes::refunds::get,
        crate::api::routes::refunds::transactions,
        crate::api::routes::invoices::attach_payment_method,
        crate::api::routes::invoices::list_payment_methods,
        crate::api::routes::invoices::detach_payment_methods,
        crate::api::routes::test_clocks::create,
        crate::api::routes::test_clocks::get,
        crate::api::routes::test_clocks::advance,
        crate::api::routes::usage::report,
        crate::api::dialects::kelviq::report_usage,
        crate::api::dialects::kelviq::report_event,
        crate::api::routes::webhooks::create,
        crate::api::routes::webhooks::list,
        crate::api::routes::webhooks::delete,
        crate::api::routes::webhooks::update,
        crate::api::routes::webhooks::deliveries,
        crate::api::dialects::fourgeeks::create,
        crate::api::dialects::fourgeeks::list,
        crate::api::dialects::fourgeeks::get,
        crate::api::dialects::fourgeeks::cancel,
        crate::api::routes::api_keys::create,
        crate::api::routes::api_keys::list,
        crate::api::routes::api_keys::revoke,
        crate::api::routes::sync::stream,
        crate::api::routes::ops::healthz,
        crate::api::routes::ops::readyz,
        crate::api::routes::ops::metrics,
        serve,
    ),
    components(schemas(ErrorEnvelope, crate::platform::http::schema::ErrorBody)),
    tags(
        (name = "customers", description = "Customers and customer tokens"),
        (name = "catalog", description = "Features and plans"),
        (name = "checkout", description = "Checkout sessions and the hosted checkout page"),
        (name = "subscriptions", description = "Subscriptions and their transitions"),
        (name = "portal", description = "The hosted customer portal: sessions (Kelviq's portal.create_session) and the pages they open"),
        (name = "invoices", description = "Invoices and their lines"),
        (name = "test-clocks", description = "Test clocks that drive renewals, trials and dunning"),
        (name = "refunds", description = "Refunds of paid invoices and charges, their credit notes, and the transactions list"),
        (name = "licenses", description = "License keys a plan grants, and their activations"),
        (name = "usage", description = "Usage reports for METER features"),
        (name = "webhooks", description = "Signed (Standard Webhooks) event deliveries: customer.created, checkout.completed, subscription.created|activated|updated|canceled|renewed|past_due, invoice.paid|payment_failed, entitlements.updated"),
        (name = "4geeks", description = "The 4geeks dialect: /v1/subscriptions, snake_case, 4geeks envelopes"),
        (name = "api-keys", description = "Secret, publishable and edge sync keys"),
        (name = "sync", description = "The stream edges read the control plane's state from"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
    security(("bearerAuth" = []), ("basicAuth" = [])),
    modifiers(&SecuritySchemes, &MergeEdge, &CommonResponses, &DistinctOperationIds)
)]
pub struct ApiDoc;

/// The edge's API, documented here because the edge crate does not depend on utoipa. The
/// handlers are in `edge/src/http.rs`; [`ApiDoc`] includes these paths under the `edge` tag.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate edge",
        description = "Entitlement reads, answered from memory by edge nodes."
    ),
    paths(edge::list_entitlements, edge::get_entitlement),
    tags((
        name = "edge",
        description = "Served by edge nodes (the `edge` binary), not by the control plane: send \
these requests to an edge's address. Authenticate with a publishable or secret key, or with a \
customer token (`ct_…`) from `POST /api/v1/customers/{customer_id}/token`."
    )),
    servers((url = "http://127.0.0.1:8081", description = "An edge node (default listen address)")),
    security(("bearerAuth" = []), ("basicAuth" = [])),
    modifiers(&SecuritySchemes)
)]
pub struct EdgeApiDoc;

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "getOpenApi",
    security(()),
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn serve() -> Json<serde_json::Value> {
    Json(document())
}

/// The control plane's OpenAPI document as served and published: [`ApiDoc`] plus the
/// [`Constraints`] attributes cannot state.
pub fn document() -> serde_json::Value {
    Constraints::apply(ApiDoc::openapi())
}

/// The edge's document (`control-plane openapi --edge`).
pub fn edge_document() -> serde_json::Value {
    Constraints::apply(EdgeApiDoc::openapi())
}

/// One feature as a customer sees it (`tollgate_shared::Entitlement`, Kelviq's shape).
/// `currentUsage`, `remaining`, `resetAt` and `hardLimit` appear for METER features only.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Entitlement {
    pub feature_id: String,
    pub feature_type: FeatureType,
    pub has_access: bool,
    /// The granted quantity; `null` means unlimited. Left out for BOOLEAN features.
    pub usage_limit: Option<i64>,
    pub current_usage: Option<i64>,
    pub remaining: Option<i64>,
    /// When the usage counter resets (RFC 3339).
    #[schema(format = DateTime)]
    pub reset_at: Option<String>,
    pub hard_limit: Option<bool>,
}

#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureType {
    Boolean,
    Meter,
    Customizable,
}

/// Everything one customer is entitled to, in feature-identifier order.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CustomerEntitlements {
    pub customer_id: String,
    pub entitlements: Vec<Entitlement>,
}

/// Which customer to read. Required with a publishable or secret key (`customer_id` is
/// accepted in its place); with a customer token it may be left out, and must name the
/// token's customer if given.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerParams {
    /// The customer's id; a customer the edge has not heard of gets the mode's defaults.
    #[param(rename = "customerId", min_length = 1, example = "user-123")]
    pub customer_id: String,
    /// The same as `customerId` (the later of the two wins).
    #[param(rename = "customer_id", min_length = 1)]
    pub customer_id_snake: Option<String>,
}

/// Narrows the list to one feature.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeatureParams {
    #[param(rename = "featureId")]
    pub feature_id: Option<String>,
    /// The same as `featureId`.
    #[param(rename = "feature_id")]
    pub feature_id_snake: Option<String>,
}

/// Documentation only: the edge serves these paths (`edge/src/http.rs`).
mod edge {
    use super::{CustomerEntitlements, CustomerParams, Entitlement, ErrorEnvelope, FeatureParams};

    /// Read a customer's entitlements.
    ///
    /// HEAD is answered too, and OPTIONS for CORS preflight.
    #[utoipa::path(
        get,
        path = "/api/v1/entitlements",
        tag = "edge",
        operation_id = "listEntitlements",
        params(
            CustomerParams,
            FeatureParams,
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer"),
        ),
        responses(
            (status = 200, description = "The customer's entitlements. A customer the edge has not \
heard of gets the mode's default plan.", body = CustomerEntitlements,
                headers(("ETag" = String, description = "Changes whenever the body does"))),
            (status = 304, description = "Unchanged since `If-None-Match`"),
            (status = 400, description = "`customerId` is missing", body = ErrorEnvelope),
            (status = 401, description = "Missing or invalid key or customer token", body = ErrorEnvelope),
            (status = 403, description = "An edge sync key, or a customer token for another customer", body = ErrorEnvelope),
            (status = 404, description = "`featureId` names no feature of the catalog", body = ErrorEnvelope),
            (status = 503, description = "The edge has not received its first snapshot yet", body = ErrorEnvelope),
        )
    )]
    #[allow(dead_code)]
    fn list_entitlements() {}

    /// Read one entitlement of a customer.
    ///
    /// HEAD is answered too, and OPTIONS for CORS preflight.
    #[utoipa::path(
        get,
        path = "/api/v1/entitlements/{featureId}",
        tag = "edge",
        operation_id = "getEntitlement",
        params(
            ("featureId" = String, Path, description = "The feature's identifier"),
            CustomerParams,
            ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer"),
        ),
        responses(
            (status = 200, description = "The one entitlement, unwrapped", body = Entitlement,
                headers(("ETag" = String, description = "Changes whenever the body does"))),
            (status = 304, description = "Unchanged since `If-None-Match`"),
            (status = 400, description = "`customerId` is missing", body = ErrorEnvelope),
            (status = 401, description = "Missing or invalid key or customer token", body = ErrorEnvelope),
            (status = 403, description = "An edge sync key, or a customer token for another customer", body = ErrorEnvelope),
            (status = 404, description = "No such feature in the catalog", body = ErrorEnvelope),
            (status = 503, description = "The edge has not received its first snapshot yet", body = ErrorEnvelope),
        )
    )]
    #[allow(dead_code)]
    fn get_entitlement() {}
}

/// `bearerAuth` and `basicAuth`: the same keys, sent either way.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <key>`. The control plane takes a secret key \
                         (`sk_…`), the sync stream an edge sync key (`esk_…`); edges take a \
                         publishable or secret key, or a customer token (`ct_…`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "HTTP Basic with the key (e.g. the secret key) as the username and an \
                         empty password.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds [`EdgeApiDoc`]'s paths, each with the edge's server so that tools send them there.
struct MergeEdge;

impl Modify for MergeEdge {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut edge = EdgeApiDoc::openapi();
        let servers = edge.servers.take();
        for item in edge.paths.paths.values_mut() {
            item.servers.clone_from(&servers);
        }
        doc.merge(edge);
    }
}

/// Responses and headers that middleware adds to whole groups of operations, so that each
/// handler only lists its own outcomes: 401/403 wherever a credential is needed, and for the
/// JSON API the idempotency header and errors (POST) and the body size limit.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let common = [
            (
                "BadRequest",
                "The request is malformed (JSON body, query string or `Idempotency-Key`)",
            ),
            (
                "Unauthorized",
                "The credential is missing, malformed or unknown",
            ),
            (
                "Forbidden",
                "The credential is of the wrong kind (e.g. a publishable key) or mode",
            ),
            (
                "IdempotencyInFlight",
                "A request with this `Idempotency-Key` is still being processed",
            ),
            (
                "IdempotencyMismatch",
                "This `Idempotency-Key` was used with a different request",
            ),
            (
                "ReferenceNotFound",
                "An object the request names (in its path or body) does not exist in this mode",
            ),
        ];
        for (name, description) in common {
            components
                .responses
                .insert(name.to_owned(), error_response(description).into());
        }
        let too_large = format!("The request body is over {} KiB", BODY_LIMIT / 1024);
        components.responses.insert(
            "PayloadTooLarge".to_owned(),
            error_response(&too_large).into(),
        );

        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let path = path.as_str();
            for (method, op) in operations(item) {
                if is_edge(op) {
                    continue;
                }
                if op.security.is_none() {
                    add_response(op, "401", "Unauthorized");
                    add_response(op, "403", "Forbidden");
                }
                if api && op.request_body.is_some() {
                    add_response(op, "413", "PayloadTooLarge");
                }
                // A query string or body that does not parse is a 400 on every operation.
                let has_query = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
                });
                if api && (has_query || op.request_body.is_some()) {
                    add_response(op, "400", "BadRequest");
                }
                // A body names other objects (a customer, a plan, a price, an invoice): one that
                // does not exist is a 404, like an unknown id in the path.
                if (api || path.starts_with("/v1/")) && op.request_body.is_some() {
                    add_response(op, "404", "ReferenceNotFound");
                }
                if api && method == "post" {
                    op.parameters
                        .get_or_insert_with(Vec::new)
                        .push(idempotency_header());
                    add_response(op, "400", "BadRequest");
                    add_response(op, "409", "IdempotencyInFlight");
                    add_response(op, "422", "IdempotencyMismatch");
                }
            }
        }
    }
}

/// One handler serving several methods would give them one operation id; ids must be
/// unique, so each gets its method appended (`updateCustomerPatch`, `updateCustomerPut`).
struct DistinctOperationIds;

impl Modify for DistinctOperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let mut ops: Vec<(&str, &mut Operation)> = operations(item).collect();
            let ids: Vec<Option<String>> =
                ops.iter().map(|(_, op)| op.operation_id.clone()).collect();
            for (i, (method, op)) in ops.iter_mut().enumerate() {
                let shared = ids.iter().filter(|id| **id == ids[i]).count() > 1;
                if let (true, Some(id)) = (shared, op.operation_id.as_mut()) {
                    let mut chars = method.chars();
                    id.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                    id.push_str(chars.as_str());
                }
            }
        }
    }
}

/// Constraints that attributes cannot state: "one of these fields is required", values taken
/// from the code's own lists (event types), alternatives of formats. Applied to the document as
/// JSON, so the schema says exactly what the handlers check (schemathesis holds us to it).
struct Constraints;

impl Constraints {
    /// `(schema, JSON Pointer inside it, value merged in there)`.
    fn patches() -> Vec<(&'static str, &'static str, serde_json::Value)> {
        use serde_json::json;
        let mut events: Vec<&str> = crate::platform::events::EventKind::ALL
            .map(crate::platform::events::EventKind::as_str)
            .to_vec();
        events.push("*");
        let ip = json!({"anyOf": [
            {"type": "string", "format": "ipv4"},
            {"type": "string", "format": "ipv6"},
            {"type": "null"}
        ]});
        vec![
            (
                "CreateCheckout",
                "",
                json!({"anyOf": [
                    {"required": ["customerId"], "properties": {"customerId": {"type": "string"}}},
                    {"required": ["email"], "properties": {"email": {"type": "string"}}}
                ]}),
            ),
            ("CreateCheckout", "/properties/ipAddress", ip),
            (
                "CreateEndpoint",
                "/properties/events/items",
                json!({"enum": events}),
            ),
            // Metadata-like objects: at most 50 keys (and 8 KiB, which a schema cannot say).
            (
                "CreateCustomer",
                "/properties/metadata/maxProperties",
                json!(50),
            ),
            (
                "UpdateCustomer",
                "/properties/metadata/maxProperties",
                json!(50),
            ),
            (
                "KelviqEventRequest",
                "/properties/properties/maxProperties",
                json!(50),
            ),
            (
                "ActivateRequest",
                "/properties/metadata/maxProperties",
                json!(50),
            ),
            // A custom amount comes with its currency, and only with it (null reads as absent).
            (
                "ChargeRequest",
                "/properties/customAmount/type",
                json!("number"),
            ),
            (
                "ChargeRequest",
                "/properties/currencyCode/type",
                json!("string"),
            ),
            (
                "ChargeRequest",
                "/dependentRequired",
                json!({"customAmount": ["currencyCode"], "currencyCode": ["customAmount"]}),
            ),
            // SPECIFIC_DATE needs its date.
            (
                "CancelRequest",
                "/if",
                json!({"properties": {"cancellationType": {"const": "SPECIFIC_DATE"}},
                       "required": ["cancellationType"]}),
            ),
            (
                "CancelRequest",
                "/then",
                json!({"required": ["cancellationDate"],
                       "properties": {"cancellationDate": {"type": "string"}}}),
            ),
            // Feature quantities set the subscription's quantity, so they must agree with each
            // other and with `quantity`: documented as one or the other, one feature (several
            // that agree are accepted too).
            (
                "UpdateRequest",
                "/not",
                json!({"required": ["quantity", "features"]}),
            ),
            ("UpdateRequest", "/properties/features/maxItems", json!(1)),
            (
                "PreviewRequest",
                "/not",
                json!({"required": ["quantity", "features"]}),
            ),
            ("PreviewRequest", "/properties/features/maxItems", json!(1)),
            (
                "UpdateRequest",
                "/properties/probationBehaviour/pattern",
                json!("^(IMMEDIATE_CHARGE|PRORATE_NEXT_INVOICE|NO_PRORATION)$"),
            ),
            // Exactly one of a delta and an absolute value (null reads as absent).
            (
                "UsageRequest",
                "/oneOf",
                json!([
                    {"required": ["quantity"], "properties": {"quantity": {"type": "integer"}}},
                    {"required": ["set"], "properties": {"set": {"type": "integer"}}}
                ]),
            ),
            // Required, but read leniently (4geeks' own messages for a missing field).
            (
                "FourGeeksCreateRequest",
                "/required",
                json!(["planId", "returnUrl"]),
            ),
            // `planId` is accepted as an alias.
            (
                "SubscribeRequest",
                "/required",
                json!(["customerId", "planIdentifier"]),
            ),
            (
                "SubscribeRequest",
                "/properties/planIdentifier/type",
                json!("string"),
            ),
        ]
    }
}

impl Constraints {
    fn apply(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
        let mut value = serde_json::to_value(doc).unwrap_or_default();
        // Replacing a plan takes its identifier from the path: its body is the plan without one.
        if let Some(plan) = value.pointer("/components/schemas/PlanInput").cloned()
            && let Some(put) = value.pointer_mut("/paths/~1api~1v1~1plans~1{identifier}/put/requestBody/content/application~1json/schema")
        {
            let mut replacement = plan;
            if let Some(props) = replacement.get_mut("properties").and_then(|p| p.as_object_mut()) {
                props.remove("identifier");
            }
            if let Some(required) = replacement.get_mut("required").and_then(|r| r.as_array_mut()) {
                required.retain(|r| r != "identifier");
            }
            *put = serde_json::json!({"$ref": "#/components/schemas/PlanReplacement"});
            if let Some(serde_json::Value::Object(schemas)) = value.pointer_mut("/components/schemas") {
                schemas.insert("PlanReplacement".to_owned(), replacement);
            }
        }
        let Some(schemas) = value.pointer_mut("/components/schemas") else {
            return value;
        };
        for (schema, pointer, patch) in Self::patches() {
            // The edge's document has only some of the schemas.
            let Some(root) = schemas.get_mut(schema) else {
                continue;
            };
            // A missing last key (e.g. `required`) is added to its parent.
            if root.pointer(pointer).is_none()
                && let Some((parent, key)) = pointer.rsplit_once('/')
                && let Some(serde_json::Value::Object(map)) = root.pointer_mut(parent)
            {
                map.insert(key.to_owned(), serde_json::Value::Null);
            }
            let Some(target) = root.pointer_mut(pointer) else {
                panic!("openapi constraint for {schema}{pointer}: no such property");
            };
            match (target, patch) {
                (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
                    // Alternatives of types replace the attribute's own type.
                    if from.contains_key("anyOf") && !pointer.is_empty() {
                        into.remove("type");
                    }
                    into.extend(from);
                }
                (target, patch) => *target = patch,
            }
        }
        value
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

fn is_edge(op: &Operation) -> bool {
    op.tags
        .as_ref()
        .is_some_and(|t| t.iter().any(|t| t == "edge"))
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

/// Adds a reference to a shared response unless the handler documents that status itself.
fn add_response(op: &mut Operation, status: &str, name: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
}

fn idempotency_header() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1-255 visible ASCII characters. A retry with the same key and request replays the \
             first response (with `Idempotent-Replayed: true`); the same key with another \
             request is a 422, and a retry while the first is running a 409. Responses with a \
             5xx status are not kept.",
        ))
        .schema(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    const REGENERATE: &str =
        "cargo run -q -p tollgate-control-plane -- openapi > docs/openapi.json";

    fn doc() -> Value {
        document()
    }

    /// Every `(method, path)` of the document, with the operation.
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&method.as_str())
                {
                    out.push((method.clone(), path.clone(), op));
                }
            }
        }
        out
    }

    fn is_edge(op: &Value) -> bool {
        op["tags"].as_array().unwrap().contains(&json!("edge"))
    }

    /// `(method, path)` of every route `app::router` registers, read from its source: the
    /// router is the one list of routes, so this cannot drift from it.
    fn router_routes() -> BTreeSet<(String, String)> {
        let src = include_str!("../app/mod.rs");
        let start = src.find("\nfn router(").expect("app.rs defines fn router");
        let body = &src[start..];
        let body = &body[..body.find("\n}\n").expect("fn router ends")];
        for unsupported in [".nest(", ".route_service(", ".nest_service("] {
            assert!(
                !body.contains(unsupported),
                "router uses {unsupported}; teach router_routes() about it"
            );
        }
        let mut routes = BTreeSet::new();
        for call in body.split(".route(").skip(1) {
            let args = until_close_paren(call);
            let (path, handlers) = args.split_once(',').unwrap();
            let path = match path.trim() {
                p if p.starts_with('"') => p.trim_matches('"').to_owned(),
                "tollgate_shared::sync::STREAM_PATH" => tollgate_shared::sync::STREAM_PATH.into(),
                "hosted::STYLESHEET_PATH" => crate::platform::http::hosted::STYLESHEET_PATH.into(),
                "hosted::ICON_PATH" => crate::platform::http::hosted::ICON_PATH.into(),
                other => panic!("route path `{other}`: teach router_routes() about it"),
            };
            let before = routes.len();
            for method in [
                "get", "post", "put", "patch", "delete", "head", "options", "trace",
            ] {
                if calls(handlers, method) {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
            assert!(routes.len() > before, "no method found for route {path}");
        }
        assert!(routes.len() >= 30, "found only {routes:?}");
        routes
    }

    /// `s` up to the parenthesis that closes the one opened just before it.
    fn until_close_paren(s: &str) -> &str {
        let mut depth = 1;
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 1 => return &s[..i],
                ')' => depth -= 1,
                _ => {}
            }
        }
        panic!("unbalanced parentheses in app.rs");
    }

    /// Whether `expr` calls the method-router function `name` (`get(…)`, `.post(…)`), as
    /// opposed to naming a handler such as `routes::get`.
    fn calls(expr: &str, name: &str) -> bool {
        let needle = format!("{name}(");
        expr.match_indices(&needle).any(|(i, _)| {
            expr[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
        })
    }

    #[test]
    fn every_route_is_documented() {
        let doc = doc();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .filter(|(_, _, op)| !is_edge(op))
            .map(|(method, path, _)| (method, path))
            .collect();
        let routes = router_routes();
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes in app.rs without an OpenAPI operation: {missing:?}; add #[utoipa::path] \
             to the handler and list it in ApiDoc's paths(...)"
        );
        let extra: Vec<_> = documented.difference(&routes).collect();
        assert!(
            extra.is_empty(),
            "documented operations that app.rs does not route: {extra:?}"
        );
    }

    #[test]
    fn edge_paths_are_merged_under_the_edge_tag() {
        let doc = doc();
        let edge: Vec<_> = operations(&doc)
            .into_iter()
            .filter(|(_, _, op)| is_edge(op))
            .map(|(method, path, _)| (method, path))
            .collect();
        assert_eq!(
            edge,
            [
                ("get".to_owned(), "/api/v1/entitlements".to_owned()),
                (
                    "get".to_owned(),
                    "/api/v1/entitlements/{featureId}".to_owned()
                ),
            ]
        );
        let routes = router_routes();
        for (method, path) in &edge {
            assert!(
                !routes.iter().any(|(_, p)| p == path),
                "{path} is routed by the control plane"
            );
            let item = &doc["paths"][path];
            assert_eq!(item["servers"][0]["url"], "http://127.0.0.1:8081", "{path}");
            let names: BTreeSet<&str> = item[method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(
                names.is_superset(&BTreeSet::from(["customerId", "customer_id"])),
                "{names:?}"
            );
        }
        let list = &doc["paths"]["/api/v1/entitlements"]["get"]["parameters"];
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"featureId") && names.contains(&"feature_id"),
            "{names:?}"
        );
        let tag = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "edge")
            .expect("an edge tag");
        assert!(tag["description"].as_str().unwrap().contains("edge nodes"));
        // The edge's document stands alone too, without the control plane's paths.
        let alone = serde_json::to_value(EdgeApiDoc::openapi()).unwrap();
        assert_eq!(alone["paths"].as_object().unwrap().len(), 2);
        assert!(alone["components"]["securitySchemes"]["bearerAuth"].is_object());
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = BTreeSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
        }
        assert!(seen.contains("updateCustomerPatch") && seen.contains("updateCustomerPut"));
    }

    #[test]
    fn responses_errors_and_security_are_described() {
        let doc = doc();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearerAuth"]["type"], "http");
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        assert_eq!(schemes["basicAuth"]["type"], "http");
        assert_eq!(schemes["basicAuth"]["scheme"], "basic");
        assert_eq!(
            doc["security"],
            json!([{"bearerAuth": []}, {"basicAuth": []}])
        );
        let responses = &doc["components"]["responses"];
        for (method, path, op) in operations(&doc) {
            let name = format!("{method} {path}");
            let statuses = op["responses"].as_object().unwrap();
            assert!(
                statuses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{name}: no success response"
            );
            let public = op["security"] == json!([{}]);
            if !public {
                assert!(
                    statuses.contains_key("401") && statuses.contains_key("403"),
                    "{name}"
                );
            }
            for (status, response) in statuses {
                let response = match response["$ref"].as_str() {
                    Some(r) => &responses[r.trim_start_matches("#/components/responses/")],
                    None => response,
                };
                assert!(response["description"].is_string(), "{name} {status}");
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                if let Some(schema) = response["content"].get("application/json") {
                    assert_eq!(
                        schema["schema"]["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{name} {status}"
                    );
                } else {
                    assert!(
                        response["content"]["text/html"].is_object(),
                        "{name} {status}: no body"
                    );
                }
            }
            if path.starts_with("/api/v1/") && method == "post" && !is_edge(op) {
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{name}"
                );
            }
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"].as_object().is_some_and(|c| !c.is_empty()),
                    "{name}"
                );
            }
        }
    }

    /// The documentation-only shapes name the same fields as the types that are serialized.
    #[test]
    fn documented_shapes_match_the_wire_types() {
        let doc = doc();
        let properties = |schema: &str| -> BTreeSet<String> {
            doc["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {schema}"))
                .keys()
                .cloned()
                .collect()
        };
        let keys =
            |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };

        let envelope = serde_json::to_value(tollgate_shared::ErrorEnvelope::new(
            tollgate_shared::ErrorKind::NotFound,
            "x",
        ))
        .unwrap();
        assert_eq!(properties("ErrorEnvelope"), keys(&envelope));
        assert_eq!(properties("ErrorBody"), keys(&envelope["error"]));

        let meter = tollgate_shared::Entitlement {
            feature_id: "api-calls".into(),
            feature_type: tollgate_shared::FeatureType::Meter,
            has_access: true,
            usage_limit: tollgate_shared::entitlement::Limit::Max(10),
            current_usage: Some(1),
            remaining: Some(9),
            reset_at: Some("2026-12-01T00:00:00Z".into()),
            hard_limit: Some(true),
        };
        assert_eq!(
            properties("Entitlement"),
            keys(&serde_json::to_value(&meter).unwrap())
        );
        let types: Vec<Value> = [
            tollgate_shared::FeatureType::Boolean,
            tollgate_shared::FeatureType::Meter,
            tollgate_shared::FeatureType::Customizable,
        ]
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
        assert_eq!(
            doc["components"]["schemas"]["FeatureType"]["enum"],
            json!(types)
        );
        let list = serde_json::to_value(tollgate_shared::CustomerEntitlements {
            mode: tollgate_shared::Mode::Test,
            customer_id: "c".into(),
            entitlements: vec![meter],
        })
        .unwrap();
        // The edge answers `{customerId, entitlements}`, without the mode.
        let mut wire = keys(&list);
        wire.remove("mode");
        assert_eq!(properties("CustomerEntitlements"), wire);

        let frame =
            tollgate_shared::sync::Frame::new(tollgate_shared::sync::FrameBody::Heartbeat {
                version: 1,
            });
        let frame = serde_json::to_value(frame).unwrap();
        assert_eq!(properties("SyncFrame"), keys(&frame));
        assert_eq!(properties("SyncFrameBody"), keys(&frame["frame"]));
    }

    #[test]
    fn docs_openapi_json_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap();
        let on_disk = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {path}: {e}; generate it with: {REGENERATE}"));
        assert!(
            on_disk.trim_end() == generated.trim_end(),
            "docs/openapi.json differs from the generated OpenAPI document; regenerate it \
             with: {REGENERATE}"
        );
    }
}

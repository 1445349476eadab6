//! What the OpenAPI document says beyond the operations: handlers carry `#[utoipa::path]` and
//! are listed once, in `api::router`, which merges their operations into [`ApiDoc`] (the info,
//! tags and security) and calls [`finish`]. Under the `edge` tag it adds the entitlement reads
//! that edge nodes serve ([`EdgeApiDoc`]; the edge crate itself stays free of utoipa).
//! `docs/openapi.json` is the document, checked by a test.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::api::dialects::kelviq::changes::TRIAL_END_RULES;
use crate::domain::catalog::model as catalog;
use crate::domain::customers::model as customers;
use crate::domain::portal::model as portal;
use crate::domain::subscriptions::lifecycle::Proration;
use crate::payments::test_cards::TestCard;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::money::Currency;
use crate::platform::period;
use crate::platform::schema::{CrossFieldRules, NON_BLANK, TextRules};
use crate::platform::validate::{CustomerId, DATE_OR_TIME, RedirectUrl};

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

**Read-your-writes.** Every successful write answers `Tollgate-Version: <n>`, the change-log \
version it committed; an edge asked for `minVersion=<n>` (or `Tollgate-Min-Version`) answers \
only once it has applied it (docs/entitlements-clients.md).

**Edge.** Operations tagged `edge` are served by edge nodes, not by the control plane."
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
        (name = "payments", description = "Payment intents: every charge asked of the processor, its status and attempts"),
        (name = "licenses", description = "License keys a plan grants, and their activations"),
        (name = "usage", description = "Usage reports for METER features"),
        (name = "webhooks", description = "Signed (Standard Webhooks) event deliveries: customer.created, checkout.completed, subscription.created|activated|updated|canceled|renewed|past_due, invoice.paid|payment_failed, entitlements.updated"),
        (name = "4geeks", description = "The 4geeks dialect: /v1/subscriptions, snake_case, 4geeks envelopes"),
        (name = "api-keys", description = "Secret, publishable and edge sync keys"),
        (name = "sync", description = "The stream edges read the control plane's state from"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
    security(("bearerAuth" = []), ("basicAuth" = []))
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

/// Completes the control plane's document once every route's operation is in it: the
/// security schemes, the edge's paths, the responses middleware adds, distinct operation ids,
/// and the constraints attributes cannot state.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    for modifier in [
        &SecuritySchemes as &dyn Modify,
        &MergeEdge,
        &CommonResponses,
        &DistinctOperationIds,
    ] {
        modifier.modify(&mut doc);
    }
    let mut value = Constraints::apply(doc);
    apply_text_rules(&mut value);
    value
}

/// Every validated text type whose rules fields ask for by `format` marker
/// (`platform::schema`).
const TEXT_RULES: [TextRules; 17] = [
    CustomerId::RULES,
    NON_BLANK,
    Proration::RULES,
    TestCard::TOKEN_RULES,
    TestCard::NUMBER_RULES,
    TestCard::EXPIRY_RULES,
    TestCard::CVC_RULES,
    portal::TOKEN_RULES,
    portal::SUBSCRIPTION_RULES,
    portal::PRICE_CHOICE_RULES,
    TRIAL_END_RULES,
    RedirectUrl::RULES,
    DATE_OR_TIME,
    Currency::RULES,
    period::RULES,
    catalog::IDENTIFIER,
    customers::EMAIL,
];

/// Replaces each `format` marker with its type's rules, anywhere in the document.
fn apply_text_rules(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let marker = map.get("format").and_then(|f| f.as_str());
            if let Some(rules) = TEXT_RULES.iter().find(|r| Some(r.marker) == marker) {
                map.remove("format");
                let limits = [
                    ("minLength", rules.min_length.map(serde_json::Value::from)),
                    ("maxLength", rules.max_length.map(serde_json::Value::from)),
                    ("pattern", rules.pattern.map(serde_json::Value::from)),
                ];
                for (key, limit) in limits {
                    if let Some(limit) = limit {
                        map.insert(key.to_owned(), limit);
                    }
                }
            }
            map.values_mut().for_each(apply_text_rules);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(apply_text_rules),
        _ => {}
    }
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
        let mut limited = error_response(
            "Too many requests from this address or with this credential \
             (`--rate-limit-per-ip`, `--rate-limit-per-key`); retry after `Retry-After` seconds",
        );
        limited.headers.insert(
            "Retry-After".to_owned(),
            utoipa::openapi::HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::Integer),
                )
                .description(Some("Seconds until a request may succeed"))
                .build(),
        );
        components
            .responses
            .insert("TooManyRequests".to_owned(), limited.into());
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
                if api || path.starts_with("/v1/") {
                    add_response(op, "429", "TooManyRequests");
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

/// Constraints that attributes cannot state, which each request type declares beside itself
/// ([`CrossFieldRules`]): "one of these fields is required", values taken from the code's own
/// lists (event types), alternatives of formats. Applied to the document as JSON under each
/// type's schema name, so the schema says exactly what the handlers check (schemathesis holds
/// us to it).
struct Constraints;

impl Constraints {
    /// `(schema, JSON Pointer inside it, value merged in there)`.
    fn patches() -> Vec<(String, &'static str, serde_json::Value)> {
        fn of<T: CrossFieldRules>(out: &mut Vec<(String, &'static str, serde_json::Value)>) {
            let name = T::name().into_owned();
            for (pointer, value) in T::cross_field_rules() {
                out.push((name.clone(), pointer, value));
            }
        }
        use crate::api::dialects::{fourgeeks, kelviq, paykit};
        use crate::api::routes::{checkout, customers, licenses, usage, webhooks};
        let mut out = Vec::new();
        of::<checkout::CreateCheckout>(&mut out);
        of::<webhooks::CreateEndpoint>(&mut out);
        of::<customers::CreateCustomer>(&mut out);
        of::<customers::UpdateCustomer>(&mut out);
        of::<kelviq::reporting::KelviqEventRequest>(&mut out);
        of::<licenses::ActivateRequest>(&mut out);
        of::<kelviq::charges::ChargeRequest>(&mut out);
        of::<kelviq::cancel::CancelRequest>(&mut out);
        of::<kelviq::changes::UpdateRequest>(&mut out);
        of::<kelviq::changes::PreviewRequest>(&mut out);
        of::<usage::UsageRequest>(&mut out);
        of::<fourgeeks::CreateRequest>(&mut out);
        of::<paykit::SubscribeRequest>(&mut out);
        out
    }
}

impl Constraints {
    fn apply(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
        let mut value = serde_json::to_value(doc).unwrap_or_default();
        // Replacing a plan takes its identifier from the path: its body is the plan without one.
        if let Some(plan) = value.pointer(&format!("/components/schemas/{}", <crate::domain::catalog::model::PlanInput as ToSchema>::name())).cloned()
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
            let Some(root) = schemas.get_mut(&schema) else {
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

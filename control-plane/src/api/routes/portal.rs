//! `POST /api/v1/portal/session/`: Kelviq's `portal.create_session`, as its SDKs call it
//! (`{"customerId"}` in, `{token, email, customerPortalUrl}` out).

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::idempotency::Idem;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::customers::store as customers;
use crate::domain::portal::model::{new_csrf, new_token, portal_url, token_hash};
use crate::domain::portal::store;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::CustomerId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Whose portal to open. Keys may also be sent in snake_case.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePortalSession {
    /// An existing customer's `customerId`.
    #[schema(min_length = 1, max_length = 255)]
    customer_id: String,
}

/// Kelviq's `CreatePortalSessionResponse`, plus when the link stops working.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalSessionCreated {
    /// The session's secret (`pts_test_…`): whoever holds it manages this customer's billing
    /// until it expires. Shown once, stored only hashed: absent from an idempotent replay
    /// (`Idempotent-Replayed: true`), which says so in `message`.
    #[schema(format = "portal-token")]
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// The customer's email; an empty string when they have none (Kelviq's SDK models
    /// require a string).
    email: String,
    /// The hosted portal page to send the customer to; it contains the token, so it is absent
    /// from an idempotent replay too.
    #[schema(format = "uri")]
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_portal_url: Option<String>,
    #[schema(format = DateTime)]
    expires_at: String,
    /// Only in an idempotent replay: why the token and URL are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// Create a customer portal session.
///
/// A short-lived link (`--portal-session-ttl-secs`, default 1 h) to the hosted portal, where the
/// customer sees their plan, next invoice and invoice history, switches plan under PayKit's
/// rules (an upgrade shows its proration before it is confirmed), cancels or resumes, and
/// replaces their card. A retry with the same `Idempotency-Key` answers the session without its
/// token and URL: the secret is never stored; create another session instead.
#[utoipa::path(
    post,
    path = "/api/v1/portal/session",
    tag = "portal",
    operation_id = "createPortalSession",
    request_body = CreatePortalSession,
    responses(
        (status = 201, description = "The session; send the customer to `customerPortalUrl`", body = PortalSessionCreated),
        (status = 400, description = "`customerId` is missing or malformed", body = ErrorEnvelope),
        (status = 401, description = "No or an unknown API key", body = ErrorEnvelope),
        (status = 403, description = "Not a secret key (`sk_…`)", body = ErrorEnvelope),
        (status = 404, description = "No such customer in the key's mode", body = ErrorEnvelope),
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreatePortalSession>,
) -> Result<Reply, ApiError> {
    let customer_id = CustomerId::parse("customerId", &req.customer_id)?;
    let mode = caller.mode;
    let ttl = state.config.portal_session_ttl_secs;
    let public_url = state.config.public_url.clone();
    let key = customer_id.as_str().to_owned();
    Ok(state
        .writer
        .reply_for(
            Some(&key),
            claim,
            "create_portal_session",
            async move |uow| {
                let customer = customers::get(uow.conn(), mode, customer_id.as_str()).await?;
                // Made inside the unit: a retried unit makes a new token, and only the one
                // whose row commits is ever shown.
                let token = new_token(mode);
                let expires_at = uow.now() + ttl;
                store::insert(
                    uow,
                    mode,
                    &customer.customer_id,
                    &token_hash(&token),
                    &new_csrf(),
                    expires_at,
                )
                .await?;
                let email = customer.email.unwrap_or_default();
                let expires = crate::platform::clock::rfc3339(expires_at);
                let replayed = PortalSessionCreated {
                    token: None,
                    email,
                    customer_portal_url: None,
                    expires_at: expires,
                    message: Some("a portal session's token is shown once; create a new session"),
                };
                Ok(Reply::created(&PortalSessionCreated {
                    customer_portal_url: Some(portal_url(&public_url, &token)),
                    token: Some(token),
                    message: None,
                    ..replayed.clone()
                })
                .with_redacted(&replayed))
            },
        )
        .await)
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_session))
}

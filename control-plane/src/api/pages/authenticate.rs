//! The hosted authentication page (`/pay/{intent}/authenticate`): where PayKit's
//! `requiredAction.url` and the checkout page send a customer whose card needs 3-D Secure.
//! With the test processor it is the bank's check itself: "Complete" confirms the payment
//! intent (the payments worker charges it), "Fail" fails it. The intent's id is the only
//! credential, as a checkout session's is for the checkout page.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api::settlement::{self, action_url};
use crate::api::state::AppState;
use crate::domain::checkout::store as checkout;
use crate::domain::payments::model::{ChargeOutcome, Decline, Intent, IntentStatus, Purpose};
use crate::domain::payments::store as intents;
use crate::platform::http::extract::ApiPath;
use crate::platform::http::hosted::{
    MessagePage, origin_of, render_with_stripe, render_with_targets,
};
use crate::platform::money::format_amount;
use crate::workflows::settle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Template)]
#[template(path = "authenticate.html")]
struct AuthenticatePage {
    amount: String,
    action: String,
    /// Set when the payment is at Stripe: Stripe.js runs the bank's step.
    stripe: Option<StripeStep>,
}

struct StripeStep {
    publishable_key: String,
    client_secret: String,
    js_url: String,
}

fn not_found() -> Response {
    MessagePage::new("Not found", "not-found", "This payment does not exist")
        .respond(StatusCode::NOT_FOUND)
}

async fn load(state: &AppState, id: &str) -> Option<Intent> {
    let mut conn = state.db.read().await.ok()?;
    intents::find(&mut conn, id).await.ok().flatten()
}

/// Where the customer goes once the payment is settled: the checkout's `successUrl` when it
/// paid a checkout.
async fn onward(state: &AppState, intent: &Intent) -> Option<String> {
    let Purpose::Start {
        checkout_session: Some(session),
        ..
    } = &intent.purpose
    else {
        return None;
    };
    let mut conn = state.db.read().await.ok()?;
    let session = checkout::load(&mut conn, session).await.ok().flatten()?;
    Some(session.success_redirect())
}

async fn settled_page(state: &AppState, intent: &Intent) -> Response {
    match intent.status {
        IntentStatus::Succeeded => match onward(state, intent).await {
            Some(url) => (StatusCode::SEE_OTHER, [(LOCATION, url)]).into_response(),
            None => MessagePage::new("Paid", "done", "Payment complete").respond(StatusCode::OK),
        },
        IntentStatus::Failed | IntentStatus::Canceled => {
            let reason = intent
                .last_error
                .clone()
                .unwrap_or_else(|| Decline::CardDeclined.to_string());
            MessagePage::new("Not paid", "failed", "The payment did not go through")
                .text(&reason)
                .respond(StatusCode::PAYMENT_REQUIRED)
        }
        IntentStatus::Processing => MessagePage::new("Processing", "processing", "Processing")
            .text("Your payment is being processed. Refresh this page in a moment.")
            .link(&action_url(&state.config.public_url, &intent.id), "Refresh")
            .respond(StatusCode::ACCEPTED),
        IntentStatus::RequiresAction => page(state, intent).await,
    }
}

async fn page(state: &AppState, intent: &Intent) -> Response {
    let action = action_url(&state.config.public_url, &intent.id);
    let targets: Vec<String> = origin_of(&state.config.public_url).into_iter().collect();
    let stripe = match (
        state.payments.processors.stripe(intent.mode),
        intent.processor.as_str(),
        intent.processor_ref.as_deref(),
    ) {
        (Some(stripe), "stripe", Some(reference)) => match stripe.client_secret(reference).await {
            Ok(Some(secret)) => Some((stripe, secret)),
            _ => {
                return MessagePage::new("Try again", "error-page", "Something went wrong")
                    .text("Stripe cannot be reached right now. Refresh this page in a moment.")
                    .respond(StatusCode::SERVICE_UNAVAILABLE);
            }
        },
        _ => None,
    };
    let amount = format!(
        "{} {}",
        format_amount(intent.amount_minor, intent.currency),
        intent.currency.upper()
    );
    match stripe {
        Some((stripe, client_secret)) => {
            let config = stripe.config();
            let origins = config.script_origins();
            let page = AuthenticatePage {
                amount,
                action,
                stripe: Some(StripeStep {
                    publishable_key: config.publishable_key.clone().unwrap_or_default(),
                    client_secret,
                    js_url: config.js_url.clone(),
                }),
            };
            render_with_stripe(StatusCode::OK, &page, &targets, &origins)
        }
        None => render_with_targets(
            StatusCode::OK,
            &AuthenticatePage {
                amount,
                action,
                stripe: None,
            },
            &targets,
        ),
    }
}

/// The authentication page.
///
/// Shows the amount and the 3-D Secure step of a payment intent that requires action; a
/// settled one shows where it went.
#[utoipa::path(
    get,
    path = "/pay/{intent_id}/authenticate",
    tag = "payments",
    operation_id = "showAuthenticationPage",
    security(()),
    params(("intent_id" = String, Path, description = "The payment intent id (`pi_…`)")),
    responses(
        (status = 200, description = "The authentication step", body = String, content_type = "text/html"),
        (status = 303, description = "Already paid: on to the checkout's `successUrl`"),
        (status = 402, description = "The payment failed", body = String, content_type = "text/html"),
        (status = 404, description = "No such payment", body = String, content_type = "text/html"),
    )
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Response {
    match load(&state, &id).await {
        Some(intent) => settled_page(&state, &intent).await,
        None => not_found(),
    }
}

/// Complete or fail the authentication.
///
/// `outcome=complete` confirms the payment (the processor then charges it); `outcome=fail`
/// fails it. Either way the page waits for the payment to settle, then goes on.
#[utoipa::path(
    post,
    path = "/pay/{intent_id}/authenticate",
    tag = "payments",
    operation_id = "authenticatePayment",
    security(()),
    params(("intent_id" = String, Path, description = "The payment intent id (`pi_…`)")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`outcome=complete` or `outcome=fail`"),
    responses(
        (status = 303, description = "Paid: on to the checkout's `successUrl`"),
        (status = 200, description = "Paid, or still waiting for the customer", body = String, content_type = "text/html"),
        (status = 400, description = "`outcome` is neither `complete` nor `fail`", body = String, content_type = "text/html"),
        (status = 402, description = "The payment failed", body = String, content_type = "text/html"),
        (status = 404, description = "No such payment", body = String, content_type = "text/html"),
    )
)]
pub async fn authenticate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> =
        crate::platform::http::extract::parse_form(&body).unwrap_or_default();
    let Some(intent) = load(&state, &id).await else {
        return not_found();
    };
    if intent.status != IntentStatus::RequiresAction {
        return settled_page(&state, &intent).await;
    }
    let complete = match form.get("outcome").map(String::as_str) {
        Some("complete") => true,
        Some("fail") => false,
        _ => {
            return MessagePage::new(
                "Choose",
                "error-page",
                "Complete or fail the authentication",
            )
            .link(&action_url(&state.config.public_url, &id), "Back")
            .respond(StatusCode::BAD_REQUEST);
        }
    };
    let retry_days = state.payments.retry_days.clone();
    let intent_id = id.clone();
    let done = state
        .writer
        .run("authenticate_payment", async move |uow| {
            if complete {
                let at = uow.now();
                intents::requeue(uow, &intent_id, at).await?;
            } else {
                let outcome = ChargeOutcome::Failed {
                    reference: None,
                    decline: Decline::AuthenticationFailed,
                    message: Decline::AuthenticationFailed.to_string(),
                };
                settle::settle(uow, &intent_id, &outcome, &retry_days).await?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "authenticating a payment failed");
        return MessagePage::new("Try again", "error-page", "Something went wrong")
            .respond(e.status());
    }
    match settlement::wait_for(&state, intent.mode, &id).await {
        Ok(Some(now)) => settled_page(&state, &now).await,
        Ok(None) => not_found(),
        Err(e) => {
            MessagePage::new("Try again", "error-page", "Something went wrong").respond(e.status())
        }
    }
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(authenticate))
}

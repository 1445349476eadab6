//! The hosted checkout page: a plain HTML form (no JavaScript needed) where a person types a
//! card and pays. Paying redirects (303) to the session's `successUrl`; a declined card shows
//! the reason on the same page and stores nothing.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tollgate_shared::{ErrorKind, Mode};

use crate::api::pages::card_entry::{StripeForm, saved_card, stripe_form};
use crate::api::settlement::{self, action_url};
use crate::api::state::AppState;
use crate::domain::catalog::display;
use crate::domain::catalog::store as catalog;
use crate::domain::catalog::store::resolve_price;
use crate::domain::checkout::model::{CheckoutError, Session, SessionStatus};
use crate::domain::checkout::store;
use crate::domain::customers::store as customers;
use crate::domain::payments::model::{Decline, IntentStatus};
use crate::payments::EnteredCard;
use crate::payments::test_cards::read_card;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiPath;
use crate::platform::http::hosted::render_with_stripe;
use crate::platform::http::hosted::{MessagePage, origin_of, render_with_targets};
use crate::platform::http::schema::PayForm;
use crate::workflows::checkout::complete;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The payment form. Every value is escaped by the template engine.
#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage {
    test_mode: bool,
    plan_name: String,
    quantity: i64,
    /// `14 days free, then $1,990.00 / year`.
    offer: String,
    due_today: String,
    features: Vec<String>,
    /// Who is paying: the customer's email, else their id.
    payer: String,
    error: Option<String>,
    action: String,
    button: String,
    cancel_url: Option<String>,
    /// Set in a mode with Stripe: the card goes into Stripe.js's card Element.
    stripe: Option<StripeForm>,
}

/// Where the page's form may lead: the pay post (this origin) and, after paying, the
/// session's `successUrl`.
fn form_targets(session: &Session) -> Vec<String> {
    origin_of(&session.success_url).into_iter().collect()
}

async fn render_form(
    state: &AppState,
    session: &Session,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, CheckoutError> {
    let mut conn = state.db.read().await?;
    let price = resolve_price(
        &mut conn,
        session.mode,
        &session.plan_identifier,
        Some(&session.charge_period),
    )
    .await?;
    let plan = catalog::plan_def(&mut conn, session.mode, &session.plan_identifier).await?;
    let features = catalog::features(&mut conn, session.mode).await?;
    let customer = customers::find(&mut conn, session.mode, &session.customer_id).await?;
    let total = price.amount_minor.saturating_mul(session.quantity);
    // The trial the payment will start with: the session's own, else the plan's (as
    // `complete` decides it).
    let trial_days = session
        .trial_days
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(price.trial_days);
    let trial = trial_days > 0 && display::per(price.charge_period).is_some();
    let due_today = if trial { 0 } else { total };
    let button = if trial {
        format!("Start {trial_days}-day free trial")
    } else {
        format!("Pay {}", display::money(total, price.currency))
    };
    let stripe = match state.payments.processors.stripe(session.mode) {
        Some(stripe) => {
            let on_file =
                customers::card_on_file(&mut conn, session.mode, &session.customer_id).await?;
            // No pooled connection waits on Stripe.
            drop(conn);
            let form = stripe_form(stripe, &session.customer_id, on_file.as_deref())
                .await
                .map_err(|e| CheckoutError::Unavailable(format!("Stripe: {e}")))?;
            Some((stripe, form))
        }
        None => None,
    };
    let origins = stripe.as_ref().map(|(s, _)| s.config().script_origins());
    let page = CheckoutPage {
        test_mode: session.mode == Mode::Test,
        plan_name: price.plan_name.clone(),
        quantity: session.quantity,
        offer: display::offer(total, price.currency, price.charge_period, trial_days),
        due_today: display::money(due_today, price.currency),
        features: plan
            .map(|p| display::feature_lines(&p.grants, &features))
            .unwrap_or_default(),
        payer: customer
            .and_then(|c| c.email)
            .unwrap_or_else(|| session.customer_id.clone()),
        error: error.map(str::to_owned),
        action: format!("/checkout/{}/pay", session.id),
        button,
        cancel_url: session.cancel_url.clone(),
        stripe: stripe.map(|(_, form)| form),
    };
    Ok(match origins {
        Some(origins) => render_with_stripe(status, &page, &form_targets(session), &origins),
        None => render_with_targets(status, &page, &form_targets(session)),
    })
}

/// The session, shown as expired once its time is up even before the billing clock has marked
/// it so.
async fn load(state: &AppState, id: &str) -> Result<Session, CheckoutError> {
    let mut conn = state.db.read().await?;
    let mut session = store::load(&mut conn, id)
        .await?
        .ok_or_else(|| CheckoutError::NotFound(id.to_owned()))?;
    let now = crate::domain::customers::store::now_for(
        &mut conn,
        session.mode,
        &session.customer_id,
        state.clock.unix(),
    )
    .await?;
    if session.is_expired(now, state.config.checkout_ttl_secs) {
        session.status = SessionStatus::Expired;
    }
    Ok(session)
}

/// An expired session's page: it says so and offers no form.
fn expired(session: &Session) -> Response {
    let page = MessagePage::new("Expired", "expired", "This checkout has expired")
        .text("Nothing was charged. Please start again to pay at today's price.");
    match session.cancel_url.as_deref() {
        Some(back) => page.link(back, "Return").respond(StatusCode::GONE),
        None => page.respond(StatusCode::GONE),
    }
}

fn not_found() -> Response {
    MessagePage::new("Not found", "not-found", "Checkout not found")
        .text("This checkout link is not valid.")
        .respond(StatusCode::NOT_FOUND)
}

fn completed(session: &Session) -> Response {
    let link = session.success_redirect();
    MessagePage::new("Paid", "done", "Payment complete")
        .link(&link, "Continue")
        .respond(StatusCode::OK)
}

fn failure(e: CheckoutError) -> Response {
    match e {
        CheckoutError::NotFound(_) => not_found(),
        CheckoutError::Unavailable(reason) => MessagePage::new(
            "Unavailable",
            "unavailable",
            "This checkout can no longer be paid",
        )
        .text(&reason)
        .respond(StatusCode::CONFLICT),
        CheckoutError::Catalog(_) => MessagePage::new(
            "Unavailable",
            "unavailable",
            "This plan is no longer available",
        )
        .respond(StatusCode::CONFLICT),
        other => {
            tracing::error!(error = %other, "checkout page failed");
            MessagePage::new("Error", "error-page", "Something went wrong")
                .respond(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The hosted checkout page.
///
/// A plain HTML form for a person to pay the session with a card; no credential needed.
#[utoipa::path(
    get,
    path = "/checkout/{session_id}",
    tag = "checkout",
    operation_id = "showCheckoutPage",
    security(()),
    params(("session_id" = String, Path, description = "The checkout session id")),
    responses(
        (status = 200, description = "The payment form, or a link onwards if already paid", body = String, content_type = "text/html"),
        (status = 404, description = "No such checkout session", body = String, content_type = "text/html"),
        (status = 409, description = "The plan is no longer available", body = String, content_type = "text/html"),
        (status = 410, description = "The session has expired (`--checkout-ttl-secs`)", body = String, content_type = "text/html"),
    )
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Response {
    let session = match load(&state, &id).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    match session.status {
        SessionStatus::Complete => return completed(&session),
        SessionStatus::Expired => return expired(&session),
        SessionStatus::Open => {}
    }
    render_form(&state, &session, None, StatusCode::OK)
        .await
        .unwrap_or_else(failure)
}

/// Pay on the hosted checkout page.
///
/// The form post of the hosted page. A declined or incomplete card shows the page again with
/// the reason and stores nothing.
#[utoipa::path(
    post,
    path = "/checkout/{session_id}/pay",
    tag = "checkout",
    operation_id = "payCheckoutPage",
    security(()),
    params(("session_id" = String, Path, description = "The checkout session id")),
    request_body(content = PayForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Paid: on to the session's `successUrl` (or, when the card needs 3-D Secure, to the authentication page)",
            headers(("Location" = String, description = "The `successUrl`, or the authentication page"))),
        (status = 202, description = "The payment is still being processed", body = String, content_type = "text/html"),
        (status = 200, description = "Already paid: a link onwards", body = String, content_type = "text/html"),
        (status = 400, description = "The card details are incomplete or invalid", body = String, content_type = "text/html"),
        (status = 402, description = "The card was declined", body = String, content_type = "text/html"),
        (status = 404, description = "No such checkout session", body = String, content_type = "text/html"),
        (status = 409, description = "The session can no longer be paid", body = String, content_type = "text/html"),
        (status = 410, description = "The session has expired (`--checkout-ttl-secs`)", body = String, content_type = "text/html"),
    )
)]
pub async fn pay(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Response {
    // A form with a NUL character reads as empty: it is refused like an incomplete one.
    let form: HashMap<String, String> =
        crate::platform::http::extract::parse_form(&body).unwrap_or_default();
    let session = match load(&state, &id).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    match session.status {
        SessionStatus::Complete => return completed(&session),
        SessionStatus::Expired => return expired(&session),
        SessionStatus::Open => {}
    }
    let show_error = |message: String, status: StatusCode| {
        let state = state.clone();
        let session = session.clone();
        async move {
            render_form(&state, &session, Some(&message), status)
                .await
                .unwrap_or_else(failure)
        }
    };
    let card = match state.payments.processors.stripe(session.mode) {
        // Stripe.js saved the card with a SetupIntent; it goes on file as Stripe has it.
        Some(stripe) => match saved_card(stripe, &form, &session.customer_id).await {
            Ok(card) => card,
            Err(e) => {
                let status = e.status();
                return show_error(e.message, status).await;
            }
        },
        None => match read_card(&form, state.clock.now()) {
            Ok(card) => EnteredCard::Test(card),
            Err(message) => return show_error(message.to_owned(), StatusCode::BAD_REQUEST).await,
        },
    };
    let mode = session.mode;
    let ttl = state.config.checkout_ttl_secs;
    let session_id = id.clone();
    let paid = state
        .writer
        .run("pay_checkout_page", async move |uow| {
            // An error rolls the whole unit back: a declined card stores nothing.
            complete(uow, mode, &session_id, &card, ttl)
                .await
                .map_err(ApiError::from)
        })
        .await;
    let paid = match paid {
        // The first invoice's charge settles outside the unit: wait for it.
        Ok(done) if done.intent.is_some() => {
            let intent = done.intent.clone().unwrap_or_default();
            match settlement::wait_for(&state, mode, &intent).await {
                Ok(Some(i)) if i.status == IntentStatus::Succeeded => Ok(done),
                Ok(Some(i)) if i.status == IntentStatus::RequiresAction => {
                    let url = action_url(&state.config.public_url, &i.id);
                    return (StatusCode::SEE_OTHER, [(LOCATION, url)]).into_response();
                }
                Ok(Some(i)) if i.status == IntentStatus::Processing => {
                    return MessagePage::new("Processing", "processing", "Processing")
                        .text("Your payment is being processed. Refresh this page in a moment.")
                        .link(&action_url(&state.config.public_url, &i.id), "Refresh")
                        .respond(StatusCode::ACCEPTED);
                }
                Ok(Some(i)) => {
                    let decline = i
                        .decline_code
                        .as_deref()
                        .map_or(Decline::CardDeclined, Decline::from_code);
                    return show_error(decline.to_string(), StatusCode::PAYMENT_REQUIRED).await;
                }
                Ok(None) => Ok(done),
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match paid {
        Ok(done) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, done.session.success_redirect())],
        )
            .into_response(),
        Err(e) if e.kind == ErrorKind::PaymentRequired => {
            show_error(e.message, StatusCode::PAYMENT_REQUIRED).await
        }
        Err(e) if e.kind == ErrorKind::NotFound => not_found(),
        Err(e) if e.kind == ErrorKind::Conflict => match load(&state, &id).await {
            Ok(now) if now.status == SessionStatus::Complete => completed(&now),
            Ok(now) if now.status == SessionStatus::Expired => expired(&now),
            _ => failure(CheckoutError::Unavailable(e.message)),
        },
        Err(e) => {
            tracing::warn!(error = %e, "checkout page payment failed");
            MessagePage::new("Try again", "error-page", "Something went wrong")
                .text("Nothing was charged. Please try again.")
                .respond(e.status())
        }
    }
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(pay))
}

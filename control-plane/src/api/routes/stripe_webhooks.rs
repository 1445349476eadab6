//! `POST /webhooks/stripe/{mode}`: Stripe's events for a mode with Stripe configured
//! (docs/payments.md, "Setting up Stripe"). The `Stripe-Signature` header is verified against
//! the mode's webhook secret(s); each event id is handled once (a redelivery is acknowledged
//! and changes nothing); unknown event types are acknowledged and ignored.

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::json;
use tollgate_shared::{ErrorKind, Mode};

use crate::api::state::AppState;
use crate::domain::customers::store as customers;
use crate::domain::invoices::store as invoices;
use crate::domain::payments::model::{ChargeOutcome, Decline};
use crate::domain::payments::store as intents;
use crate::payments::stripe::StripeProcessor;
use crate::payments::{InboundEvent, PaymentProcessor, SavedMethod};
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiPath;
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::workflows::refund;
use crate::workflows::settle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Receive a Stripe event.
///
/// Handles `payment_intent.succeeded`, `payment_intent.payment_failed`,
/// `payment_intent.requires_action`, `setup_intent.succeeded`, `charge.refunded`,
/// `charge.dispute.created` and `payment_method.detached`; acknowledges any other type.
#[utoipa::path(
    post,
    path = "/webhooks/stripe/{mode}",
    tag = "payments",
    operation_id = "receiveStripeEvent",
    security(()),
    params(("mode" = String, Path, description = "`test` or `live`")),
    request_body(content = Object, description = "A Stripe event, signed (`Stripe-Signature`)"),
    responses(
        (status = 200, description = "Received (or received before)", body = Object),
        (status = 400, description = "The signature is missing, wrong or too old, or the body is no event", body = ErrorEnvelope),
        (status = 404, description = "No such mode, or Stripe is not configured for it", body = ErrorEnvelope),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    ApiPath(mode): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let mode = match mode.as_str() {
        "test" => Mode::Test,
        "live" => Mode::Live,
        _ => return Err(ApiError::new(ErrorKind::NotFound, "mode: use test or live")),
    };
    let stripe = state.payments.processors.stripe(mode).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("Stripe is not configured for {} mode", mode.as_str()),
        )
    })?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = stripe
        .parse_event(signature, &body, state.clock.unix())
        .map_err(|e| ApiError::new(ErrorKind::BadRequest, format!("Stripe-Signature: {e}")))?;
    // What a processor call must tell first happens here, outside the unit.
    let saved = match event.kind.as_str() {
        "setup_intent.succeeded" => setup_card(stripe, &event.object).await?,
        _ => None,
    };
    let retry_days = state.payments.retry_days.clone();
    let handled = state
        .writer
        .run("stripe_event", async move |uow| {
            let at = uow.now();
            if !intents::record_event(uow, &event.id, mode, &event.kind, at).await? {
                return Ok(false);
            }
            handle(uow, mode, &event, &retry_days, saved.as_ref()).await?;
            Ok(true)
        })
        .await?;
    state.payments.settled.notify_waiters();
    Ok(Reply::ok(&json!({"received": true, "duplicate": !handled})))
}

/// The card a succeeded SetupIntent of one of our customers saved: `(our customer, the card)`.
/// Stripe unreachable is a 503, so Stripe delivers the event again.
async fn setup_card(
    stripe: &StripeProcessor,
    object: &serde_json::Value,
) -> Result<Option<(String, SavedMethod)>, ApiError> {
    let (Some(ours), Some(customer), Some(method)) = (
        object["metadata"]["tollgate_customer"].as_str(),
        object["customer"].as_str(),
        object["payment_method"].as_str(),
    ) else {
        return Ok(None);
    };
    match stripe.save_payment_method(customer, method).await {
        Ok(Ok(saved)) => Ok(Some((ours.to_owned(), saved))),
        Ok(Err(_)) => Ok(None),
        Err(e) => Err(ApiError::new(
            ErrorKind::Unavailable,
            format!("Stripe cannot be reached to read the saved card: {e}"),
        )),
    }
}

/// Our payment intent a Stripe PaymentIntent (or an object naming one) is about.
async fn our_intent(
    uow: &mut Uow,
    mode: Mode,
    object: &serde_json::Value,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(id) = object["metadata"]["tollgate_intent"].as_str() {
        return Ok(Some(id.to_owned()));
    }
    let reference = object["payment_intent"]
        .as_str()
        .or_else(|| object["id"].as_str().filter(|id| id.starts_with("pi_")));
    Ok(match reference {
        Some(r) => intents::by_reference(uow.conn(), mode, r)
            .await?
            .map(|i| i.id),
        None => None,
    })
}

async fn handle(
    uow: &mut Uow,
    mode: Mode,
    event: &InboundEvent,
    retry_days: &[u32],
    saved: Option<&(String, SavedMethod)>,
) -> Result<(), ApiError> {
    let object = &event.object;
    let outcome = match event.kind.as_str() {
        "payment_intent.succeeded" => Some(ChargeOutcome::Succeeded {
            reference: object["id"].as_str().map(str::to_owned),
        }),
        "payment_intent.requires_action" => Some(ChargeOutcome::RequiresAction {
            reference: object["id"].as_str().map(str::to_owned),
        }),
        "payment_intent.payment_failed" => Some(ChargeOutcome::Failed {
            reference: object["id"].as_str().map(str::to_owned),
            decline: match object["last_payment_error"]["decline_code"].as_str() {
                Some("insufficient_funds") => Decline::InsufficientFunds,
                _ => Decline::CardDeclined,
            },
            message: object["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("Your card was declined.")
                .to_owned(),
        }),
        _ => None,
    };
    if let Some(outcome) = outcome {
        if let Some(id) = our_intent(uow, mode, object).await? {
            settle::settle(uow, &id, &outcome, retry_days).await?;
        }
        return Ok(());
    }
    match event.kind.as_str() {
        "charge.dispute.created" => {
            if let Some(id) = our_intent(uow, mode, object).await?
                && let Some(intent) = intents::get(uow.conn(), mode, &id).await?
            {
                let at = customers::now_of(uow, mode, &intent.customer_id).await?;
                invoices::mark_disputed(uow, &intent.invoice_id, at).await?;
                uow.emit(
                    mode,
                    EventKind::ChargeDisputed,
                    Subject::Data(json!({
                        "id": intent.id,
                        "customerId": intent.customer_id,
                        "invoiceId": intent.invoice_id,
                        "amountUnits": object["amount"].as_i64().unwrap_or(intent.amount_minor),
                        "currency": intent.currency,
                        "reason": object["reason"],
                    })),
                    at,
                );
            }
        }
        // A refund made in Stripe's dashboard: Tollgate records what it did not ask for.
        "charge.refunded" => {
            if let Some(id) = our_intent(uow, mode, object).await?
                && let Some(intent) = intents::get(uow.conn(), mode, &id).await?
                && let Some(card_refunded) = object["amount_refunded"].as_i64()
            {
                let reference = object["refunds"]["data"][0]["id"]
                    .as_str()
                    .or_else(|| object["id"].as_str())
                    .unwrap_or_default();
                refund::refunded_at_processor(
                    uow,
                    mode,
                    &intent.invoice_id,
                    card_refunded,
                    reference,
                )
                .await?;
            }
        }
        // A card saved through a SetupIntent whose page never posted back (closed, lost): it
        // goes on file as the form would have put it (the route looked the card up first).
        "setup_intent.succeeded" => {
            if let Some((customer, card)) = saved {
                let card = (
                    card.brand.as_str(),
                    card.last4.as_str(),
                    card.reference.as_str(),
                );
                customers::put_card_if_new(uow, mode, customer, card).await?;
            }
        }
        "payment_method.detached" => {
            if let Some(pm) = object["id"].as_str() {
                customers::detach_processor_card(uow, mode, pm).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive))
}

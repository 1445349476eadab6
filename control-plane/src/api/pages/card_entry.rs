//! The card form of a hosted page in a mode with Stripe (the checkout page and the portal's
//! "replace card"): a SetupIntent for Stripe.js to confirm (`templates/stripe-card.js`), and,
//! once the form comes back, the card it saved.

use std::collections::HashMap;

use tollgate_shared::ErrorKind;

use crate::payments::stripe::StripeProcessor;
use crate::payments::{EnteredCard, PaymentProcessor, ProcessorError};
use crate::platform::http::error::ApiError;

/// What a page's Stripe.js glue needs.
pub struct StripeForm {
    pub publishable_key: String,
    pub client_secret: String,
    pub js_url: String,
}

/// A SetupIntent for `customer_id`'s card, under the Stripe customer their card on file
/// (`on_file`) belongs to, else a new one.
pub async fn stripe_form(
    stripe: &StripeProcessor,
    customer_id: &str,
    on_file: Option<&str>,
) -> Result<StripeForm, ProcessorError> {
    let customer = stripe.customer_for(customer_id, on_file).await?;
    let (_, client_secret) = stripe.create_setup_intent(&customer, customer_id).await?;
    Ok(StripeForm {
        publishable_key: stripe.config().publishable_key.clone().unwrap_or_default(),
        client_secret,
        js_url: stripe.config().js_url.clone(),
    })
}

/// The card the form's confirmed SetupIntent (`setup_intent`) saved for `customer_id`. The
/// error is what to tell the person: 400 for a form without a confirmed SetupIntent of theirs,
/// 402 for a card Stripe refused, 503 when Stripe cannot be reached.
pub async fn saved_card(
    stripe: &StripeProcessor,
    form: &HashMap<String, String>,
    customer_id: &str,
) -> Result<EnteredCard, ApiError> {
    let setup = form.get("setup_intent").map(String::as_str).unwrap_or("");
    if !setup.starts_with("seti_") {
        return Err(ApiError::new(ErrorKind::BadRequest, "Enter your card."));
    }
    let unreachable = |e: ProcessorError| {
        tracing::warn!(error = %e, "Stripe unreachable from a card form");
        ApiError::new(
            ErrorKind::Unavailable,
            "Payments are unavailable right now; nothing was charged. Please try again.",
        )
    };
    let Some((customer, method)) = stripe
        .confirmed_setup(setup, customer_id)
        .await
        .map_err(unreachable)?
    else {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            "Your card could not be saved; please try again.",
        ));
    };
    match stripe
        .save_payment_method(&customer, &method)
        .await
        .map_err(unreachable)?
    {
        Ok(saved) => Ok(EnteredCard::Saved {
            brand: saved.brand,
            last4: saved.last4,
            reference: saved.reference,
        }),
        Err(decline) => Err(ApiError::new(
            ErrorKind::PaymentRequired,
            decline.to_string(),
        )),
    }
}

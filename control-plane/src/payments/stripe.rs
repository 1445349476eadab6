//! The Stripe processor: Stripe's REST API over reqwest, form-encoded, every call with a pinned
//! `Stripe-Version`, every charge with an `Idempotency-Key` (the payment intent's id), and
//! Stripe's webhook signatures (`Stripe-Signature`) verified here.
//!
//! Customers are mirrored lazily: the first card a customer puts on file makes their Stripe
//! customer (`metadata[tollgate_customer]`). A card on file is remembered as
//! `cus_…:pm_…` (its Stripe customer and payment method), which later charges name.

use std::time::Duration;

use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::domain::payments::model::{ChargeOutcome, Decline};
use crate::payments::{
    ChargeRequest, InboundError, InboundEvent, PaymentProcessor, ProcessorError, SavedMethod,
};

/// The API version Tollgate was written against.
pub const STRIPE_VERSION: &str = "2024-06-20";
/// A signed webhook older (or newer) than this is refused: Stripe's own default tolerance.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// One call to Stripe may take this long (the payments worker's own limit is shorter still
/// when the lease is short).
const TIMEOUT: Duration = Duration::from_secs(20);

/// One mode's Stripe account.
#[derive(Clone)]
pub struct StripeConfig {
    pub secret_key: String,
    pub publishable_key: Option<String>,
    /// Signing secrets of the webhook endpoint: the current one, and the previous one while a
    /// rotation is under way.
    pub webhook_secrets: Vec<String>,
    /// `https://api.stripe.com` (tests: the emulator's address).
    pub api_base: String,
    /// `https://js.stripe.com/v3/`.
    pub js_url: String,
}

impl StripeConfig {
    /// Stripe.js's and Stripe's API origins: what a hosted page using Stripe.js may load from
    /// and talk to.
    pub fn script_origins(&self) -> crate::platform::http::hosted::ScriptOrigins {
        use crate::platform::http::hosted::origin_of;
        crate::platform::http::hosted::ScriptOrigins {
            js: origin_of(&self.js_url).unwrap_or_default(),
            api: origin_of(&self.api_base).unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("js_url", &self.js_url)
            .finish_non_exhaustive()
    }
}

/// Calls to Stripe in flight at once, per mode: Stripe's test mode allows 25 requests a
/// second, and a claim of 64 intents must not meet 429s.
pub const STRIPE_CONCURRENCY: usize = 16;

pub struct StripeProcessor {
    config: StripeConfig,
    client: reqwest::Client,
    in_flight: tokio::sync::Semaphore,
}

/// A card on file at Stripe, as stored: `cus_…:pm_…`.
pub fn card_reference(customer: &str, method: &str) -> String {
    format!("{customer}:{method}")
}

/// The Stripe customer of a stored card reference.
pub fn customer_of(reference: &str) -> Option<&str> {
    split_reference(reference).map(|(c, _)| c)
}

fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (customer, method) = reference.split_once(':')?;
    (customer.starts_with("cus_") && method.starts_with("pm_")).then_some((customer, method))
}

impl StripeProcessor {
    pub fn new(config: StripeConfig) -> Result<StripeProcessor, ProcessorError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ProcessorError(format!("building the Stripe client: {e}")))?;
        Ok(StripeProcessor {
            config,
            client,
            in_flight: tokio::sync::Semaphore::new(STRIPE_CONCURRENCY),
        })
    }

    /// The Stripe customer of our customer `customer_id`: the one their card on file
    /// (`on_file`, a stored reference) belongs to, else one made now.
    pub async fn customer_for(
        &self,
        customer_id: &str,
        on_file: Option<&str>,
    ) -> Result<String, ProcessorError> {
        if let Some(c) = on_file.and_then(customer_of) {
            return Ok(c.to_owned());
        }
        self.ensure_customer(customer_id)
            .await?
            .ok_or_else(|| ProcessorError("Stripe made no customer".into()))
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// A SetupIntent for the hosted checkout page's card Element (`confirmCardSetup`):
    /// `(id, client_secret)`.
    pub async fn create_setup_intent(
        &self,
        stripe_customer: &str,
        customer_id: &str,
    ) -> Result<(String, String), ProcessorError> {
        let made = self
            .call(
                reqwest::Method::POST,
                "/v1/setup_intents",
                &[
                    ("customer", stripe_customer.to_owned()),
                    ("usage", "off_session".to_owned()),
                    ("metadata[tollgate_customer]", customer_id.to_owned()),
                ],
                None,
            )
            .await?
            .map_err(|e| {
                ProcessorError(format!(
                    "Stripe refused a SetupIntent: {}",
                    e["message"].as_str().unwrap_or("no reason given")
                ))
            })?;
        match (made["id"].as_str(), made["client_secret"].as_str()) {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => Err(ProcessorError(
                "Stripe answered a SetupIntent without its secret".into(),
            )),
        }
    }

    /// A SetupIntent the page confirmed for our customer `customer_id`: `(Stripe customer,
    /// payment method)` when it succeeded.
    pub async fn confirmed_setup(
        &self,
        id: &str,
        customer_id: &str,
    ) -> Result<Option<(String, String)>, ProcessorError> {
        let got = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/setup_intents/{id}"),
                &[],
                None,
            )
            .await?;
        let Ok(seti) = got else {
            return Ok(None);
        };
        if seti["status"] != "succeeded"
            || seti["metadata"]["tollgate_customer"].as_str() != Some(customer_id)
        {
            return Ok(None);
        }
        Ok(
            match (seti["customer"].as_str(), seti["payment_method"].as_str()) {
                (Some(c), Some(pm)) => Some((c.to_owned(), pm.to_owned())),
                _ => None,
            },
        )
    }

    /// The client secret of a PaymentIntent, for Stripe.js on the authentication page.
    pub async fn client_secret(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, ProcessorError> {
        let got = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/payment_intents/{payment_intent}"),
                &[],
                None,
            )
            .await?;
        Ok(got
            .ok()
            .and_then(|pi| pi["client_secret"].as_str().map(str::to_owned)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base.trim_end_matches('/'))
    }

    /// A call to Stripe: `Ok(Ok(body))` for a 2xx, `Ok(Err(error object))` for a 4xx Stripe
    /// answered (a card error, say), `Err` when Stripe could not be asked (network, 5xx).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Result<Value, Value>, ProcessorError> {
        // Never closed, so acquiring only waits.
        let _permit = self.in_flight.acquire().await;
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .basic_auth(&self.config.secret_key, Some(""))
            .header("Stripe-Version", STRIPE_VERSION);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if method == reqwest::Method::GET {
            req = req.query(form);
        } else {
            req = req.form(form);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProcessorError(format!("Stripe {path}: {}", short(&e))))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| {
            ProcessorError(format!("Stripe {path}: unreadable answer: {}", short(&e)))
        })?;
        if status.is_success() {
            Ok(Ok(body))
        } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(ProcessorError(format!("Stripe {path}: HTTP {status}")))
        } else {
            Ok(Err(body.get("error").cloned().unwrap_or(body)))
        }
    }

    /// What a PaymentIntent object says about the charge.
    fn outcome_of(intent: &Value) -> ChargeOutcome {
        let reference = intent["id"].as_str().map(str::to_owned);
        match intent["status"].as_str() {
            Some("succeeded") | Some("processing") => ChargeOutcome::Succeeded { reference },
            Some("requires_action") | Some("requires_confirmation") => {
                ChargeOutcome::RequiresAction { reference }
            }
            _ => {
                let error = &intent["last_payment_error"];
                ChargeOutcome::Failed {
                    reference,
                    decline: decline_of(error),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("Your card was declined.")
                        .to_owned(),
                }
            }
        }
    }

    /// Finds the PaymentIntent made for `key` among a Stripe customer's.
    async fn find(
        &self,
        stripe_customer: &str,
        key: &str,
    ) -> Result<Option<Value>, ProcessorError> {
        let mut listed = self
            .call(
                reqwest::Method::GET,
                "/v1/payment_intents",
                &[
                    ("customer", stripe_customer.to_owned()),
                    ("limit", "100".to_owned()),
                ],
                None,
            )
            .await?;
        if listed.is_err() {
            // An emulator without the `customer` filter (localstripe): the newest 100 of all.
            listed = self
                .call(
                    reqwest::Method::GET,
                    "/v1/payment_intents",
                    &[("limit", "100".to_owned())],
                    None,
                )
                .await?;
        }
        let Ok(listed) = listed else {
            return Ok(None);
        };
        Ok(listed["data"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|pi| pi["metadata"]["tollgate_intent"].as_str() == Some(key))
            })
            .cloned())
    }
}

/// A reqwest error without the URL (which carries nothing secret, but is long).
fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_decode() {
        "not JSON".into()
    } else {
        "request failed".into()
    }
}

/// Stripe's error codes, as our declines.
fn decline_of(error: &Value) -> Decline {
    let code = error["decline_code"]
        .as_str()
        .or_else(|| error["code"].as_str())
        .unwrap_or("");
    match code {
        "insufficient_funds" => Decline::InsufficientFunds,
        "payment_intent_authentication_failure" | "authentication_required" => {
            Decline::AuthenticationFailed
        }
        _ => Decline::CardDeclined,
    }
}

fn declined_with(error: &Value) -> ChargeOutcome {
    let decline = decline_of(error);
    ChargeOutcome::Failed {
        reference: error["payment_intent"]["id"].as_str().map(str::to_owned),
        decline,
        message: error["message"]
            .as_str()
            .map_or_else(|| decline.to_string(), str::to_owned),
    }
}

impl PaymentProcessor for StripeProcessor {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn ensure_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProcessorError>> {
        Box::pin(async move {
            let made = self
                .call(
                    reqwest::Method::POST,
                    "/v1/customers",
                    &[("metadata[tollgate_customer]", customer_id.to_owned())],
                    None,
                )
                .await?;
            match made {
                Ok(c) => Ok(c["id"].as_str().map(str::to_owned)),
                Err(e) => Err(ProcessorError(format!(
                    "Stripe refused to create a customer: {}",
                    e["message"].as_str().unwrap_or("no reason given")
                ))),
            }
        })
    }

    fn save_payment_method<'a>(
        &'a self,
        customer_id: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Result<SavedMethod, Decline>, ProcessorError>> {
        // `customer_id` here is the Stripe customer (`cus_…`), made by `ensure_customer`.
        Box::pin(async move {
            let attached = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/payment_methods/{token}/attach"),
                    &[("customer", customer_id.to_owned())],
                    None,
                )
                .await?;
            let pm = match attached {
                Ok(pm) => pm,
                Err(e) => return Ok(Err(decline_of(&e))),
            };
            let method = pm["id"].as_str().unwrap_or(token).to_owned();
            Ok(Ok(SavedMethod {
                reference: card_reference(customer_id, &method),
                last4: pm["card"]["last4"].as_str().unwrap_or("0000").to_owned(),
                brand: pm["card"]["brand"].as_str().unwrap_or("card").to_owned(),
            }))
        })
    }

    fn charge<'a>(
        &'a self,
        req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(async move {
            let Some((customer, method)) = req.payment_method.and_then(split_reference) else {
                return Ok(crate::payments::declined(Decline::NoPaymentMethod));
            };
            let mut form = vec![
                ("amount", req.amount_minor.to_string()),
                ("currency", req.currency.as_str().to_owned()),
                ("customer", customer.to_owned()),
                ("payment_method", method.to_owned()),
                ("confirm", "true".to_owned()),
                ("metadata[tollgate_intent]", req.idempotency_key.to_owned()),
                ("metadata[tollgate_customer]", req.customer_id.to_owned()),
            ];
            if req.off_session {
                form.push(("off_session", "true".to_owned()));
            }
            let answer = self
                .call(
                    reqwest::Method::POST,
                    "/v1/payment_intents",
                    &form,
                    Some(req.idempotency_key),
                )
                .await?;
            Ok(match answer {
                Ok(intent) => Self::outcome_of(&intent),
                Err(error) => declined_with(&error),
            })
        })
    }

    fn confirm<'a>(
        &'a self,
        _idempotency_key: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(async move {
            let answer = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/payment_intents/{reference}"),
                    &[],
                    None,
                )
                .await?;
            let intent = match answer {
                Ok(i) => i,
                Err(error) => return Ok(declined_with(&error)),
            };
            if intent["status"] == "requires_confirmation" {
                let confirmed = self
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/payment_intents/{reference}/confirm"),
                        &[],
                        None,
                    )
                    .await?;
                return Ok(match confirmed {
                    Ok(i) => Self::outcome_of(&i),
                    Err(error) => declined_with(&error),
                });
            }
            Ok(match Self::outcome_of(&intent) {
                // Still waiting: the customer has not authenticated (or failed to).
                ChargeOutcome::RequiresAction { reference } => ChargeOutcome::Failed {
                    reference,
                    decline: Decline::AuthenticationFailed,
                    message: Decline::AuthenticationFailed.to_string(),
                },
                other => other,
            })
        })
    }

    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_minor: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Result<Option<String>, String>, ProcessorError>> {
        Box::pin(async move {
            let answer = self
                .call(
                    reqwest::Method::POST,
                    "/v1/refunds",
                    &[
                        ("payment_intent", reference.to_owned()),
                        ("amount", amount_minor.to_string()),
                    ],
                    Some(idempotency_key),
                )
                .await?;
            Ok(match answer {
                Ok(r) => Ok(r["id"].as_str().map(str::to_owned)),
                Err(e) => Err(e["message"]
                    .as_str()
                    .unwrap_or("Stripe refused the refund")
                    .to_owned()),
            })
        })
    }

    fn retrieve<'a>(
        &'a self,
        req: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>> {
        Box::pin(async move {
            let Some((customer, _)) = req.payment_method.and_then(split_reference) else {
                return Ok(None);
            };
            Ok(self
                .find(customer, req.idempotency_key)
                .await?
                .map(|intent| Self::outcome_of(&intent)))
        })
    }

    fn parse_event(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<InboundEvent, InboundError> {
        Ok(verify_event(
            signature,
            body,
            &self.config.webhook_secrets,
            now,
        )?)
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header, or one without t= and v1=")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the {SIGNATURE_TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no v1 signature matches a configured webhook secret")]
    Mismatch,
    #[error("the body is not a Stripe event")]
    NotAnEvent,
}

/// Verifies `Stripe-Signature` (`t=…,v1=…[,v1=…]`) over `body` against each of `secrets`, at
/// `now`, and parses the event.
pub fn verify_event(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<InboundEvent, SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        signatures.iter().any(|sig| {
            let Ok(expected) = hex::decode(sig) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let event: Value = serde_json::from_slice(body).map_err(|_| SignatureError::NotAnEvent)?;
    match (event["id"].as_str(), event["type"].as_str()) {
        (Some(id), Some(kind)) => Ok(InboundEvent {
            id: id.to_owned(),
            kind: kind.to_owned(),
            object: event["data"]["object"].clone(),
        }),
        _ => Err(SignatureError::NotAnEvent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_tolerance_rotation_and_refusals() {
        let body =
            br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
        let now = 1_700_000_000;
        let secrets = vec!["whsec_new".to_owned(), "whsec_old".to_owned()];
        let good = format!("t={now},v1={}", sign("whsec_new", now, body));
        let event = verify_event(Some(&good), body, &secrets, now).unwrap();
        assert_eq!(
            (event.id.as_str(), event.kind.as_str()),
            ("evt_1", "payment_intent.succeeded")
        );
        // During rotation the old secret signs too, and several v1 are allowed.
        let both = format!(
            "t={now},v1={},v1={}",
            sign("whsec_other", now, body),
            sign("whsec_old", now, body)
        );
        assert!(verify_event(Some(&both), body, &secrets, now).is_ok());
        let cases = [
            (None, now, SignatureError::Malformed),
            (Some("v1=abc".to_owned()), now, SignatureError::Malformed),
            (Some(format!("t={now}")), now, SignatureError::Malformed),
            (Some(good.clone()), now + 301, SignatureError::Stale),
            (
                Some(format!("t={now},v1={}", sign("whsec_wrong", now, body))),
                now,
                SignatureError::Mismatch,
            ),
            (
                Some(format!("t={now},v1=zz")),
                now,
                SignatureError::Mismatch,
            ),
        ];
        for (header, at, expected) in cases {
            assert_eq!(
                verify_event(header.as_deref(), body, &secrets, at).unwrap_err(),
                expected,
                "{header:?}"
            );
        }
        assert_eq!(
            verify_event(Some(&good), b"tampered", &secrets, now).unwrap_err(),
            SignatureError::Mismatch
        );
    }

    #[test]
    fn references_and_declines() {
        assert_eq!(split_reference("cus_1:pm_2"), Some(("cus_1", "pm_2")));
        assert_eq!(split_reference("succeeds"), None);
        assert_eq!(
            decline_of(
                &serde_json::json!({"code": "card_declined", "decline_code": "insufficient_funds"})
            ),
            Decline::InsufficientFunds
        );
        assert_eq!(
            decline_of(&serde_json::json!({"code": "card_declined"})),
            Decline::CardDeclined
        );
    }
}

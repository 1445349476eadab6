//! Issue 14: the Stripe processor against localstripe (PyPI `localstripe`, a stateful Stripe
//! emulator nobody here wrote), started per test on a free loopback port with
//! `--stripe-api-base` pointed at it and the control plane's webhook URL registered with it.
//! Cards are Stripe PaymentMethods made through its API, attached through Tollgate's
//! `POST /api/v1/customers/{id}/payment-methods/`.

use std::process::{Command, Stdio};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const STRIPE_KEY: &str = "sk_test_tollgatelocalstripe";
const WEBHOOK_SECRET: &str = "whsec_tollgate_test";

/// A localstripe process, killed when dropped.
struct Localstripe {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Localstripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Localstripe {
    /// `None` (after a loud skip, or a failure in CI) when localstripe is not installed:
    /// `TOLLGATE_TEST_LOCALSTRIPE` names the program, else `localstripe` on `PATH`.
    async fn start(test: &str) -> Option<Localstripe> {
        let program =
            std::env::var("TOLLGATE_TEST_LOCALSTRIPE").unwrap_or_else(|_| "localstripe".into());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            l.local_addr().ok()?.port()
        };
        let spawned = Command::new(&program)
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                missing(test, &format!("localstripe ({program}: {e})"));
                return None;
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let http = client();
        let ls = Localstripe { child, url, http };
        wait_until("localstripe listening", || async {
            ls.http
                .get(format!("{}/v1/customers", ls.url))
                .basic_auth(STRIPE_KEY, Some(""))
                .send()
                .await
                .is_ok()
        })
        .await;
        Some(ls)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(STRIPE_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("localstripe");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .basic_auth(STRIPE_KEY, Some(""))
            .send()
            .await
            .expect("localstripe")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// A card PaymentMethod, as Stripe.js would make it.
    async fn card(&self, number: &str) -> String {
        let (status, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2034"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{pm}");
        pm["id"].as_str().unwrap().to_owned()
    }
}

fn stripe_env(ls: &Localstripe) -> Vec<(&'static str, String)> {
    vec![
        ("TOLLGATE_STRIPE_TEST_SECRET_KEY", STRIPE_KEY.to_owned()),
        (
            "TOLLGATE_STRIPE_TEST_PUBLISHABLE_KEY",
            "pk_test_tollgatelocalstripe".to_owned(),
        ),
        (
            "TOLLGATE_STRIPE_TEST_WEBHOOK_SECRET",
            format!("whsec_old_one,{WEBHOOK_SECRET}"),
        ),
        ("TOLLGATE_STRIPE_API_BASE", ls.url.clone()),
        (
            "TOLLGATE_STRIPE_JS_URL",
            format!("{}/js.stripe.com/v3/", ls.url),
        ),
    ]
}

async fn start(db: Db, test: &str) -> Option<(Localstripe, ControlPlane)> {
    let ls = Localstripe::start(test).await?;
    let env = stripe_env(&ls);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cp = ControlPlane::start_on_with(db, &env);
    // Stripe's events for this mode go to the control plane.
    let hook = format!("{}/webhooks/stripe/test", cp.url);
    let (status, _) = ls
        .post(
            "/_config/webhooks/tollgate",
            &[("url", &hook), ("secret", WEBHOOK_SECRET)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    Some((ls, cp))
}

async fn attach(api: &Api, customer: &str, pm: &str) -> (StatusCode, Value) {
    api.post(
        &format!("/api/v1/customers/{customer}/payment-methods/"),
        json!({"token": pm}),
    )
    .await
}

async fn payments_of(api: &Api, customer: &str) -> Value {
    api.get(&format!("/api/v1/payments/?customer_id={customer}"))
        .await
        .1
}

fn signed(body: &str, secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    cp: &ControlPlane,
    mode: &str,
    body: &str,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(format!("{}/webhooks/stripe/{mode}", cp.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        req = req.header("stripe-signature", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both! {
    /// Cards attached through Tollgate, charged off-session through Stripe's PaymentIntents:
    /// a subscription paid (one PaymentIntent at Stripe, its id on the payment), a declined
    /// card refused with nothing granted, and a 3-D Secure card that waits for the customer's
    /// authentication (done at Stripe) and then activates.
    async fn stripe_charges_cards_on_file(db: Db) {
        let Some((ls, cp)) = start(db, "stripe_charges_cards_on_file").await else { return };
        let api = cp.api();

        api.create_customer("visa").await;
        let pm = ls.card("4242424242424242").await;
        let (status, card) = attach(&api, "visa", &pm).await;
        assert_eq!(status, StatusCode::CREATED, "{card}");
        assert_eq!(card["last4"], "4242", "{card}");
        let body = subscribe_ok(&api, "visa", "pro", "MONTHLY", "created").await;
        assert_eq!(body["subscription"]["status"], "active", "{body}");
        assert_eq!(body["invoice"]["status"], "paid", "{body}");
        let payments = payments_of(&api, "visa").await;
        let paid = &payments["results"][0];
        assert_eq!((paid["processor"].as_str(), paid["status"].as_str()), (Some("stripe"), Some("succeeded")), "{payments}");
        let reference = paid["processorReference"].as_str().unwrap().to_owned();
        assert!(reference.starts_with("pi_"), "{reference}");
        let at_stripe = ls.get(&format!("/v1/payment_intents/{reference}")).await;
        assert_eq!(at_stripe["amount"], 4_900, "{at_stripe}");
        assert_eq!(at_stripe["status"], "succeeded", "{at_stripe}");
        assert_eq!(at_stripe["metadata"]["tollgate_intent"], paid["id"], "{at_stripe}");

        // A refund goes back through Stripe: PENDING until the worker asked for it, then
        // SUCCEEDED with Stripe's refund id; more than the card paid is refused.
        let invoice = body["invoice"]["id"].as_str().unwrap().to_owned();
        let (status, refund) = api.post("/api/v1/refunds/", json!({"orderId": invoice, "amountUnits": 1_000})).await;
        assert_eq!(status, StatusCode::CREATED, "{refund}");
        assert_eq!(refund["status"], "SUCCEEDED", "{refund}");
        let re = refund["processorReference"].as_str().unwrap_or_default().to_owned();
        assert!(re.starts_with("re_"), "{refund}");
        let at_stripe = ls.get(&format!("/v1/refunds/{re}")).await;
        assert_eq!(at_stripe["amount"], 1_000, "{at_stripe}");
        assert_eq!(at_stripe["payment_intent"], reference.as_str(), "{at_stripe}");
        let (status, body) = api.post("/api/v1/refunds/", json!({"orderId": invoice, "amountUnits": 4_000})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, tx) = api.get("/api/v1/transaction/").await;
        assert!(tx.to_string().contains(&re) && tx.to_string().contains(&reference), "{tx}");

        // The card holder disputes the charge: `charge.dispute.created` (signed) marks it and
        // Tollgate sends `charge.disputed`; the same event again changes nothing.
        let (hook, receiver) = crate::webhooks::start_receiver(0).await;
        let (status, ep) = api
            .post("/api/v1/webhook-endpoints/", json!({"url": hook, "events": ["charge.disputed"]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        let dispute = json!({"id": "evt_dispute_1", "type": "charge.dispute.created",
            "data": {"object": {"id": "dp_1", "object": "dispute", "payment_intent": reference,
                                "amount": 4_900, "reason": "fraudulent"}}})
        .to_string();
        let now = chrono::Utc::now().timestamp();
        for duplicate in [false, true] {
            let (status, resp) = deliver(&cp, "test", &dispute, Some(&signed(&dispute, WEBHOOK_SECRET, now))).await;
            assert_eq!(status, StatusCode::OK, "{resp}");
            assert_eq!(resp["duplicate"], duplicate, "{resp}");
        }
        wait_until("charge.disputed sent", || async { !receiver.got.lock().unwrap().is_empty() }).await;
        let sent: Value = serde_json::from_str(&receiver.got.lock().unwrap()[0].1).unwrap();
        assert_eq!(sent["type"], "charge.disputed", "{sent}");
        assert_eq!(sent["data"]["invoiceId"], invoice.as_str(), "{sent}");
        assert_eq!(sent["data"]["reason"], "fraudulent", "{sent}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(receiver.got.lock().unwrap().len(), 1, "a redelivered dispute was handled twice");
        let (_, disputed) = api.get(&format!("/api/v1/invoices/{invoice}")).await;
        assert!(disputed["disputedAt"].is_string(), "{disputed}");

        // A refund made in Stripe's dashboard arrives as `charge.refunded` and is recorded
        // once; one Tollgate asked for itself (the 1,000 above) is not recorded again.
        let (status, outside) = ls.post("/v1/refunds", &[("payment_intent", reference.as_str()), ("amount", "500")]).await;
        assert_eq!(status, StatusCode::OK, "{outside}");
        let outside_id = outside["id"].as_str().unwrap().to_owned();
        for (event, refunded) in [("evt_refunded_1", 1_000), ("evt_refunded_2", 1_500), ("evt_refunded_3", 1_500)] {
            let body = json!({"id": event, "type": "charge.refunded",
                "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": reference,
                                    "amount_refunded": refunded,
                                    "refunds": {"data": [{"id": outside_id, "amount": 500}]}}}})
            .to_string();
            let (status, resp) = deliver(&cp, "test", &body, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
            assert_eq!(status, StatusCode::OK, "{resp}");
        }
        let (_, refunds) = api.get(&format!("/api/v1/refunds/?search={invoice}")).await;
        let refunds = refunds["results"].as_array().cloned().unwrap_or_default();
        let made_outside: Vec<_> = refunds.iter().filter(|r| r["processorReference"] == outside_id.as_str()).collect();
        assert_eq!(made_outside.len(), 1, "{refunds:?}");
        assert_eq!(made_outside[0]["amountUnits"], 500, "{refunds:?}");
        assert_eq!(made_outside[0]["status"], "SUCCEEDED", "{refunds:?}");
        assert_eq!(refunds.len(), 2, "{refunds:?}");

        // A card saved through a SetupIntent whose page never posted back goes on file from
        // `setup_intent.succeeded`, once.
        let stripe_customer = ls.get(&format!("/v1/payment_methods/{pm}")).await["customer"]
            .as_str()
            .unwrap()
            .to_owned();
        let second = ls.card("5555555555554444").await;
        for event in ["evt_setup_1", "evt_setup_2"] {
            let body = json!({"id": event, "type": "setup_intent.succeeded",
                "data": {"object": {"id": "seti_1", "object": "setup_intent", "customer": stripe_customer,
                                    "payment_method": second, "status": "succeeded",
                                    "metadata": {"tollgate_customer": "visa"}}}})
            .to_string();
            let (status, resp) = deliver(&cp, "test", &body, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
            assert_eq!(status, StatusCode::OK, "{resp}");
        }
        let (_, cards) = api.get("/api/v1/payment-methods?customer_id=visa").await;
        assert_eq!(cards["count"], 2, "{cards}");
        assert_eq!(cards["results"][0]["methodData"]["last4"], "4444", "{cards}");
        // The brand is Stripe's (localstripe calls every card a Visa).
        let at_stripe = ls.get(&format!("/v1/payment_methods/{second}")).await;
        assert_eq!(cards["results"][0]["methodData"]["brand"], at_stripe["card"]["brand"], "{cards}");

        // A card that attaches and declines every charge.
        api.create_customer("fails").await;
        let pm = ls.card("4000000000000341").await;
        assert_eq!(attach(&api, "fails", &pm).await.0, StatusCode::CREATED);
        let (status, body) = subscribe(&api, "fails", "pro", "MONTHLY").await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_envelope(status, &body, "a Stripe decline");
        assert_eq!(payments_of(&api, "fails").await["results"][0]["status"], "failed");
        // A card Stripe refuses to attach: 402, nothing on file.
        api.create_customer("refused").await;
        let pm = ls.card("4000000000000002").await;
        let (status, body) = attach(&api, "refused", &pm).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        // Not a PaymentMethod id: 400; an unknown customer: 404.
        let (status, _) = attach(&api, "refused", "tok_visa").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = attach(&api, "ghost", "pm_whatever").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // 3-D Secure: requiredAction, the customer authenticates at Stripe, then confirms.
        api.create_customer("sca").await;
        let pm = ls.card("4000002500003155").await;
        assert_eq!(attach(&api, "sca", &pm).await.0, StatusCode::CREATED);
        let body = subscribe_ok(&api, "sca", "pro", "MONTHLY", "created").await;
        assert_eq!(body["requiredAction"]["type"], "redirect_to_url", "{body}");
        assert_eq!(body["subscription"]["status"], "incomplete", "{body}");
        let url = body["requiredAction"]["url"].as_str().unwrap().to_owned();
        let payments = payments_of(&api, "sca").await;
        let reference = payments["results"][0]["processorReference"].as_str().unwrap().to_owned();
        let pi = ls.get(&format!("/v1/payment_intents/{reference}")).await;
        assert_eq!(pi["status"], "requires_action", "{pi}");
        let secret = pi["client_secret"].as_str().unwrap().to_owned();
        let (status, done) = ls
            .post(&format!("/v1/payment_intents/{reference}/_authenticate"), &[("client_secret", &secret), ("success", "true")])
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        let resp = client().post(&url).form(&[("outcome", "complete")]).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let id = body["subscription"]["id"].as_str().unwrap();
        let (_, s) = api.get(&format!("/api/v1/subscriptions/{id}/")).await;
        assert_eq!(s["status"], "active", "{s}");
        // Stripe's own events arrive later (signed, deduplicated): nothing changes twice.
        wait_until("Stripe's webhooks delivered", || async {
            payments_of(&api, "sca").await["results"][0]["status"] == "succeeded"
        })
        .await;
        assert_eq!(payments_of(&api, "visa").await["count"], 1);
    }
}

both! {
    /// `POST /webhooks/stripe/{mode}` verifies `Stripe-Signature` (tolerance, several `v1`,
    /// the old secret during a rotation), handles an event id once, acknowledges unknown
    /// types, and refuses a mode without Stripe.
    async fn stripe_webhooks_are_verified_and_deduplicated(db: Db) {
        let Some((_ls, cp)) = start(db, "stripe_webhooks_are_verified_and_deduplicated").await else { return };
        let now = chrono::Utc::now().timestamp();
        let body = json!({"id": "evt_test_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();

        let (status, resp) = deliver(&cp, "test", &body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert_envelope(status, &resp, "no signature");
        let (status, _) = deliver(&cp, "test", &body, Some(&signed(&body, "whsec_wrong", now))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, resp) = deliver(&cp, "test", &body, Some(&signed(&body, WEBHOOK_SECRET, now - 3_600))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert!(resp["error"]["message"].as_str().unwrap().contains("tolerance"), "{resp}");
        let tampered = body.replace("cus_1", "cus_2");
        let (status, _) = deliver(&cp, "test", &tampered, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, resp) = deliver(&cp, "test", &body, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert_eq!(resp, json!({"received": true, "duplicate": false}));
        // The same event again (Stripe redelivers): acknowledged, a no-op.
        let (status, resp) = deliver(&cp, "test", &body, Some(&signed(&body, "whsec_old_one", now))).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert_eq!(resp["duplicate"], true, "{resp}");
        // Live mode has no Stripe here; an unknown mode is no mode.
        let (status, resp) = deliver(&cp, "live", &body, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
        let (status, _) = deliver(&cp, "staging", &body, Some(&signed(&body, WEBHOOK_SECRET, now))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Not an event, correctly signed.
        let junk = "[1,2,3]";
        let (status, _) = deliver(&cp, "test", junk, Some(&signed(junk, WEBHOOK_SECRET, now))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

both! {
    /// The crash test against Stripe: the control plane dies after Stripe charged and before
    /// the settle. After the restart the worker finds that charge at Stripe (by the intent id
    /// in its metadata) instead of charging again: exactly one PaymentIntent at localstripe,
    /// one paid invoice. Then a renewal, off-session, through the same card.
    async fn stripe_charges_once_across_a_kill_and_renews_off_session(db: Db) {
        let Some(ls) = Localstripe::start("stripe_charges_once_across_a_kill").await else { return };
        let mut env = stripe_env(&ls);
        env.push(("TOLLGATE_FAILPOINT", "payments-after-charge".to_owned()));
        env.push(("TOLLGATE_PAYMENT_LEASE_SECS", "2".to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cp = ControlPlane::start_on_with(db, &env);
        let api = cp.api();
        let clock = clocked(&api, "killed", "2026-03-01T00:00:00Z").await;
        let pm = ls.card("4242424242424242").await;
        assert_eq!(attach(&api, "killed", &pm).await.0, StatusCode::CREATED);
        let answered = api
            .try_post("/api/v1/subscribe/", json!({"customerId": "killed", "planId": "pro", "chargePeriod": "MONTHLY"}))
            .await;
        assert_eq!(answered, None, "the failpoint did not stop the control plane");
        let cp = cp.stop().start_without("TOLLGATE_FAILPOINT");
        let api = cp.api();
        wait_until("the charge is settled after the restart", || async {
            payments_of(&api, "killed").await["results"][0]["status"] == "succeeded"
        })
        .await;
        let payments = payments_of(&api, "killed").await;
        assert_eq!(payments["count"], 1, "{payments}");
        assert_eq!(payments["results"][0]["attempts"], 2, "{payments}");
        let reference = payments["results"][0]["processorReference"].as_str().unwrap().to_owned();
        let at_stripe = ls.get(&format!("/v1/payment_intents/{reference}")).await;
        let customer = at_stripe["customer"].as_str().unwrap().to_owned();
        // localstripe lists without a customer filter: count this customer's.
        let of_customer = |all: &Value| -> usize {
            all["data"].as_array().unwrap().iter().filter(|pi| pi["customer"] == customer.as_str()).count()
        };
        let all = ls.get("/v1/payment_intents?limit=100").await;
        assert_eq!(of_customer(&all), 1, "charged twice at Stripe: {all}");
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=killed").await;
        assert_eq!(invoices["count"], 1, "{invoices}");
        assert_eq!(invoices["results"][0]["status"], "paid", "{invoices}");

        // A month later: the renewal is an off-session PaymentIntent on the same card.
        advance(&api, &clock, "2026-04-01T00:00:00Z").await;
        let payments = payments_of(&api, "killed").await;
        assert_eq!(payments["count"], 2, "{payments}");
        assert_eq!(payments["results"][0]["status"], "succeeded", "{payments}");
        let all = ls.get("/v1/payment_intents?limit=100").await;
        assert_eq!(of_customer(&all), 2, "{all}");
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=killed").await;
        assert!(invoices["results"].as_array().unwrap().iter().all(|i| i["status"] == "paid"), "{invoices}");
    }
}

/// Types into localstripe's card Element (plain inputs inside `#card-element`), then presses
/// the form's button `submit`.
async fn type_card_and(browser: &fantoccini::Client, number: &str, submit: &str) {
    use fantoccini::Locator;
    for (field, value) in [
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "12345"),
    ] {
        let css = format!("#card-element input[placeholder={field}]");
        let input = browser
            .wait()
            .at_most(std::time::Duration::from_secs(30))
            .for_element(Locator::Css(&css))
            .await
            .unwrap();
        input.send_keys(value).await.unwrap();
    }
    browser
        .find(Locator::Id(submit))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types a card on the checkout page and pays.
async fn type_card(browser: &fantoccini::Client, number: &str) {
    type_card_and(browser, number, "pay").await;
}

/// Clicks the emulator's 3-D Secure dialog (localstripe's "Complete authentication").
async fn authenticate_in_dialog(browser: &fantoccini::Client) {
    use fantoccini::Locator;
    browser
        .wait()
        .at_most(std::time::Duration::from_secs(30))
        .for_element(Locator::XPath("//button[text()='Complete authentication']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for_path(browser: &fantoccini::Client, path: &str) -> url::Url {
    let mut landed = browser.current_url().await.unwrap();
    for _ in 0..300 {
        if landed.path() == path {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        landed = browser.current_url().await.unwrap();
    }
    landed
}

both! {
    /// A person pays on the hosted checkout page with Stripe.js (localstripe's): 4242 lands on
    /// `successUrl` with the plan granted at the edge; 4000 0025 0000 3155 goes through the
    /// 3-D Secure steps (saving the card, then the charge on the authentication page) and then
    /// activates; 4000 0000 0000 0002 shows the decline and activates nothing.
    async fn a_person_pays_through_stripe_on_the_checkout_page(db: Db) {
        let Some(chrome) = crate::browser::start("a_person_pays_through_stripe_on_the_checkout_page").await else {
            return;
        };
        let Some((ls, cp)) = start(db, "a_person_pays_through_stripe_on_the_checkout_page").await else { return };
        let browser = &chrome.client;
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        let open = |customer: &'static str| {
            let api = api.clone();
            let url = cp.url.clone();
            async move {
                api.create_customer(customer).await;
                let (_, co) = api
                    .post(
                        "/api/v1/checkout/",
                        json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": customer,
                               "successUrl": format!("{url}/healthz?paid={{CHECKOUT_SESSION_ID}}")}),
                    )
                    .await;
                co["checkoutUrl"].as_str().unwrap().to_owned()
            }
        };

        // Declined when the card is saved: the page says so, nothing starts.
        browser.goto(&open("declined").await).await.unwrap();
        type_card(browser, "4000000000000002").await;
        let error = browser
            .wait()
            .at_most(std::time::Duration::from_secs(30))
            .for_element(fantoccini::Locator::Css("#card-error:not([hidden])"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(error.contains("declined"), "{error}");
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=declined").await;
        assert!(subs["results"].as_array().unwrap().iter().all(|s| s["status"] != "active"), "{subs}");

        // 4242: paid, on to successUrl, granted at the edge.
        browser.goto(&open("payer").await).await.unwrap();
        type_card(browser, "4242424242424242").await;
        let landed = wait_for_path(browser, "/healthz").await;
        assert_eq!(landed.path(), "/healthz", "{landed}");
        wait_until("pro granted at the edge", || async {
            has_access(&edge.entitlements("payer").await, "export-data")
        })
        .await;
        let (_, payments) = api.get("/api/v1/payments/?customer_id=payer").await;
        assert_eq!(payments["results"][0]["processor"], "stripe", "{payments}");
        assert_eq!(payments["results"][0]["status"], "succeeded", "{payments}");

        // The portal's "replace card" saves the new card through Stripe.js too.
        let (token, portal) = crate::portal::portal_session(&api, "payer").await;
        browser.goto(&portal).await.unwrap();
        type_card_and(browser, "5555555555554444", "replace-card").await;
        let landed = wait_for_path(browser, &format!("/portal/{token}")).await;
        for _ in 0..300 {
            if browser.current_url().await.unwrap().query() == Some("done=card-replaced") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let card = browser.find(fantoccini::Locator::Id("card")).await.unwrap().text().await.unwrap();
        assert!(card.ends_with("•••• 4444"), "{landed}: {card}");
        let (_, methods) = api.get("/api/v1/payment-methods?customer_id=payer").await;
        assert!(methods.to_string().contains("4444"), "{methods}");
        assert!(!methods.to_string().contains("4242"), "the old card stays on file: {methods}");
        // The page lets Stripe.js in, and a card form without a SetupIntent of this customer's
        // changes nothing.
        let (_, headers, html) = crate::portal::page(&portal).await;
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains(&format!("script-src 'self' {}", ls.url)), "{policy}");
        let csrf = crate::portal::csrf_of(&html);
        for forged in ["", "&setup_intent=nope", "&setup_intent=seti_unknown", "&card_number=4242424242424242&expiry=12%2F34&cvc=123"] {
            let (status, _, _) =
                crate::portal::post_form(&format!("{portal}/card"), &format!("csrf={csrf}{forged}"), &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{forged}");
        }
        let (_, unchanged) = api.get("/api/v1/payment-methods?customer_id=payer").await;
        assert_eq!(unchanged, methods);

        // 3155: 3-D Secure when the card is saved, and again for the charge.
        browser.goto(&open("sca").await).await.unwrap();
        type_card(browser, "4000002500003155").await;
        // The first dialog confirms saving the card; the second, on the authentication page,
        // the charge.
        authenticate_in_dialog(browser).await;
        authenticate_in_dialog(browser).await;
        let landed = wait_for_path(browser, "/healthz").await;
        assert_eq!(landed.path(), "/healthz", "{landed}");
        // Nothing the policy refused, no script error (localstripe logs with console.log; the
        // declined card's 402 from the emulator is expected).
        chrome
            .assert_no_console_errors_but("paying through Stripe.js", &["status of 402"])
            .await;
        wait_until("the 3-D Secure customer is active", || async {
            let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=sca").await;
            subs["results"][0]["status"] == "active"
        })
        .await;
        wait_until("pro granted at the edge", || async {
            has_access(&edge.entitlements("sca").await, "export-data")
        })
        .await;
    }
}

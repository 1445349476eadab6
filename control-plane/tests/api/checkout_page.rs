//! The hosted checkout page in a real browser (Debian's headless Chromium via chromedriver),
//! under its Content-Security-Policy: the page tells the truth (the offer with its trial, money
//! with its symbol, the plan's features, who pays); a declined card shows why and grants
//! nothing; a good card redirects to `successUrl` and the edge grants the plan.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::browser;
use crate::helpers::*;

both! {
    async fn a_person_pays_on_the_hosted_checkout_page(db: Db) {
        let Some(chrome) = browser::start("a_person_pays_on_the_hosted_checkout_page").await else {
            return;
        };
        let browser = &chrome.client;
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        api.create_customer("shopper").await;
        let success = format!("{}/healthz?paid={{CHECKOUT_SESSION_ID}}", cp.url);
        let (_, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"shopper","successUrl": success,
                       "cancelUrl": format!("{}/healthz?canceled=1", cp.url)}),
            )
            .await;
        let checkout_url = co["checkoutUrl"].as_str().unwrap().to_owned();
        let session_id = co["checkoutSessionId"].as_str().unwrap().to_owned();
        // Issue 15, finding 8: the id opens a page showing the payer's email, so it carries
        // far more than 128 random bits (a UUIDv7, then a UUIDv4).
        let hex = session_id.trim_start_matches("cs_test_");
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{session_id}");

        browser.goto(&checkout_url).await.unwrap();
        let plan = chrome.text("plan").await;
        assert!(plan.contains("Pro"), "{plan}");
        assert_eq!(chrome.text("price").await, "$49.00 / month");
        assert_eq!(chrome.text("due").await, "Due today: $49.00");
        assert_eq!(chrome.text("pay").await, "Pay $49.00");
        let features = chrome.text("features").await;
        for line in ["Export data", "API calls: 10,000", "Projects: 100", "Team size: 5"] {
            assert!(features.contains(line), "{line} in {features}");
        }
        assert_eq!(chrome.text("email").await, "shopper@example.com");
        chrome.assert_no_console_errors("the checkout page").await;

        // A declined card: the page says so, nothing is granted.
        fill(browser, "4000 0000 0000 0002").await;
        // The click navigates; wait for the re-rendered page rather than reading the old one.
        let error = browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(error.contains("declined"), "{error}");
        chrome
            .assert_no_console_errors_but("the declined page", &["status of 402"])
            .await;
        assert!(!has_access(
            &edge.entitlements("shopper").await,
            "export-data"
        ));
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=shopper").await;
        assert_eq!(subs["count"], 0);

        // The good card: redirected to successUrl with the session id filled in.
        fill(browser, "4242 4242 4242 4242").await;
        let mut landed = browser.current_url().await.unwrap();
        for _ in 0..300 {
            if landed.path() == "/healthz" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            landed = browser.current_url().await.unwrap();
        }
        assert_eq!(landed.path(), "/healthz");
        assert_eq!(landed.query(), Some(format!("paid={session_id}").as_str()));
        // The redirect after the form post is allowed by the page's form-action. (The landing
        // page here is /healthz, a JSON document without an icon: the browser asks for
        // /favicon.ico there, at a moment of its choosing, and gets the icon.)
        chrome.assert_no_console_errors("paying").await;
        wait_until("pro granted at the edge", || async {
            has_access(&edge.entitlements("shopper").await, "export-data")
        })
        .await;

        // Visiting the link again shows it is paid, and paying twice is impossible.
        browser.goto(&checkout_url).await.unwrap();
        assert!(browser.find(Locator::Id("done")).await.is_ok());
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=shopper").await;
        assert_eq!(subs["count"], 1);
        chrome.assert_no_console_errors("the paid page").await;
    }
}

both! {
    async fn the_checkout_page_tells_the_truth_about_trials_and_money(db: Db) {
        let Some(chrome) = browser::start("the_checkout_page_tells_the_truth_about_trials_and_money").await else {
            return;
        };
        let browser = &chrome.client;
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (status, _) = api
            .post(
                "/api/v1/customers/",
                json!({"customerId": "ada", "email": "ada@example.com", "name": "Ada"}),
            )
            .await;
        assert_eq!(status, 201);
        // Enterprise has a 14-day trial in the example catalog.
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"enterprise","chargePeriod":"YEARLY","customerId":"ada",
                       "successUrl": format!("{}/healthz?paid=1", cp.url)}),
            )
            .await;
        assert_eq!(status, 201, "{co}");
        browser.goto(co["checkoutUrl"].as_str().unwrap()).await.unwrap();
        assert_eq!(chrome.text("price").await, "14 days free, then $1,990.00 / year");
        assert_eq!(chrome.text("due").await, "Due today: $0.00");
        assert_eq!(chrome.text("pay").await, "Start 14-day free trial");
        let features = chrome.text("features").await;
        for line in ["Single sign-on", "API calls: unlimited", "Team size: 50"] {
            assert!(features.contains(line), "{line} in {features}");
        }
        assert_eq!(chrome.text("email").await, "ada@example.com");
        let title = browser.title().await.unwrap();
        assert_eq!(title, "Checkout · Enterprise");
        chrome.assert_no_console_errors("the trial checkout page").await;
        chrome.screenshot("checkout.png").await;

        // A yen plan: no minor unit, its own symbol.
        let (status, body) = api
            .post(
                "/api/v1/plans/",
                json!({"identifier":"tokyo","name":"Tokyo","group":"jp","isDefault":false,"trialDays":0,
                       "prices":[{"chargePeriod":"MONTHLY","amount":"1500","currency":"jpy"}],
                       "features":[{"featureId":"export-data","hasAccess":true}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (_, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"tokyo","chargePeriod":"MONTHLY","customerId":"ada","quantity":2,
                       "successUrl": format!("{}/healthz?paid=1", cp.url)}),
            )
            .await;
        browser.goto(co["checkoutUrl"].as_str().unwrap()).await.unwrap();
        assert_eq!(chrome.text("plan").await, "Tokyo × 2");
        assert_eq!(chrome.text("price").await, "¥3,000 / month");
        assert_eq!(chrome.text("pay").await, "Pay ¥3,000");
        chrome.assert_no_console_errors("the yen checkout page").await;
    }
}

async fn fill(browser: &fantoccini::Client, card: &str) {
    let form = browser.form(Locator::Id("pay-form")).await.unwrap();
    form.set_by_name("card_number", card).await.unwrap();
    form.set_by_name("expiry", "12/34").await.unwrap();
    form.set_by_name("cvc", "123").await.unwrap();
    form.set_by_name("name", "Ada Lovelace").await.unwrap();
    browser
        .find(Locator::Id("pay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

//! The hosted checkout page in a real browser (Debian's headless Chromium via chromedriver):
//! a declined card shows why and grants nothing; a good card redirects to `successUrl` and
//! the edge grants the plan.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

both! {
    async fn a_person_pays_on_the_hosted_checkout_page(db: Db) {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            return missing(
                "a_person_pays_on_the_hosted_checkout_page",
                "Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
            );
        }
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

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display())]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let mut browser = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    browser = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let browser = browser.expect("chromedriver session");

        browser.goto(&checkout_url).await.unwrap();
        let plan = browser
            .find(Locator::Id("plan"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(plan.contains("Pro"), "{plan}");
        let price = browser
            .find(Locator::Id("price"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(price.contains("49.00"), "{price}");

        // A declined card: the page says so, nothing is granted.
        fill(&browser, "4000 0000 0000 0002").await;
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
        assert!(!has_access(
            &edge.entitlements("shopper").await,
            "export-data"
        ));
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=shopper").await;
        assert_eq!(subs["count"], 0);

        // The good card: redirected to successUrl with the session id filled in.
        fill(&browser, "4242 4242 4242 4242").await;
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
        wait_until("pro granted at the edge", || async {
            has_access(&edge.entitlements("shopper").await, "export-data")
        })
        .await;

        // Visiting the link again shows it is paid, and paying twice is impossible.
        browser.goto(&checkout_url).await.unwrap();
        assert!(browser.find(Locator::Id("done")).await.is_ok());
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=shopper").await;
        assert_eq!(subs["count"], 1);
        browser.close().await.unwrap();
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

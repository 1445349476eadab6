//! The customer portal in a real browser, under its Content-Security-Policy: a customer on Pro
//! reviews an upgrade (the proration shown before anything happens), confirms it and is
//! charged exactly what the preview said; cancels, resumes, and replaces the card.

use fantoccini::Locator;
use serde_json::json;

use crate::browser;
use crate::helpers::*;
use crate::portal::portal_session;

both! {
    async fn a_customer_manages_their_plan_in_the_portal(db: Db) {
        let Some(chrome) = browser::start("a_customer_manages_their_plan_in_the_portal").await else {
            return;
        };
        let browser = &chrome.client;
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        let (status, _) = api
            .post(
                "/api/v1/customers/",
                json!({"customerId": "dana", "email": "dana@example.com", "name": "Dana"}),
            )
            .await;
        assert_eq!(status, 201);
        let sub = api.subscribe_paid("dana", "pro", "MONTHLY").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let (_, url) = portal_session(&api, "dana").await;

        // The page: plan, next invoice, card, invoice history.
        browser.goto(&url).await.unwrap();
        assert_eq!(chrome.text("customer").await, "dana@example.com");
        assert_eq!(chrome.text("plan-base").await, "Pro");
        assert_eq!(chrome.text("price-base").await, "$49.00 / month · active");
        let next = chrome.text("next-base").await;
        assert!(next.starts_with("Next invoice on ") && next.ends_with(": $49.00."), "{next}");
        assert_eq!(chrome.text("card").await, "Visa •••• 4242");
        let invoices = chrome.text("invoices").await;
        assert!(invoices.contains("New subscription") && invoices.contains("$49.00"), "{invoices}");
        chrome.assert_no_console_errors("the portal").await;
        chrome.screenshot("portal.png").await;

        // Review an upgrade: the preview comes first, and nothing has happened yet.
        let switch = browser.form(Locator::Id("switch-form-base")).await.unwrap();
        switch.set_by_name("price", "enterprise:MONTHLY").await.unwrap();
        chrome.click("review-base").await;
        chrome
            .wait_text("preview-heading", "Switch to Enterprise now")
            .await;
        let lines = chrome.text("lines").await;
        assert!(lines.contains("Unused time on") && lines.contains("-$"), "{lines}");
        assert!(lines.contains("Remaining time on"), "{lines}");
        let charged = chrome.text("charged").await;
        let shown = charged
            .strip_prefix("Charged now to your card: $")
            .unwrap_or_else(|| panic!("{charged}"))
            .replace(',', "");
        assert!(chrome.text("confirm").await.starts_with("Confirm and pay $"));
        chrome.assert_no_console_errors("the preview").await;
        chrome.screenshot("portal-preview.png").await;
        let (_, before) = api.get(&format!("/api/v1/subscriptions/{sub_id}/")).await;
        assert_eq!(before["plan"]["identifier"], "pro", "a preview changes nothing");

        // Confirm: switched now, charged exactly what the preview said.
        chrome.click("confirm").await;
        chrome.wait_text("notice", "Your plan was changed.").await;
        assert_eq!(chrome.text("plan-base").await, "Enterprise");
        chrome.assert_no_console_errors("after the switch").await;
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=dana").await;
        assert_eq!(invoices["count"], 2);
        assert_eq!(invoices["results"][0]["total"].as_str().unwrap(), shown);
        assert_eq!(invoices["results"][0]["reason"], "subscription_update");
        wait_until("enterprise granted at the edge", || async {
            has_access(&edge.entitlements("dana").await, "sso")
        })
        .await;

        // Cancel at period end, then resume.
        chrome.click("cancel-base").await;
        chrome
            .wait_text("notice", "Your subscription will end at the end of the current period.")
            .await;
        let next = chrome.text("next-base").await;
        assert!(next.starts_with("Ends on "), "{next}");
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub_id}/")).await;
        assert_eq!(now["cancelAtPeriodEnd"], true, "{now}");
        chrome.click("resume-base").await;
        chrome
            .wait_text("notice", "Your subscription will continue as before.")
            .await;
        let next = chrome.text("next-base").await;
        assert!(next.starts_with("Next invoice on ") && next.ends_with(": $199.00."), "{next}");
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub_id}/")).await;
        assert_eq!(now["cancelAtPeriodEnd"], false, "{now}");
        assert!(now["scheduledChange"].is_null(), "{now}");
        chrome.assert_no_console_errors("cancel and resume").await;

        // Replace the card: a declined one is refused, a good one replaces it.
        fill_card(&chrome, "4000 0000 0000 0002").await;
        chrome.wait_text("declined", "Your card was not accepted").await;
        chrome
            .assert_no_console_errors_but("the declined card", &["status of 402"])
            .await;
        chrome.click("continue").await;
        assert_eq!(chrome.text("card").await, "Visa •••• 4242");
        fill_card(&chrome, "4000 0000 0000 0341").await;
        chrome.wait_text("notice", "Your card was replaced.").await;
        assert_eq!(chrome.text("card").await, "Visa •••• 0341");
        chrome.assert_no_console_errors("the new card").await;
    }
}

async fn fill_card(chrome: &browser::Browser, number: &str) {
    let form = chrome.client.form(Locator::Id("card-form")).await.unwrap();
    form.set_by_name("card_number", number).await.unwrap();
    form.set_by_name("expiry", "12/34").await.unwrap();
    form.set_by_name("cvc", "123").await.unwrap();
    chrome.click("replace-card").await;
}

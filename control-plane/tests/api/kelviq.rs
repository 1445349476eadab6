//! Kelviq's whole surface through HTTP: the update preview (equal to the real update's
//! invoice), and the calls the SDKs make that go beyond the seed page.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

both! {
    async fn preview_equals_the_real_updates_invoice(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked_with_card(&api, "prev-1", "2026-04-01T00:00:00Z").await;
        let id = subscribed(&api, "prev-1", "pro", "MONTHLY").await;
        advance(&api, &clock, "2026-04-16T00:00:00Z").await;
        let before = api.get(&format!("/api/v1/subscriptions/{id}/")).await.1;

        // snake_case as the Python SDK sends it, with a trailing slash.
        let (status, preview) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/preview/"),
                json!({"plan_identifier": "enterprise", "charge_period": "MONTHLY"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        assert_eq!(preview["action"], "upgraded", "{preview}");
        assert_eq!(preview["currency"], "usd");
        assert_eq!(preview["amountChargedImmediatelyUnits"], 7_500, "{preview}");
        assert_eq!(preview["amountChargedImmediately"], 75.0);
        assert_eq!(preview["recurringAmountUnits"], 19_900);
        assert_eq!(preview["recurringAmount"], 199.0);
        assert_eq!(preview["nextInvoice"]["amountDueUnits"], 7_500);
        assert_eq!(preview["nextInvoice"]["lineItems"].as_array().unwrap().len(), 2);
        assert_eq!(preview["upcomingInvoice"]["amountDueUnits"], 19_900);

        // Nothing changed; previewing twice gives the same answer.
        let after = api.get(&format!("/api/v1/subscriptions/{id}/")).await.1;
        assert_eq!(before, after, "a preview must not change the subscription");
        let again = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/preview"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY"}),
            )
            .await
            .1;
        assert_eq!(again, preview);

        let (status, updated) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["subscriptionId"], id.as_str());
        let invoice = &updated["invoice"];
        assert_eq!(invoice["lines"], preview["invoice"]["lines"], "preview lines == invoice lines");
        assert_eq!(invoice["total"], preview["invoice"]["total"]);
        assert_eq!(invoice["status"], "paid");
    }
}

both! {
    async fn preview_of_deferred_and_scheduled_changes(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked_with_card(&api, "prev-2", "2026-04-01T00:00:00Z").await;
        let id = subscribed(&api, "prev-2", "enterprise", "MONTHLY").await;
        // Enterprise has a 14-day trial: end it now, preview first.
        let (status, p) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/preview/"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY", "trialEnd": "now"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!((p["action"].as_str(), p["amountChargedImmediatelyUnits"].as_i64()), (Some("trial_changed"), Some(19_900)), "{p}");
        let (status, u) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY", "trial_end": "now"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{u}");
        assert_eq!(u["subscription"]["status"], "active", "{u}");
        assert_eq!(u["invoice"]["lines"], p["invoice"]["lines"]);

        advance(&api, &clock, "2026-04-10T00:00:00Z").await;
        // A downgrade: nothing now, the lower price at the period's end.
        let (status, p) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/preview/"),
                json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["action"], "downgrade_scheduled");
        assert_eq!(p["amountChargedImmediatelyUnits"], 0);
        assert!(p["invoice"].is_null(), "{p}");
        assert_eq!(p["nextInvoice"]["amountDueUnits"], 4_900);
        assert_eq!(p["effectiveAt"], "2026-05-01T00:00:00Z");

        // A seat change deferred to the next invoice, through `features`.
        let (status, p) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/preview/"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY",
                       "prorationBehavior": "PRORATE_NEXT_INVOICE",
                       "features": [{"identifier": "team-size", "quantity": 2}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["action"], "quantity_changed", "{p}");
        assert_eq!(p["amountChargedImmediatelyUnits"], 0);
        let upcoming = p["upcomingInvoice"]["amountDueUnits"].as_i64().unwrap();
        assert!(upcoming > 2 * 19_900, "{p}");
        let (status, u) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/"),
                json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY",
                       "proration_behavior": "PRORATE_NEXT_INVOICE",
                       "features": [{"identifier": "team-size", "quantity": 2}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{u}");
        assert_eq!(u["subscription"]["quantity"], 2);
        assert!(u["invoice"].is_null());
        advance(&api, &clock, "2026-05-01T00:00:00Z").await;
        let (_, list) = api
            .get("/api/v1/invoices/?customer_id=prev-2&page_size=100")
            .await;
        let renewal = &list["results"][0];
        assert_eq!(renewal["lines"], p["upcomingInvoice"]["lines"], "{list}");
    }
}

both! {
    async fn preview_refuses_bad_input_with_the_envelope(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let _clock = clocked_with_card(&api, "prev-3", "2026-04-01T00:00:00Z").await;
        let id = subscribed(&api, "prev-3", "pro", "MONTHLY").await;
        let path = format!("/api/v1/subscriptions/{id}/update/preview/");
        let cases: Vec<(Value, StatusCode, &str)> = vec![
            (json!({}), StatusCode::BAD_REQUEST, "planIdentifier"),
            (json!({"planIdentifier": 5, "chargePeriod": "MONTHLY"}), StatusCode::BAD_REQUEST, "planIdentifier"),
            (json!({"planIdentifier": "pro"}), StatusCode::BAD_REQUEST, "chargePeriod"),
            (json!({"planIdentifier": "nope", "chargePeriod": "MONTHLY"}), StatusCode::NOT_FOUND, "nope"),
            (json!({"planIdentifier": "pro", "chargePeriod": "FORTNIGHTLY"}), StatusCode::BAD_REQUEST, "chargePeriod"),
            (json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME"}), StatusCode::BAD_REQUEST, "group"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "prorationBehavior": "SOMETIMES"}), StatusCode::BAD_REQUEST, "prorationBehavior"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "trialEnd": "yesterday"}), StatusCode::BAD_REQUEST, "trialEnd"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "trialEnd": "2020-01-01T00:00:00Z"}), StatusCode::BAD_REQUEST, "trialEnd"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "quantity": 0}), StatusCode::BAD_REQUEST, "quantity"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "features": [{"identifier": "api-calls", "quantity": 2}]}), StatusCode::BAD_REQUEST, "features[0].identifier"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "features": [{"identifier": "team-size"}]}), StatusCode::BAD_REQUEST, "quantity"),
            (json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "features": "seats"}), StatusCode::BAD_REQUEST, "features"),
        ];
        for (body, expected, mentions) in cases {
            let (status, reply) = api.post(&path, body.clone()).await;
            assert_eq!(status, expected, "{body} → {reply}");
            assert_envelope(status, &reply, &body.to_string());
            let message = reply["error"]["message"].as_str().unwrap();
            assert!(message.contains(mentions), "{body}: {message} should name {mentions}");
        }
        let (status, reply) = api
            .post("/api/v1/subscriptions/nope/update/preview/", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
        // The other mode's subscription does not exist for a live key.
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, reply) = live
            .post(&path, json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
        let publishable = cp.api_with(&cp.keys.publishable);
        let (status, reply) = publishable
            .post(&path, json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"}))
            .await;
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN, "{reply}");
        assert_envelope(status, &reply, "publishable key");
    }
}

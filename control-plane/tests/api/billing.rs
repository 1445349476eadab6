//! The lifecycle rules, money and time, driven by test clocks — never by sleeping.
//! Each behaviour-table row is proven through `subscribe` and through Kelviq's `update`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn granting(api: &Api, customer: &str) -> Vec<Value> {
    let (_, body) = api
        .get(&format!(
            "/api/v1/subscriptions/?customer_id={customer}&page_size=100"
        ))
        .await;
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            matches!(
                s["status"].as_str(),
                Some("active" | "trialing" | "past_due")
            )
        })
        .cloned()
        .collect()
}

both! {
    async fn new_subscriptions_free_paid_with_card_and_checkout(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        // Row: new subscription to the free plan activates at once, no record, no payment.
        api.create_customer("free-user").await;
        let body = subscribe_ok(&api, "free-user", "free", "MONTHLY", "default_plan").await;
        assert!(
            body["subscription"].is_null() && body["paymentUrl"].is_null() && body["invoice"].is_null(),
            "{body}"
        );
        let (status, body) = api
            .post(
                "/api/v1/subscribe/",
                json!({"customerId": "free-user", "planId": "free"}),
            )
            .await;
        assert_eq!(
            (status, body["action"].as_str()),
            (StatusCode::OK, Some("default_plan"))
        );

        // Row: paid plan without a payment method → paymentUrl; the pending subscription grants nothing.
        api.create_customer("no-card").await;
        let body = subscribe_ok(&api, "no-card", "pro", "MONTHLY", "checkout_required").await;
        let url = body["paymentUrl"].as_str().unwrap();
        assert!(url.contains("/checkout/cs_test_"), "{url}");
        let pending_id = body["subscription"]["id"].as_str().unwrap().to_owned();
        assert_eq!(body["subscription"]["status"], "incomplete");
        assert!(granting(&api, "no-card").await.is_empty());
        let session = url.trim_end_matches('/').rsplit('/').next().unwrap();
        let (status, done) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(
            done["subscription"]["id"],
            pending_id.as_str(),
            "checkout activates the same subscription"
        );
        assert_eq!(sub(&api, &pending_id).await["status"], "active");
        assert_eq!(invoices(&api, "no-card").await[0]["total"], "49.00");

        // Row: paid plan with a card on file → created and charged directly.
        api.create_customer("carded").await;
        card(&api, "carded", "pm_card_visa").await;
        let body = subscribe_ok(&api, "carded", "pro", "YEARLY", "created").await;
        assert_eq!(body["subscription"]["status"], "active");
        assert_eq!(body["invoice"]["status"], "paid");
        assert_eq!(body["invoice"]["total"], "490.00");
        // forceCheckout sends even a customer with a card through checkout.
        api.create_customer("forced").await;
        card(&api, "forced", "pm_card_visa").await;
        let (_, body) = api
            .post("/api/v1/subscribe/", json!({"customerId":"forced","planId":"pro","chargePeriod":"MONTHLY","forceCheckout":true,"successUrl":"https://a.example.com/"}))
            .await;
        assert_eq!(body["action"], "checkout_required", "{body}");

        // A declined card grants nothing and says why.
        api.create_customer("declined").await;
        card(&api, "declined", "pm_card_chargeCustomerFail").await;
        let (status, body) = subscribe(&api, "declined", "pro", "MONTHLY").await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("declined"),
            "{body}"
        );
        // The attempt is on record, granting nothing: a subscription that never started
        // (`incomplete_expired`, Stripe's name), its invoice void, its payment failed.
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=declined").await;
        assert!(
            subs["results"].as_array().unwrap().iter().all(|s| s["status"] == "incomplete_expired"),
            "{subs}"
        );
        assert!(
            invoices(&api, "declined").await.iter().all(|i| i["status"] == "void"),
            "a declined first payment left an invoice to pay"
        );
        let (_, payments) = api.get("/api/v1/payments/?customer_id=declined").await;
        assert_eq!(payments["results"][0]["status"], "failed", "{payments}");
        assert_eq!(payments["results"][0]["declineCode"], "card_declined", "{payments}");
        // …and pm_card_chargeDeclined cannot even be attached.
        let (status, _) = api
            .post(
                "/api/v1/customers/declined/payment-methods/",
                json!({"token":"pm_card_chargeDeclined"}),
            )
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    }
}

both! {
    async fn upgrade_now_with_exact_proration_then_downgrade_at_period_end(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "up", "2026-04-01T00:00:00Z").await;
        card(&api, "up", "pm_card_visa").await;
        let created = subscribe_ok(&api, "up", "pro", "MONTHLY", "created").await;
        let id = created["subscription"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            created["subscription"]["currentPeriodEnd"],
            "2026-05-01T00:00:00Z"
        );

        // Row: upgrade at mid-period (15 of 30 days left): −24.50 for unused Pro, +99.50 for Enterprise.
        advance(&api, &clock, "2026-04-16T00:00:00Z").await;
        let up = subscribe_ok(&api, "up", "enterprise", "MONTHLY", "upgraded").await;
        assert_eq!(up["subscription"]["id"], id.as_str());
        assert_eq!(up["subscription"]["plan"]["identifier"], "enterprise");
        let lines = up["invoice"]["lines"].as_array().unwrap();
        assert_eq!(lines.len(), 2, "{}", up["invoice"]);
        assert_eq!(lines[0]["amount"], "-24.50");
        assert!(lines[0]["proration"].as_bool().unwrap());
        assert_eq!(lines[1]["amount"], "99.50");
        assert_eq!(up["invoice"]["total"], "75.00");
        assert_eq!(up["invoice"]["status"], "paid");
        assert_eq!(
            up["subscription"]["currentPeriodEnd"], "2026-05-01T00:00:00Z",
            "same cycle"
        );

        // Row: downgrade → scheduled for period end; the plan stays until then.
        let down = subscribe_ok(&api, "up", "pro", "MONTHLY", "downgrade_scheduled").await;
        assert_eq!(down["subscription"]["plan"]["identifier"], "enterprise");
        assert_eq!(
            down["subscription"]["scheduledChange"]["planIdentifier"],
            "pro"
        );
        assert_eq!(
            down["subscription"]["scheduledChange"]["effectiveAt"],
            "2026-05-01T00:00:00Z"
        );
        // Row: cancel to free while a downgrade is pending replaces the target.
        let cancel = subscribe_ok(&api, "up", "free", "MONTHLY", "cancel_scheduled").await;
        assert_eq!(
            cancel["subscription"]["scheduledChange"]["planIdentifier"],
            "free"
        );
        assert_eq!(cancel["subscription"]["cancelAtPeriodEnd"], true);
        // Row: re-subscribing to the current plan resumes.
        let resumed = subscribe_ok(&api, "up", "enterprise", "MONTHLY", "resumed").await;
        assert!(resumed["subscription"]["scheduledChange"].is_null());
        assert_eq!(resumed["subscription"]["cancelAtPeriodEnd"], false);
        // Row: the same plan with nothing pending is a no-op.
        subscribe_ok(&api, "up", "enterprise", "MONTHLY", "no_op").await;
        let before = invoices(&api, "up").await.len();

        // Downgrade again; at period end it applies and renews at the lower price.
        subscribe_ok(&api, "up", "pro", "MONTHLY", "downgrade_scheduled").await;
        advance(&api, &clock, "2026-05-01T00:00:00Z").await;
        let s = sub(&api, &id).await;
        assert_eq!(s["plan"]["identifier"], "pro");
        assert_eq!(s["status"], "active");
        assert_eq!(s["currentPeriodEnd"], "2026-06-01T00:00:00Z");
        assert!(s["scheduledChange"].is_null());
        let all = invoices(&api, "up").await;
        assert_eq!(all.len(), before + 1);
        assert_eq!(all[0]["total"], "49.00");
        assert_eq!(all[0]["reason"], "subscription_cycle");

        // Row: same plan on a longer period is an upgrade: new cycle, credit + full yearly price.
        advance(&api, &clock, "2026-05-11T00:00:00Z").await;
        let yearly = subscribe_ok(&api, "up", "pro", "YEARLY", "upgraded").await;
        let lines = yearly["invoice"]["lines"].as_array().unwrap();
        // 21 of 31 days left of 49.00 = 33.193… → 33.19 credit.
        assert_eq!(lines[0]["amount"], "-33.19");
        assert_eq!(lines[1]["amount"], "490.00");
        assert_eq!(
            yearly["subscription"]["currentPeriodStart"],
            "2026-05-11T00:00:00Z"
        );
        assert_eq!(
            yearly["subscription"]["currentPeriodEnd"],
            "2027-05-11T00:00:00Z"
        );

        // Row: cancel to free → at period end the customer is back on free.
        subscribe_ok(&api, "up", "free", "MONTHLY", "cancel_scheduled").await;
        advance(&api, &clock, "2027-05-11T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "canceled");
        assert!(granting(&api, "up").await.is_empty());
    }
}

both! {
    async fn kelviq_update_follows_the_same_rules(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "kv", "2026-04-01T00:00:00Z").await;
        card(&api, "kv", "pm_card_visa").await;
        let id = subscribe_ok(&api, "kv", "pro", "MONTHLY", "created").await["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        advance(&api, &clock, "2026-04-16T00:00:00Z").await;
        let update = |plan: &str, period: &str| {
            let api = api.clone();
            let path = format!("/api/v1/subscriptions/{id}/update/");
            let body = json!({"planIdentifier": plan, "chargePeriod": period});
            async move { api.post(&path, body).await }
        };
        // Upgrade: immediate, same exact proration as through subscribe.
        let (status, up) = update("enterprise", "MONTHLY").await;
        assert_eq!(status, StatusCode::OK, "{up}");
        assert_eq!(up["subscriptionId"], id.as_str());
        assert_eq!(up["subscription"]["plan"]["identifier"], "enterprise");
        assert_eq!(up["invoice"]["total"], "75.00");
        // Downgrade: scheduled.
        let (_, down) = update("pro", "MONTHLY").await;
        assert_eq!(down["subscription"]["plan"]["identifier"], "enterprise");
        assert_eq!(
            down["subscription"]["scheduledChange"]["planIdentifier"],
            "pro"
        );
        // Same plan: resume, then no-op.
        let (_, resumed) = update("enterprise", "MONTHLY").await;
        assert!(resumed["subscription"]["scheduledChange"].is_null());
        let (_, again) = update("enterprise", "MONTHLY").await;
        assert_eq!(again["action"], "no_op");
        // Quantity on the same plan updates in place, prorated.
        let (_, seats) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/update/"),
                json!({"planIdentifier":"enterprise","chargePeriod":"MONTHLY","quantity":2}),
            )
            .await;
        assert_eq!(seats["action"], "quantity_changed", "{seats}");
        assert_eq!(seats["subscription"]["quantity"], 2);
        assert_eq!(seats["subscription"]["amount"], "398.00");
        // NO_PRORATION switches without an invoice.
        let (_, np) = api
            .post(&format!("/api/v1/subscriptions/{id}/update/"), json!({"planIdentifier":"enterprise","chargePeriod":"MONTHLY","quantity":3,"prorationBehavior":"NO_PRORATION"}))
            .await;
        assert!(np["invoice"].is_null(), "{np}");
        // Kelviq cancel at period end, then resume.
        let (_, c) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/cancel/"),
                json!({"cancellationType":"CURRENT_PERIOD_ENDS"}),
            )
            .await;
        assert_eq!(c["cancelAtPeriodEnd"], true);
        assert_eq!(c["endDate"], "2026-05-01");
        let (_, r) = api
            .post(&format!("/api/v1/subscriptions/{id}/resume/"), json!({}))
            .await;
        assert_eq!(r["cancelAtPeriodEnd"], false);
        // Immediate cancel ends access now.
        let (_, c) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/cancel/"),
                json!({"cancellationType":"IMMEDIATE"}),
            )
            .await;
        assert_eq!(c["status"], "canceled");
        assert!(granting(&api, "kv").await.is_empty());
    }
}

both! {
    async fn renewals_follow_the_calendar_and_one_time_never_renews(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "cal", "2025-01-31T12:00:00Z").await;
        card(&api, "cal", "pm_card_visa").await;
        let id = subscribe_ok(&api, "cal", "pro", "MONTHLY", "created").await["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            sub(&api, &id).await["currentPeriodEnd"],
            "2025-02-28T12:00:00Z"
        );
        advance(&api, &clock, "2025-02-28T12:00:00Z").await;
        assert_eq!(
            sub(&api, &id).await["currentPeriodEnd"],
            "2025-03-31T12:00:00Z"
        );
        // Several renewals in one advance, each on its own date.
        let adv = advance(&api, &clock, "2025-06-01T00:00:00Z").await;
        assert!(adv["stepsRun"].as_u64().unwrap() >= 3, "{adv}");
        let s = sub(&api, &id).await;
        assert_eq!(s["currentPeriodStart"], "2025-05-31T12:00:00Z");
        assert_eq!(s["currentPeriodEnd"], "2025-06-30T12:00:00Z");
        let all = invoices(&api, "cal").await;
        assert_eq!(all.len(), 5, "create + Feb 28, Mar 31, Apr 30, May 31");
        let periods: Vec<_> = all
            .iter()
            .map(|i| i["lines"][0]["periodStart"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            periods,
            [
                "2025-05-31T12:00:00Z",
                "2025-04-30T12:00:00Z",
                "2025-03-31T12:00:00Z",
                "2025-02-28T12:00:00Z",
                "2025-01-31T12:00:00Z"
            ]
        );
        // Advancing again to the same time runs nothing twice.
        let again = advance(&api, &clock, "2025-06-01T00:00:00Z").await;
        assert_eq!(again["stepsRun"], 0);
        let (status, _) = api
            .post(
                &format!("/api/v1/test-clocks/{clock}/advance/"),
                json!({"frozenTime":"2025-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "clocks move forward only");

        // ONE_TIME grants for life and never renews.
        let life = subscribe_ok(&api, "cal", "sso-lifetime", "ONE_TIME", "created").await;
        let life_id = life["subscription"]["id"].as_str().unwrap().to_owned();
        assert!(life["subscription"]["currentPeriodEnd"].is_null());
        advance(&api, &clock, "2030-01-01T00:00:00Z").await;
        assert_eq!(sub(&api, &life_id).await["status"], "active");
        let lifetime_invoices = invoices(&api, "cal")
            .await
            .into_iter()
            .filter(|i| i["subscriptionId"] == life_id.as_str())
            .count();
        assert_eq!(lifetime_invoices, 1);
    }
}

both! {
    async fn failed_renewals_go_past_due_then_cancel_to_free(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        edge.wait_ready().await;
        let clock = clocked(&api, "dun", "2026-03-01T00:00:00Z").await;
        // 0341 pays at checkout and fails every later charge.
        let (_, co) = api
            .post("/api/v1/checkout/", json!({"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"dun","successUrl":"https://a.example.com/"}))
            .await;
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (status, done) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod":"pm_card_chargeCustomerFail"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        let id = done["subscription"]["id"].as_str().unwrap().to_owned();

        advance(&api, &clock, "2026-04-01T00:00:00Z").await;
        let s = sub(&api, &id).await;
        assert_eq!(s["status"], "past_due", "{s}");
        assert_eq!(invoices(&api, "dun").await[0]["status"], "open");
        wait_until("past_due keeps access at the edge", || async {
            has_access(&edge.entitlements("dun").await, "export-data")
        })
        .await;
        // Retries on days 3 and 5 fail; still past_due.
        advance(&api, &clock, "2026-04-06T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "past_due");
        // Day 7: the last retry fails → canceled, invoice uncollectible, back to free.
        advance(&api, &clock, "2026-04-08T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "canceled");
        assert_eq!(invoices(&api, "dun").await[0]["status"], "uncollectible");
        wait_until("free again at the edge", || async {
            !has_access(&edge.entitlements("dun").await, "export-data")
        })
        .await;
    }
}

both! {
    async fn a_retry_with_a_new_card_recovers(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "rec", "2026-03-01T00:00:00Z").await;
        card(&api, "rec", "pm_card_visa").await;
        let id = subscribe_ok(&api, "rec", "pro", "MONTHLY", "created").await["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        card(&api, "rec", "pm_card_chargeCustomerFail").await;
        advance(&api, &clock, "2026-04-01T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "past_due");
        card(&api, "rec", "pm_card_visa").await;
        advance(&api, &clock, "2026-04-04T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "active");
        assert_eq!(invoices(&api, "rec").await[0]["status"], "paid");
    }
}

both! {
    async fn trials_grant_then_charge_or_end(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        // Enterprise has a 14-day trial in the example catalog.
        let clock = clocked(&api, "trial", "2026-01-10T00:00:00Z").await;
        card(&api, "trial", "pm_card_visa").await;
        let body = subscribe_ok(&api, "trial", "enterprise", "MONTHLY", "created").await;
        let id = body["subscription"]["id"].as_str().unwrap().to_owned();
        assert_eq!(body["subscription"]["status"], "trialing");
        assert_eq!(body["subscription"]["trialEnd"], "2026-01-24T00:00:00Z");
        assert!(body["invoice"].is_null(), "no charge during a trial");
        advance(&api, &clock, "2026-01-24T00:00:00Z").await;
        let s = sub(&api, &id).await;
        assert_eq!(s["status"], "active");
        assert_eq!(s["currentPeriodEnd"], "2026-02-24T00:00:00Z");
        let first = &invoices(&api, "trial").await[0];
        assert_eq!(
            (first["reason"].as_str(), first["total"].as_str()),
            (Some("trial_end"), Some("199.00"))
        );

        // Without a card at trial end, the subscription ends.
        let clock2 = clocked(&api, "trial2", "2026-01-10T00:00:00Z").await;
        card(&api, "trial2", "pm_card_visa").await;
        let id2 = subscribe_ok(&api, "trial2", "enterprise", "MONTHLY", "created").await["subscription"]["id"].as_str().unwrap().to_owned();
        let (status, _) = api
            .call(
                reqwest::Method::DELETE,
                "/api/v1/customers/trial2/payment-methods/",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        advance(&api, &clock2, "2026-01-25T00:00:00Z").await;
        assert_eq!(sub(&api, &id2).await["status"], "canceled");
        assert!(invoices(&api, "trial2").await.is_empty());
    }
}

both! {
    async fn usage_meters_count_reset_and_reach_the_edge(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        edge.wait_ready().await;
        let clock = clocked(&api, "meter", "2026-02-01T00:00:00Z").await;
        card(&api, "meter", "pm_card_visa").await;
        subscribe_ok(&api, "meter", "pro", "MONTHLY", "created").await;

        let (status, m) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"meter","featureId":"api-calls","quantity":40}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{m}");
        assert_eq!(
            (m["currentUsage"].as_i64(), m["remaining"].as_i64()),
            (Some(40), Some(9_960))
        );
        assert_eq!(m["resetAt"], "2026-03-01T00:00:00Z");
        let (_, m) = api
            .post(
                "/api/v1/report/usage/",
                json!({"customerId":"meter","featureId":"api-calls","value":10_000,"behaviour":"SET"}),
            )
            .await;
        assert_eq!(
            (m["currentUsage"].as_i64(), m["hasAccess"].as_bool()),
            (Some(10_000), Some(false))
        );
        let meter_at_edge = || async {
            let e = edge.entitlements("meter").await;
            e["entitlements"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["featureId"] == "api-calls")
                .unwrap()
                .clone()
        };
        wait_until("usage at the edge", || async {
            meter_at_edge().await["currentUsage"] == 10_000
        })
        .await;
        let e = meter_at_edge().await;
        assert_eq!(
            (e["hasAccess"].as_bool(), e["remaining"].as_i64()),
            (Some(false), Some(0))
        );

        // Idempotent by key: the retry does not count twice.
        for _ in 0..2 {
            let (status, _) = api
                .raw(
                    reqwest::Method::POST,
                    "/api/v1/usage/",
                    br#"{"customerId":"meter","featureId":"max-projects","quantity":2}"#,
                    &[("idempotency-key", "u-1")],
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        let (_, m) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"meter","featureId":"max-projects","quantity":0}),
            )
            .await;
        assert_eq!(m["currentUsage"], 2);

        // Rejections.
        let (status, body) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"ghost","featureId":"api-calls","quantity":1}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_envelope(status, &body, "unknown customer");
        let (status, body) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"meter","featureId":"export-data","quantity":1}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("featureId"),
            "{body}"
        );
        let (status, _) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId":"meter","featureId":"api-calls","quantity":1,"set":3}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // The period ends: the meter resets, and the edge sees it.
        advance(&api, &clock, "2026-03-01T00:00:00Z").await;
        wait_until("reset at the edge", || async {
            meter_at_edge().await["currentUsage"] == 0
        })
        .await;
        let e = meter_at_edge().await;
        assert_eq!(
            (e["hasAccess"].as_bool(), e["resetAt"].as_str()),
            (Some(true), Some("2026-04-01T00:00:00Z"))
        );
    }
}

both! {
    async fn simultaneous_subscribes_leave_exactly_one_active_subscription(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("race").await;
        card(&api, "race", "pm_card_visa").await;
        let calls = (0..8).map(|_| {
            let api = api.clone();
            tokio::spawn(async move { subscribe(&api, "race", "pro", "MONTHLY").await })
        });
        let results = futures_util::future::join_all(calls).await;
        let actions: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap().1["action"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(
            actions.iter().filter(|a| *a == "created").count(),
            1,
            "{actions:?}"
        );
        assert!(
            actions.iter().all(|a| a == "created" || a == "no_op"),
            "{actions:?}"
        );
        assert_eq!(granting(&api, "race").await.len(), 1);
        assert_eq!(invoices(&api, "race").await.len(), 1, "charged once");
    }
}

both! {
    async fn checkout_trial_days_start_a_trial(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "co-trial", "2026-06-01T00:00:00Z").await;
        let (_, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"co-trial","trialDays":7,
                       "successUrl":"https://a.example.com/"}),
            )
            .await;
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (_, done) = api
            .post(&format!("/api/v1/checkout/{session}/complete/"), json!({}))
            .await;
        assert_eq!(done["subscription"]["status"], "trialing", "{done}");
        assert_eq!(done["subscription"]["trialEnd"], "2026-06-08T00:00:00Z");
        assert!(
            invoices(&api, "co-trial").await.is_empty(),
            "nothing charged during the trial"
        );
        advance(&api, &clock, "2026-06-08T00:00:00Z").await;
        let id = done["subscription"]["id"].as_str().unwrap();
        let s = sub(&api, id).await;
        assert_eq!(
            (s["status"].as_str(), s["currentPeriodEnd"].as_str()),
            (Some("active"), Some("2026-07-08T00:00:00Z"))
        );
        assert_eq!(invoices(&api, "co-trial").await[0]["total"], "49.00");
    }
}

both! {
    /// Regressions from code review: each of these once billed or ended the wrong way.
    async fn review_regressions(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (status, _) = api
            .post(
                "/api/v1/plans/",
                json!({"identifier":"daily","name":"Daily","group":"dg","prices":[{"chargePeriod":"DAILY","amount":"1.00","currency":"usd"}],
                       "features":[{"featureId":"sso"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = api
            .post("/api/v1/plans/", json!({"identifier":"zero","name":"Zero","group":"zg","prices":[{"chargePeriod":"MONTHLY","amount":"0.00","currency":"usd"}],"features":[{"featureId":"sso"}]}))
            .await;
        assert_eq!(status, StatusCode::CREATED);

        // Dunning longer than a DAILY period: unpaid at the next period end → ended, not renewed on credit.
        let clock = clocked(&api, "short", "2026-03-01T00:00:00Z").await;
        let (_, co) = api
            .post("/api/v1/checkout/", json!({"planIdentifier":"daily","chargePeriod":"DAILY","customerId":"short","successUrl":"https://a.example.com/"}))
            .await;
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (_, done) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod":"pm_card_chargeCustomerFail"}),
            )
            .await;
        let id = done["subscription"]["id"].as_str().unwrap().to_owned();
        advance(&api, &clock, "2026-03-02T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "past_due");
        advance(&api, &clock, "2026-03-04T00:00:00Z").await;
        assert_eq!(sub(&api, &id).await["status"], "canceled");
        let all = invoices(&api, "short").await;
        assert_eq!(
            all.iter().filter(|i| i["status"] == "open").count(),
            0,
            "no orphaned open invoices"
        );
        assert_eq!(
            all.iter()
                .filter(|i| i["status"] == "uncollectible")
                .count(),
            1
        );

        // A 0-priced plan of its own is joined, not mistaken for the free default.
        api.create_customer("zeroed").await;
        card(&api, "zeroed", "pm_card_visa").await;
        let body = subscribe_ok(&api, "zeroed", "zero", "MONTHLY", "created").await;
        assert_eq!(body["subscription"]["plan"]["identifier"], "zero");

        // A scheduled downgrade keeps its quantity: enterprise × 3 → pro × 2 bills pro × 2.
        let clock = clocked(&api, "qty", "2026-04-01T00:00:00Z").await;
        card(&api, "qty", "pm_card_visa").await;
        api.post("/api/v1/subscribe/", json!({"customerId":"qty","planId":"enterprise","chargePeriod":"MONTHLY","quantity":3,"trialDays":0})).await;
        let down = api
            .post(
                "/api/v1/subscribe/",
                json!({"customerId":"qty","planId":"pro","chargePeriod":"MONTHLY","quantity":2}),
            )
            .await
            .1;
        assert_eq!(down["action"], "downgrade_scheduled", "{down}");
        advance(&api, &clock, "2026-05-01T00:00:00Z").await;
        let renewal = &invoices(&api, "qty").await[0];
        assert_eq!(renewal["total"], "98.00", "{renewal}");
        let s = sub(&api, down["subscription"]["id"].as_str().unwrap()).await;
        assert_eq!(
            (s["quantity"].as_i64(), s["plan"]["identifier"].as_str()),
            (Some(2), Some("pro"))
        );

        // ONE_TIME: more seats cost the difference in full; "cancel at period end" ends it now.
        api.create_customer("lifer").await;
        card(&api, "lifer", "pm_card_visa").await;
        let life = subscribe_ok(&api, "lifer", "sso-lifetime", "ONE_TIME", "created").await;
        let more = api.post("/api/v1/subscribe/", json!({"customerId":"lifer","planId":"sso-lifetime","chargePeriod":"ONE_TIME","quantity":3})).await.1;
        assert_eq!(more["action"], "quantity_changed", "{more}");
        assert_eq!(more["invoice"]["total"], "598.00");
        let id = life["subscription"]["id"].as_str().unwrap();
        let (_, c) = api
            .post(
                &format!("/api/v1/subscriptions/{id}/cancel/"),
                json!({"cancellationType":"CURRENT_PERIOD_ENDS"}),
            )
            .await;
        assert_eq!(c["status"], "canceled", "{c}");
    }
}

both! {
    /// Issue 9: the credit balance is kept per currency; a yen credit never pays a dollar
    /// invoice, and does pay a later yen one.
    async fn a_yen_credit_does_not_pay_a_dollar_invoice(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (status, plan) = api
            .post(
                "/api/v1/plans/",
                json!({"identifier": "team-jp", "name": "Team (Japan)", "group": "jp",
                       "prices": [{"chargePeriod": "MONTHLY", "amount": "5000", "currency": "jpy"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{plan}");
        api.create_customer("yen").await;
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": "team-jp", "chargePeriod": "MONTHLY", "customerId": "yen",
                       "quantity": 3, "successUrl": "https://app.example.com/ok"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (status, done) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        let sub_id = done["subscription"]["id"].as_str().unwrap().to_owned();

        // Three seats down to one, at once and prorated: the unused two seats become yen credit.
        let (status, down) = api
            .post(
                &format!("/api/v1/subscriptions/{sub_id}/update/"),
                json!({"planIdentifier": "team-jp", "chargePeriod": "MONTHLY", "quantity": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{down}");
        let (_, balances) = api.get("/api/v1/customers/yen/balances/").await;
        let yen_credit = |b: &Value| -> Option<i64> {
            b["balances"]
                .as_array()?
                .iter()
                .find(|x| x["currency"] == "jpy")?["amount"]
                .as_str()?
                .parse()
                .ok()
        };
        let credit = yen_credit(&balances).expect("a yen credit");
        assert!(credit > 0, "{balances}");
        assert!(
            balances["balances"].as_array().unwrap().iter().all(|x| x["currency"] == "jpy"),
            "{balances}"
        );

        // A dollar plan in another group: charged to the card in full; the yen credit stays.
        let sub = api.subscribe_paid("yen", "pro", "MONTHLY").await;
        assert_eq!(sub["status"], "active", "{sub}");
        let (_, invoices) = api.get("/api/v1/invoices/?customerId=yen").await;
        let usd = invoices["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["currency"] == "usd")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(usd["total"], "49.00", "{invoices}");
        assert_eq!(usd["status"], "paid", "{invoices}");
        let (_, after) = api.get("/api/v1/customers/yen/balances/").await;
        assert_eq!(yen_credit(&after), Some(credit), "the yen credit paid a dollar invoice: {after}");

        // Back up to two seats: the yen invoice uses the yen credit first.
        let (status, up) = api
            .post(
                &format!("/api/v1/subscriptions/{sub_id}/update/"),
                json!({"planIdentifier": "team-jp", "chargePeriod": "MONTHLY", "quantity": 2}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{up}");
        let (_, last) = api.get("/api/v1/customers/yen/balances/").await;
        assert!(yen_credit(&last).unwrap_or(0) < credit, "the yen credit was not used: {last}");
        let (status, _) = api.get("/api/v1/customers/ghost/balances/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

both! {
    /// Issue 9: checkout sessions expire (`--checkout-ttl-secs`, 24 h by default) in the
    /// customer's time: the test clock drives it here. An expired page says so and takes no
    /// payment, `complete` answers 409, and the pending subscription ends.
    async fn a_checkout_paid_after_expiry_is_refused(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "late", "2026-03-01T00:00:00Z").await;
        let (status, body) = subscribe(&api, "late", "pro", "MONTHLY").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["action"], "checkout_required", "{body}");
        let url = body["paymentUrl"].as_str().unwrap().to_owned();
        let session = url
            .split(['/', '?'])
            .find(|s| s.starts_with("cs_"))
            .unwrap_or_else(|| panic!("no session id in {url}"))
            .to_owned();
        let pending = body["subscription"]["id"].as_str().unwrap().to_owned();
        let (_, sub) = api.get(&format!("/api/v1/subscriptions/{pending}/")).await;
        assert_eq!(sub["status"], "incomplete", "{sub}");

        // Just inside the day: still payable (the page shows the form).
        advance(&api, &clock, "2026-03-01T23:59:00Z").await;
        let page = client().get(&url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("pay-form"));

        // A day later (test-clock time): expired.
        advance(&api, &clock, "2026-03-02T00:00:01Z").await;
        let page = client().get(&url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::GONE);
        let html = page.text().await.unwrap();
        assert!(html.contains("expired") && !html.contains("pay-form"), "{html}");
        let paid = client()
            .post(format!("{}/checkout/{session}/pay", cp.url))
            .form(&[("card_number", "4242424242424242"), ("expiry", "12/34"), ("cvc", "123")])
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), StatusCode::GONE);
        let (status, body) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_envelope(status, &body, "expired complete");
        assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
        let (_, sub) = api.get(&format!("/api/v1/subscriptions/{pending}/")).await;
        assert_eq!(sub["status"], "canceled", "the pending subscription ended: {sub}");
        assert!(invoices(&api, "late").await.is_empty(), "nothing was charged");
    }
}

both! {
    /// The real-time billing clock expires sessions too (a one-second TTL here).
    async fn checkout_sessions_expire_on_real_time(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_CHECKOUT_TTL_SECS", "1")]);
        let api = cp.api();
        api.create_customer("slow-payer").await;
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "slow-payer",
                       "successUrl": "https://app.example.com/ok"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let session = co["checkoutSessionId"].as_str().unwrap().to_owned();
        wait_until("session expired", || async {
            client()
                .get(format!("{}/checkout/{session}", cp.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::GONE)
        })
        .await;
        let (status, body) = api
            .post(&format!("/api/v1/checkout/{session}/complete/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=slow-payer").await;
        assert!(
            subs["results"].as_array().unwrap().iter().all(|s| s["status"] != "active"),
            "{subs}"
        );
    }
}

both! {
    /// Issue 14: a refund gives the card back at most what the card paid. An invoice paid from
    /// the customer's credit balance is not refundable to the card; a refund of everything
    /// returns its credit part to credit.
    async fn a_credit_paid_invoice_is_not_refunded_to_the_card(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (status, plan) = api
            .post(
                "/api/v1/plans/",
                json!({"identifier": "team-jp", "name": "Team (Japan)", "group": "jp",
                       "prices": [{"chargePeriod": "MONTHLY", "amount": "5000", "currency": "jpy"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{plan}");
        api.create_customer("yen").await;
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": "team-jp", "chargePeriod": "MONTHLY", "customerId": "yen",
                       "quantity": 3, "successUrl": "https://app.example.com/ok"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (status, done) = api
            .post(
                &format!("/api/v1/checkout/{session}/complete/"),
                json!({"paymentMethod": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        let sub_id = done["subscription"]["id"].as_str().unwrap().to_owned();
        let yen_credit = |b: &Value| -> i64 {
            b["balances"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["currency"] == "jpy"))
                .and_then(|x| x["amount"].as_str())
                .and_then(|a| a.parse().ok())
                .unwrap_or(0)
        };
        // Three seats down to one makes about two seats of credit; back up to two is paid from it.
        for quantity in [1, 2] {
            let (status, body) = api
                .post(
                    &format!("/api/v1/subscriptions/{sub_id}/update/"),
                    json!({"planIdentifier": "team-jp", "chargePeriod": "MONTHLY", "quantity": quantity}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (_, balances) = api.get("/api/v1/customers/yen/balances/").await;
        let credit_left = yen_credit(&balances);
        let (_, invoices) = api.get("/api/v1/invoices/?customerId=yen&page_size=100").await;
        let upgrade = invoices["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["reason"] == "subscription_update" && i["status"] == "paid"
                && i["total"].as_str().is_some_and(|t| !t.starts_with('-')))
            .cloned()
            .unwrap_or_else(|| panic!("no paid upgrade invoice: {invoices}"));
        let upgrade_id = upgrade["id"].as_str().unwrap();
        let total: i64 = upgrade["total"].as_str().unwrap().parse().unwrap();
        assert!(total > 0, "{upgrade}");

        // Not one yen of it went through the card: a card refund of any amount is refused.
        let (status, body) = api
            .post("/api/v1/refunds/", json!({"orderId": upgrade_id, "amountUnits": 100}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_envelope(status, &body, "a card refund of a credit-paid invoice");
        assert!(body["error"]["message"].as_str().unwrap().contains("card"), "{body}");
        let (_, unchanged) = api.get("/api/v1/customers/yen/balances/").await;
        assert_eq!(yen_credit(&unchanged), credit_left, "a refused refund moved credit");

        // A refund of everything gives the credit back to credit, nothing to the card.
        let (status, refund) = api.post("/api/v1/refunds/", json!({"orderId": upgrade_id})).await;
        assert_eq!(status, StatusCode::CREATED, "{refund}");
        assert_eq!(refund["amountUnits"], 0, "{refund}");
        assert_eq!(refund["creditUnits"], total, "{refund}");
        assert_eq!(refund["order"]["creditAppliedUnits"], total, "{refund}");
        let (_, after) = api.get("/api/v1/customers/yen/balances/").await;
        assert_eq!(yen_credit(&after), credit_left + total, "{after}");
        let (status, body) = api.post("/api/v1/refunds/", json!({"orderId": upgrade_id})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
}

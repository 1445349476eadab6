//! Issue 14: charges are payment intents, charged outside the writer and settled after it.
//! With the test processor: 3-D Secure (`requiredAction`, the hosted authentication page),
//! declines for insufficient funds, the payments API and its bad inputs, a renewal that needs
//! authentication.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Posts the hosted authentication page's form.
async fn authenticate(url: &str, outcome: &str) -> (StatusCode, String) {
    let resp = client()
        .post(url)
        .form(&[("outcome", outcome)])
        .send()
        .await
        .expect("authentication post");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

async fn payments_of(api: &Api, customer: &str) -> Value {
    let (status, body) = api
        .get(&format!("/api/v1/payments/?customer_id={customer}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

both! {
    /// PayKit's `requiredAction` for a card that needs 3-D Secure: the subscription waits,
    /// `incomplete`, until the customer completes the hosted step; then it is active and paid.
    /// Failing the step ends it having granted nothing.
    async fn three_d_secure_from_subscribe_then_confirmation(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("sca").await;
        card(&api, "sca", "pm_card_authenticationRequired").await;
        let body = subscribe_ok(&api, "sca", "pro", "MONTHLY", "created").await;
        assert_eq!(body["requiredAction"]["type"], "redirect_to_url", "{body}");
        let url = body["requiredAction"]["url"].as_str().unwrap().to_owned();
        assert!(url.starts_with(&cp.url) && url.ends_with("/authenticate"), "{url}");
        assert_eq!(body["subscription"]["status"], "incomplete", "{body}");
        assert_eq!(body["invoice"]["status"], "open", "{body}");
        let id = body["subscription"]["id"].as_str().unwrap().to_owned();

        let payments = payments_of(&api, "sca").await;
        assert_eq!(payments["count"], 1, "{payments}");
        let intent = &payments["results"][0];
        assert_eq!(intent["status"], "requires_action", "{payments}");
        assert_eq!(intent["nextActionUrl"], url.as_str(), "{payments}");
        assert_eq!(intent["amountUnits"], 4_900, "{payments}");
        assert_eq!(intent["processor"], "test", "{payments}");
        let pi = intent["id"].as_str().unwrap().to_owned();
        let (status, one) = api.get(&format!("/api/v1/payments/{pi}/")).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(one["invoiceId"], body["invoice"]["id"], "{one}");

        // Asking again while it waits answers the same payment: nothing new is charged.
        let again = subscribe_ok(&api, "sca", "pro", "MONTHLY", "no_op").await;
        assert_eq!(again["requiredAction"]["url"], url.as_str(), "{again}");
        assert_eq!(payments_of(&api, "sca").await["count"], 1);
        // Another plan of the group meanwhile is refused until it settles.
        let (status, busy) = subscribe(&api, "sca", "pro", "YEARLY").await;
        assert_eq!(status, StatusCode::CONFLICT, "{busy}");
        assert_envelope(status, &busy, "another change while a payment waits");

        // The page shows the step; completing it pays.
        let page = client().get(&url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Complete authentication"));
        let (status, text) = authenticate(&url, "complete").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("Payment complete"), "{text}");
        let s = sub(&api, &id).await;
        assert_eq!(s["status"], "active", "{s}");
        let payments = payments_of(&api, "sca").await;
        assert_eq!(payments["results"][0]["status"], "succeeded", "{payments}");
        assert!(payments["results"][0]["processorReference"].is_string(), "{payments}");
        let all = invoices(&api, "sca").await;
        assert_eq!(all[0]["status"], "paid", "{all:?}");
        // Settled: the page says so, and a second post changes nothing.
        let (status, text) = authenticate(&url, "fail").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(sub(&api, &id).await["status"], "active");

        // Failing the step: nothing starts, the invoice is void.
        api.create_customer("sca-fail").await;
        card(&api, "sca-fail", "pm_card_authenticationRequired").await;
        let body = subscribe_ok(&api, "sca-fail", "pro", "MONTHLY", "created").await;
        let url = body["requiredAction"]["url"].as_str().unwrap().to_owned();
        let id = body["subscription"]["id"].as_str().unwrap().to_owned();
        let (status, text) = authenticate(&url, "fail").await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{text}");
        assert_eq!(sub(&api, &id).await["status"], "incomplete_expired");
        let payments = payments_of(&api, "sca-fail").await;
        assert_eq!(payments["results"][0]["status"], "failed", "{payments}");
        assert_eq!(payments["results"][0]["declineCode"], "authentication_failed", "{payments}");
        assert!(invoices(&api, "sca-fail").await.iter().all(|i| i["status"] == "void"));
        // A bad form is refused; an unknown payment is a 404.
        api.create_customer("sca-bad").await;
        card(&api, "sca-bad", "pm_card_authenticationRequired").await;
        let body = subscribe_ok(&api, "sca-bad", "pro", "MONTHLY", "created").await;
        let url = body["requiredAction"]["url"].as_str().unwrap().to_owned();
        let (status, _) = authenticate(&url, "maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = authenticate(&format!("{}/pay/pi_nope/authenticate", cp.url), "complete").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(payments_of(&api, "sca-bad").await["results"][0]["status"], "requires_action");
    }
}

both! {
    /// 4000 0000 0000 9995 goes on file and every charge declines for insufficient funds: a
    /// 402 that says so, nothing granted, the payment on record as failed.
    async fn insufficient_funds_declines_and_says_why(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("broke").await;
        card(&api, "broke", "pm_card_visa_chargeDeclinedInsufficientFunds").await;
        let (status, body) = subscribe(&api, "broke", "pro", "MONTHLY").await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_envelope(status, &body, "insufficient funds");
        assert!(body["error"]["message"].as_str().unwrap().contains("insufficient funds"), "{body}");
        let payments = payments_of(&api, "broke").await;
        assert_eq!(payments["results"][0]["status"], "failed", "{payments}");
        assert_eq!(payments["results"][0]["declineCode"], "insufficient_funds", "{payments}");
        assert_eq!(payments["results"][0]["lastError"], "Your card has insufficient funds.");
        // A replay of the same request answers the same decline.
        let key = "insufficient-1";
        let ask = json!({"customerId": "broke", "planId": "pro", "chargePeriod": "YEARLY"});
        let (s1, b1, _) = api.post_versioned("/api/v1/subscribe/", ask.clone(), Some(key)).await;
        let (s2, b2, _) = api.post_versioned("/api/v1/subscribe/", ask, Some(key)).await;
        assert_eq!((s1, s2), (StatusCode::PAYMENT_REQUIRED, StatusCode::PAYMENT_REQUIRED), "{b1} {b2}");
        assert_eq!(b1, b2);
    }
}

both! {
    /// The payments API refuses what it should, with envelopes: unknown ids, the wrong key
    /// kind, the other mode's data, bad paging.
    async fn payments_endpoints_refuse_bad_input(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("payer").await;
        card(&api, "payer", "pm_card_visa").await;
        subscribe_ok(&api, "payer", "pro", "MONTHLY", "created").await;
        let payments = payments_of(&api, "payer").await;
        assert_eq!(payments["results"][0]["status"], "succeeded", "{payments}");
        let pi = payments["results"][0]["id"].as_str().unwrap().to_owned();

        let (status, body) = api.get("/api/v1/payments/pi_nope/").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_envelope(status, &body, "unknown payment");
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, body) = live.get(&format!("/api/v1/payments/{pi}/")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the other mode's payment: {body}");
        let (_, listed) = live.get("/api/v1/payments/?customer_id=payer").await;
        assert_eq!(listed["count"], 0, "{listed}");
        let publishable = cp.api_with(&cp.keys.publishable);
        let (status, body) = publishable.get("/api/v1/payments/").await;
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN, "{status} {body}");
        assert_envelope(status, &body, "a publishable key");
        for q in ["page_size=0", "page_size=101", "page=0", "page=x"] {
            let (status, body) = api.get(&format!("/api/v1/payments/?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
            assert_envelope(status, &body, q);
        }
        let long = "x".repeat(300);
        let (status, body) = api.get(&format!("/api/v1/payments/?customer_id={long}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = api.get("/api/v1/payments/?customer_id=nobody").await;
        assert_eq!(status, StatusCode::OK);
    }
}

both! {
    /// A renewal with a card that needs authentication: nobody is there to authenticate it, so
    /// it counts as failed for dunning (`past_due`, `payment.requires_action`); the customer
    /// authenticating later pays it and the subscription recovers.
    async fn a_renewal_that_needs_authentication_recovers_once_authenticated(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let clock = clocked(&api, "sca-renew", "2026-03-01T00:00:00Z").await;
        card(&api, "sca-renew", "pm_card_visa").await;
        let id = subscribed(&api, "sca-renew", "pro", "MONTHLY").await;
        card(&api, "sca-renew", "pm_card_authenticationRequired").await;
        advance(&api, &clock, "2026-04-01T00:00:00Z").await;
        let s = sub(&api, &id).await;
        assert_eq!(s["status"], "past_due", "{s}");
        let payments = payments_of(&api, "sca-renew").await;
        let renewal = &payments["results"][0];
        assert_eq!(renewal["status"], "requires_action", "{payments}");
        let url = renewal["nextActionUrl"].as_str().unwrap().to_owned();
        let (status, text) = authenticate(&url, "complete").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let s = sub(&api, &id).await;
        assert_eq!(s["status"], "active", "{s}");
        assert_eq!(invoices(&api, "sca-renew").await[0]["status"], "paid");
    }
}

both! {
    /// SPEC §9 for money: the control plane is killed (a failpoint aborts it) after the
    /// processor answered a charge and before the charge was settled. After the restart the
    /// claim's lease runs out, the worker asks the processor what became of that idempotency
    /// key and settles it: one payment intent, one invoice, paid once, the subscription active.
    async fn a_kill_between_the_charge_and_its_settle_pays_once(db: Db) {
        let cp = ControlPlane::start_on_with(
            db,
            &[("TOLLGATE_FAILPOINT", "payments-after-charge"), ("TOLLGATE_PAYMENT_LEASE_SECS", "2")],
        );
        let api = cp.api();
        api.create_customer("crash").await;
        card(&api, "crash", "pm_card_visa").await;
        let answered = api
            .try_post(
                "/api/v1/subscribe/",
                json!({"customerId": "crash", "planId": "pro", "chargePeriod": "MONTHLY"}),
            )
            .await;
        assert_eq!(answered, None, "the failpoint did not stop the control plane");
        let cp = cp.stop().start_without("TOLLGATE_FAILPOINT");
        let api = cp.api();
        wait_until("the charge is settled after the restart", || async {
            payments_of(&api, "crash").await["results"][0]["status"] == "succeeded"
        })
        .await;
        let payments = payments_of(&api, "crash").await;
        assert_eq!(payments["count"], 1, "{payments}");
        assert_eq!(payments["results"][0]["attempts"], 2, "claimed before and after the kill: {payments}");
        let all = invoices(&api, "crash").await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0]["status"], "paid", "{all:?}");
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=crash").await;
        assert_eq!(subs["count"], 1, "{subs}");
        assert_eq!(subs["results"][0]["status"], "active", "{subs}");
        // Asking again is a no-op: the plan is on.
        subscribe_ok(&api, "crash", "pro", "MONTHLY", "no_op").await;
        assert_eq!(payments_of(&api, "crash").await["count"], 1);
    }
}

both! {
    /// A client that hangs up while its subscribe waits for the payment: the charge still
    /// settles, once, and the plan starts; asking again is a no-op.
    async fn a_client_that_hangs_up_while_its_payment_settles_is_charged_once(db: Db) {
        use tokio::io::AsyncWriteExt;
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("gone").await;
        card(&api, "gone", "pm_card_visa").await;
        let body = json!({"customerId": "gone", "planId": "pro", "chargePeriod": "MONTHLY"}).to_string();
        let request = format!(
            "POST /api/v1/subscribe/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            cp.addr,
            cp.keys.secret,
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(cp.addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        // Hyper drops a handler whose client closed before it ran, and then nothing is
        // written at all (also correct). Hang up only once the subscribe's unit has written its
        // intent, so the test always covers the case it is named for.
        wait_until("the subscribe wrote its payment intent", || async {
            payments_of(&api, "gone").await["count"].as_u64().unwrap_or(0) >= 1
        })
        .await;
        drop(socket); // hangs up before reading any answer
        wait_until("the abandoned subscribe's charge settled", || async {
            payments_of(&api, "gone").await["results"][0]["status"] == "succeeded"
        })
        .await;
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=gone").await;
        assert_eq!(subs["count"], 1, "{subs}");
        assert_eq!(subs["results"][0]["status"], "active", "{subs}");
        subscribe_ok(&api, "gone", "pro", "MONTHLY", "no_op").await;
        assert_eq!(payments_of(&api, "gone").await["count"], 1);
        assert!(invoices(&api, "gone").await.iter().all(|i| i["status"] == "paid"));
    }
}

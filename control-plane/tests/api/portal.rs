//! The customer portal over HTTP: Kelviq's `portal.create_session` shape and its key rules,
//! tokens that expire and that open one customer only, and forms that refuse what is wrong
//! with a 4xx page (never a 500), every answer with the hosted pages' security headers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_shared::keys::generate;
use tollgate_shared::{KeyKind, Mode};

use crate::helpers::*;
use crate::hosted_pages::assert_hosted_headers;

/// A portal session for `customer`; answers `(token, customerPortalUrl)`.
pub async fn portal_session(api: &Api, customer: &str) -> (String, String) {
    let (status, body) = api
        .post("/api/v1/portal/session/", json!({"customerId": customer}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["customerPortalUrl"].as_str().unwrap().to_owned(),
    )
}

/// The form nonce the portal page carries.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

pub async fn page(url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let resp = client().get(url).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

pub async fn post_form(
    url: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

both! {
    async fn portal_sessions_answer_kelviqs_shape_and_only_to_secret_keys(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("pat").await;

        // Kelviq's SDKs: POST /api/v1/portal/session/ {"customerId"} → {token, email, customerPortalUrl}.
        let (status, body) = api
            .post("/api/v1/portal/session/", json!({"customerId": "pat"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().unwrap();
        assert!(token.starts_with("pts_test_"), "{body}");
        assert_eq!(body["email"], "pat@example.com");
        assert_eq!(
            body["customerPortalUrl"].as_str().unwrap(),
            format!("{}/portal/{token}", cp.url)
        );
        assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
        // snake_case and no trailing slash, as other clients send it.
        let (status, body) = api
            .post("/api/v1/portal/session", json!({"customer_id": "pat"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_ne!(body["token"].as_str().unwrap(), token, "every session its own token");
        // A customer without an email: Kelviq's model wants a string.
        let (status, _) = api.post("/api/v1/customers/", json!({"customerId": "noemail"})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = api
            .post("/api/v1/portal/session/", json!({"customerId": "noemail"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["email"], "");

        // Unknown customer, the other mode's customer.
        let (status, body) = api
            .post("/api/v1/portal/session/", json!({"customerId": "nobody"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_envelope(status, &body, "unknown customer");
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, body) = live
            .post("/api/v1/portal/session/", json!({"customerId": "pat"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a test customer is unknown to a live key");
        assert_envelope(status, &body, "other mode");

        // Wrong key kinds, no key, a made-up key.
        for (key, want) in [
            (cp.keys.publishable.clone(), StatusCode::FORBIDDEN),
            (cp.keys.edge_sync.clone(), StatusCode::FORBIDDEN),
            (generate(KeyKind::Secret, Mode::Test), StatusCode::UNAUTHORIZED),
        ] {
            let (status, body) = cp
                .api_with(&key)
                .post("/api/v1/portal/session/", json!({"customerId": "pat"}))
                .await;
            assert_eq!(status, want, "{key}: {body}");
            assert_envelope(status, &body, &key);
        }
        let resp = client()
            .post(format!("{}/api/v1/portal/session/", cp.url))
            .json(&json!({"customerId": "pat"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

        // Bad bodies.
        for bad in [
            json!({}),
            json!({"customerId": ""}),
            json!({"customerId": 7}),
            json!({"customerId": "x".repeat(300)}),
            json!([]),
        ] {
            let (status, body) = api.post("/api/v1/portal/session/", bad.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_envelope(status, &body, &bad.to_string());
        }

        // An idempotent retry never replays the secret.
        let send = || async {
            let resp = client()
                .post(format!("{}/api/v1/portal/session/", cp.url))
                .basic_auth(&cp.keys.secret, Some(""))
                .header("Idempotency-Key", "portal-1")
                .json(&json!({"customerId": "pat"}))
                .send()
                .await
                .unwrap();
            let replayed = resp.headers().contains_key("idempotent-replayed");
            (resp.status(), replayed, resp.json::<Value>().await.unwrap())
        };
        let (first, _, body) = send().await;
        assert_eq!(first, StatusCode::CREATED);
        assert!(body["token"].is_string());
        let (again, replayed, body) = send().await;
        assert_eq!(again, StatusCode::CREATED);
        assert!(replayed);
        assert!(body.get("token").is_none() && body.get("customerPortalUrl").is_none(), "{body}");
    }
}

both! {
    async fn portal_tokens_expire(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_PORTAL_SESSION_TTL_SECS", "3")]);
        let api = cp.api();
        api.create_customer("brief").await;
        let made = Instant::now();
        let (token, url) = portal_session(&api, "brief").await;
        let (status, headers, html) = page(&url).await;
        // Only meaningful if this machine answered within the link's life.
        if made.elapsed() < Duration::from_secs(2) {
            assert_eq!(status, StatusCode::OK, "{html}");
            assert_hosted_headers(&headers, "portal page");
        }
        let csrf = if status == StatusCode::OK { csrf_of(&html) } else { String::new() };
        tokio::time::sleep(Duration::from_secs(3).saturating_sub(made.elapsed()) + Duration::from_millis(500)).await;
        let (status, headers, html) = page(&url).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("This link has expired"), "{html}");
        assert_hosted_headers(&headers, "expired page");
        let (status, _, html) = post_form(
            &format!("{}/portal/{token}/card", cp.url),
            &format!("csrf={csrf}&card_number=4242424242424242&expiry=12%2F34&cvc=123"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        let (status, _, _) = page(&format!("{url}/preview?subscription=x&price=pro:MONTHLY")).await;
        assert_eq!(status, StatusCode::GONE);
    }
}

both! {
    async fn a_portal_token_for_one_customer_opens_nobody_else(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("alice").await;
        api.create_customer("bob").await;
        api.subscribe_paid("alice", "pro", "MONTHLY").await;
        let bobs = api.subscribe_paid("bob", "pro", "MONTHLY").await;
        let bobs = bobs["id"].as_str().unwrap().to_owned();
        let (token, url) = portal_session(&api, "alice").await;
        let (status, _, html) = page(&url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("alice@example.com") && !html.contains("bob@example.com"));
        assert!(!html.contains(&bobs), "bob's subscription is not on alice's page");
        let csrf = csrf_of(&html);

        // Bob's subscription through Alice's link: as if it did not exist.
        let (status, _, html) =
            page(&format!("{url}/preview?subscription={bobs}&price=enterprise:MONTHLY")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
        for (form, body) in [
            ("cancel", format!("csrf={csrf}&subscription={bobs}")),
            ("resume", format!("csrf={csrf}&subscription={bobs}")),
            ("switch", format!("csrf={csrf}&subscription={bobs}&price=enterprise%3AMONTHLY&expected=0")),
        ] {
            let (status, headers, html) =
                post_form(&format!("{}/portal/{token}/{form}", cp.url), &body, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{form}: {html}");
            assert_hosted_headers(&headers, form);
        }
        let (_, sub) = api.get(&format!("/api/v1/subscriptions/{bobs}/")).await;
        assert_eq!(sub["plan"]["identifier"], "pro");
        assert_eq!(sub["cancelAtPeriodEnd"], false);

        // Bob's own link works for Bob; made-up and malformed tokens open nothing.
        let (_, bob_url) = portal_session(&api, "bob").await;
        let (status, _, html) = page(&bob_url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("bob@example.com"));
        for bad in [
            format!("pts_test_{}", "A".repeat(32)),
            "pts_test_short".to_owned(),
            "sk_test_whatever".to_owned(),
            "%3Cscript%3E".to_owned(),
        ] {
            let (status, headers, html) = page(&format!("{}/portal/{bad}", cp.url)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {html}");
            assert!(html.contains("This link is not valid"));
            assert_hosted_headers(&headers, &bad);
        }
    }
}

both! {
    async fn portal_forms_refuse_bad_input_with_a_page_never_a_500(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("carol").await;
        let sub = api.subscribe_paid("carol", "pro", "MONTHLY").await;
        let sub = sub["id"].as_str().unwrap().to_owned();
        let (token, url) = portal_session(&api, "carol").await;
        let (status, headers, html) = page(&url).await;
        assert_eq!(status, StatusCode::OK);
        let csp = assert_hosted_headers(&headers, "portal");
        assert!(csp.contains("form-action 'self';"), "{csp}");
        assert!(!html.contains("<script"), "no script on the portal");
        let csrf = csrf_of(&html);
        let form = |f: &str| format!("{}/portal/{token}/{f}", cp.url);

        // (form, body, extra headers, the answer's status)
        type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, StatusCode);
        let cases: Vec<Case> = vec![
            ("cancel", format!("subscription={sub}"), vec![], StatusCode::FORBIDDEN),
            ("cancel", format!("csrf=nope&subscription={sub}"), vec![], StatusCode::FORBIDDEN),
            ("cancel", format!("csrf={csrf}&subscription={sub}"), vec![("sec-fetch-site", "cross-site")], StatusCode::FORBIDDEN),
            ("cancel", format!("csrf={csrf}&subscription={sub}"), vec![("origin", "https://evil.example")], StatusCode::FORBIDDEN),
            ("cancel", format!("csrf={csrf}"), vec![], StatusCode::BAD_REQUEST),
            ("cancel", format!("csrf={csrf}&subscription=%27%3B--"), vec![], StatusCode::BAD_REQUEST),
            ("cancel", format!("csrf={csrf}&subscription=00000000-0000-0000-0000-000000000000"), vec![], StatusCode::NOT_FOUND),
            ("switch", format!("csrf={csrf}&subscription={sub}&price=pro&expected=0"), vec![], StatusCode::BAD_REQUEST),
            ("switch", format!("csrf={csrf}&subscription={sub}&price=gold%3AMONTHLY&expected=0"), vec![], StatusCode::NOT_FOUND),
            ("switch", format!("csrf={csrf}&subscription={sub}&price=sso-lifetime%3AONE_TIME&expected=0"), vec![], StatusCode::BAD_REQUEST),
            ("switch", format!("csrf={csrf}&subscription={sub}&price=enterprise%3AMONTHLY&expected=lots"), vec![], StatusCode::BAD_REQUEST),
            ("switch", format!("csrf={csrf}&subscription={sub}&price=enterprise%3AMONTHLY"), vec![], StatusCode::BAD_REQUEST),
            // What the customer confirmed is not what the change costs: nothing happens.
            ("switch", format!("csrf={csrf}&subscription={sub}&price=enterprise%3AMONTHLY&expected=1"), vec![], StatusCode::CONFLICT),
            ("card", format!("csrf={csrf}&card_number=42&expiry=12%2F34&cvc=123"), vec![], StatusCode::BAD_REQUEST),
            ("card", format!("csrf={csrf}&card_number=4242424242424242&expiry=01%2F20&cvc=123"), vec![], StatusCode::BAD_REQUEST),
            ("card", format!("csrf={csrf}&card_number=4000000000000002&expiry=12%2F34&cvc=123"), vec![], StatusCode::PAYMENT_REQUIRED),
            ("card", format!("csrf={csrf}&card_number=1234123412341234&expiry=12%2F34&cvc=123"), vec![], StatusCode::PAYMENT_REQUIRED),
            ("card", "%%%".to_owned(), vec![], StatusCode::FORBIDDEN),
        ];
        for (f, body, headers, want) in cases {
            let (status, got, html) = post_form(&form(f), &body, &headers).await;
            assert_eq!(status, want, "{f} {body} {headers:?}: {html}");
            assert_hosted_headers(&got, &body);
            assert!(html.contains("<h1"), "a page, not an envelope: {html}");
        }
        // Previews with bad input.
        for (q, want) in [
            ("", StatusCode::BAD_REQUEST),
            ("subscription=x", StatusCode::BAD_REQUEST),
            (&format!("subscription={sub}&price=enterprise:FORTNIGHTLY")[..], StatusCode::BAD_REQUEST),
            (&format!("subscription={sub}&price=nope:MONTHLY")[..], StatusCode::NOT_FOUND),
            (&format!("subscription={sub}&price=%ZZ")[..], StatusCode::BAD_REQUEST),
        ] {
            let (status, headers, html) = page(&format!("{url}/preview?{q}")).await;
            assert_eq!(status, want, "{q}: {html}");
            assert_hosted_headers(&headers, q);
        }
        // Nothing of that changed anything.
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub}/")).await;
        assert_eq!(now["plan"]["identifier"], "pro");
        assert_eq!(now["cancelAtPeriodEnd"], false);
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=carol").await;
        assert_eq!(invoices["count"], 1);

        // A good form answers 303 to the page with a notice, with the same headers.
        let (status, headers, _) =
            post_form(&form("cancel"), &format!("csrf={csrf}&subscription={sub}"), &[("origin", &cp.url)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_hosted_headers(&headers, "cancel redirect");
        assert_eq!(
            headers["location"].to_str().unwrap(),
            format!("/portal/{token}?done=cancel-scheduled")
        );
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub}/")).await;
        assert_eq!(now["cancelAtPeriodEnd"], true, "{now}");
    }
}

both! {
    async fn a_portal_downgrade_waits_for_the_period_end_and_charges_nothing(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("erin").await;
        let sub = api.subscribe_paid("erin", "enterprise", "MONTHLY").await;
        let sub = sub["id"].as_str().unwrap().to_owned();
        let (token, url) = portal_session(&api, "erin").await;
        let (_, _, html) = page(&url).await;
        let csrf = csrf_of(&html);
        assert!(html.contains("Pro — $49.00 / month"), "the other prices are offered: {html}");
        assert!(html.contains("Pro — $490.00 / year"), "{html}");
        assert!(!html.contains("Enterprise — $199.00 / month"), "not the current price");
        assert!(!html.contains("SSO add-on"), "not another group's plan");

        // The preview: a date, nothing charged now, and it changes nothing.
        let (status, _, html) =
            page(&format!("{url}/preview?subscription={sub}&price=pro%3AMONTHLY")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Switch to Pro at the end of the period"), "{html}");
        assert!(html.contains("Nothing is charged now."), "{html}");
        assert!(html.contains("name=\"expected\" value=\"0\""), "{html}");
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub}/")).await;
        assert!(now["scheduledChange"].is_null(), "{now}");

        // Confirmed: scheduled, Enterprise kept until then, no invoice.
        let (status, headers, _) = post_form(
            &format!("{}/portal/{token}/switch", cp.url),
            &format!("csrf={csrf}&subscription={sub}&price=pro%3AMONTHLY&expected=0"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            headers["location"].to_str().unwrap(),
            format!("/portal/{token}?done=scheduled")
        );
        let (_, now) = api.get(&format!("/api/v1/subscriptions/{sub}/")).await;
        assert_eq!(now["plan"]["identifier"], "enterprise");
        assert_eq!(now["scheduledChange"]["planIdentifier"], "pro", "{now}");
        // (Enterprise starts with its 14-day trial: no invoice then, and none now.)
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=erin").await;
        assert_eq!(invoices["count"], 0, "{invoices}");
        let (_, _, html) = page(&format!("{url}?done=scheduled")).await;
        assert!(html.contains("Your plan will change at the end of the current period."));
        assert!(html.contains("Changes to Pro on "), "{html}");
        assert!(html.contains("Keep my plan"), "{html}");
    }
}

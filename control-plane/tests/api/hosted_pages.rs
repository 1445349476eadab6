//! The hosted pages' security headers, on every answer a browser can get from them: pages,
//! error pages, the answers to their forms (re-rendered pages and redirects) and the
//! stylesheet. The portal's own answers are checked in `portal.rs`.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::helpers::*;

/// Asserts the headers every hosted answer carries; returns its policy.
pub fn assert_hosted_headers(headers: &HeaderMap, context: &str) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{context}: no {name} header"))
            .to_owned()
    };
    assert_eq!(get("x-frame-options"), "DENY", "{context}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{context}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{context}");
    let csp = get("content-security-policy");
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{context}: {directive} in {csp}");
    }
    for loose in ["unsafe-inline", "unsafe-eval", "script-src", "*"] {
        assert!(!csp.contains(loose), "{context}: {loose} in {csp}");
    }
    csp
}

fn cache_control(headers: &HeaderMap) -> &str {
    headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

both! {
    async fn hosted_checkout_answers_carry_security_headers(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("hdr").await;
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier":"pro","chargePeriod":"MONTHLY","customerId":"hdr",
                       "successUrl":"https://app.example.com:8443/done?s={CHECKOUT_SESSION_ID}"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let url = co["checkoutUrl"].as_str().unwrap().to_owned();
        let http = client();

        // The page: its forms may lead to this origin and, after paying, to successUrl's.
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let csp = assert_hosted_headers(resp.headers(), "checkout page");
        assert!(
            csp.contains("form-action 'self' https://app.example.com:8443;"),
            "{csp}"
        );
        assert_eq!(cache_control(resp.headers()), "no-store");
        let html = resp.text().await.unwrap();
        assert!(!html.contains("<script"), "no script on the page");
        assert!(!html.contains("style="), "no inline style");
        assert!(!html.contains("<style"), "no inline style");

        // An unknown session.
        let resp = http
            .get(format!("{}/checkout/cs_test_nope/", cp.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_hosted_headers(resp.headers(), "unknown checkout");
        assert_eq!(cache_control(resp.headers()), "no-store");

        // A form with bad input: the page again, 400, never a 500.
        let pay = format!("{}/checkout/{}/pay", cp.url, co["checkoutSessionId"].as_str().unwrap());
        for body in [
            "",
            "card_number=42",
            "card_number=4242424242424242&expiry=13%2F34&cvc=123",
            "card_number=4242424242424242&expiry=12%2F34&cvc=1",
            "%ZZ=%",
            "card_number=4242424242424242&expiry=aa/bb&cvc=123",
        ] {
            let resp = http
                .post(&pay)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body:?}");
            assert_hosted_headers(resp.headers(), body);
        }

        // Paying: a redirect, with the same headers.
        let resp = http
            .post(&pay)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("card_number=4242+4242+4242+4242&expiry=12%2F34&cvc=123&name=A")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_hosted_headers(resp.headers(), "pay redirect");
        assert_eq!(cache_control(resp.headers()), "no-store");
        assert!(
            resp.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("https://app.example.com:8443/done?s=cs_test_")
        );

        // The stylesheet the policy allows.
        let resp = http
            .get(format!("{}/hosted/style.css", cp.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/css; charset=utf-8"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }
}

//! What every hosted page (checkout, customer portal) shares: the security headers and turning
//! a rendered template into a response. A leaf: no domain here. (The stylesheet and icon are
//! served by `api::pages::assets`.)
//!
//! The pages are plain HTML forms and need no script at all, so the policy forbids every
//! script, frame, plugin and connection (`default-src 'none'`), allows styles only from our own
//! stylesheet, and lets forms post only to this origin, plus the origin a form's answer
//! redirects to (checkout's `successUrl`): Chromium applies `form-action` to the redirect a form
//! post answers with, so without it a paid checkout could not land on the merchant's page.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderName, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

/// The policy of a hosted page whose forms may also lead to `form_targets` (origins such as
/// `https://app.example.com`; anything that is not a plain http(s) origin is left out).
pub fn content_security_policy(form_targets: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for origin in form_targets {
        if is_plain_origin(origin) && !form_action.split(' ').any(|o| o == origin) {
            form_action.push(' ');
            form_action.push_str(origin);
        }
    }
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `scheme://host[:port]` and nothing else: a value that cannot break out of the policy.
fn is_plain_origin(origin: &str) -> bool {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    })
}

/// The origin of an absolute URL (`https://app.example.com:8443`), if it has one.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Middleware for every hosted page and every answer to its forms (pages, errors, redirects):
/// not framable, not cached, no referrer leaking the page's secret URL, no type sniffing, and
/// the default policy unless the handler set a wider `form-action` itself.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    if !headers.contains_key(CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&content_security_policy(&[]))
    {
        headers.insert(CONTENT_SECURITY_POLICY, v);
    }
    let fixed: [(HeaderName, &'static str); 3] = [
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // The pages carry a customer's details and one-time links: never kept by a cache. The
    // stylesheet sets its own.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A page that only says something: not found, expired, paid (with a link onwards), try again.
#[derive(askama::Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    /// The heading's element id, which tests and scripts look for (`unavailable`, `done`…).
    pub id: &'a str,
    pub heading: &'a str,
    pub text: Option<&'a str>,
    pub link: Option<&'a str>,
    pub link_label: &'a str,
}

impl<'a> MessagePage<'a> {
    pub fn new(title: &'a str, id: &'a str, heading: &'a str) -> Self {
        MessagePage {
            title,
            id,
            heading,
            text: None,
            link: None,
            link_label: "Continue",
        }
    }

    pub fn text(self, text: &'a str) -> Self {
        MessagePage {
            text: Some(text),
            ..self
        }
    }

    pub fn link(self, href: &'a str, label: &'a str) -> Self {
        MessagePage {
            link: Some(href),
            link_label: label,
            ..self
        }
    }

    /// Rendered with `status`.
    pub fn respond(&self, status: StatusCode) -> Response {
        render(status, self)
    }
}

/// A rendered page with its status; a template that fails to render (it cannot, short of a
/// bug: every value is already a string) becomes a bare 500.
pub fn render<T: askama::Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "hosted page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong").into_response()
        }
    }
}

/// Where a page using Stripe.js loads it from and lets it talk to (origins).
#[derive(Debug, Clone)]
pub struct ScriptOrigins {
    pub js: String,
    pub api: String,
}

/// [`content_security_policy`], widened for Stripe.js: scripts from this origin and Stripe.js's,
/// requests to Stripe's API, Stripe's frames. Only pages of a mode with Stripe use it.
pub fn content_security_policy_with_stripe(
    form_targets: &[String],
    stripe: &ScriptOrigins,
) -> String {
    let base = content_security_policy(form_targets);
    let origins: Vec<&str> = [stripe.js.as_str(), stripe.api.as_str()]
        .into_iter()
        .filter(|o| is_plain_origin(o))
        .collect();
    let js = if is_plain_origin(&stripe.js) {
        stripe.js.as_str()
    } else {
        ""
    };
    base.replacen(
        "default-src 'none';",
        &format!(
            "default-src 'none'; script-src 'self' {js}; connect-src {}; frame-src {js};",
            origins.join(" ")
        ),
        1,
    )
}

/// [`render`] under [`content_security_policy_with_stripe`].
pub fn render_with_stripe<T: askama::Template>(
    status: StatusCode,
    page: &T,
    form_targets: &[String],
    stripe: &ScriptOrigins,
) -> Response {
    let mut resp = render(status, page);
    if let Ok(v) = HeaderValue::from_str(&content_security_policy_with_stripe(form_targets, stripe))
    {
        resp.headers_mut().insert(CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// [`render`] with a policy whose forms may also lead to `form_targets`.
pub fn render_with_targets<T: askama::Template>(
    status: StatusCode,
    page: &T,
    form_targets: &[String],
) -> Response {
    let mut resp = render(status, page);
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(form_targets)) {
        resp.headers_mut().insert(CONTENT_SECURITY_POLICY, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_pages_widen_only_to_stripe_origins() {
        let p = content_security_policy_with_stripe(
            &[],
            &ScriptOrigins {
                js: "https://js.stripe.com".into(),
                api: "https://api.stripe.com".into(),
            },
        );
        assert!(p.starts_with(
            "default-src 'none'; script-src 'self' https://js.stripe.com; \
             connect-src https://js.stripe.com https://api.stripe.com; frame-src https://js.stripe.com;"
        ), "{p}");
        let bad = content_security_policy_with_stripe(
            &[],
            &ScriptOrigins {
                js: "https://x; script-src *".into(),
                api: "*".into(),
            },
        );
        assert!(!bad.contains('*'), "{bad}");
    }

    #[test]
    fn the_policy_is_strict_and_only_widens_form_action_to_origins() {
        let p = content_security_policy(&[]);
        assert_eq!(
            p,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        let p = content_security_policy(&[
            "https://app.example.com".into(),
            "https://app.example.com".into(),
            "http://127.0.0.1:8080".into(),
            "https://x; script-src *".into(),
            "javascript:alert(1)".into(),
        ]);
        assert!(p.contains(
            "form-action 'self' https://app.example.com http://127.0.0.1:8080; frame-ancestors"
        ));
        assert!(!p.contains("script-src"));
    }

    #[test]
    fn values_are_escaped_by_the_template() {
        use askama::Template;
        let html = MessagePage::new("<t>", "x", "<script>alert(1)</script>")
            .text("\"quoted\" & 'single'")
            .link("https://a.example/?q=\"><script>", "Go")
            .render()
            .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(
            html.contains("&#34;quoted&#34; &#38; &#39;single&#39;"),
            "{html}"
        );
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://App.example.com:8443/a?b#c").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:80/x").as_deref(),
            Some("http://127.0.0.1")
        );
        assert_eq!(origin_of("data:text/plain,hi"), None);
        assert_eq!(origin_of("not a url"), None);
    }
}

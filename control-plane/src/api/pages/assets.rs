//! The hosted pages' stylesheet, icon and Stripe.js glue, compiled into the binary.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::state::AppState;

/// Where the pages' stylesheet is served.
pub const STYLESHEET_PATH: &str = "/hosted/style.css";

const STYLESHEET: &str = include_str!("../../../templates/hosted.css");

/// Where the pages' icon is served (without one, browsers ask for `/favicon.ico` and log the
/// 404 as an error).
pub const ICON_PATH: &str = "/hosted/icon.svg";

const ICON: &str = include_str!("../../../templates/icon.svg");

/// The hosted pages' stylesheet.
///
/// The only style the pages' policy allows (`style-src 'self'`).
#[utoipa::path(
    get,
    path = "/hosted/style.css",
    tag = "operations",
    operation_id = "hostedStylesheet",
    security(()),
    responses((status = 200, description = "The stylesheet", body = String, content_type = "text/css"))
)]
pub async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        "public, max-age=3600",
        STYLESHEET,
    )
}

/// The hosted pages' icon.
#[utoipa::path(
    get,
    path = "/hosted/icon.svg",
    tag = "operations",
    operation_id = "hostedIcon",
    security(()),
    responses((status = 200, description = "The icon", body = String, content_type = "image/svg+xml"))
)]
pub async fn icon() -> Response {
    asset("image/svg+xml", "public, max-age=86400", ICON)
}

/// The icon, where browsers look for one by themselves.
///
/// A page without an icon link (a JSON document, `/healthz`) makes the browser ask for
/// `/favicon.ico`; answering it spares every such visit a logged 404.
#[utoipa::path(
    get,
    path = "/favicon.ico",
    tag = "operations",
    operation_id = "favicon",
    security(()),
    responses((status = 200, description = "The icon", body = String, content_type = "image/svg+xml"))
)]
pub async fn favicon() -> Response {
    icon().await
}

/// The assets' routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stylesheet))
        .routes(routes!(icon))
        .routes(routes!(favicon))
        .routes(routes!(stripe_card_js))
        .routes(routes!(stripe_authenticate_js))
}

const STRIPE_CARD_JS: &str = include_str!("../../../templates/stripe-card.js");
const STRIPE_AUTHENTICATE_JS: &str = include_str!("../../../templates/stripe-authenticate.js");

/// A compiled-in asset, cacheable for `max_age` seconds.
fn asset(content_type: &'static str, max_age: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, max_age)],
        body,
    )
        .into_response()
}

fn javascript(body: &'static str) -> Response {
    asset(
        "text/javascript; charset=utf-8",
        "public, max-age=3600",
        body,
    )
}

/// The card forms' Stripe.js glue (the checkout page and the portal's card form, in modes
/// with Stripe).
#[utoipa::path(
    get,
    path = "/hosted/stripe-card.js",
    tag = "operations",
    operation_id = "hostedStripeCardScript",
    security(()),
    responses((status = 200, description = "The script", body = String, content_type = "text/javascript"))
)]
pub async fn stripe_card_js() -> Response {
    javascript(STRIPE_CARD_JS)
}

/// The authentication page's Stripe.js glue (modes with Stripe).
#[utoipa::path(
    get,
    path = "/hosted/stripe-authenticate.js",
    tag = "operations",
    operation_id = "hostedStripeAuthenticateScript",
    security(()),
    responses((status = 200, description = "The script", body = String, content_type = "text/javascript"))
)]
pub async fn stripe_authenticate_js() -> Response {
    javascript(STRIPE_AUTHENTICATE_JS)
}

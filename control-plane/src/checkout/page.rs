//! The hosted checkout page: a plain HTML form (no JavaScript needed) where a person types a
//! card and pays. Paying redirects (303) to the session's `successUrl`; a declined card shows
//! the reason on the same page and stores nothing.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use tollgate_shared::ErrorKind;

use super::complete::complete;
use super::model::{CheckoutError, Session, SessionStatus};
use super::payments::TestCard;
use super::store;
use crate::catalog::money::format_amount;
use crate::catalog::period::ChargePeriod;
use crate::catalog::store::resolve_price;
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::schema::PayForm;
use crate::state::AppState;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f6f7f9;margin:0}
main{max-width:420px;margin:48px auto;background:#fff;border-radius:12px;padding:28px;box-shadow:0 2px 12px #0001}
h1{font-size:20px;margin:0 0 4px}.price{font-size:28px;font-weight:600;margin:8px 0 20px}
label{display:block;font-size:13px;color:#444;margin:12px 0 4px}input{width:100%;box-sizing:border-box;padding:10px;
border:1px solid #ccd;border-radius:6px;font-size:16px}.row{display:flex;gap:12px}.row>div{flex:1}
button{margin-top:20px;width:100%;padding:12px;border:0;border-radius:6px;background:#3b5bdb;color:#fff;font-size:16px}
.error{background:#fff0f0;color:#a00;padding:10px;border-radius:6px;margin-bottom:12px}
.test{background:#fff8e1;color:#7a5b00;padding:8px;border-radius:6px;font-size:12px;margin-bottom:16px}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

async fn render_form(
    state: &AppState,
    session: &Session,
    error: Option<&str>,
) -> Result<String, CheckoutError> {
    let mut conn = state.db.read().await?;
    let price = resolve_price(
        &mut conn,
        session.mode,
        &session.plan_identifier,
        Some(&session.charge_period),
    )
    .await?;
    let total = format_amount(
        price.amount_minor.saturating_mul(session.quantity),
        &price.currency,
    );
    let per = ChargePeriod::parse(&session.charge_period)
        .map(ChargePeriod::recurrence)
        .unwrap_or("");
    let per = if per == "one_time" {
        String::new()
    } else {
        format!(" / {per}")
    };
    let error = error
        .map(|e| {
            format!(
                "<div class=\"error\" id=\"error\" role=\"alert\">{}</div>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let test = if session.mode == tollgate_shared::Mode::Test {
        "<div class=\"test\">Test mode: pay with 4242 4242 4242 4242, any future expiry, any CVC. \
         4000 0000 0000 0002 is declined.</div>"
    } else {
        ""
    };
    let cancel = session
        .cancel_url
        .as_deref()
        .map(|u| {
            format!(
                "<p><a id=\"cancel\" href=\"{}\">Cancel and return</a></p>",
                escape(u)
            )
        })
        .unwrap_or_default();
    let quantity = if session.quantity > 1 {
        format!(" × {}", session.quantity)
    } else {
        String::new()
    };
    let body = format!(
        "{test}<h1 id=\"plan\">{plan}{quantity}</h1><div class=\"price\" id=\"price\">{total} {currency}{per}</div>{error}\
         <form method=\"post\" action=\"/checkout/{id}/pay\" id=\"pay-form\">\
         <label for=\"card_number\">Card number</label>\
         <input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" placeholder=\"4242 4242 4242 4242\" required>\
         <div class=\"row\"><div><label for=\"expiry\">Expiry (MM/YY)</label>\
         <input id=\"expiry\" name=\"expiry\" autocomplete=\"cc-exp\" placeholder=\"12/34\" required></div>\
         <div><label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" inputmode=\"numeric\" autocomplete=\"cc-csc\" placeholder=\"123\" required></div></div>\
         <label for=\"name\">Name on card</label><input id=\"name\" name=\"name\" autocomplete=\"cc-name\">\
         <button type=\"submit\" id=\"pay\">Pay {total} {currency}</button></form>{cancel}",
        plan = escape(&price.plan_name),
        currency = escape(&price.currency.to_uppercase()),
        id = escape(&session.id),
    );
    Ok(layout(&format!("Checkout · {}", price.plan_name), &body))
}

/// The session, shown as expired once its time is up even before the billing clock has marked
/// it so.
async fn load(state: &AppState, id: &str) -> Result<Session, CheckoutError> {
    let mut conn = state.db.read().await?;
    let mut session = store::load(&mut conn, id)
        .await?
        .ok_or_else(|| CheckoutError::NotFound(id.to_owned()))?;
    let now = crate::customers::store::now_for(
        &mut conn,
        session.mode,
        &session.customer_id,
        state.clock.unix(),
    )
    .await?;
    if session.is_expired(now, state.config.checkout_ttl_secs) {
        session.status = SessionStatus::Expired;
    }
    Ok(session)
}

/// An expired session's page: it says so and offers no form.
fn expired(session: &Session) -> Response {
    let back = session
        .cancel_url
        .as_deref()
        .map(|u| format!("<p><a id=\"cancel\" href=\"{}\">Return</a></p>", escape(u)))
        .unwrap_or_default();
    page(
        StatusCode::GONE,
        layout(
            "Expired",
            &format!(
                "<h1 id=\"expired\">This checkout has expired</h1>\
                 <p>Nothing was charged. Please start again to pay at today's price.</p>{back}"
            ),
        ),
    )
}

fn page(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        layout(
            "Not found",
            "<h1>Checkout not found</h1><p>This checkout link is not valid.</p>",
        ),
    )
}

fn completed(session: &Session) -> Response {
    let link = escape(&session.success_redirect());
    page(
        StatusCode::OK,
        layout(
            "Paid",
            &format!("<h1 id=\"done\">Payment complete</h1><p><a href=\"{link}\">Continue</a></p>"),
        ),
    )
}

fn failure(e: CheckoutError) -> Response {
    match e {
        CheckoutError::NotFound(_) => not_found(),
        CheckoutError::Unavailable(reason) => page(
            StatusCode::CONFLICT,
            layout(
                "Unavailable",
                &format!(
                    "<h1 id=\"unavailable\">This checkout can no longer be paid</h1><p>{}</p>",
                    escape(&reason)
                ),
            ),
        ),
        CheckoutError::Catalog(_) => page(
            StatusCode::CONFLICT,
            layout(
                "Unavailable",
                "<h1 id=\"unavailable\">This plan is no longer available</h1>",
            ),
        ),
        other => {
            tracing::error!(error = %other, "checkout page failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                layout("Error", "<h1>Something went wrong</h1>"),
            )
        }
    }
}

/// The hosted checkout page.
///
/// A plain HTML form for a person to pay the session with a card; no credential needed.
#[utoipa::path(
    get,
    path = "/checkout/{session_id}",
    tag = "checkout",
    operation_id = "showCheckoutPage",
    security(()),
    params(("session_id" = String, Path, description = "The checkout session id")),
    responses(
        (status = 200, description = "The payment form, or a link onwards if already paid", body = String, content_type = "text/html"),
        (status = 404, description = "No such checkout session", body = String, content_type = "text/html"),
        (status = 409, description = "The plan is no longer available", body = String, content_type = "text/html"),
        (status = 410, description = "The session has expired (`--checkout-ttl-secs`)", body = String, content_type = "text/html"),
    )
)]
pub async fn show(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Response {
    let session = match load(&state, &id).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    match session.status {
        SessionStatus::Complete => return completed(&session),
        SessionStatus::Expired => return expired(&session),
        SessionStatus::Open => {}
    }
    match render_form(&state, &session, None).await {
        Ok(html) => page(StatusCode::OK, html),
        Err(CheckoutError::Catalog(_)) => page(
            StatusCode::CONFLICT,
            layout("Unavailable", "<h1>This plan is no longer available</h1>"),
        ),
        Err(e) => failure(e),
    }
}

/// Checks what a person typed before anything is charged; `Err` is shown on the page.
fn read_card(
    form: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<TestCard>, &'static str> {
    let number: String = form
        .get("card_number")
        .map(String::as_str)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Your card number is incomplete.");
    }
    let expiry = form
        .get("expiry")
        .map(String::as_str)
        .unwrap_or("")
        .replace(' ', "");
    let (mm, yy) = expiry
        .split_once('/')
        .ok_or("Your card's expiry date is incomplete.")?;
    let month: u32 = mm
        .parse()
        .map_err(|_| "Your card's expiry date is incomplete.")?;
    let year: i32 = yy
        .parse()
        .map_err(|_| "Your card's expiry date is incomplete.")?;
    let year = if year < 100 { 2000 + year } else { year };
    if !(1..=12).contains(&month) {
        return Err("Your card's expiry month is invalid.");
    }
    use chrono::Datelike;
    if (year, month) < (now.year(), now.month()) {
        return Err("Your card's expiry date is in the past.");
    }
    let cvc = form.get("cvc").map(String::as_str).unwrap_or("");
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Your card's security code is incomplete.");
    }
    Ok(TestCard::from_number(&number))
}

/// Pay on the hosted checkout page.
///
/// The form post of the hosted page. A declined or incomplete card shows the page again with
/// the reason and stores nothing.
#[utoipa::path(
    post,
    path = "/checkout/{session_id}/pay",
    tag = "checkout",
    operation_id = "payCheckoutPage",
    security(()),
    params(("session_id" = String, Path, description = "The checkout session id")),
    request_body(content = PayForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Paid: on to the session's `successUrl`",
            headers(("Location" = String, description = "The `successUrl`"))),
        (status = 200, description = "Already paid: a link onwards", body = String, content_type = "text/html"),
        (status = 400, description = "The card details are incomplete or invalid", body = String, content_type = "text/html"),
        (status = 402, description = "The card was declined", body = String, content_type = "text/html"),
        (status = 404, description = "No such checkout session", body = String, content_type = "text/html"),
        (status = 409, description = "The session can no longer be paid", body = String, content_type = "text/html"),
        (status = 410, description = "The session has expired (`--checkout-ttl-secs`)", body = String, content_type = "text/html"),
    )
)]
pub async fn pay(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let session = match load(&state, &id).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    match session.status {
        SessionStatus::Complete => return completed(&session),
        SessionStatus::Expired => return expired(&session),
        SessionStatus::Open => {}
    }
    let show_error = |message: String, status: StatusCode| {
        let state = state.clone();
        let session = session.clone();
        async move {
            match render_form(&state, &session, Some(&message)).await {
                Ok(html) => page(status, html),
                Err(e) => failure(e),
            }
        }
    };
    let card = match read_card(&form, state.clock.now()) {
        Ok(card) => card,
        Err(message) => return show_error(message.to_owned(), StatusCode::BAD_REQUEST).await,
    };
    let mode = session.mode;
    let ttl = state.config.checkout_ttl_secs;
    let session_id = id.clone();
    let paid = state
        .writer
        .run("pay_checkout_page", async move |uow| {
            // An error rolls the whole unit back: a declined card stores nothing.
            complete(uow, mode, &session_id, card, ttl)
                .await
                .map_err(ApiError::from)
        })
        .await;
    match paid {
        Ok(done) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, done.session.success_redirect())],
        )
            .into_response(),
        Err(e) if e.kind == ErrorKind::PaymentRequired => {
            show_error(e.message, StatusCode::PAYMENT_REQUIRED).await
        }
        Err(e) if e.kind == ErrorKind::NotFound => not_found(),
        Err(e) if e.kind == ErrorKind::Conflict => match load(&state, &id).await {
            Ok(now) if now.status == SessionStatus::Complete => completed(&now),
            Ok(now) if now.status == SessionStatus::Expired => expired(&now),
            _ => failure(CheckoutError::Unavailable(e.message)),
        },
        Err(e) => {
            tracing::warn!(error = %e, "checkout page payment failed");
            page(
                e.status(),
                layout(
                    "Try again",
                    "<h1>Something went wrong</h1><p>Nothing was charged. Please try again.</p>",
                ),
            )
        }
    }
}

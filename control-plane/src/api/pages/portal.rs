//! The hosted portal: `GET /portal/{token}` (plan, next invoice, invoices, card),
//! `GET /portal/{token}/preview` (what a switch would cost, before it is confirmed) and the
//! forms `POST /portal/{token}/{switch,cancel,resume,card}`, each answered with a 303 back to
//! the page and a notice, or with a page saying what was wrong (4xx, never a 500 for bad input).
//!
//! CSRF: the portal sets no cookie at all. What authorises a request is the token in its path,
//! which no other site can know (no referrer is ever sent, the page cannot be framed, loads
//! nothing from elsewhere). On top of that every form carries the session's nonce (`csrf`,
//! compared in constant time), and a post a browser marks as coming from another site
//! (`Sec-Fetch-Site: cross-site`/`same-site`, or a foreign `Origin`) is refused.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{HeaderMap, LOCATION};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tollgate_shared::{ErrorKind, Mode};

use crate::workflows::portal as actions;

use crate::api::pages::card_entry::{StripeForm, saved_card, stripe_form};
use crate::api::settlement;
use crate::api::state::AppState;
use crate::domain::catalog::display;
use crate::domain::catalog::store as catalog;
use crate::domain::customers::store as customers;
use crate::domain::invoices::store as invoices;
use crate::domain::payments::model::{Decline, IntentStatus};
use crate::domain::portal::model::{
    Notice, PortalError, PortalSession, PriceChoice, subscription_field,
};
use crate::domain::portal::store;
use crate::domain::subscriptions::lifecycle::Action;
use crate::domain::subscriptions::model::SubscriptionError;
use crate::domain::subscriptions::model::{Status, Subscription};
use crate::domain::subscriptions::preview::UpdateAsk;
use crate::domain::subscriptions::store as subscriptions;
use crate::payments::EnteredCard;
use crate::payments::test_cards::read_card;
use crate::platform::clock::human_date;
use crate::platform::db::Conn;
use crate::platform::http::error::ApiError;
use crate::platform::http::extract::ApiPath;
use crate::platform::http::hosted::{MessagePage, origin_of, render, render_with_stripe};
use crate::platform::validate::invalid;
use crate::workflows::portal::PortalAction;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Invoices shown on the page, newest first.
const INVOICES_SHOWN: i64 = 24;

struct Choice {
    value: String,
    label: String,
}

struct SubView {
    id: String,
    group: String,
    plan_name: String,
    price: String,
    status: &'static str,
    next: String,
    options: Vec<Choice>,
    can_cancel: bool,
    can_resume: bool,
}

struct InvoiceRow {
    date: String,
    description: &'static str,
    status: String,
    total: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    test_mode: bool,
    customer: String,
    notice: Option<&'static str>,
    error: Option<String>,
    subscriptions: Vec<SubView>,
    card: String,
    invoices: Vec<InvoiceRow>,
    /// `/portal/{token}`: where the forms post.
    base: String,
    csrf: String,
    expires: String,
    /// Set in a mode with Stripe: the new card goes into Stripe.js's card Element.
    stripe: Option<StripeForm>,
    /// A mode with Stripe whose SetupIntent could not be made just now.
    card_entry_down: bool,
}

struct LineRow {
    description: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "portal_preview.html")]
struct PreviewPage {
    test_mode: bool,
    target: String,
    heading: String,
    summary: String,
    lines: Vec<LineRow>,
    total: String,
    credit: Option<String>,
    charged: String,
    then: Option<String>,
    confirmable: bool,
    confirm: String,
    base: String,
    csrf: String,
    subscription: String,
    price: String,
    expected: i64,
}

fn base_of(token: &str) -> String {
    format!("/portal/{token}")
}

/// The session a token names, usable now (the server's time).
async fn session_for(conn: &mut Conn, token: &str, now: i64) -> Result<PortalSession, PortalError> {
    if !crate::domain::portal::model::plausible_token(token) {
        return Err(PortalError::UnknownToken);
    }
    let session = store::find(conn, &crate::domain::portal::model::token_hash(token))
        .await?
        .ok_or(PortalError::UnknownToken)?;
    session.check(now)?;
    Ok(session)
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Trialing => "trial",
        Status::Active => "active",
        Status::PastDue => "payment overdue",
        Status::Incomplete => "awaiting payment",
        Status::Canceled => "canceled",
        Status::IncompleteExpired => "never paid",
    }
}

fn reason_label(reason: &str) -> &'static str {
    match reason {
        "subscription_create" => "New subscription",
        "subscription_cycle" => "Renewal",
        "subscription_update" => "Plan change",
        "trial_end" => "First payment after the trial",
        "subscription_final" => "Final invoice",
        _ => "Invoice",
    }
}

/// What happens next to `sub`, in one sentence.
async fn next_of(conn: &mut Conn, sub: &Subscription) -> Result<String, sqlx::Error> {
    let Some(end) = sub.period_end else {
        return Ok("Paid once; yours for good.".to_owned());
    };
    if let Some(at) = sub.cancel_at {
        return Ok(format!("Ends on {}.", human_date(at)));
    }
    if sub.cancel_at_period_end {
        return Ok(format!("Ends on {}.", human_date(end)));
    }
    if let Some(plan) = &sub.scheduled_plan {
        let name = catalog::plan_name(conn, sub.mode, plan).await?;
        return Ok(format!("Changes to {name} on {}.", human_date(end)));
    }
    let amount = display::money(sub.total(), sub.currency);
    Ok(match sub.status {
        Status::Trialing => format!("Trial ends on {}; then {amount}.", human_date(end)),
        _ => format!("Next invoice on {}: {amount}.", human_date(end)),
    })
}

/// The prices `sub` may switch to: the other paid prices of its group, in its currency.
async fn options_of(conn: &mut Conn, sub: &Subscription) -> Result<Vec<Choice>, sqlx::Error> {
    if sub.period_end.is_none() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for plan in catalog::plans_in_group(conn, sub.mode, &sub.group).await? {
        if plan.is_default {
            continue;
        }
        for price in &plan.prices {
            let current = plan.identifier == sub.plan && price.charge_period == sub.period;
            if current || price.currency != sub.currency {
                continue;
            }
            let total = price.amount_minor.saturating_mul(sub.quantity);
            out.push(Choice {
                value: PriceChoice::value(&plan.identifier, price.charge_period),
                label: format!(
                    "{} — {}",
                    plan.name,
                    display::price(total, price.currency, price.charge_period)
                ),
            });
        }
    }
    Ok(out)
}

async fn portal_page(
    state: &AppState,
    token: &str,
    session: &PortalSession,
    notice: Option<Notice>,
) -> Result<Response, PortalError> {
    let mode = session.mode;
    let mut conn = state.db.read().await?;
    let customer = customers::get(&mut conn, mode, &session.customer_id).await?;
    let mut subs = Vec::new();
    for sub in subscriptions::granting(&mut conn, mode, &session.customer_id).await? {
        let plan_name = catalog::plan_name(&mut conn, mode, &sub.plan).await?;
        let pending = sub.pending_change();
        subs.push(SubView {
            next: next_of(&mut conn, &sub).await?,
            options: options_of(&mut conn, &sub).await?,
            price: display::price(sub.total(), sub.currency, sub.period),
            status: status_label(sub.status),
            can_cancel: sub.period_end.is_some() && !pending,
            can_resume: pending,
            plan_name: if sub.quantity > 1 {
                format!("{plan_name} × {}", sub.quantity)
            } else {
                plan_name
            },
            id: sub.id,
            group: sub.group,
        });
    }
    let card = match customers::card_summary(&mut conn, mode, &session.customer_id).await? {
        Some((brand, last4)) => {
            let mut brand = brand;
            if let Some(first) = brand.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{brand} •••• {last4}")
        }
        None => "No card on file.".to_owned(),
    };
    let (ids, _) = invoices::list_ids(
        &mut conn,
        mode,
        Some(&session.customer_id),
        None,
        INVOICES_SHOWN,
        0,
    )
    .await?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = invoices::summary_row(&mut conn, mode, &id).await? {
            rows.push(InvoiceRow {
                date: human_date(row.created_at),
                description: reason_label(&row.reason),
                status: row.status,
                total: display::money(row.total_minor, row.currency),
            });
        }
    }
    let on_file = customers::card_on_file(&mut conn, mode, &session.customer_id).await?;
    // No pooled connection waits on Stripe.
    drop(conn);
    let stripe = state.payments.processors.stripe(mode);
    let form = match stripe {
        Some(stripe) => stripe_form(stripe, &session.customer_id, on_file.as_deref())
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "Stripe unreachable from the portal"))
            .ok(),
        None => None,
    };
    let page = PortalPage {
        card_entry_down: stripe.is_some() && form.is_none(),
        stripe: form,
        test_mode: mode == Mode::Test,
        customer: customer.email.unwrap_or(customer.customer_id),
        notice: notice.map(Notice::text),
        error: None,
        subscriptions: subs,
        card,
        invoices: rows,
        base: base_of(token),
        csrf: session.csrf.clone(),
        expires: crate::platform::clock::human_time(session.expires_at),
    };
    Ok(match stripe {
        Some(stripe) => render_with_stripe(
            StatusCode::OK,
            &page,
            &[],
            &stripe.config().script_origins(),
        ),
        None => render(StatusCode::OK, &page),
    })
}

/// A page for what went wrong; `back` links to the portal when the link itself still works.
fn failure(e: PortalError, back: Option<&str>) -> Response {
    let (status, id, heading, text): (StatusCode, &str, &str, String) = match &e {
        PortalError::UnknownToken => (
            StatusCode::NOT_FOUND,
            "not-found",
            "This link is not valid",
            "Open billing from the app again to get a new link.".to_owned(),
        ),
        PortalError::Expired => (
            StatusCode::GONE,
            "expired",
            "This link has expired",
            "Billing links work for a short time. Open billing from the app again to get a new \
             one."
                .to_owned(),
        ),
        PortalError::Db(db) => {
            tracing::error!(error = %db, "portal page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-page",
                "Something went wrong",
                "Nothing was changed. Please try again.".to_owned(),
            )
        }
        _ => {
            let api = ApiError::from(e);
            return api_failure(&api, back);
        }
    };
    let mut page = MessagePage::new(heading, id, heading).text(&text);
    if let Some(back) =
        back.filter(|_| status != StatusCode::GONE && status != StatusCode::NOT_FOUND)
    {
        page = page.link(back, "Back to billing");
    }
    page.respond(status)
}

/// A page for an error a unit of work (or a check) answered.
fn api_failure(e: &ApiError, back: Option<&str>) -> Response {
    let (heading, id) = match e.kind {
        ErrorKind::BadRequest => ("That did not work", "invalid"),
        ErrorKind::PaymentRequired => ("Your card was not accepted", "declined"),
        ErrorKind::NotFound => ("Not found", "not-found"),
        ErrorKind::Conflict => ("That cannot be done now", "conflict"),
        ErrorKind::Forbidden => ("Not allowed", "forbidden"),
        _ => ("Something went wrong", "error-page"),
    };
    if e.is_server_error() {
        tracing::warn!(error = %e.message, "portal action failed");
    }
    let text = if e.is_server_error() {
        "Nothing was changed. Please try again."
    } else {
        e.message.as_str()
    };
    let mut page = MessagePage::new(heading, id, heading).text(text);
    if let Some(back) = back {
        page = page.link(back, "Back to billing");
    }
    page.respond(e.status())
}

fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    raw.and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// The customer portal.
///
/// The page `customerPortalUrl` opens: plan, next invoice, invoice history, switch plan,
/// cancel, resume, replace card. No credential besides the token in the path.
#[utoipa::path(
    get,
    path = "/portal/{token}",
    tag = "portal",
    operation_id = "showPortalPage",
    security(()),
    params(
        ("token" = String, Path, format = "portal-token", description = "The portal session's token (`pts_test_…`)"),
        ("done" = Option<String>, Query, description = "Which notice to show after a form: `upgraded`, `scheduled`, `cancel-scheduled`, `resumed`, `card-replaced`, `unchanged`"),
    ),
    responses(
        (status = 200, description = "The portal", body = String, content_type = "text/html"),
        (status = 404, description = "No session has this token", body = String, content_type = "text/html"),
        (status = 410, description = "The session expired", body = String, content_type = "text/html"),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let notice = query_map(query.as_deref())
        .get("done")
        .and_then(|d| Notice::parse(d));
    let result = async {
        let mut conn = state.db.read().await?;
        let session = session_for(&mut conn, &token, state.clock.unix()).await?;
        drop(conn);
        portal_page(&state, &token, &session, notice).await
    }
    .await;
    result.unwrap_or_else(|e| failure(e, None))
}

/// Review a plan switch.
///
/// What switching would do, shown before it is confirmed: an upgrade's prorated invoice
/// (credit for unused time, charge for the rest of the period) and what the card is charged
/// now; a downgrade's date. Reads only.
#[utoipa::path(
    get,
    path = "/portal/{token}/preview",
    tag = "portal",
    operation_id = "previewPortalSwitch",
    security(()),
    params(
        ("token" = String, Path, format = "portal-token", description = "The portal session's token"),
        ("subscription" = String, Query, format = "portal-subscription", description = "One of the customer's subscriptions"),
        ("price" = String, Query, format = "price-choice", description = "`plan:PERIOD`, e.g. `enterprise:MONTHLY`"),
    ),
    responses(
        (status = 200, description = "The preview, with a confirm button", body = String, content_type = "text/html"),
        (status = 400, description = "A missing or malformed choice, or a plan of another group", body = String, content_type = "text/html"),
        (status = 404, description = "No such session, or no such subscription of this customer", body = String, content_type = "text/html"),
        (status = 409, description = "The subscription cannot change now", body = String, content_type = "text/html"),
        (status = 410, description = "The session expired", body = String, content_type = "text/html"),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let base = base_of(&token);
    let q = query_map(query.as_deref());
    let result = async {
        let mut conn = state.db.read().await?;
        let session = session_for(&mut conn, &token, state.clock.unix()).await?;
        let subscription = subscription_field(q.get("subscription").map(String::as_str))?;
        let choice = PriceChoice::parse("price", q.get("price").map(String::as_str).unwrap_or(""))?;
        let sub = subscriptions::get(&mut conn, session.mode, &subscription)
            .await?
            .filter(|s| s.customer_id == session.customer_id)
            .ok_or(PortalError::NotYours)?;
        let ask = UpdateAsk::to(choice.plan.clone(), choice.period.as_str());
        let seen = crate::workflows::update::preview_update(
            &mut conn,
            session.mode,
            &sub.id,
            &ask,
            state.clock.unix(),
        )
        .await?;
        let target_name = catalog::plan_name(&mut conn, session.mode, &choice.plan).await?;
        let current_name = catalog::plan_name(&mut conn, session.mode, &sub.plan).await?;
        let cur = seen.currency;
        let then = display::price(seen.recurring_minor, cur, choice.period);
        let (heading, summary, confirm, confirmable) = match seen.action {
            Action::Upgraded | Action::QuantityChanged => (
                format!("Switch to {target_name} now"),
                format!(
                    "{target_name} starts now. Unused time on {current_name} is credited and \
                     the rest of the period is charged at the new price."
                ),
                format!(
                    "Confirm and pay {}",
                    display::money(seen.charged_now_minor, cur)
                ),
                true,
            ),
            Action::DowngradeScheduled => (
                format!("Switch to {target_name} at the end of the period"),
                format!(
                    "You keep {current_name} until {}; then {target_name} starts at {then}.",
                    human_date(seen.effective_at)
                ),
                format!("Confirm the switch on {}", human_date(seen.effective_at)),
                true,
            ),
            Action::Resumed => (
                format!("Keep {current_name}"),
                "The change waiting for the end of your period is dropped.".to_owned(),
                "Keep my plan".to_owned(),
                true,
            ),
            _ => (
                format!("You are on {current_name}"),
                "Nothing would change.".to_owned(),
                String::new(),
                false,
            ),
        };
        let lines = seen
            .lines_now
            .iter()
            .map(|l| LineRow {
                description: l.description.clone(),
                amount: display::money(l.amount_minor, cur),
            })
            .collect();
        let charged = if seen.lines_now.is_empty() {
            "Nothing is charged now.".to_owned()
        } else if seen.total_now_minor < 0 {
            format!(
                "Nothing is charged now; {} goes to your credit.",
                display::money(-seen.total_now_minor, cur)
            )
        } else {
            format!(
                "Charged now to your card: {}",
                display::money(seen.charged_now_minor, cur)
            )
        };
        let then = seen.next_invoice.as_ref().map(|next| {
            format!(
                "Next invoice on {}: {}.",
                human_date(next.at),
                display::money(next.total_minor, cur)
            )
        });
        let page = PreviewPage {
            test_mode: session.mode == Mode::Test,
            target: target_name,
            heading,
            summary,
            lines,
            total: display::money(seen.total_now_minor, cur),
            credit: (seen.credit_applied_minor != 0)
                .then(|| display::money(-seen.credit_applied_minor, cur)),
            charged,
            then,
            confirmable,
            confirm,
            base: base.clone(),
            csrf: session.csrf.clone(),
            subscription: sub.id.clone(),
            price: PriceChoice::value(&choice.plan, choice.period),
            expected: seen.charged_now_minor,
        };
        Ok::<_, PortalError>(render(StatusCode::OK, &page))
    }
    .await;
    result.unwrap_or_else(|e| failure(e, Some(&base)))
}

/// Refuses a post a browser says came from another site (see the module's CSRF note).
fn same_site(headers: &HeaderMap, public_url: &str) -> Result<(), PortalError> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return Err(PortalError::Forbidden(
            "this form was sent from another site",
        ));
    }
    // `Origin: null` is what a browser sends under `Referrer-Policy: no-referrer`.
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    match origin {
        None | Some("null") => Ok(()),
        Some(o) if origin_of(public_url).as_deref() == Some(o) => Ok(()),
        Some(_) => Err(PortalError::Forbidden(
            "this form was sent from another site",
        )),
    }
}

fn form_action(
    kind: &str,
    form: &HashMap<String, String>,
    now: i64,
) -> Result<PortalAction, PortalError> {
    let subscription = || subscription_field(form.get("subscription").map(String::as_str));
    Ok(match kind {
        "switch" => PortalAction::Switch {
            subscription: subscription()?,
            choice: PriceChoice::parse(
                "price",
                form.get("price").map(String::as_str).unwrap_or(""),
            )?,
            expected: form
                .get("expected")
                .and_then(|e| e.parse::<i64>().ok())
                .ok_or_else(|| invalid("expected", "missing or not a whole number"))?,
        },
        "cancel" => PortalAction::Cancel {
            subscription: subscription()?,
        },
        "resume" => PortalAction::Resume {
            subscription: subscription()?,
        },
        _ => PortalAction::ReplaceCard {
            card: EnteredCard::Test(
                read_card(
                    form,
                    chrono::DateTime::from_timestamp(now, 0).unwrap_or_default(),
                )
                .map_err(|m| invalid("card", m))?,
            ),
        },
    })
}

/// One of the portal's forms: checks, then one unit of work, then back to the page.
async fn act(
    state: AppState,
    token: String,
    kind: &'static str,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base = base_of(&token);
    let now = state.clock.unix();
    let session = match state.db.read().await {
        Ok(mut conn) => session_for(&mut conn, &token, now).await,
        Err(e) => Err(PortalError::Db(e)),
    };
    let session = match session {
        Ok(s) => s,
        Err(e) => return failure(e, None),
    };
    // A form with a NUL character reads as empty: it is refused like an incomplete one.
    let form: HashMap<String, String> =
        crate::platform::http::extract::parse_form(&body).unwrap_or_default();
    let checked = same_site(&headers, &state.config.public_url).and_then(|()| {
        if form.get("csrf").is_some_and(|c| session.csrf_matches(c)) {
            Ok(())
        } else {
            Err(PortalError::Forbidden(
                "this form is not from this billing page; open it again",
            ))
        }
    });
    if let Err(e) = checked {
        return failure(e, Some(&base));
    }
    let action = match state.payments.processors.stripe(session.mode) {
        // Stripe.js saved the new card with a SetupIntent; it goes on file as Stripe has it.
        Some(stripe) if kind == "card" => {
            match saved_card(stripe, &form, &session.customer_id).await {
                Ok(card) => PortalAction::ReplaceCard { card },
                Err(e) => return api_failure(&e, Some(&base)),
            }
        }
        _ => match form_action(kind, &form, now) {
            Ok(a) => a,
            Err(e) => return failure(e, Some(&base)),
        },
    };
    let key = session.customer_id.clone();
    let mode = session.mode;
    let done = state
        .writer
        .run_for(Some(&key), "portal_action", async move |uow| {
            let notice = actions::run(uow, &session, &action)
                .await
                .map_err(ApiError::from)?;
            Ok((notice, uow.payments().first().cloned()))
        })
        .await;
    // An upgrade's charge settles outside the unit: wait for it (the change applies then).
    let done = match done {
        Ok((notice, Some(intent))) => match settlement::wait_for(&state, mode, &intent).await {
            Ok(Some(i)) if i.status == IntentStatus::RequiresAction => {
                let url = settlement::action_url(&state.config.public_url, &i.id);
                return (StatusCode::SEE_OTHER, [(LOCATION, url)]).into_response();
            }
            Ok(Some(i)) if matches!(i.status, IntentStatus::Failed | IntentStatus::Canceled) => {
                let decline = i
                    .decline_code
                    .as_deref()
                    .map_or(Decline::CardDeclined, Decline::from_code);
                Err(ApiError::from(SubscriptionError::Payment(decline)))
            }
            Ok(_) => Ok(notice),
            Err(e) => Err(e),
        },
        Ok((notice, None)) => Ok(notice),
        Err(e) => Err(e),
    };
    match done {
        Ok(notice) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, format!("{base}?done={}", notice.as_str()))],
        )
            .into_response(),
        Err(e) => api_failure(&e, Some(&base)),
    }
}

macro_rules! portal_form {
    ($name:ident, $kind:literal, $path:literal, $op:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "portal",
            operation_id = $op,
            security(()),
            params(("token" = String, Path, description = "The portal session's token")),
            request_body(content = crate::platform::http::schema::PortalForm, content_type = "application/x-www-form-urlencoded"),
            responses(
                (status = 303, description = "Done: back to the portal, with a notice",
                    headers(("Location" = String, description = "`/portal/{token}?done=…`"))),
                (status = 400, description = "A missing or malformed field", body = String, content_type = "text/html"),
                (status = 402, description = "The card was declined; nothing changed", body = String, content_type = "text/html"),
                (status = 403, description = "Not this page's form, or sent from another site", body = String, content_type = "text/html"),
                (status = 404, description = "No such session, or no such subscription of this customer", body = String, content_type = "text/html"),
                (status = 409, description = "Not possible now, or the previewed price changed", body = String, content_type = "text/html"),
                (status = 410, description = "The session expired", body = String, content_type = "text/html"),
            )
        )]
        pub async fn $name(
            State(state): State<AppState>,
            ApiPath(token): ApiPath<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            act(state, token, $kind, headers, body).await
        }
    };
}

portal_form!(
    switch,
    "switch",
    "/portal/{token}/switch",
    "switchPortalPlan",
    "Confirm a plan switch (the preview's form): an upgrade now, a downgrade at period end."
);
portal_form!(
    cancel,
    "cancel",
    "/portal/{token}/cancel",
    "cancelPortalSubscription",
    "Cancel at the end of the period (PayKit: a switch to the group's free plan)."
);
portal_form!(
    resume,
    "resume",
    "/portal/{token}/resume",
    "resumePortalSubscription",
    "Keep the current plan: drops a pending cancellation or downgrade."
);
portal_form!(
    card,
    "card",
    "/portal/{token}/card",
    "replacePortalCard",
    "Replace the card on file: a test card's fields (the test processor), or the SetupIntent Stripe.js confirmed (`setup_intent`, a mode with Stripe)."
);

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(preview))
        .routes(routes!(switch))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(card))
}

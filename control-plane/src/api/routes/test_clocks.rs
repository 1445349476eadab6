//! `/api/v1/test-clocks/…`: create, read, advance.

use axum::Json;
use axum::extract::State;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use tollgate_shared::{ErrorKind, Mode};

use crate::domain::test_clocks::store;

use crate::api::idempotency::Idem;
use crate::api::settlement;
use crate::api::state::AppState;
use crate::domain::auth::model::Caller;
use crate::domain::test_clocks::store::ClockRow;
use crate::platform::clock::rfc3339;
use crate::platform::db::due::Scope;
use crate::platform::http::error::{ApiError, ApiResult};
use crate::platform::http::extract::{ApiJson, ApiPath};
use crate::platform::http::reply::Reply;
use crate::platform::http::schema::ErrorEnvelope;
use crate::platform::validate::{check_len, invalid};
use crate::workers::billing_clock::Run;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateClock {
    /// RFC 3339, between 1970 and 2200.
    #[schema(format = DateTime, pattern = r"^(19[7-9][0-9]|20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]0[0-9]:[0-5][0-9])$")]
    frozen_time: String,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Advance {
    /// RFC 3339, between 1970 and 2200, not earlier than the clock and at most ten years
    /// after it.
    #[schema(format = DateTime, pattern = r"^(19[7-9][0-9]|20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]0[0-9]:[0-5][0-9])$")]
    frozen_time: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    id: String,
    name: Option<String>,
    frozen_time: String,
    status: &'static str,
    created_at: String,
    /// How many billing steps the last advance ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    steps_run: Option<usize>,
    /// Steps of the last advance that failed (logged; retried on the next advance).
    #[serde(skip_serializing_if = "Option::is_none")]
    steps_failed: Option<usize>,
}

/// An advance waits for the charges it caused, pass by pass (a subscription's next step waits
/// for its previous charge to settle), at most this many passes: ten years of daily steps.
const MAX_SETTLE_PASSES: usize = 3_700;

/// Test clocks live between 1970 and 2200; one advance moves at most ten years, which bounds
/// how much billing work one request can trigger.
const EARLIEST: i64 = 0;
const LATEST: i64 = 7_258_118_400; // 2200-01-01T00:00:00Z
const MAX_ADVANCE_SECS: i64 = 10 * 366 * 86_400;

fn parse_time(text: &str) -> Result<i64, crate::platform::validate::Invalid> {
    let t = DateTime::parse_from_rfc3339(text)
        .map(|d| d.timestamp())
        .map_err(|_| {
            invalid(
                "frozenTime",
                "must be an RFC 3339 time such as 2026-01-31T00:00:00Z",
            )
        })?;
    if !(EARLIEST..LATEST).contains(&t) {
        return Err(invalid("frozenTime", "must be between 1970 and 2200"));
    }
    Ok(t)
}

fn test_mode_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.mode == Mode::Test {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Forbidden,
            "test clocks exist in test mode only",
        ))
    }
}

/// Create a test clock (test mode).
#[utoipa::path(
    post,
    path = "/api/v1/test-clocks",
    tag = "test-clocks",
    operation_id = "createTestClock",
    request_body = CreateClock,
    responses(
        (status = 201, description = "The clock", body = ClockView),
        (status = 400, description = "`frozenTime` is not RFC 3339", body = ErrorEnvelope),
        (status = 403, description = "Live mode", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Idem(claim): Idem,
    ApiJson(req): ApiJson<CreateClock>,
) -> Result<Reply, ApiError> {
    test_mode_only(&caller)?;
    let frozen = parse_time(&req.frozen_time)?;
    check_len("name", req.name.as_deref(), 200)?;
    Ok(state
        .writer
        .reply(claim, "create_test_clock", async move |uow| {
            let id = crate::platform::ids::new("clock");
            store::insert(uow, &id, req.name.as_deref(), frozen).await?;
            let row = store::get(uow.conn(), &id)
                .await?
                .ok_or_else(|| not_found(&id))?;
            Ok(Reply::created(&view(row, None)))
        })
        .await)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("test clock '{id}' not found"))
}

fn view(row: ClockRow, run: Option<Run>) -> ClockView {
    ClockView {
        id: row.id,
        name: row.name,
        frozen_time: rfc3339(row.frozen_time),
        status: "ready",
        created_at: rfc3339(row.created_at),
        steps_run: run.map(|r| r.steps),
        steps_failed: run.map(|r| r.failed),
    }
}

async fn read(state: &AppState, id: &str) -> ApiResult<ClockRow> {
    let mut conn = state.db.read().await?;
    store::get(&mut conn, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Get a test clock.
#[utoipa::path(
    get,
    path = "/api/v1/test-clocks/{id}",
    tag = "test-clocks",
    operation_id = "getTestClock",
    params(("id" = String, Path, description = "The clock id (`clock_…`)")),
    responses(
        (status = 200, description = "The clock", body = ClockView),
        (status = 404, description = "No such clock", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ClockView>> {
    test_mode_only(&caller)?;
    Ok(Json(view(read(&state, &id).await?, None)))
}

/// Moves the clock forward and runs everything that fell due, before answering.
/// Advance a test clock; answers after everything due in between has run.
#[utoipa::path(
    post,
    path = "/api/v1/test-clocks/{id}/advance",
    tag = "test-clocks",
    operation_id = "advanceTestClock",
    params(("id" = String, Path, description = "The clock id (`clock_…`)")),
    request_body = Advance,
    responses(
        (status = 200, description = "The clock, with `stepsRun`", body = ClockView),
        (status = 400, description = "Not RFC 3339, or outside 1970-2200", body = ErrorEnvelope),
        (status = 404, description = "No such clock", body = ErrorEnvelope),
        (status = 409, description = "Earlier than the clock, or more than ten years after it", body = ErrorEnvelope),
    )
)]
pub async fn advance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Advance>,
) -> ApiResult<Json<ClockView>> {
    test_mode_only(&caller)?;
    let target = parse_time(&req.frozen_time)?;
    // The whole advance runs on a task of its own: a client that hangs up does not stop it
    // halfway, with the clock moved and its renewals not run.
    let work = tokio::spawn(async move {
        // Read and move the clock inside one unit: concurrent advances cannot move it
        // backwards between the check and the update.
        let clock_id = id.clone();
        state
            .writer
            .run("advance_test_clock", async move |uow| {
                let current = store::locked_time(uow, &clock_id)
                    .await?
                    .ok_or_else(|| not_found(&clock_id))?;
                if target < current {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        "frozenTime: test clocks only move forward",
                    ));
                }
                if target - current > MAX_ADVANCE_SECS {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        "frozenTime: one advance moves at most ten years",
                    ));
                }
                store::set(uow, &clock_id, target).await?;
                Ok(())
            })
            .await?;
        // A renewal's charge settles after its unit (the payments worker); what the settle
        // decides (dunning retries) may fall due before `target` too. Each pass waits for the
        // charges the previous one caused, and the advance answers once nothing more is due.
        let mut run = state.billing.run_due(Scope::TestClock(&id), target).await?;
        for _ in 0..MAX_SETTLE_PASSES {
            settlement::wait_for_clock(&state, &id).await?;
            let more = state.billing.run_due(Scope::TestClock(&id), target).await?;
            run.steps += more.steps;
            run.failed += more.failed;
            if more.steps == 0 {
                break;
            }
        }
        Ok::<_, ApiError>(view(read(&state, &id).await?, Some(run)))
    });
    match work.await {
        Ok(view) => Ok(Json(view?)),
        Err(e) => Err(ApiError::internal("test clock advance", &e)),
    }
}

/// This area's routes, each declared once with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(get))
        .routes(routes!(advance))
}

//! Test clocks (Stripe's semantics): a clock is created at a frozen time; customers created
//! with `testClock` live at that time; advancing moves it forward only and returns after every
//! renewal, trial end, scheduled change, retry and meter reset due in between has run.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tollgate_shared::{ErrorKind, Mode};

use super::worker::{Scope, run_due};
use crate::app::AppState;
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, invalid};
use crate::extract::{ApiJson, ApiPath};
use crate::openapi::ErrorEnvelope;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateClock {
    /// RFC 3339.
    frozen_time: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Advance {
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

/// Test clocks live between 1970 and 2200; one advance moves at most ten years, which bounds
/// how much billing work one request can trigger.
const EARLIEST: i64 = 0;
const LATEST: i64 = 7_258_118_400; // 2200-01-01T00:00:00Z
const MAX_ADVANCE_SECS: i64 = 10 * 366 * 86_400;

fn parse_time(text: &str) -> Result<i64, crate::error::Invalid> {
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
    ApiJson(req): ApiJson<CreateClock>,
) -> ApiResult<(StatusCode, Json<ClockView>)> {
    test_mode_only(&caller)?;
    let frozen = parse_time(&req.frozen_time)?;
    if req.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(invalid("name", "at most 200 characters").into());
    }
    let id = format!("clock_{}", uuid::Uuid::new_v4().simple());
    let now = state.clock.unix();
    sqlx::query("INSERT INTO test_clocks (id, mode, name, frozen_time, created_at) VALUES (?, 'test', ?, ?, ?)")
        .bind(&id)
        .bind(&req.name)
        .bind(frozen)
        .bind(now)
        .execute(&state.db.pool)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &id, None).await?)))
}

async fn view(state: &AppState, id: &str, run: Option<super::worker::Run>) -> ApiResult<ClockView> {
    let row = sqlx::query("SELECT id, name, frozen_time, created_at FROM test_clocks WHERE id = ?")
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| {
            ApiError::new(ErrorKind::NotFound, format!("test clock '{id}' not found"))
        })?;
    Ok(ClockView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        frozen_time: rfc3339(row.try_get("frozen_time")?),
        status: "ready",
        created_at: rfc3339(row.try_get("created_at")?),
        steps_run: run.map(|r| r.steps),
        steps_failed: run.map(|r| r.failed),
    })
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
    Ok(Json(view(&state, &id, None).await?))
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
        (status = 400, description = "Not RFC 3339, or earlier than the clock", body = ErrorEnvelope),
        (status = 404, description = "No such clock", body = ErrorEnvelope),
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
    // Read and move the clock inside one (serialized) write: concurrent advances cannot move it
    // backwards between the check and the update.
    let mut tx = state.db.write().await?;
    let current: i64 = sqlx::query_scalar("SELECT frozen_time FROM test_clocks WHERE id = ?")
        .bind(&id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| {
            ApiError::new(ErrorKind::NotFound, format!("test clock '{id}' not found"))
        })?;
    if target < current {
        return Err(invalid("frozenTime", "test clocks only move forward").into());
    }
    if target - current > MAX_ADVANCE_SECS {
        return Err(invalid("frozenTime", "one advance moves at most ten years").into());
    }
    sqlx::query("UPDATE test_clocks SET frozen_time = ? WHERE id = ?")
        .bind(target)
        .bind(&id)
        .execute(tx.conn())
        .await?;
    state.commit(tx).await?;
    let run = run_due(&state, Scope::TestClock(&id), target).await?;
    Ok(Json(view(&state, &id, Some(run)).await?))
}

/// Checks a new customer may live on test clock `id`; returns the clock's time, which becomes
/// the customer's creation time.
pub async fn attachable(state: &AppState, mode: Mode, id: &str) -> Result<i64, ApiError> {
    if mode != Mode::Test {
        return Err(invalid("testClock", "test clocks exist in test mode only").into());
    }
    let frozen: Option<i64> =
        sqlx::query_scalar("SELECT frozen_time FROM test_clocks WHERE id = ?")
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?;
    frozen.ok_or_else(|| invalid("testClock", format!("no test clock '{id}'")).into())
}

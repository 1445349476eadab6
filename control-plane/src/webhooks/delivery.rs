//! The delivery worker: sends due deliveries, records the outcome, and backs off
//! exponentially (base × 2^(attempt−1), at most an hour) until a 2xx or the last attempt.
//! Delivery is at least once: a crash after the POST and before the update re-sends; receivers
//! deduplicate on `webhook-id`, which stays the same across retries.

use std::time::Duration;

use futures_util::StreamExt;
use sqlx::Row;
use tracing::{Instrument, info_span, warn};

use super::sign;
use crate::app::AppState;

/// Attempts before a delivery is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 8;
const BATCH: i64 = 32;

struct Due {
    id: String,
    event_id: String,
    url: String,
    secret: String,
    payload: String,
    attempts: i64,
}

pub async fn run_forever(state: AppState, tick: Duration) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the webhook HTTP client; webhooks will not be delivered");
            return;
        }
    };
    let mut shutdown = state.shutdown.clone();
    loop {
        match deliver_due(&state, &client).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => warn!(error = %e, "webhook delivery pass failed; will retry"),
        }
        tokio::select! {
            () = state.webhook_wake.notified() => {}
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Sends up to one batch of due deliveries; returns how many it tried.
pub async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<usize, sqlx::Error> {
    let now = state.clock.unix();
    let rows = sqlx::query(
        "SELECT d.id, d.event_id, d.attempts, e.url, e.secret, ev.payload
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND e.disabled_at IS NULL
         ORDER BY d.next_attempt_at LIMIT ?",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&state.db.pool)
    .await?;
    let due = rows
        .into_iter()
        .map(|r| {
            Ok(Due {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let count = due.len();
    let results: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(due)
        .map(|d| {
            let span = info_span!("webhook_delivery", delivery = %d.id, event = %d.event_id);
            send_one(state, client, d).instrument(span)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(count)
}

async fn send_one(state: &AppState, client: &reqwest::Client, d: Due) -> Result<(), sqlx::Error> {
    let sent_at = state.clock.unix();
    let body = d.payload.into_bytes();
    let outcome = match sign(&d.secret, &d.event_id, sent_at, &body) {
        None => Err((None, "endpoint secret is unreadable".to_owned())),
        Some(signature) => {
            let resp = client
                .post(&d.url)
                .header("content-type", "application/json")
                .header("webhook-id", &d.event_id)
                .header("webhook-timestamp", sent_at.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                Ok(r) => Err((
                    Some(r.status().as_u16()),
                    format!("HTTP {}", r.status().as_u16()),
                )),
                Err(e) => Err((None, e.to_string())),
            }
        }
    };
    let attempts = d.attempts + 1;
    let finished_at = state.clock.unix();
    match outcome {
        Ok(code) => {
            metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => "succeeded")
                .increment(1);
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'succeeded', attempts = ?, last_status_code = ?, last_error = NULL,
                   delivered_at = ? WHERE id = ?",
            )
            .bind(attempts)
            .bind(i64::from(code))
            .bind(finished_at)
            .bind(&d.id)
            .execute(&state.db.pool)
            .await?;
        }
        Err((code, error)) => {
            let give_up = attempts >= MAX_ATTEMPTS;
            metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => if give_up { "failed" } else { "retry" })
                .increment(1);
            let base = state.config.webhook_retry_base.as_secs_f64();
            let delay = (base * 2f64.powi((attempts - 1) as i32))
                .min(3_600.0)
                .ceil() as i64;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?,
                   next_attempt_at = ? WHERE id = ?",
            )
            .bind(if give_up { "failed" } else { "pending" })
            .bind(attempts)
            .bind(code.map(i64::from))
            .bind(error.chars().take(500).collect::<String>())
            .bind(finished_at + delay.max(1))
            .bind(&d.id)
            .execute(&state.db.pool)
            .await?;
        }
    }
    Ok(())
}

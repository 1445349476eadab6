//! `GET /internal/sync/stream?since=V`: the feed one edge reads for as long as it runs.
//!
//! A spawned task writes NDJSON frames into a bounded channel that backs the response body,
//! so a slow edge slows only its own feed. The task resumes from `since` when the change log
//! still holds every later version, and otherwise sends a snapshot taken inside one read
//! transaction (a consistent cut at version V) before switching to deltas.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_shared::sync::{Frame, FrameBody, ModeDefaults, SNAPSHOT_CHUNK, SnapshotBegin};
use tollgate_shared::{CustomerEntitlements, Mode};
use tracing::{Instrument, debug, info, info_span};

use crate::api::state::AppState;
use crate::domain::auth::model::EdgeCaller;
use crate::domain::auth::store as keys;
use crate::domain::entitlements::{compile, store as entitlements};
use crate::domain::sync::changelog;
use crate::platform::db::{Backend, Conn};
use crate::platform::http::extract::ApiQuery;
use crate::platform::http::schema::{ErrorEnvelope, SyncFrame};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The last version the edge applied; the stream resumes after it when the change log
    /// still has every later version, and starts with a snapshot otherwise.
    since: Option<u64>,
}

type Out = mpsc::Sender<Result<Bytes, Infallible>>;

/// Open the sync stream (edges).
///
/// The long-lived feed an edge reads: newline-delimited JSON frames, a snapshot or the
/// missing deltas first, then deltas and heartbeats. Needs an edge sync key (`esk_…`).
#[utoipa::path(
    get,
    path = "/internal/sync/stream",
    tag = "sync",
    operation_id = "openSyncStream",
    params(StreamQuery),
    responses(
        (status = 200, description = "One frame per line, for as long as the connection lasts", body = SyncFrame, content_type = "application/x-ndjson"),
        (status = 400, description = "`since` is not a number", body = ErrorEnvelope),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    edge: EdgeCaller,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Response {
    let (tx, rx) = mpsc::channel(64);
    let span = info_span!("sync_feed", edge_key = %edge.key_id, since = ?q.since);
    tokio::spawn(
        async move {
            metrics::gauge!("tollgate_sync_streams").increment(1.0);
            match feed(&state, &edge.key_id, q.since, &tx).await {
                Ok(()) | Err(FeedError::Gone) => debug!("edge disconnected"),
                Err(FeedError::Db(e)) => {
                    tracing::warn!(error = %e, "sync feed failed; edge will reconnect")
                }
            }
            metrics::gauge!("tollgate_sync_streams").decrement(1.0);
        }
        .instrument(span),
    );
    (
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

enum FeedError {
    Gone,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for FeedError {
    fn from(e: sqlx::Error) -> Self {
        FeedError::Db(e)
    }
}

/// An edge that reads nothing for this long is dropped (it reconnects and resyncs).
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn send(out: &Out, body: FrameBody) -> Result<(), FeedError> {
    let line = Ok(Bytes::from(Frame::new(body).to_line()));
    match tokio::time::timeout(SEND_TIMEOUT, out.send(line)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(FeedError::Gone),
    }
}

async fn feed(
    state: &AppState,
    key_id: &str,
    since: Option<u64>,
    out: &Out,
) -> Result<(), FeedError> {
    let mut wake = state.sync.subscribe();
    wake.borrow_and_update();
    let mut last = match since {
        Some(v) if can_resume(state, v).await? => v,
        _ => {
            // Bounded: two slow edges holding both slots cannot keep a third waiting for
            // ever; it ends its stream and reconnects with backoff.
            let slot = tokio::time::timeout(
                state.config.snapshot_slot_wait,
                state.snapshot_slots.acquire(),
            )
            .await;
            let Ok(Ok(_slot)) = slot else {
                metrics::counter!("tollgate_sync_snapshots_refused_total", "why" => "no_slot")
                    .increment(1);
                info!("no snapshot slot came free in time; the edge will reconnect");
                return Err(FeedError::Gone);
            };
            snapshot(state, out).await?
        }
    };
    let heartbeat = state.config.sync_heartbeat;
    let mut shutdown = state.shutdown.clone();
    let mut key_checked = Instant::now();
    loop {
        // A revoked sync key loses its open stream within one heartbeat, however busy the
        // stream is with deltas.
        if key_checked.elapsed() >= heartbeat {
            if !key_active(state, key_id).await? {
                return Err(FeedError::Gone);
            }
            key_checked = Instant::now();
        }
        wake.borrow_and_update();
        let deltas = {
            let mut conn = state.db.read_for_sync().await?;
            changelog::after(&mut conn, last, 512).await?
        };
        if !deltas.is_empty() {
            for delta in deltas {
                last = delta.version;
                send(out, FrameBody::Delta(delta)).await?;
            }
            continue;
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return Ok(()) },
            () = tokio::time::sleep(heartbeat) => {
                if !key_active(state, key_id).await? {
                    return Err(FeedError::Gone);
                }
                key_checked = Instant::now();
                send(out, FrameBody::Heartbeat { version: last }).await?
            }
            () = out.closed() => return Err(FeedError::Gone),
            // Ending the body lets graceful shutdown finish; edges reconnect elsewhere.
            () = async { let _ = shutdown.wait_for(|stopping| *stopping).await; } => return Ok(()),
        }
    }
}

async fn key_active(state: &AppState, key_id: &str) -> Result<bool, sqlx::Error> {
    let mut conn = state.db.read_for_sync().await?;
    keys::active(&mut conn, key_id).await
}

/// Deltas alone will do when the edge is not ahead of us and nothing it needs was pruned.
async fn can_resume(state: &AppState, since: u64) -> Result<bool, sqlx::Error> {
    let mut conn = state.db.read_for_sync().await?;
    let latest = changelog::latest(&mut conn).await?;
    if since > latest {
        return Ok(false);
    }
    if since == latest {
        return Ok(true);
    }
    Ok(changelog::oldest(&mut conn)
        .await?
        .is_some_and(|oldest| oldest <= since + 1))
}

async fn snapshot(state: &AppState, out: &Out) -> Result<u64, FeedError> {
    let started = std::time::Instant::now();
    let mut conn = state.db.read_for_sync().await?;
    // One read transaction (a repeatable-read snapshot on PostgreSQL): every row below is from
    // the same committed state. This task is never cancelled, and the transaction is ended
    // explicitly on every path; a connection whose ROLLBACK fails is closed, not pooled.
    let begin = match conn.backend() {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    };
    conn.batch(begin).await?;
    // A total deadline: a slow edge passes each frame's send timeout and could still hold
    // this transaction (and the SQLite log, PostgreSQL's vacuum) for hours.
    let result = match tokio::time::timeout(
        state.config.snapshot_deadline,
        snapshot_in(state, &mut conn, out),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => {
            metrics::counter!("tollgate_sync_snapshots_refused_total", "why" => "deadline")
                .increment(1);
            info!("a snapshot passed --snapshot-deadline-secs; the edge will reconnect");
            Err(FeedError::Gone)
        }
    };
    if conn.batch("ROLLBACK").await.is_err()
        && let Conn::Pooled(pooled) = conn
    {
        let _ = sqlx::Connection::close(pooled.detach()).await;
    }
    let (version, customers) = result?;
    send(out, FrameBody::SnapshotEnd { version }).await?;
    info!(
        version,
        customers,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot sent"
    );
    Ok(version)
}

async fn snapshot_in(
    state: &AppState,
    conn: &mut Conn,
    out: &Out,
) -> Result<(u64, i64), FeedError> {
    let version = changelog::latest(conn).await?;
    let keys = keys::edge_keys(conn).await?;
    let mut defaults = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let entitlements = compile::defaults(conn, mode).await?;
        defaults.push(ModeDefaults { mode, entitlements });
    }
    let customer_count = entitlements::count(conn).await?;
    send(
        out,
        FrameBody::SnapshotBegin(SnapshotBegin {
            version,
            customer_count: customer_count.max(0) as u64,
            keys,
            token_keys: vec![state.token_verifying_key.clone()],
            defaults,
        }),
    )
    .await?;
    if cfg!(debug_assertions) && state.config.failpoint.as_deref() == Some("snapshot-stall-once") {
        // The deadline test's slow edge: the first snapshot stops here until it is dropped.
        static STALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !STALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
    let any = conn
        .any_mut()
        .ok_or_else(|| sqlx::Error::Protocol("snapshots read through sqlx".into()))?;
    let mut rows = entitlements::stream_all(any);
    let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK);
    while let Some((mode, customer_id, ents)) = rows.try_next().await? {
        let entitlements =
            serde_json::from_str(&ents).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        chunk.push(CustomerEntitlements {
            mode: Mode::parse(&mode).ok_or_else(|| {
                sqlx::Error::Decode(format!("entitlements row: '{mode}' is not a mode").into())
            })?,
            customer_id,
            entitlements,
        });
        if chunk.len() == SNAPSHOT_CHUNK {
            let customers = std::mem::replace(&mut chunk, Vec::with_capacity(SNAPSHOT_CHUNK));
            send(out, FrameBody::SnapshotChunk { customers }).await?;
        }
    }
    drop(rows);
    if !chunk.is_empty() {
        send(out, FrameBody::SnapshotChunk { customers: chunk }).await?;
    }
    Ok((version, customer_count))
}

pub fn default_heartbeat() -> Duration {
    Duration::from_secs(2)
}

/// The sync stream's route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

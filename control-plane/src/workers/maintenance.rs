//! Pruning, so no table grows without bound: stored idempotent answers past their expiry, the
//! change log past its retention, finished webhook deliveries and their events, and usage
//! windows long over, expired checkout sessions. Each pass deletes in bounded chunks, each chunk its own unit of work, so
//! pruning never holds the write path for long. The bounds are listed in docs/operations.md.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::domain::checkout::store as checkout;
use crate::domain::idempotency::store as idempotency;
use crate::domain::payments::store as intents;
use crate::domain::portal::store as portal;
use crate::domain::sync::changelog;
use crate::domain::usage::store as usage;
use crate::domain::webhooks::store as webhooks;
use crate::platform::clock::SharedClock;
use crate::platform::http::error::ApiError;
use crate::write::Writer;

/// Rows deleted per unit of work.
pub const CHUNK: i64 = 1_000;
/// The change log always keeps at least this many newest entries.
pub const CHANGE_LOG_KEEP: i64 = 10_000;
/// Finished webhook deliveries (and events without pending ones) are kept this long.
pub const WEBHOOK_RETENTION_SECS: i64 = 30 * 86_400;
/// Usage windows that ended longer ago than this are dropped.
pub const USAGE_RETENTION_SECS: i64 = 400 * 86_400;
/// Expired checkout sessions are kept this long (completed ones stay: they are the record of
/// how a subscription started).
pub const EXPIRED_CHECKOUT_RETENTION_SECS: i64 = 30 * 86_400;

#[derive(Clone)]
pub struct Maintenance {
    pub writer: Writer,
    pub clock: SharedClock,
    pub idempotency_ttl_secs: i64,
    pub change_log_retention_secs: i64,
    pub usage_event_retention_secs: i64,
}

impl Maintenance {
    pub async fn run_forever(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.pass().await {
                warn!(error = %e, "pruning pass failed; will retry");
            }
        }
    }

    /// One pass over every table. Returns rows deleted.
    pub async fn pass(&self) -> Result<u64, ApiError> {
        let now = self.clock.unix();
        let (idem_before, log_before, events_before) = (
            now - self.idempotency_ttl_secs,
            now - self.change_log_retention_secs,
            now - self.usage_event_retention_secs,
        );
        let mut total = 0;
        for table in Table::ALL {
            loop {
                let n = self
                    .writer
                    .run(table.label(), async move |uow| {
                        let n = match table {
                            Table::Idempotency => {
                                idempotency::prune(uow.conn(), idem_before, CHUNK).await?
                            }
                            Table::ChangeLog => {
                                changelog::prune(uow.conn(), log_before, CHANGE_LOG_KEEP, CHUNK)
                                    .await?
                            }
                            Table::Webhooks => {
                                webhooks::expire_pending(
                                    uow.conn(),
                                    now - webhooks::PENDING_MAX_AGE_SECS,
                                    CHUNK,
                                )
                                .await?
                                    + webhooks::prune(
                                        uow.conn(),
                                        now - WEBHOOK_RETENTION_SECS,
                                        CHUNK,
                                    )
                                    .await?
                            }
                            Table::Usage => {
                                usage::prune(uow, now - USAGE_RETENTION_SECS, CHUNK).await?
                            }
                            Table::UsageEvents => {
                                usage::prune_events(uow, events_before, CHUNK).await?
                            }
                            Table::Checkout => {
                                checkout::prune_expired(
                                    uow.conn(),
                                    now - EXPIRED_CHECKOUT_RETENTION_SECS,
                                    CHUNK,
                                )
                                .await?
                            }
                            // An expired portal link only needs its row long enough to say
                            // "expired" rather than "not valid": a day.
                            Table::PortalSessions => {
                                portal::prune(uow.conn(), now - 86_400, CHUNK).await?
                            }
                            // Stripe redelivers an event for 3 days; a month covers it.
                            Table::ProcessorEvents => {
                                intents::prune_events(uow.conn(), now - 30 * 86_400, CHUNK).await?
                            }
                        };
                        Ok::<u64, ApiError>(n)
                    })
                    .await?;
                total += n;
                if (n as i64) < CHUNK {
                    break;
                }
            }
        }
        if total > 0 {
            debug!(rows = total, "pruned");
        }
        Ok(total)
    }
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Idempotency,
    ChangeLog,
    Webhooks,
    Usage,
    UsageEvents,
    Checkout,
    PortalSessions,
    ProcessorEvents,
}

impl Table {
    const ALL: [Table; 8] = [
        Table::Idempotency,
        Table::ChangeLog,
        Table::Webhooks,
        Table::Usage,
        Table::UsageEvents,
        Table::Checkout,
        Table::PortalSessions,
        Table::ProcessorEvents,
    ];

    fn label(self) -> &'static str {
        match self {
            Table::Idempotency => "prune_idempotency",
            Table::ChangeLog => "prune_change_log",
            Table::Webhooks => "prune_webhooks",
            Table::Usage => "prune_usage",
            Table::UsageEvents => "prune_usage_events",
            Table::Checkout => "prune_checkout_sessions",
            Table::PortalSessions => "prune_portal_sessions",
            Table::ProcessorEvents => "prune_processor_events",
        }
    }
}

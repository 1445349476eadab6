//! After a catalog edit, its customers are recompiled in bounded chunks ([`CHUNK`] customers),
//! each chunk its own unit of work and so its own change-log entry: writes in between (either
//! mode) never wait for more than one chunk, and edges apply each chunk as it arrives. The work
//! is queued durably by the edit's own transaction (`catalog_recompiles`) and resumed from its
//! cursor after a restart; on PostgreSQL each chunk locks its job with `SKIP LOCKED`, so
//! replicas share the queue without doing a chunk twice.
//!
//! Until a customer's chunk runs they keep their previous entitlements (the mode's new defaults
//! are published with the edit itself).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::warn;

use crate::domain::entitlements::store as entitlements;
use crate::domain::recompiles::store as recompiles;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::http::error::ApiError;
use crate::write::Writer;

/// Customers recompiled per unit of work.
pub const CHUNK: i64 = 200;

#[derive(Clone)]
pub struct Recompiler {
    pub writer: Writer,
    /// Woken by catalog edits; a tick covers edits made by other replicas.
    pub wake: Arc<Notify>,
}

impl Recompiler {
    /// Runs one chunk. Returns whether there was one.
    pub async fn chunk(&self) -> Result<bool, ApiError> {
        self.writer
            .run("catalog_recompile", async move |uow| {
                let Some(job) = recompiles::next(uow).await? else {
                    return Ok(false);
                };
                let ids = match &job.plans {
                    None => {
                        entitlements::customers_after(uow.conn(), job.mode, &job.cursor, CHUNK)
                            .await?
                    }
                    Some(plans) => {
                        subscriptions::customers_on_plans_after(
                            uow.conn(),
                            job.mode,
                            plans,
                            &job.cursor,
                            CHUNK,
                        )
                        .await?
                    }
                };
                for id in &ids {
                    uow.touch(job.mode, id);
                }
                match ids.last() {
                    Some(last) if ids.len() as i64 == CHUNK => {
                        recompiles::advance(uow, &job.id, last).await?
                    }
                    _ => recompiles::finish(uow, &job.id).await?,
                }
                metrics::counter!("tollgate_catalog_recompiled_customers_total")
                    .increment(ids.len() as u64);
                Ok::<bool, ApiError>(true)
            })
            .await
    }

    pub async fn run_forever(self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            loop {
                match self.chunk().await {
                    Ok(true) if !*shutdown.borrow() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %e, "catalog recompile chunk failed; will retry");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

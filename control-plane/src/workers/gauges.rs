//! Gauges an operator wants, refreshed every few seconds.

use crate::domain::sync::notifier::SyncNotifier;
use crate::platform::db::Db;
use crate::write::Writer;

/// Domain gauges an operator wants, refreshed every few seconds: webhook backlog, the newest
/// change-log version, the write queue.
pub async fn gauges(
    db: Db,
    writer: Writer,
    sync: SyncNotifier,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        metrics::gauge!("tollgate_sync_version").set(sync.latest() as f64);
        metrics::gauge!("tollgate_write_queue_units").set(writer.queue_depth() as f64);
        if let Ok(mut conn) = db.read().await
            && let Ok(n) = crate::domain::webhooks::store::backlog(&mut conn).await
        {
            metrics::gauge!("tollgate_webhook_backlog").set(n as f64);
        }
        if let Ok(mut conn) = db.read().await
            && let Ok(n) = crate::domain::webhooks::store::open_circuits(&mut conn).await
        {
            metrics::gauge!("tollgate_webhook_circuit_open_endpoints").set(n as f64);
        }
        if let Ok(mut conn) = db.read().await
            && let Ok(n) = crate::domain::recompiles::store::pending(&mut conn).await
        {
            metrics::gauge!("tollgate_catalog_recompiles_pending").set(n as f64);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

//! PostgreSQL replicas learn of each other's commits: `LISTEN tollgate_changes` wakes the local
//! sync streams at once, and a periodic catch-up read of the counter row means a missed
//! notification (a dropped listener connection, say) only delays an edge, never loses a delta.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::domain::sync::changelog;

use crate::domain::sync::changelog::CHANNEL;
use crate::domain::sync::notifier::SyncNotifier;
use crate::platform::db::Db;

/// How often the catch-up read runs, notification or not.
pub const CATCH_UP: Duration = Duration::from_millis(500);

pub async fn run(db: Db, url: String, notifier: SyncNotifier, mut shutdown: watch::Receiver<bool>) {
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            match PgListener::connect(&url).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => listener = Some(l),
                    Err(e) => warn!(error = %e, "LISTEN failed; polling until it works"),
                },
                Err(e) => warn!(error = %e, "listener connection failed; polling until it works"),
            }
        }
        enum Woke {
            Heard(Result<u64, String>),
            Tick,
            Stop,
        }
        let woke = {
            let heard = async {
                match listener.as_mut() {
                    Some(l) => match l.recv().await {
                        Ok(n) => Ok(n.payload().parse::<u64>().unwrap_or(0)),
                        Err(e) => Err(e.to_string()),
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = heard => Woke::Heard(got),
                () = tokio::time::sleep(CATCH_UP) => Woke::Tick,
                _ = shutdown.wait_for(|s| *s) => Woke::Stop,
            }
        };
        match woke {
            Woke::Stop => return,
            Woke::Heard(Ok(v)) => {
                debug!(version = v, "heard a commit");
                notifier.committed(v);
                continue;
            }
            Woke::Heard(Err(e)) => {
                warn!(error = %e, "listener failed; reconnecting");
                listener = None;
            }
            Woke::Tick => {}
        }
        match db.read_for_sync().await {
            Ok(mut conn) => match changelog::latest(&mut conn).await {
                Ok(v) => notifier.committed(v),
                Err(e) => warn!(error = %e, "catch-up read failed"),
            },
            Err(e) => warn!(error = %e, "catch-up read failed"),
        }
    }
}

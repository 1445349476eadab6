//! The database handle: a SQLite pool in WAL mode, embedded migrations, and the write path.
//!
//! SQLite has one writer at a time. Rather than let concurrent writers discover that through
//! `SQLITE_BUSY` and sleep-retry, writes queue on an async mutex and then take the write lock
//! up front with `BEGIN IMMEDIATE`; readers never queue. Because writes are serialized, the
//! change-log versions they allocate are gap-free and in commit order, which the sync protocol
//! relies on.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Clone)]
pub struct Db {
    pub pool: SqlitePool,
    /// Read-only connections for the edge sync streams.
    pub sync_pool: SqlitePool,
    write_gate: Arc<Mutex<()>>,
}

/// A write transaction holding the write gate until it is committed or dropped.
pub struct WriteTx {
    pub tx: Transaction<'static, Sqlite>,
    /// The change-log version this transaction appended, if any (see `sync::changelog`).
    pub appended: Option<u64>,
    /// Whether this transaction queued webhook deliveries (see `webhooks`).
    pub webhooks: bool,
    _gate: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Transaction<'static, Sqlite>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "billing", include_str!("../migrations/0002_billing.sql")),
    (
        3,
        "webhooks",
        include_str!("../migrations/0003_webhooks.sql"),
    ),
    (
        4,
        "lifecycle_fixes",
        include_str!("../migrations/0004_lifecycle_fixes.sql"),
    ),
];

/// Migrations compiled into the binary, so a deployed control plane needs no files beside it.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(d),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

impl Db {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)?;
            }
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode keeps every committed transaction across a process crash
            // (SIGKILL); only a power loss can take the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        Migrator::new(Embedded).await?.run(&pool).await?;
        // Sync streams read on their own connections: under API load they must not queue behind
        // request handlers for a pooled connection, or propagation waits on unrelated traffic.
        let sync_pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db {
            pool,
            sync_pool,
            write_gate: Arc::new(Mutex::new(())),
        })
    }

    pub async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        let gate = self.write_gate.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            appended: None,
            webhooks: false,
            _gate: gate,
        })
    }
}

//! The database: which engine ([`Backend`]), its embedded migrations, and the read pool.
//!
//! There are two ways in, on purpose. Reads take a pooled connection from [`Db::read`]; those
//! connections are read-only at the database level (SQLite `mode=ro`, PostgreSQL
//! `default_transaction_read_only`), so nothing can write through them by accident. Every write
//! goes through the unit of work ([`uow::Uow`]), which only the writer task (`crate::write`)
//! hands out. This module imports nothing of the domains: it is a leaf.
//!
//! SQL is written once for both engines wherever it can be: `$1` placeholders, `ON CONFLICT`,
//! `RETURNING`, `CASE` instead of two-argument `MAX`/`MIN`, `IS NOT DISTINCT FROM`, integer
//! flags (0/1) instead of booleans, and `CAST(… AS BIGINT)` around `SUM`. Where the engines truly
//! differ (row locks, notifications) a statement asks [`Backend`].

pub mod copy;
pub mod due;
pub mod sql;
pub mod uow;

use std::borrow::Cow;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

pub use sql::Conn;
pub use uow::Uow;

/// The engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` where the engine has row locks; SQLite has one writer, so
    /// whatever its writer reads is already its own.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// ` FOR UPDATE` where the engine has row locks.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

type Migrations = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Migrations = &[
    (1, "init", include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        "billing",
        include_str!("../../../migrations/0002_billing.sql"),
    ),
    (
        3,
        "webhooks",
        include_str!("../../../migrations/0003_webhooks.sql"),
    ),
    (
        4,
        "lifecycle_fixes",
        include_str!("../../../migrations/0004_lifecycle_fixes.sql"),
    ),
    (
        5,
        "write_path",
        include_str!("../../../migrations/0005_write_path.sql"),
    ),
    (
        6,
        "kelviq",
        include_str!("../../../migrations/0006_kelviq.sql"),
    ),
    (
        10,
        "hardening",
        include_str!("../../../migrations/0010_hardening.sql"),
    ),
    (
        11,
        "portal",
        include_str!("../../../migrations/0011_portal.sql"),
    ),
    (
        12,
        "payments",
        include_str!("../../../migrations/0012_payments.sql"),
    ),
    (
        13,
        "payment_intents",
        include_str!("../../../migrations/0013_payment_intents.sql"),
    ),
    (
        14,
        "processor_events",
        include_str!("../../../migrations/0014_processor_events.sql"),
    ),
    (
        15,
        "refund_processor",
        include_str!("../../../migrations/0015_refund_processor.sql"),
    ),
    (
        16,
        "usage_event_pruning",
        include_str!("../../../migrations/0016_usage_event_pruning.sql"),
    ),
];

const POSTGRES_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "kelviq",
        include_str!("../../../migrations/postgres/0002_kelviq.sql"),
    ),
    (
        10,
        "hardening",
        include_str!("../../../migrations/postgres/0010_hardening.sql"),
    ),
    (
        11,
        "portal",
        include_str!("../../../migrations/postgres/0011_portal.sql"),
    ),
    (
        12,
        "payments",
        include_str!("../../../migrations/postgres/0012_payments.sql"),
    ),
    (
        13,
        "payment_intents",
        include_str!("../../../migrations/postgres/0013_payment_intents.sql"),
    ),
    (
        14,
        "processor_events",
        include_str!("../../../migrations/postgres/0014_processor_events.sql"),
    ),
    (
        15,
        "refund_processor",
        include_str!("../../../migrations/postgres/0015_refund_processor.sql"),
    ),
    (
        16,
        "usage_event_pruning",
        include_str!("../../../migrations/postgres/0016_usage_event_pruning.sql"),
    ),
];

/// Migrations compiled into the binary, so a deployed control plane needs no files beside it.
#[derive(Debug)]
struct Embedded(Migrations);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
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

/// Sizes of the connection pools; see docs/operations.md.
#[derive(Debug, Clone, Copy)]
pub struct PoolSizes {
    pub read: u32,
    pub sync: u32,
}

impl Default for PoolSizes {
    fn default() -> Self {
        PoolSizes { read: 8, sync: 4 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH (the default) or postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The read side of the database, plus what the writer needs to open its own connection.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    /// The URL writers connect to (SQLite: read-write-create).
    write_url: std::sync::Arc<str>,
    read: AnyPool,
    /// Read-only connections for the edge sync streams: under API load they must not queue
    /// behind request handlers for a pooled connection, or propagation waits on unrelated
    /// traffic.
    sync: AnyPool,
    /// SQLite: the write-ahead log size past which the writer truncates it ([`WalBound`]).
    wal_limit_bytes: u64,
}

/// SQLite URLs as the drivers want them: `mode=rwc` for the writer (creates the file),
/// `mode=ro` for readers. Other query parameters are kept.
fn sqlite_url(url: &str, mode: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .collect();
    let mut out = format!("{base}?mode={mode}");
    for p in kept {
        out.push('&');
        out.push_str(p);
    }
    out
}

fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or(rest)
}

/// Per-connection settings of the writer's connection. `synchronous=FULL`: an acknowledged
/// write survives power loss, not only a crash; group commit pays for the fsync.
/// `wal_autocheckpoint = 0`: the writer never checkpoints in the middle of a commit (that
/// stalled writes for tens of milliseconds); [`Db::start_checkpointer`] does it beside it.
/// `journal_size_limit`: a log that was reset is cut back to this size, not kept at its
/// largest.
pub const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = 0; \
     PRAGMA journal_size_limit = 67108864;";

/// `--sqlite-wal-limit-bytes`' default: 64 MiB.
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 << 20;

/// How long a truncating checkpoint may wait for readers to leave the log; the writer waits
/// with it, so this is what one can stall writes.
const WAL_TRUNCATE_WAIT_MS: u32 = 100;

/// After a truncating checkpoint that readers kept from finishing, the next try waits
/// `WAL_RETRY_FIRST`, doubling with each further miss up to `WAL_RETRY_MOST`: a reader that was
/// only slow costs little growth, and a long one (a snapshot) costs writes one short stall a
/// second, not one per batch.
const WAL_RETRY_FIRST: Duration = Duration::from_millis(50);
const WAL_RETRY_MOST: Duration = Duration::from_secs(1);

/// After one that found the checkpointer thread mid-`PASSIVE` (SQLite then answers busy at
/// once, without waiting), the next try comes this soon.
const WAL_RETRY_SOON: Duration = Duration::from_millis(10);

/// SQLite's write-ahead log, kept under a bound by its one writer.
///
/// The checkpointer's `PASSIVE` checkpoints copy the log into the database but cannot start
/// it over while any reader still uses it, and under steady reads one always does: the log
/// then grows without end (19.7 GB in six minutes of seeding). So after each commit the writer
/// looks at the log's size (one `stat`), and past the limit runs a `TRUNCATE` checkpoint
/// between batches, when nothing else writes: it waits at most `WAL_TRUNCATE_WAIT_MS` for
/// readers still in the log, then empties the file. Readers that started after the last full
/// copy read the database file, so only a long reader (a snapshot to an edge) can keep it
/// from finishing; then it is tried again a second later.
pub struct WalBound {
    path: std::path::PathBuf,
    limit: u64,
    next_try: std::time::Instant,
    /// How long after the next miss to try again.
    backoff: Duration,
}

impl WalBound {
    /// `None` off SQLite.
    pub fn of(db: &Db) -> Option<WalBound> {
        (db.backend == Backend::Sqlite).then(|| WalBound {
            path: format!("{}-wal", sqlite_path(&db.write_url)).into(),
            limit: db.wal_limit_bytes,
            next_try: std::time::Instant::now(),
            backoff: WAL_RETRY_FIRST,
        })
    }

    /// Between batches, on the writer's connection: truncates the log if it passed the limit.
    pub async fn after_commit(&mut self, conn: &mut Conn) {
        let now = std::time::Instant::now();
        if now < self.next_try {
            return;
        }
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        metrics::gauge!("tollgate_sqlite_wal_bytes").set(size as f64);
        if size < self.limit {
            return;
        }
        let started = std::time::Instant::now();
        let truncated = async {
            conn.batch(&format!("PRAGMA busy_timeout = {WAL_TRUNCATE_WAIT_MS}"))
                .await?;
            let busy: i64 = sql::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .scalar(conn)
                .await?;
            conn.batch("PRAGMA busy_timeout = 10000").await?;
            Ok::<bool, sqlx::Error>(busy == 0)
        }
        .await;
        metrics::histogram!("tollgate_sqlite_wal_truncate_seconds")
            .record(started.elapsed().as_secs_f64());
        match truncated {
            Ok(true) => {
                metrics::counter!("tollgate_sqlite_wal_truncations_total", "outcome" => "done")
                    .increment(1);
                self.backoff = WAL_RETRY_FIRST;
            }
            Ok(false) => {
                metrics::counter!("tollgate_sqlite_wal_truncations_total", "outcome" => "busy")
                    .increment(1);
                // Busy at once: another checkpoint held the lock (SQLite does not wait for
                // that). Busy after the wait: a reader stayed in the log.
                let waited =
                    started.elapsed() >= Duration::from_millis(u64::from(WAL_TRUNCATE_WAIT_MS) / 2);
                if waited {
                    tracing::debug!(
                        size,
                        "a reader kept the write-ahead log from being truncated"
                    );
                    self.next_try = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(WAL_RETRY_MOST);
                } else {
                    self.next_try = now + WAL_RETRY_SOON;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size, "truncating the write-ahead log failed");
                self.next_try = now + WAL_RETRY_MOST;
            }
        }
    }
}

/// How often the checkpointer copies the write-ahead log into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

const SQLITE_READER_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;";

impl Db {
    /// Opens (creating if needed) the database at `url`, brings its schema up to date and opens
    /// the read pools.
    pub async fn open(url: &str, sizes: PoolSizes) -> Result<Db, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| OpenError::Unsupported(url.into()))?;
        let write_url = match backend {
            Backend::Sqlite => {
                if let Some(parent) = std::path::Path::new(sqlite_path(url))
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent)?;
                }
                sqlite_url(url, "rwc")
            }
            Backend::Postgres => url.to_owned(),
        };
        // Migrate on a connection of its own, before any pool exists.
        {
            let mut conn = connect_writer(backend, &write_url).await?;
            let migrations = match backend {
                Backend::Sqlite => SQLITE_MIGRATIONS,
                Backend::Postgres => POSTGRES_MIGRATIONS,
            };
            Migrator::new(Embedded(migrations))
                .await?
                .run(&mut conn)
                .await?;
            conn.close().await?;
        }
        let read_url = match backend {
            Backend::Sqlite => sqlite_url(url, "ro"),
            Backend::Postgres => url.to_owned(),
        };
        let read = reader_pool(backend, &read_url, sizes.read).await?;
        let sync = reader_pool(backend, &read_url, sizes.sync).await?;
        Ok(Db {
            backend,
            write_url: write_url.into(),
            read,
            sync,
            wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
        })
    }

    /// SQLite: the write-ahead log size past which the writer truncates it
    /// (`--sqlite-wal-limit-bytes`).
    pub fn with_wal_limit(mut self, bytes: u64) -> Db {
        self.wal_limit_bytes = bytes.max(1 << 20);
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A read-only connection.
    pub async fn read(&self) -> Result<Conn, sqlx::Error> {
        Ok(Conn::Pooled(self.read.acquire().await?))
    }

    /// A read-only connection reserved for sync streams.
    pub async fn read_for_sync(&self) -> Result<Conn, sqlx::Error> {
        Ok(Conn::Pooled(self.sync.acquire().await?))
    }

    /// Opens a new read-write connection: for the writer task only. On SQLite it is a
    /// rusqlite connection used on the writer's own thread (see [`sql`]).
    pub async fn connect_writer(&self) -> Result<Conn, sqlx::Error> {
        match self.backend {
            Backend::Postgres => Ok(Conn::Any(
                connect_writer(self.backend, &self.write_url).await?,
            )),
            Backend::Sqlite => {
                let path = sqlite_path(&self.write_url);
                let conn = rusqlite::Connection::open(path).map_err(sql::lite_error)?;
                conn.execute_batch(SQLITE_WRITER_PRAGMAS)
                    .map_err(sql::lite_error)?;
                conn.set_prepared_statement_cache_capacity(256);
                Ok(Conn::Lite(Box::new(conn)))
            }
        }
    }

    /// SQLite: a thread of its own that checkpoints the write-ahead log every
    /// [`CHECKPOINT_EVERY`] (`PASSIVE`: it never blocks the writer or readers), so the log stays
    /// small and commits never pay for a checkpoint. Stops when `stop` turns true.
    pub fn start_checkpointer(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let path = sqlite_path(&self.write_url).to_owned();
        std::thread::Builder::new()
            .name("tollgate-checkpoint".into())
            .spawn(move || {
                let conn = match rusqlite::Connection::open(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "checkpointer could not open the database");
                        return;
                    }
                };
                let _ = conn.execute_batch("PRAGMA busy_timeout = 1000;");
                while !*stop.borrow() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::debug!(error = %e, "checkpoint skipped");
                    }
                }
                // A last full checkpoint on the way out leaves a small log behind.
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            })
            .map(|_| ())
    }

    pub fn write_url(&self) -> &str {
        &self.write_url
    }

    /// Closes the pools (the writer closes its own connection).
    pub async fn close(&self) {
        self.read.close().await;
        self.sync.close().await;
    }
}

async fn connect_writer(backend: Backend, url: &str) -> Result<AnyConnection, sqlx::Error> {
    let options: AnyConnectOptions = url.parse()?;
    let mut conn = AnyConnection::connect_with(&options).await?;
    match backend {
        Backend::Sqlite => {
            conn.execute(SQLITE_WRITER_PRAGMAS).await?;
        }
        Backend::Postgres => {
            // A writer that waits this long on a row lock is stuck; failing lets the batch
            // retry instead of holding every queued request hostage.
            conn.execute("SET lock_timeout = '10s'; SET statement_timeout = '60s'")
                .await?;
        }
    }
    Ok(conn)
}

async fn reader_pool(backend: Backend, url: &str, size: u32) -> Result<AnyPool, sqlx::Error> {
    let options: AnyConnectOptions = url.parse()?;
    AnyPoolOptions::new()
        .max_connections(size.max(1))
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                let setup = match backend {
                    Backend::Sqlite => SQLITE_READER_PRAGMAS,
                    Backend::Postgres => {
                        "SET default_transaction_read_only = on; SET statement_timeout = '30s'"
                    }
                };
                conn.execute(setup).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// The engine behind a connection.
pub fn backend_of(conn: &sqlx::AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Whether an error is worth retrying the whole unit of work for: a PostgreSQL deadlock,
/// serialization failure or lock timeout, or SQLite being busy.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40P01" | "40001" | "55P03" | "5" | "6" | "261" | "517" | "773")
        ),
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        _ => false,
    }
}

/// Whether an error means the connection itself is gone (the writer reconnects).
pub fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_the_mode_they_need() {
        assert_eq!(
            sqlite_url("sqlite://data/t.db", "ro"),
            "sqlite://data/t.db?mode=ro"
        );
        assert_eq!(
            sqlite_url("sqlite://t.db?mode=rw&cache=shared", "rwc"),
            "sqlite://t.db?mode=rwc&cache=shared"
        );
        assert_eq!(sqlite_path("sqlite://data/t.db?mode=ro"), "data/t.db");
        assert_eq!(sqlite_path("sqlite:t.db"), "t.db");
    }

    #[test]
    fn backends_come_from_the_url() {
        assert_eq!(Backend::of_url("sqlite://x"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
    }
}

//! The write path: one writer task owns the write connection; every write in the control plane
//! is a unit of work sent to it over a channel.
//!
//! * A request that hangs up cannot cancel a write: once queued, the unit runs to its end on
//!   the writer, whose thread no request can drop, and its idempotent response is recorded.
//! * **Group commit.** The writer takes every unit that is queued (up to [`MAX_BATCH`]) into one
//!   transaction, each unit inside its own savepoint, so one failing unit rolls back alone;
//!   then it commits once (`synchronous=FULL` on SQLite: one fsync for the whole group) and
//!   answers them all.
//! * **Derived side effects.** Before a unit's savepoint is released, the writer derives what
//!   the unit recorded on its [`Uow`]: it recompiles each touched customer once (patching the
//!   stored compile when only a meter moved), writes the webhook outbox rows, and stores the
//!   idempotent response. At the end of the batch it appends one change-log entry per unit,
//!   numbering them from the one counter row, so versions are gap-free and in commit order.
//!
//! * [`job`] — a queued unit of work, its closure type erased.
//! * [`batch`] — the writer's loop: batches, savepoints, retries, commit.
//! * [`derive`] — what the writer does with a unit's records.

mod batch;
mod derive;
mod job;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tollgate_shared::ErrorKind;

use crate::domain::idempotency::model::IdemClaim;
use crate::domain::sync::notifier::SyncNotifier;
use crate::platform::clock::SharedClock;
use crate::platform::db::{Backend, Db, Uow};
use crate::platform::http::error::ApiError;
use crate::platform::http::reply::Reply;
use job::{Job, Queued};

/// At most this many units share one transaction.
pub const MAX_BATCH: usize = 256;
/// Units waiting for the writer; a request that finds the queue full waits
/// [`QUEUE_WAIT`] for room and then gets a 503.
pub const QUEUE_CAPACITY: usize = 8_192;
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// A unit that loses a deadlock or finds the database busy is retried in a later batch, at
/// most this many times.
pub const MAX_ATTEMPTS: u32 = 5;
/// One unit may take this long before the writer gives up on it (and rolls it back).
pub const UNIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Told the key hashes a commit revoked.
pub type RevokedHook = Arc<dyn Fn(&[String]) + Send + Sync>;

/// Who the writer tells after a commit.
#[derive(Clone)]
pub struct Hooks {
    pub sync: SyncNotifier,
    pub webhook_wake: Arc<Notify>,
    /// Woken after a commit that wrote a payment intent.
    pub payment_wake: Arc<Notify>,
    /// Called with the keys (hashes) a commit revoked, so caches drop them at once.
    pub revoked: RevokedHook,
}

/// A handle to the writer. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    depth: Arc<AtomicI64>,
    stopped: watch::Receiver<bool>,
}

/// Ends the writers: they finish what is queued, then close their connections.
pub struct WriterControl {
    shutdown: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
}

impl WriterControl {
    /// Asks the writers to stop and waits (at most `deadline`) until they have.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.shutdown.send(true);
        let all = futures_util::future::join_all(self.done);
        let _ = tokio::time::timeout(deadline, all).await;
    }
}

impl Writer {
    /// Starts the writer on a thread of its own (with its own single-threaded runtime, so units
    /// need not be `Send` inside and nothing outside can cancel them). On PostgreSQL, `writers`
    /// of them share the queue, each with its own connection: PostgreSQL runs their
    /// transactions side by side, and the change-log counter row orders their commits. SQLite
    /// has one writer whatever `writers` says.
    pub async fn start(
        db: &Db,
        clock: SharedClock,
        hooks: Hooks,
        writers: usize,
    ) -> Result<(Writer, WriterControl), sqlx::Error> {
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => writers.max(1),
        };
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let rx: batch::SharedQueue = Arc::new(tokio::sync::Mutex::new(rx));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let depth = Arc::new(AtomicI64::new(0));
        let mut done = Vec::with_capacity(writers);
        for n in 0..writers {
            let (done_tx, done_rx) = oneshot::channel();
            let (ready_tx, ready) = oneshot::channel();
            let (db, clock, hooks, depth, rx, shutdown_rx) = (
                db.clone(),
                clock.clone(),
                hooks.clone(),
                depth.clone(),
                rx.clone(),
                shutdown_rx.clone(),
            );
            std::thread::Builder::new()
                .name(format!("tollgate-writer-{n}"))
                .spawn(move || {
                    // SQLite needs no I/O driver here (its connection runs in this thread);
                    // without one the runtime parks on a condition variable, which wakes faster
                    // than the I/O driver's eventfd.
                    let mut builder = tokio::runtime::Builder::new_current_thread();
                    builder.enable_time();
                    if db.backend() == Backend::Postgres {
                        builder.enable_io();
                    }
                    let rt = match builder.build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(sqlx::Error::Io(e)));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let conn = match db.connect_writer().await {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        let uow = Uow::new(conn, db.backend());
                        batch::Loop::new(db, uow, clock, hooks, depth)
                            .run(rx, shutdown_rx)
                            .await;
                    });
                    let _ = done_tx.send(());
                })
                .map_err(sqlx::Error::Io)?;
            ready.await.map_err(|_| {
                sqlx::Error::Protocol("a writer thread ended before it started".into())
            })??;
            done.push(done_rx);
        }
        let stopped = shutdown.subscribe();
        Ok((
            Writer { tx, depth, stopped },
            WriterControl { shutdown, done },
        ))
    }

    /// Units waiting for the writer.
    pub fn queue_depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Runs `unit` as one unit of work and answers its [`Reply`]. With a `claim`, the reply (or
    /// the 4xx error) is stored in the same transaction, and a request already answered under
    /// the same key is replayed instead of run.
    pub async fn reply<F>(&self, claim: Option<IdemClaim>, label: &'static str, unit: F) -> Reply
    where
        F: AsyncFnMut(&mut Uow) -> Result<Reply, ApiError> + Send + 'static,
    {
        self.reply_for(None, claim, label, unit).await
    }

    /// [`Writer::reply`] for a unit about one customer (see the job's ordering key).
    pub async fn reply_for<F>(
        &self,
        customer: Option<&str>,
        claim: Option<IdemClaim>,
        label: &'static str,
        unit: F,
    ) -> Reply
    where
        F: AsyncFnMut(&mut Uow) -> Result<Reply, ApiError> + Send + 'static,
    {
        let job = Queued {
            f: unit,
            claim,
            outcome: None,
            tx: None,
            attempts: 0,
            label,
            key: customer.map(str::to_owned),
            as_reply: |r: &Reply| Some(r.clone()),
            from_reply: Some,
            // Only a success says what to read; an error committed nothing to read.
            stamp: |r: &mut Reply, version| {
                if r.status.is_success() {
                    r.version = Some(version);
                }
            },
        };
        match self.submit(job).await {
            Ok(reply) => reply,
            Err(e) => Reply::from_error(&e),
        }
    }

    /// Runs `unit` as one unit of work and hands back its result (no idempotency record).
    pub async fn run<F, T>(&self, label: &'static str, unit: F) -> Result<T, ApiError>
    where
        F: AsyncFnMut(&mut Uow) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_for(None, label, unit).await
    }

    /// [`Writer::run`] for a unit about one customer (see the job's ordering key).
    pub async fn run_for<F, T>(
        &self,
        customer: Option<&str>,
        label: &'static str,
        unit: F,
    ) -> Result<T, ApiError>
    where
        F: AsyncFnMut(&mut Uow) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let job = Queued {
            f: unit,
            claim: None,
            outcome: None,
            tx: None,
            attempts: 0,
            label,
            key: customer.map(str::to_owned),
            as_reply: |_: &T| None,
            from_reply: |_| None,
            stamp: |_: &mut T, _| {},
        };
        self.submit(job).await
    }

    async fn submit<F, T>(&self, mut job: Queued<F, T>) -> Result<T, ApiError>
    where
        F: AsyncFnMut(&mut Uow) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        if *self.stopped.borrow() {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "the control plane is shutting down",
            ));
        }
        let (tx, rx) = oneshot::channel();
        job.tx = Some(tx);
        let job: Box<dyn Job> = Box::new(job);
        self.depth.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("tollgate_write_queue_depth").increment(1.0);
        match tokio::time::timeout(QUEUE_WAIT, self.tx.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                metrics::gauge!("tollgate_write_queue_depth").decrement(1.0);
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "too many writes are queued; try again",
                ));
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorKind::Unavailable,
                "the writer stopped before answering; the write may or may not have happened",
            ))
        })
    }
}

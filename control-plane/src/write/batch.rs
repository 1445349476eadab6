//! The writer's loop. Each turn takes what is queued, runs it in one transaction — every unit in
//! its own savepoint — appends the change log, commits once and answers everyone.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Mutex, mpsc, watch};
use tollgate_shared::ErrorKind;
use tollgate_shared::sync::Change;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::write::derive;

use crate::domain::idempotency::store as idempotency;
use crate::domain::idempotency::store::Claimed;
use crate::domain::sync::changelog;
use crate::platform::clock::SharedClock;
use crate::platform::db::{Backend, Db, Uow, WalBound, is_connection_lost};
use crate::platform::http::error::ApiError;
use crate::platform::http::reply::Reply;
use crate::write::derive::EndpointCache;
use crate::write::job::Job;
use crate::write::{Hooks, MAX_ATTEMPTS, MAX_BATCH, UNIT_TIMEOUT};

/// The writers' queue, shared when there are several.
pub(super) type SharedQueue = Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>;

pub(super) struct Loop {
    db: Db,
    uow: Option<Uow>,
    clock: SharedClock,
    hooks: Hooks,
    depth: Arc<AtomicI64>,
    /// Units that lost a deadlock or found the database busy, for the next batch.
    retry: VecDeque<Box<dyn Job>>,
    /// This batch's webhook endpoints, read when a unit first needs them.
    endpoints: EndpointCache,
    /// A statement due before the next one (`BEGIN`, or the previous unit's `RELEASE`), sent
    /// together with it: every round trip to the database costs two thread hops on SQLite.
    deferred: Option<&'static str>,
    /// A kept unit of this batch wrote a payment intent: wake the payments worker after commit.
    payments: bool,
    /// SQLite: keeps the write-ahead log under its limit between batches.
    wal: Option<WalBound>,
}

/// How one unit ended inside the batch.
enum Ended {
    /// Its work stays in the transaction; these changes go to the change log.
    Kept(Vec<Change>),
    /// Rolled back to its savepoint (or never run): nothing of it stays.
    Dropped,
    /// Rolled back, to be run again in a later batch.
    Retry,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unavailable, message)
}

impl Loop {
    pub fn new(db: Db, uow: Uow, clock: SharedClock, hooks: Hooks, depth: Arc<AtomicI64>) -> Loop {
        let wal = WalBound::of(&db);
        Loop {
            db,
            uow: Some(uow),
            clock,
            hooks,
            depth,
            retry: VecDeque::new(),
            endpoints: EndpointCache::default(),
            deferred: None,
            payments: false,
            wal,
        }
    }

    /// Takes batches from the shared queue until it closes or shutdown is asked for. With
    /// several writers (PostgreSQL), the one holding the queue's lock waits for work; the others
    /// run their batches meanwhile.
    pub async fn run(mut self, rx: SharedQueue, mut shutdown: watch::Receiver<bool>) {
        loop {
            let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
            while batch.len() < MAX_BATCH {
                match self.retry.pop_front() {
                    Some(job) => batch.push(job),
                    None => break,
                }
            }
            let mut stop = false;
            {
                let mut rx = rx.lock().await;
                if batch.is_empty() {
                    if *shutdown.borrow() {
                        // Stopping: what was queued before the stop is still run; then out.
                        match rx.try_recv() {
                            Ok(job) => batch.push(self.taken(job)),
                            Err(_) => stop = true,
                        }
                    } else {
                        tokio::select! {
                            job = rx.recv() => match job {
                                Some(job) => batch.push(self.taken(job)),
                                None => stop = true,
                            },
                            _ = shutdown.wait_for(|s| *s) => {}
                        }
                    }
                }
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(self.taken(job)),
                        Err(_) => break,
                    }
                }
            }
            self.execute(batch).await;
            if stop {
                break;
            }
        }
        // Units still waiting for a retry get an answer rather than silence.
        for mut job in self.retry.drain(..) {
            job.fail(unavailable("the control plane is shutting down"));
            job.send();
        }
        if let Some(uow) = self.uow.take() {
            let _ = uow.into_conn().close().await;
        }
    }

    fn taken(&self, job: Box<dyn Job>) -> Box<dyn Job> {
        self.depth.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("tollgate_write_queue_depth").decrement(1.0);
        job
    }

    /// A usable connection, reconnecting after the old one was lost.
    async fn uow(&mut self) -> Result<&mut Uow, sqlx::Error> {
        if self.uow.is_none() {
            let conn = self.db.connect_writer().await?;
            self.uow = Some(Uow::new(conn, self.db.backend()));
        }
        self.uow
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol("no writer connection".into()))
    }

    fn lost(&mut self, e: &sqlx::Error) {
        if is_connection_lost(e) {
            warn!(error = %e, "writer connection lost; reconnecting");
            self.uow = None;
            self.endpoints.invalidate();
        }
    }

    async fn exec(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = match self.deferred.take() {
            Some(first) => std::borrow::Cow::Owned(format!("{first}; {sql}")),
            None => std::borrow::Cow::Borrowed(sql),
        };
        let uow = self.uow().await?;
        uow.conn().batch(sql.as_ref()).await
    }

    /// Sends whatever statement is deferred.
    async fn flush(&mut self) -> Result<(), sqlx::Error> {
        match self.deferred.take() {
            Some(sql) => {
                let uow = self.uow().await?;
                uow.conn().batch(sql).await
            }
            None => Ok(()),
        }
    }

    async fn execute(&mut self, batch: Vec<Box<dyn Job>>) {
        if batch.is_empty() {
            return;
        }
        let span = info_span!("write_batch", units = batch.len());
        self.execute_batch(batch).instrument(span).await;
    }

    async fn execute_batch(&mut self, mut batch: Vec<Box<dyn Job>>) {
        let started = Instant::now();
        // Customers' row locks in one order everywhere (see `Job::key`); a stable sort keeps
        // arrival order among units of one customer.
        batch.sort_by(|a, b| a.key().cmp(&b.key()));
        metrics::histogram!("tollgate_write_batch_units").record(batch.len() as f64);
        let begin = match self.db.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        // Sent with the first unit's SAVEPOINT; a failure shows there.
        self.deferred = Some(begin);
        // Webhook endpoints are read again in every batch, at most once: another writer, or
        // another replica, may have added one since the last batch, and a request that comes
        // after that endpoint's creation was answered must fan out to it.
        self.endpoints.invalidate();
        let mut kept: Vec<Vec<Change>> = Vec::new();
        // Which answered unit each kept entry belongs to: its version is the entry's.
        let mut owners: Vec<usize> = Vec::new();
        let mut answered: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
        let mut webhooks = false;
        let mut failed: Option<sqlx::Error> = None;
        for mut job in batch {
            if failed.is_some() {
                job.fail(unavailable("the database is unavailable; try again"));
                answered.push(job);
                continue;
            }
            match self.unit(job.as_mut(), &mut webhooks).await {
                Ok(Ended::Kept(changes)) => {
                    if !changes.is_empty() {
                        kept.push(changes);
                        owners.push(answered.len());
                    }
                    answered.push(job);
                }
                Ok(Ended::Dropped) => answered.push(job),
                Ok(Ended::Retry) => {
                    job.reset();
                    self.retry.push_back(job);
                }
                Err(e) => {
                    // The savepoint itself failed: the transaction (and maybe the connection)
                    // is gone, and with it every unit of this batch.
                    error!(error = %e, unit = job.label(), "write batch failed");
                    job.fail(unavailable("the database is unavailable; try again"));
                    answered.push(job);
                    failed = Some(e);
                }
            }
        }
        let committed = match failed {
            None => self.finish(&kept).await,
            Some(e) => Err(e),
        };
        match committed {
            Ok(version) => {
                metrics::counter!("tollgate_write_commits_total").increment(1);
                metrics::histogram!("tollgate_write_batch_seconds")
                    .record(started.elapsed().as_secs_f64());
                self.stamp(&mut answered, &owners, version);
                self.answer(answered, version, webhooks);
                // Everyone has their answer; a checkpoint now delays only the next batch.
                if let (Some(wal), Some(uow)) = (self.wal.as_mut(), self.uow.as_mut()) {
                    wal.after_commit(uow.conn()).await;
                }
            }
            Err(e) => {
                error!(error = %e, "write batch could not commit; rolling back");
                self.deferred = None;
                let _ = self.exec("ROLLBACK").await;
                self.lost(&e);
                self.endpoints.invalidate();
                for job in &mut answered {
                    job.fail(unavailable(
                        "the write could not be committed; retry it (with its Idempotency-Key)",
                    ));
                }
                self.answer(answered, None, false);
            }
        }
    }

    /// Appends the batch's change-log entries and commits. Returns the newest version.
    async fn finish(&mut self, kept: &[Vec<Change>]) -> Result<Option<u64>, sqlx::Error> {
        let now = self.clock.unix();
        let backend = self.db.backend();
        let mut newest = None;
        if !kept.is_empty() {
            self.flush().await?;
            let uow = self.uow().await?;
            let last = changelog::advance(uow.conn(), kept.len() as i64).await?;
            let first = last - kept.len() as i64 + 1;
            changelog::insert_many(uow.conn(), first, now, kept).await?;
            if backend == Backend::Postgres {
                changelog::notify(uow.conn(), last).await?;
            }
            newest = Some(last as u64);
        }
        self.exec("COMMIT").await?;
        Ok(newest)
    }

    /// Tells each committed unit the version to read its write from: its own change-log entry's,
    /// or — for a unit that changed nothing edges see, or replayed an earlier answer — the
    /// newest version committed, which already holds everything it wrote.
    fn stamp(&self, jobs: &mut [Box<dyn Job>], owners: &[usize], last: Option<u64>) {
        let newest = last.unwrap_or(0).max(self.hooks.sync.latest());
        let mut versions = vec![newest; jobs.len()];
        if let Some(last) = last {
            let first = last + 1 - owners.len() as u64;
            for (k, owner) in owners.iter().enumerate() {
                versions[*owner] = first + k as u64;
            }
        }
        for (job, version) in jobs.iter_mut().zip(versions) {
            job.committed(version);
        }
    }

    fn answer(&mut self, jobs: Vec<Box<dyn Job>>, version: Option<u64>, webhooks: bool) {
        if let Some(v) = version {
            self.hooks.sync.committed(v);
        }
        if webhooks {
            self.hooks.webhook_wake.notify_one();
        }
        if std::mem::take(&mut self.payments) {
            self.hooks.payment_wake.notify_one();
        }
        for job in jobs {
            job.send();
        }
    }

    /// One unit inside the batch: idempotency, its code, what it recorded, its savepoint.
    /// `Err` means the transaction itself is broken.
    async fn unit(&mut self, job: &mut dyn Job, webhooks: &mut bool) -> Result<Ended, sqlx::Error> {
        let now = self.clock.unix();
        self.exec("SAVEPOINT unit").await?;
        let uow = self.uow().await?;
        uow.begin_unit(now);
        if let Some(claim) = job.claim() {
            match idempotency::claim(uow.conn(), claim, now).await {
                Ok(Claimed::Mine) => {}
                Ok(Claimed::Replay(reply)) => {
                    self.exec("RELEASE SAVEPOINT unit").await?;
                    job.replay(reply);
                    return Ok(Ended::Dropped);
                }
                Ok(Claimed::Mismatch) => {
                    self.exec("RELEASE SAVEPOINT unit").await?;
                    job.fail(ApiError::new(
                        ErrorKind::Unprocessable,
                        "Idempotency-Key was already used with a different request; use a new key",
                    ));
                    return Ok(Ended::Dropped);
                }
                Err(e) => return self.rolled_back(job, e.into()).await,
            }
        }
        let uow = self.uow().await?;
        let ran =
            tokio::time::timeout(UNIT_TIMEOUT, AssertUnwindSafe(job.run(uow)).catch_unwind()).await;
        let result = match ran {
            Ok(Ok(r)) => r,
            Ok(Err(_panic)) => Err(ApiError::internal(
                job.label(),
                &"the unit of work panicked",
            )),
            Err(_) => Err(ApiError::internal(
                job.label(),
                &"the unit of work timed out",
            )),
        };
        if let Err(e) = result {
            return self.rolled_back(job, e).await;
        }
        self.uow().await?;
        let Some(uow) = self.uow.as_mut() else {
            return Err(sqlx::Error::Protocol("no writer connection".into()));
        };
        let payments = uow.payments_pending();
        let derived = derive::derive(uow, &mut self.endpoints).await;
        let (changes, queued) = match derived {
            Ok(d) => d,
            Err(e) => return self.rolled_back(job, e.into()).await,
        };
        if let (Some(claim), Some(reply)) = (job.claim(), job.reply_to_store()) {
            let uow = self.uow().await?;
            if let Err(e) = idempotency::complete(uow.conn(), claim, &reply).await {
                return self.rolled_back(job, e.into()).await;
            }
        }
        self.deferred = Some("RELEASE SAVEPOINT unit");
        *webhooks |= queued;
        self.payments |= payments;
        let revoked: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::KeyRevoked { hash } => Some(hash.clone()),
                _ => None,
            })
            .collect();
        if !revoked.is_empty() {
            (self.hooks.revoked)(&revoked);
        }
        Ok(Ended::Kept(changes))
    }

    /// Rolls a failed unit back to its savepoint. A transient database error sends it to a
    /// later batch; a 4xx answer is still recorded for its idempotency key.
    async fn rolled_back(&mut self, job: &mut dyn Job, e: ApiError) -> Result<Ended, sqlx::Error> {
        self.exec("ROLLBACK TO SAVEPOINT unit").await?;
        if e.transient {
            *job.attempts() += 1;
            let attempt = *job.attempts();
            if attempt < MAX_ATTEMPTS {
                debug!(
                    unit = job.label(),
                    attempt, "retrying unit in the next batch"
                );
                self.exec("RELEASE SAVEPOINT unit").await?;
                // Give whoever holds the lock a moment to commit.
                tokio::time::sleep(Duration::from_millis(2)).await;
                return Ok(Ended::Retry);
            }
        }
        if !e.is_server_error()
            && let Some(claim) = job.claim()
        {
            let now = self.clock.unix();
            let uow = self.uow().await?;
            let reply = Reply::from_error(&e);
            if let Err(store) = idempotency::record(uow.conn(), claim, &reply, now).await {
                warn!(error = %store, "could not record an idempotent error answer");
                self.exec("ROLLBACK TO SAVEPOINT unit").await?;
            }
        }
        metrics::counter!("tollgate_write_units_failed_total", "kind" => e.kind.type_name())
            .increment(1);
        job.fail(e);
        self.exec("RELEASE SAVEPOINT unit").await?;
        Ok(Ended::Dropped)
    }
}

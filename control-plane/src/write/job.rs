//! A queued unit of work, with its closure type erased so one channel carries them all.

use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use crate::domain::idempotency::model::IdemClaim;
use crate::platform::db::Uow;
use crate::platform::http::error::ApiError;
use crate::platform::http::reply::Reply;

/// What the writer needs of a job, whatever its closure and result type.
pub(super) trait Job: Send {
    /// Runs the unit's code; its result is kept inside the job until [`Job::send`].
    fn run<'a>(&'a mut self, uow: &'a mut Uow) -> LocalBoxFuture<'a, Result<(), ApiError>>;
    fn claim(&self) -> Option<&IdemClaim>;
    /// The answer to keep for idempotent replays, once `run` succeeded.
    fn reply_to_store(&self) -> Option<Reply>;
    /// Answers with a stored reply instead of running (an idempotent replay).
    fn replay(&mut self, reply: Reply);
    fn fail(&mut self, e: ApiError);
    /// Forgets a result that will not be committed (the unit is retried in a later batch).
    fn reset(&mut self);
    fn attempts(&mut self) -> &mut u32;
    fn label(&self) -> &'static str;
    /// The customer the unit is about, when the caller knows it: a batch runs its units in
    /// this order, so that every writer (and every replica) takes customers' row locks in one
    /// order and concurrent batches cannot deadlock on them.
    fn key(&self) -> Option<&str>;
    /// The unit committed, and what it committed is visible from change-log version `version`
    /// on: a reply carries it (`Tollgate-Version`).
    fn committed(&mut self, version: u64);
    /// Hands the result to the waiting request, if it is still waiting.
    fn send(self: Box<Self>);
}

pub(super) struct Queued<F, T> {
    pub f: F,
    pub claim: Option<IdemClaim>,
    pub outcome: Option<Result<T, ApiError>>,
    pub tx: Option<oneshot::Sender<Result<T, ApiError>>>,
    pub attempts: u32,
    pub label: &'static str,
    pub key: Option<String>,
    /// `Some` for jobs that answer with a [`Reply`] (routes), which can be stored and replayed.
    pub as_reply: fn(&T) -> Option<Reply>,
    pub from_reply: fn(Reply) -> Option<T>,
    /// Stamps the committed version on a result that is a reply (a no-op for other results).
    pub stamp: fn(&mut T, u64),
}

impl<F, T> Job for Queued<F, T>
where
    F: AsyncFnMut(&mut Uow) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    fn run<'a>(&'a mut self, uow: &'a mut Uow) -> LocalBoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let value = (self.f)(uow).await?;
            self.outcome = Some(Ok(value));
            Ok(())
        })
    }

    fn claim(&self) -> Option<&IdemClaim> {
        self.claim.as_ref()
    }

    fn reply_to_store(&self) -> Option<Reply> {
        match &self.outcome {
            Some(Ok(v)) => (self.as_reply)(v),
            _ => None,
        }
    }

    fn replay(&mut self, reply: Reply) {
        self.outcome = Some(match (self.from_reply)(reply) {
            Some(v) => Ok(v),
            None => Err(ApiError::internal(
                "writer",
                &"a replay for a job without replies",
            )),
        });
    }

    fn fail(&mut self, e: ApiError) {
        self.outcome = Some(Err(e));
    }

    fn reset(&mut self) {
        self.outcome = None;
    }

    fn attempts(&mut self) -> &mut u32 {
        &mut self.attempts
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn committed(&mut self, version: u64) {
        if let Some(Ok(v)) = &mut self.outcome {
            (self.stamp)(v, version);
        }
    }

    fn send(mut self: Box<Self>) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(ApiError::internal(
                "writer",
                &"a unit of work ended without a result",
            ))
        });
        if let Some(tx) = self.tx.take() {
            // The request may have gone away; its write is committed all the same.
            let _ = tx.send(outcome);
        }
    }
}

//! The billing clock's worker: renewals, scheduled changes, trial ends, dunning, meter windows
//! rolling over, and checkout sessions expiring, each due item in a unit of work of its own.
//!
//! The same [`BillingClock::run_due`] serves the real-time loop (customers without a test
//! clock, at the injected clock's "now") and test clocks (their customers, up to the clock's
//! frozen time). Every replica runs the loop: an item is claimed by locking its customer with
//! `FOR UPDATE SKIP LOCKED`, then re-read and re-checked, so no renewal, charge or dunning step
//! happens twice, and one held by a replica that died is picked up by the next pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tollgate_shared::Mode;
use tracing::{Instrument, info_span, warn};

use crate::domain::checkout::store as checkout;
use crate::domain::entitlements::store as entitlements;
use crate::domain::subscriptions::store as subscriptions;
use crate::platform::clock::SharedClock;
use crate::platform::db::Db;
use crate::platform::db::due::Scope;
use crate::platform::http::error::ApiError;
use crate::workflows::renew;
use crate::write::Writer;

/// Bounds one pass; advancing a daily subscription by decades still fits.
const MAX_STEPS: usize = 100_000;
/// Due items read per look.
const LOOK_AHEAD: i64 = 64;

/// What the billing clock needs: a narrow handle, not the whole app state.
#[derive(Clone)]
pub struct BillingClock {
    pub writer: Writer,
    pub db: Db,
    pub clock: SharedClock,
    /// Days after a failed renewal on which the charge is retried.
    pub retry_days: Arc<[u32]>,
    /// How long a checkout session can be paid.
    pub checkout_ttl_secs: i64,
}

#[derive(Debug)]
enum Item {
    Subscription {
        mode: Mode,
        id: String,
        customer_id: String,
        at: i64,
    },
    Entitlements {
        mode: Mode,
        customer_id: String,
        at: i64,
    },
    /// An open checkout session whose time is up.
    CheckoutExpiry {
        mode: Mode,
        session_id: String,
        customer_id: String,
        at: i64,
    },
}

impl Item {
    fn at(&self) -> i64 {
        match self {
            Item::Subscription { at, .. }
            | Item::Entitlements { at, .. }
            | Item::CheckoutExpiry { at, .. } => *at,
        }
    }

    fn key(&self) -> String {
        match self {
            Item::Subscription { id, .. } => format!("s:{id}"),
            Item::Entitlements {
                customer_id, mode, ..
            } => format!("e:{mode}:{customer_id}"),
            Item::CheckoutExpiry { session_id, .. } => format!("c:{session_id}"),
        }
    }
}

/// What one pass of the billing clock did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    pub steps: usize,
    /// Items that failed; they are logged, counted in metrics, and retried on the next pass.
    pub failed: usize,
}

impl BillingClock {
    /// The soonest due item not in `skip`.
    async fn next(
        &self,
        scope: Scope<'_>,
        until: i64,
        skip: &[String],
    ) -> Result<Option<Item>, ApiError> {
        let mut conn = self.db.read().await?;
        let subs =
            subscriptions::due(&mut conn, scope, until, LOOK_AHEAD + skip.len() as i64).await?;
        let ents =
            entitlements::due(&mut conn, scope, until, LOOK_AHEAD + skip.len() as i64).await?;
        let expiries = checkout::due_expiries(
            &mut conn,
            scope,
            self.checkout_ttl_secs,
            until,
            LOOK_AHEAD + skip.len() as i64,
        )
        .await?;
        let subs = subs.into_iter().map(|d| Item::Subscription {
            mode: d.mode,
            id: d.id,
            customer_id: d.customer_id,
            at: d.at,
        });
        let ents = ents.into_iter().map(|d| Item::Entitlements {
            mode: d.mode,
            customer_id: d.customer_id,
            at: d.at,
        });
        let expiries = expiries.into_iter().map(|d| Item::CheckoutExpiry {
            mode: d.mode,
            session_id: d.id,
            customer_id: d.customer_id,
            at: d.at,
        });
        // Subscriptions first on a tie: a renewal recompiles entitlements anyway.
        Ok(subs
            .chain(ents)
            .chain(expiries)
            .filter(|i| !skip.contains(&i.key()))
            .min_by_key(|i| (i.at(), matches!(i, Item::Entitlements { .. }))))
    }

    /// Runs everything due at or before `until` in `scope`, oldest first.
    pub async fn run_due(&self, scope: Scope<'_>, until: i64) -> Result<Run, ApiError> {
        let mut run = Run::default();
        let mut skip: Vec<String> = Vec::new();
        while let Some(item) = self.next(scope, until, &skip).await? {
            let span = info_span!("billing_step", ?item);
            let outcome = self.step(&item).instrument(span).await;
            match outcome {
                Ok(true) => {
                    run.steps += 1;
                    metrics::counter!("tollgate_billing_steps_total").increment(1);
                }
                Ok(false) => {
                    // A subscription whose step waits (its previous charge is with the payments
                    // worker) also holds its customer's meter roll-over: the renewal moves the
                    // time that roll-over is due at, and until then it would come due again.
                    if let Item::Subscription {
                        mode, customer_id, ..
                    } = &item
                    {
                        skip.push(
                            Item::Entitlements {
                                mode: *mode,
                                customer_id: customer_id.clone(),
                                at: 0,
                            }
                            .key(),
                        );
                    }
                    skip.push(item.key());
                }
                Err(e) => {
                    tracing::error!(error = %e, ?item, "billing step failed; skipping it until the next pass");
                    run.failed += 1;
                    metrics::counter!("tollgate_billing_step_failures_total").increment(1);
                    skip.push(item.key());
                }
            }
            if run.steps + run.failed >= MAX_STEPS {
                warn!(
                    ?run,
                    "billing clock pass hit its step limit; the rest waits for the next pass"
                );
                break;
            }
        }
        Ok(run)
    }

    /// One item in one unit of work. `Ok(false)`: nothing to do (done already, or claimed by
    /// another replica).
    async fn step(&self, item: &Item) -> Result<bool, ApiError> {
        match item {
            Item::Subscription { mode, id, at, .. } => {
                let (mode, id, at) = (*mode, id.clone(), *at);
                let retry_days = self.retry_days.clone();
                self.writer
                    .run("billing_step", async move |uow| {
                        renew::due_step(uow, mode, &id, at, &retry_days).await
                    })
                    .await
            }
            Item::Entitlements {
                mode,
                customer_id,
                at,
            } => {
                let (mode, customer_id, at) = (*mode, customer_id.clone(), *at);
                let key = customer_id.clone();
                self.writer
                    .run_for(Some(&key), "meter_rollover", async move |uow| {
                        renew::roll_over_meters(uow, mode, &customer_id, at).await
                    })
                    .await
            }
            Item::CheckoutExpiry {
                mode,
                session_id,
                customer_id,
                at,
            } => {
                let (mode, session_id, customer_id, at) =
                    (*mode, session_id.clone(), customer_id.clone(), *at);
                let ttl = self.checkout_ttl_secs;
                let key = customer_id.clone();
                self.writer
                    .run_for(Some(&key), "checkout_expiry", async move |uow| {
                        renew::expire_checkout(uow, mode, &session_id, &customer_id, at, ttl).await
                    })
                    .await
            }
        }
    }

    /// The background loop for customers on real time.
    pub async fn run_forever(self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.run_due(Scope::RealTime, self.clock.unix()).await {
                warn!(error = %e, "billing clock pass failed; will retry");
            }
        }
    }
}

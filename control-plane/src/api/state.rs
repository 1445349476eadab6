//! [`AppState`]: what every handler sees. Background workers take narrower handles.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio::sync::{Notify, Semaphore, watch};

use crate::domain::auth::keys::KeyCache;
use crate::domain::sync::notifier::SyncNotifier;
use crate::platform::clock::SharedClock;
use crate::platform::db::Db;
use crate::platform::settings::Settings;
use crate::workers::billing_clock::BillingClock;
use crate::workers::payments::PaymentsWorker;
use crate::write::Writer;

/// Cloned for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    pub fn new(inner: AppInner) -> AppState {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub struct AppInner {
    /// Reads (read-only connections). Writes go through `writer`.
    pub db: Db,
    pub writer: Writer,
    pub clock: SharedClock,
    pub config: Arc<Settings>,
    pub auth: KeyCache,
    /// Token buckets per client address and per credential (`--rate-limit-per-*`).
    pub rate_limits: crate::platform::http::rate_limit::RateLimits,
    pub sync: SyncNotifier,
    pub token_key: Arc<SigningKey>,
    pub token_verifying_key: String,
    pub shutdown: watch::Receiver<bool>,
    /// Wakes the webhook worker when a commit queued deliveries.
    pub webhook_wake: Arc<Notify>,
    /// Wakes the catalog recompiler after a catalog edit.
    pub recompile_wake: Arc<Notify>,
    /// Snapshots hold a pooled connection and a read transaction while they stream; at most
    /// this many at once, so reconnecting edges cannot starve the API of connections.
    pub snapshot_slots: Arc<Semaphore>,
    /// The billing clock, which test-clock advances run on demand.
    pub billing: BillingClock,
    /// The payments worker; doors that answer at once wait on its `settled`.
    pub payments: PaymentsWorker,
}

//! Who is listening for which customer, and how a change reaches them without the sync task
//! ever waiting for anyone. A leaf: the store signals it, the streams register with it.
//!
//! A subscriber ([`Sub`]) is one open event stream. Its buffer is bounded and tiny: the
//! highest version signalled and not yet sent, plus a count of the signals since its stream
//! last took one. The sync task, after publishing a delta, calls [`Hub::changed`] for every
//! customer the delta touched: for each subscriber of that customer it raises the pending
//! version, bumps the count and wakes the stream's task. No await, no allocation, one short
//! lock of one shard of the registry. The stream renders the customer's *current* state when
//! it runs, so changes that arrive faster than it sends coalesce into one event.
//!
//! A subscriber is dropped as slow when either
//! * its socket has refused every write (the client stopped reading and its buffers are full)
//!   for [`StreamLimits::stall_ticks`] heartbeat intervals — checked at each tick; a stream
//!   that is merely waiting to be scheduled has no refused write and is never taken for one —
//!   or
//! * more than [`StreamLimits::buffer`] signals arrived without its stream taking one (a
//!   safety net: changes coalesce, so only a stream that cannot run for a long time while its
//!   customer keeps changing gets there).
//!
//! Dropping closes the connection through its [`ConnHandle`] at once: a client that reads
//! nothing leaves hyper stuck writing, and a body that is never polled cannot end itself.
//!
//! [`Hub::tick`] runs once per heartbeat interval on a task of its own
//! (`crate::stream::run_ticker`): it
//! wakes every stream (each sends a heartbeat comment), checks for stalls, and ends streams
//! whose credential expired.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tollgate_shared::Mode;
use tollgate_shared::keys::KeyHash;
use tollgate_shared::server::ConnHandle;

use crate::modes::{MODES, slot};

/// The bounds on event streams (docs/operations.md, "Edges").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Streams open at once on this edge; one more gets 503.
    pub max_subscribers: usize,
    /// Signals a stream may fall behind by before it is dropped as slow.
    pub buffer: u32,
    /// How often every stream gets a heartbeat (and stalls are checked).
    pub heartbeat: Duration,
    /// Heartbeat intervals a stream's socket may refuse writes before the stream is dropped
    /// as slow.
    pub stall_ticks: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_subscribers: 5_000,
            buffer: 1_024,
            heartbeat: Duration::from_secs(15),
            stall_ticks: 2,
        }
    }
}

/// Why a stream ended (or `Open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Closed {
    Open = 0,
    /// Fell too far behind, or its socket stalled.
    Slow = 1,
    /// Its key was revoked, or its token's signing key withdrawn.
    Revoked = 2,
    /// Its token or ticket expired.
    Expired = 3,
    /// The edge is shutting down.
    Shutdown = 4,
}

impl Closed {
    fn from_u8(v: u8) -> Closed {
        match v {
            1 => Closed::Slow,
            2 => Closed::Revoked,
            3 => Closed::Expired,
            4 => Closed::Shutdown,
            _ => Closed::Open,
        }
    }
}

/// What a stream was opened with, to check again when keys change.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A publishable or secret key (directly, or through a stream ticket it signed).
    Key { hash: KeyHash, expires: Option<i64> },
    /// A customer token: verified again against the current token keys.
    Token { token: Box<str>, expires: i64 },
}

impl Credential {
    /// Unix seconds after which the stream must end.
    pub fn expires(&self) -> Option<i64> {
        match self {
            Credential::Key { expires, .. } => *expires,
            Credential::Token { expires, .. } => Some(*expires),
        }
    }
}

/// One open stream.
pub struct Sub {
    pub mode: Mode,
    pub customer_id: Box<str>,
    pub credential: Credential,
    conn: ConnHandle,
    /// The highest version signalled since the stream last took (0: none).
    pending: AtomicU64,
    /// Signals since the stream last took.
    queued: AtomicU32,
    closed: AtomicU8,
    waker: AtomicWaker,
    registered: AtomicBool,
}

impl Sub {
    fn new(mode: Mode, customer_id: &str, credential: Credential, conn: ConnHandle) -> Sub {
        Sub {
            mode,
            customer_id: customer_id.into(),
            credential,
            conn,
            pending: AtomicU64::new(0),
            queued: AtomicU32::new(0),
            closed: AtomicU8::new(Closed::Open as u8),
            waker: AtomicWaker::new(),
            registered: AtomicBool::new(true),
        }
    }

    /// Registers the stream's waker: any signal, tick or close from now on wakes it.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    pub fn closed(&self) -> Closed {
        Closed::from_u8(self.closed.load(Ordering::Acquire))
    }

    /// Takes what was signalled since the last take: the highest version, or 0.
    pub fn take(&self) -> u64 {
        self.queued.store(0, Ordering::Release);
        self.pending.swap(0, Ordering::AcqRel)
    }

    /// Ends the stream (the first reason wins). A slow stream also loses its connection at
    /// once; the others end cleanly when they next run.
    pub fn close(&self, why: Closed) {
        if self
            .closed
            .compare_exchange(
                Closed::Open as u8,
                why as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            if why == Closed::Slow {
                metrics::counter!("tollgate_edge_stream_drops_total").increment(1);
                self.conn.close();
            }
            self.waker.wake();
        }
    }

    fn signal(&self, version: u64, buffer: u32) {
        if self.closed() != Closed::Open {
            return;
        }
        self.pending.fetch_max(version, Ordering::AcqRel);
        if self.queued.fetch_add(1, Ordering::AcqRel) >= buffer {
            self.close(Closed::Slow);
        } else {
            self.waker.wake();
        }
    }

    fn wake(&self) {
        self.waker.wake();
    }
}

/// How many shards the registry is split into, per mode.
const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Box<str>, Vec<Arc<Sub>>>>;

/// Every open stream, by customer.
pub struct Hub {
    shards: [Box<[Shard]>; 2],
    hasher: std::hash::RandomState,
    count: AtomicUsize,
    limits: StreamLimits,
    /// Heartbeat ticks so far.
    tick: AtomicU64,
    /// Bumped whenever the keys change: streams check their credential again.
    auth_epoch: AtomicU64,
}

/// The cap was reached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("this edge already serves {0} event streams; try another edge or later")]
pub struct Full(pub usize);

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<Box<str>, Vec<Arc<Sub>>>> {
    // A panic while holding a shard cannot leave a list half-edited (each edit is one call).
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(StreamLimits::default())
    }
}

impl Hub {
    pub fn new(limits: StreamLimits) -> Hub {
        let shards = || (0..SHARDS).map(|_| Shard::default()).collect();
        Hub {
            shards: [shards(), shards()],
            hasher: std::hash::RandomState::new(),
            count: AtomicUsize::new(0),
            limits,
            tick: AtomicU64::new(0),
            auth_epoch: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> StreamLimits {
        self.limits
    }

    /// Streams open now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn tick_now(&self) -> u64 {
        self.tick.load(Ordering::Acquire)
    }

    pub fn auth_epoch(&self) -> u64 {
        self.auth_epoch.load(Ordering::Acquire)
    }

    fn shard(&self, mode: Mode, id: &str) -> &Shard {
        let h = self.hasher.hash_one(id) as usize;
        &self.shards[slot(mode)][h % SHARDS]
    }

    /// Registers a stream for one customer, unless the edge is at its cap.
    pub fn subscribe(
        &self,
        mode: Mode,
        customer_id: &str,
        credential: Credential,
        conn: ConnHandle,
    ) -> Result<Arc<Sub>, Full> {
        let max = self.limits.max_subscribers;
        if self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Full(max));
        }
        let sub = Arc::new(Sub::new(mode, customer_id, credential, conn));
        lock(self.shard(mode, customer_id))
            .entry(customer_id.into())
            .or_default()
            .push(sub.clone());
        Ok(sub)
    }

    /// Removes a stream (its body was dropped). Idempotent.
    pub fn unsubscribe(&self, sub: &Arc<Sub>) {
        if !sub.registered.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut shard = lock(self.shard(sub.mode, &sub.customer_id));
        if let Some(list) = shard.get_mut(&*sub.customer_id) {
            list.retain(|s| !Arc::ptr_eq(s, sub));
            if list.is_empty() {
                shard.remove(&*sub.customer_id);
            }
        }
        drop(shard);
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    /// The sync task applied `version`, which changed this customer.
    pub fn changed(&self, mode: Mode, customer_id: &str, version: u64) {
        if self.is_empty() {
            return;
        }
        let shard = lock(self.shard(mode, customer_id));
        if let Some(list) = shard.get(customer_id) {
            for sub in list {
                sub.signal(version, self.limits.buffer);
            }
        }
    }

    /// `version` may have changed any customer of `mode` (`None`: of both), e.g. a snapshot or
    /// new defaults. Streams whose customer did not change send nothing visible.
    pub fn changed_all(&self, mode: Option<Mode>, version: u64) {
        self.each(mode, |sub| sub.signal(version, self.limits.buffer));
    }

    /// The keys changed: every stream checks its credential when it next runs.
    pub fn keys_changed(&self) {
        self.auth_epoch.fetch_add(1, Ordering::AcqRel);
        self.each(None, Sub::wake);
    }

    /// Ends every stream (SIGTERM), so the drain does not wait on them.
    pub fn close_all(&self, why: Closed) {
        self.each(None, |s| s.close(why));
    }

    fn each(&self, mode: Option<Mode>, mut f: impl FnMut(&Sub)) {
        if self.is_empty() {
            return;
        }
        for m in MODES {
            if mode.is_some_and(|only| only != m) {
                continue;
            }
            for shard in self.shards[slot(m)].iter() {
                for list in lock(shard).values() {
                    list.iter().for_each(|s| f(s));
                }
            }
        }
    }

    /// One heartbeat interval passed: stalled sockets and expired credentials end their
    /// streams, every other stream is woken to send a heartbeat.
    pub fn tick(&self, now_unix: i64) {
        self.tick.fetch_add(1, Ordering::AcqRel);
        let stall = self.limits.heartbeat * self.limits.stall_ticks.max(1);
        self.each(None, |sub| {
            if sub.credential.expires().is_some_and(|e| now_unix >= e) {
                sub.close(Closed::Expired);
                return;
            }
            if sub.conn.write_blocked_for().is_some_and(|b| b >= stall) {
                sub.close(Closed::Slow);
                return;
            }
            sub.wake();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Credential {
        Credential::Key {
            hash: [0u8; 32],
            expires: None,
        }
    }

    #[test]
    fn signals_coalesce_and_a_stream_past_its_buffer_is_dropped() {
        let hub = Hub::new(StreamLimits {
            buffer: 3,
            ..StreamLimits::default()
        });
        let conn = ConnHandle::default();
        let a = hub.subscribe(Mode::Test, "a", key(), conn.clone()).unwrap();
        let other = hub
            .subscribe(Mode::Test, "b", key(), ConnHandle::default())
            .unwrap();
        hub.changed(Mode::Test, "a", 5);
        hub.changed(Mode::Test, "a", 7);
        hub.changed(Mode::Live, "a", 9);
        assert_eq!(a.take(), 7, "the highest version, live mode apart");
        assert_eq!(a.take(), 0);
        for v in 10..13 {
            hub.changed(Mode::Test, "a", v);
        }
        assert_eq!(a.closed(), Closed::Open);
        hub.changed(Mode::Test, "a", 13);
        assert_eq!(a.closed(), Closed::Slow);
        assert!(conn.is_closed(), "a slow stream loses its connection");
        assert_eq!(other.closed(), Closed::Open);
        assert_eq!(other.take(), 0);
        hub.unsubscribe(&a);
        hub.unsubscribe(&a);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn the_cap_holds_and_frees() {
        let hub = Hub::new(StreamLimits {
            max_subscribers: 2,
            ..StreamLimits::default()
        });
        let a = hub
            .subscribe(Mode::Test, "a", key(), ConnHandle::default())
            .unwrap();
        let _b = hub
            .subscribe(Mode::Test, "a", key(), ConnHandle::default())
            .unwrap();
        assert_eq!(
            hub.subscribe(Mode::Test, "c", key(), ConnHandle::default())
                .err(),
            Some(Full(2))
        );
        hub.unsubscribe(&a);
        assert!(
            hub.subscribe(Mode::Test, "c", key(), ConnHandle::default())
                .is_ok()
        );
    }

    #[test]
    fn credentials_expire_at_a_tick() {
        let hub = Hub::default();
        let idle = hub
            .subscribe(Mode::Test, "a", key(), ConnHandle::default())
            .unwrap();
        hub.tick(0);
        hub.tick(0);
        assert_eq!(
            idle.closed(),
            Closed::Open,
            "an idle stream is no slow stream"
        );
        let expiring = hub
            .subscribe(
                Mode::Test,
                "b",
                Credential::Key {
                    hash: [0; 32],
                    expires: Some(100),
                },
                ConnHandle::default(),
            )
            .unwrap();
        hub.tick(99);
        assert_eq!(expiring.closed(), Closed::Open);
        hub.tick(100);
        assert_eq!(expiring.closed(), Closed::Expired);
    }
}

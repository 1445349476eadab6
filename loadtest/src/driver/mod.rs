//! The load itself: `connections` keep-alive HTTP/1 connections, one request in flight each.
//!
//! * [`closed`] — closed-loop: peak throughput, latencies are service times.
//! * [`open`] — open-loop at a fixed rate, without coordinated omission.
//! * [`conn`] — one request/response exchange and per-connection counters.
//! * [`progress`] — the indicatif bar.
//!
//! Connections are opened before the clock starts. Every loop is bounded by a request budget
//! and by a deadline. An [`Observer`] may be told of every successful response as it arrives
//! (the propagation scenario starts its clock there).

mod closed;
mod conn;
mod open;
mod progress;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::report::{Counts, Mode, RunResult};
use crate::target::{Sender, Target};
use conn::ConnStats;

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;

pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).context("creating a latency histogram")
}

/// A multi-threaded runtime with exactly `threads` workers, for the generator.
pub fn runtime(threads: u16) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(threads.max(1)))
        .thread_name("loadgen")
        .enable_all()
        .build()
        .context("building the load generator runtime")
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub label: String,
    pub connections: u16,
    pub duration: Duration,
    /// `Some` makes the run open-loop at this many requests per second in total.
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub max_requests: u64,
    pub progress: bool,
}

/// Told of every successful (2xx/304) response of a run, as soon as its body has been read.
pub trait Observer: Send + Sync {
    /// Request `seq` (the open-loop slot, or the closed-loop sequence number) was answered
    /// successfully at `at`.
    fn acknowledged(&self, seq: u64, at: Instant);
}

/// What every connection task of one run shares.
struct Shared {
    target: Arc<Target>,
    plan: Plan,
    start: Instant,
    /// Responses so far, for the progress bar.
    done: AtomicU64,
    /// Open-loop: the next unclaimed send slot.
    next_slot: AtomicU64,
    observer: Option<Arc<dyn Observer>>,
}

impl Shared {
    fn observe(&self, seq: u64, outcome: &conn::Outcome, at: Instant) {
        let observer = self.observer.as_ref().filter(|_| outcome.is_success());
        if let Some(observer) = observer {
            observer.acknowledged(seq, at);
        }
    }
}

/// Opens all connections concurrently before the clock starts, so connecting is never part
/// of a measured latency. A failed connect leaves `None`; the connection retries in its loop.
async fn connect_all(target: &Arc<Target>, conns: u64, timeout: Duration) -> Vec<Option<Sender>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let target = target.clone();
        set.spawn(async move { target.connect(timeout).await.ok() });
    }
    let mut senders = Vec::with_capacity(conns as usize);
    while let Some(joined) = set.join_next().await {
        senders.push(joined.ok().flatten());
    }
    senders
}

/// One run's raw measurements; runs of the same target can be merged before summarizing.
pub struct Measured {
    pub label: String,
    pub target: String,
    pub mode: Mode,
    pub connections: u16,
    pub rate: Option<f64>,
    pub elapsed: Duration,
    stats: ConnStats,
}

impl Measured {
    /// Adds another run of the same target (e.g. a later round) to this one.
    pub fn merge(&mut self, other: &Measured) -> anyhow::Result<()> {
        self.elapsed += other.elapsed;
        self.stats.merge(&other.stats)
    }

    pub fn completed(&self) -> u64 {
        self.stats.ok + self.stats.http_errors
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.completed() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn result(&self) -> RunResult {
        let s = &self.stats;
        let mut r = RunResult::new(
            self.label.clone(),
            self.target.clone(),
            self.mode,
            self.connections,
            self.rate,
            self.elapsed,
            Counts {
                completed: self.completed(),
                ok: s.ok,
                errors: s.http_errors,
                io_errors: s.io_errors,
                timeouts: s.timeouts,
                missed: s.missed,
                body_bytes: s.body_bytes,
            },
            &s.latency,
            (self.mode == Mode::Open).then_some(&s.lag),
        );
        r.tally.clone_from(&s.tally);
        r.first_error.clone_from(&s.first_error);
        r
    }
}

/// Runs one plan against one target and returns its results. Call inside the generator runtime.
pub async fn run(target: Arc<Target>, plan: Plan) -> anyhow::Result<RunResult> {
    Ok(measure(target, plan).await?.result())
}

/// [`run`], returning the raw measurements.
pub async fn measure(target: Arc<Target>, plan: Plan) -> anyhow::Result<Measured> {
    measure_observed(target, plan, None).await
}

/// [`measure`], telling `observer` of every successful response.
pub async fn measure_observed(
    target: Arc<Target>,
    plan: Plan,
    observer: Option<Arc<dyn Observer>>,
) -> anyhow::Result<Measured> {
    let conns = u64::from(plan.connections.max(1));
    let mut senders = connect_all(&target, conns, plan.timeout).await;
    let shared = Arc::new(Shared {
        target,
        plan,
        start: Instant::now(),
        done: AtomicU64::new(0),
        next_slot: AtomicU64::new(0),
        observer,
    });
    let pb = progress::bar(&shared.plan);
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn(progress::tick(shared.clone(), pb.clone(), stop.clone()));

    let mut tasks = Vec::with_capacity(conns as usize);
    for j in 0..conns {
        let conn = senders.pop().flatten();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            match shared.plan.rate {
                Some(rate) => open::run(shared, conn, rate).await,
                None => {
                    let budget = shared.plan.max_requests.div_ceil(conns);
                    closed::run(shared, conn, j, budget).await
                }
            }
        }));
    }
    let mut total = ConnStats::new()?;
    for task in tasks {
        total.merge(&task.await.context("a connection task panicked")??)?;
    }
    let elapsed = shared.start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    pb.finish_and_clear();

    let plan = &shared.plan;
    Ok(Measured {
        label: plan.label.clone(),
        target: shared.target.display.clone(),
        mode: if plan.rate.is_some() {
            Mode::Open
        } else {
            Mode::Closed
        },
        connections: plan.connections,
        rate: plan.rate,
        elapsed,
        stats: total,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::baseline;

    fn plan(rate: Option<f64>) -> Plan {
        Plan {
            label: "test".into(),
            connections: 4,
            duration: Duration::from_millis(500),
            rate,
            timeout: Duration::from_secs(5),
            max_requests: 1_000_000,
            progress: false,
        }
    }

    /// Accounting, not timing: every open-loop slot ends up counted exactly once.
    #[test]
    fn drives_a_baseline_closed_and_open_loop() {
        let server = baseline::spawn(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            baseline::body_of_len(100),
            Some(1),
        )
        .expect("baseline starts");
        let url = format!("http://{}", server.addr());
        let target = Arc::new(Target::new(&url, "pk_test_abcdefgh", "c", 10).expect("target"));
        let rt = runtime(1).expect("runtime");

        let closed = rt
            .block_on(run(target.clone(), plan(None)))
            .expect("closed run");
        assert!(closed.counts.ok > 0);
        assert_eq!(closed.counts.errors, 0);
        assert_eq!(closed.counts.body_bytes, closed.counts.ok * 100);

        let open = rt
            .block_on(run(target, plan(Some(200.0))))
            .expect("open run");
        let c = open.counts;
        assert_eq!(c.completed + c.io_errors + c.timeouts + c.missed, 100);
        assert!(c.ok > 0);
        assert!(open.generator_lag_us.is_some());
        server.stop().expect("baseline stops");
    }

    struct Count(AtomicU64);

    impl Observer for Count {
        fn acknowledged(&self, _seq: u64, _at: Instant) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// JSON POSTs: every success is observed once, every response tallied once.
    #[test]
    fn observes_and_tallies_posts() {
        let server = baseline::spawn(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bytes::Bytes::from_static(br#"{"action":"upgraded"}"#),
            Some(1),
        )
        .expect("baseline starts");
        let url = format!("http://{}", server.addr());
        let target = Target::post_json(
            &url,
            "sk_test_abcdefgh",
            "/api/v1/subscribe/",
            Box::new(|i| bytes::Bytes::from(format!("{{\"i\":{i}}}"))),
        )
        .expect("target")
        .with_tally(crate::target::Tally::Field("action"));
        let count = Arc::new(Count(AtomicU64::new(0)));
        let observer: Arc<dyn Observer> = count.clone();
        let rt = runtime(1).expect("runtime");
        let run = rt
            .block_on(measure_observed(
                Arc::new(target),
                plan(Some(200.0)),
                Some(observer),
            ))
            .expect("open run")
            .result();
        assert!(run.counts.ok > 0);
        assert_eq!(count.0.load(Ordering::Relaxed), run.counts.ok);
        assert_eq!(run.tally.get("upgraded"), Some(&run.counts.ok));
        server.stop().expect("baseline stops");
    }
}

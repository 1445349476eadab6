//! The load itself: `connections` keep-alive HTTP/1 connections, one request in flight each.
//!
//! * **Closed-loop** (no rate): each connection sends its next request as soon as the previous
//!   response has been read. Measures peak throughput; its latencies are service times.
//! * **Open-loop** (`rate`): a ticker thread releases send slots at `start + k/rate` into one
//!   queue; whichever connection is idle sends the next slot. Latency is measured from the
//!   *scheduled* slot whenever the connection that sends it was still busy at that moment, so a
//!   slow server is charged for every request it delayed (no coordinated omission). When the
//!   sending connection was already idle at the slot's time, any remaining send delay is the
//!   generator's own (timer, CPU), not the server's: latency then starts at the actual send,
//!   and the delay is reported separately as `generator lag` — if that grows large, the
//!   generator, not the server, is the bottleneck. Slots still queued at `duration + timeout`
//!   count as `missed` and are recorded with the latency they had reached by then.
//!
//! Every loop is bounded by a request budget and by a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::report::{Mode, RunResult};
use crate::target::{Sender, Target};

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// Open-loop slots released but not yet taken by a connection.
const SLOT_QUEUE: usize = 65_536;

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

struct ConnStats {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    ok: u64,
    http_errors: u64,
    io_errors: u64,
    timeouts: u64,
    missed: u64,
    body_bytes: u64,
}

impl ConnStats {
    fn new() -> anyhow::Result<Self> {
        Ok(ConnStats {
            latency: histogram()?,
            lag: histogram()?,
            ok: 0,
            http_errors: 0,
            io_errors: 0,
            timeouts: 0,
            missed: 0,
            body_bytes: 0,
        })
    }

    fn merge(&mut self, other: &ConnStats) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("merging histograms")?;
        self.lag.add(&other.lag).context("merging histograms")?;
        self.ok += other.ok;
        self.http_errors += other.http_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.missed += other.missed;
        self.body_bytes += other.body_bytes;
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

enum Outcome {
    Response { success: bool, bytes: usize },
    Io,
    Timeout,
}

/// Sends request `seq` and reads the whole response body.
async fn exchange(sender: &mut Sender, target: &Target, seq: u64, timeout: Duration) -> Outcome {
    let work = async {
        sender.ready().await?;
        let resp = sender.send_request(target.request(seq)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body.len()))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((status, bytes))) => Outcome::Response {
            success: status.is_success() || status == hyper::StatusCode::NOT_MODIFIED,
            bytes,
        },
        Ok(Err(_)) => Outcome::Io,
        Err(_) => Outcome::Timeout,
    }
}

/// Returns an open connection, reconnecting if needed; `None` (after a short pause, counted as
/// an I/O error) when connecting failed.
async fn ensure<'a>(
    conn: &'a mut Option<Sender>,
    target: &Target,
    timeout: Duration,
    stats: &mut ConnStats,
) -> Option<&'a mut Sender> {
    if conn.as_ref().is_some_and(|s| s.is_closed()) {
        *conn = None;
    }
    if conn.is_none() {
        match target.connect(timeout).await {
            Ok(s) => *conn = Some(s),
            Err(_) => {
                stats.io_errors += 1;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                return None;
            }
        }
    }
    conn.as_mut()
}

/// Records one finished exchange; drops the connection when its state is unknown.
fn settle(stats: &mut ConnStats, conn: &mut Option<Sender>, outcome: Outcome, latency: Duration) {
    match outcome {
        Outcome::Response { success, bytes } => {
            stats.latency.saturating_record(micros(latency));
            stats.body_bytes += bytes as u64;
            if success {
                stats.ok += 1;
            } else {
                stats.http_errors += 1;
            }
        }
        Outcome::Io => {
            stats.io_errors += 1;
            *conn = None;
        }
        Outcome::Timeout => {
            stats.timeouts += 1;
            *conn = None;
        }
    }
}

struct Shared {
    target: Arc<Target>,
    plan: Plan,
    start: Instant,
    done: AtomicU64,
}

async fn closed_loop(shared: Arc<Shared>, j: u64, budget: u64) -> anyhow::Result<ConnStats> {
    let mut stats = ConnStats::new()?;
    let plan = &shared.plan;
    let deadline = shared.start + plan.duration;
    let stride = u64::from(plan.connections);
    let mut conn = None;
    let mut seq = j;
    for _ in 0..budget {
        if Instant::now() >= deadline {
            break;
        }
        let Some(sender) = ensure(&mut conn, &shared.target, plan.timeout, &mut stats).await else {
            continue;
        };
        let sent = Instant::now();
        let outcome = exchange(sender, &shared.target, seq, plan.timeout).await;
        settle(&mut stats, &mut conn, outcome, sent.elapsed());
        shared.done.fetch_add(1, Ordering::Relaxed);
        seq = seq.wrapping_add(stride);
    }
    Ok(stats)
}

/// One open-loop send slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    scheduled: Instant,
    seq: u64,
}

type SlotQueue = tokio::sync::Mutex<mpsc::Receiver<Slot>>;

/// Releases `total` slots at `start + k / rate` from a plain thread. tokio's timer wheel has
/// millisecond resolution, which would make every send up to 1 ms late; `thread::sleep` is
/// accurate to tens of microseconds. A slot's time is fixed by `k`, never by when it was
/// released, so a full queue (all connections busy) delays sends but not the latency origin.
fn spawn_ticker(
    start: Instant,
    rate: f64,
    total: u64,
    slots: mpsc::Sender<Slot>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("loadgen-ticker".into())
        .spawn(move || {
            for k in 0..total {
                let scheduled = start + Duration::from_secs_f64(k as f64 / rate);
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                if slots.blocking_send(Slot { scheduled, seq: k }).is_err() {
                    break;
                }
            }
        })
        .context("starting the open-loop ticker thread")
}

/// Takes the next slot from the queue shared by all connections: whichever connection is idle
/// sends it, so one slow response does not hold back slots another connection could send.
async fn next_slot(queue: &SlotQueue) -> Option<Slot> {
    queue.lock().await.recv().await
}

async fn open_loop(
    shared: Arc<Shared>,
    queue: Arc<SlotQueue>,
    total: u64,
) -> anyhow::Result<ConnStats> {
    let mut stats = ConnStats::new()?;
    let plan = &shared.plan;
    let hard_end = shared.start + plan.duration + plan.timeout;
    let mut conn = None;
    let _ = ensure(&mut conn, &shared.target, plan.timeout, &mut stats).await;
    let mut idle_since = shared.start;
    for _ in 0..total {
        let Some(slot) = next_slot(&queue).await else {
            break;
        };
        let now = Instant::now();
        if now >= hard_end {
            stats.missed += 1;
            stats
                .latency
                .saturating_record(micros(now.saturating_duration_since(slot.scheduled)));
            continue;
        }
        let Some(sender) = ensure(&mut conn, &shared.target, plan.timeout, &mut stats).await else {
            continue;
        };
        let sent = Instant::now();
        let origin = if idle_since <= slot.scheduled {
            stats
                .lag
                .saturating_record(micros(sent.saturating_duration_since(slot.scheduled)));
            sent
        } else {
            slot.scheduled
        };
        let outcome = exchange(sender, &shared.target, slot.seq, plan.timeout).await;
        let finished = Instant::now();
        settle(
            &mut stats,
            &mut conn,
            outcome,
            finished.saturating_duration_since(origin),
        );
        idle_since = finished;
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(stats)
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    let total_ms = u64::try_from(plan.duration.as_millis()).unwrap_or(u64::MAX);
    let pb = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
    if !plan.progress {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{prefix:>18} [{bar:30}] {msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(plan.label.clone());
    pb
}

/// Updates the bar every 200 ms until `stop` is set (at most duration + timeout + 1 s).
async fn tick(shared: Arc<Shared>, pb: ProgressBar, stop: Arc<AtomicBool>) {
    const EVERY: Duration = Duration::from_millis(200);
    let limit = shared.plan.duration + shared.plan.timeout + Duration::from_secs(1);
    let ticks = limit.as_millis() / EVERY.as_millis() + 1;
    let mut interval = tokio::time::interval(EVERY);
    for _ in 0..ticks {
        interval.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let elapsed = shared.start.elapsed();
        let done = shared.done.load(Ordering::Relaxed);
        pb.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        pb.set_message(format!(
            "{done} req, {:.0} req/s",
            done as f64 / elapsed.as_secs_f64().max(1e-3)
        ));
    }
}

/// Runs one plan against one target and returns its results. Call inside the generator runtime.
pub async fn run(target: Arc<Target>, plan: Plan) -> anyhow::Result<RunResult> {
    let conns = u64::from(plan.connections.max(1));
    let budget = plan.max_requests.div_ceil(conns);
    let shared = Arc::new(Shared {
        target,
        plan,
        start: Instant::now(),
        done: AtomicU64::new(0),
    });
    let pb = progress_bar(&shared.plan);
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn(tick(shared.clone(), pb.clone(), stop.clone()));

    let mut ticker_thread = None;
    let mut tasks = Vec::with_capacity(conns as usize);
    match shared.plan.rate {
        None => {
            for j in 0..conns {
                tasks.push(tokio::spawn(closed_loop(shared.clone(), j, budget)));
            }
        }
        Some(rate) => {
            let slots = ((shared.plan.duration.as_secs_f64() * rate).ceil() as u64)
                .min(shared.plan.max_requests);
            let (tx, rx) = mpsc::channel(SLOT_QUEUE);
            let queue = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..conns {
                tasks.push(tokio::spawn(open_loop(
                    shared.clone(),
                    queue.clone(),
                    slots,
                )));
            }
            ticker_thread = Some(spawn_ticker(shared.start, rate, slots, tx)?);
        }
    }
    let mut total = ConnStats::new()?;
    for task in tasks {
        total.merge(&task.await.context("a connection task panicked")??)?;
    }
    let elapsed = shared.start.elapsed();
    if let Some(t) = ticker_thread {
        let _ = t.join();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    pb.finish_and_clear();

    let plan = &shared.plan;
    let completed = total.ok + total.http_errors;
    Ok(RunResult::new(
        plan.label.clone(),
        shared.target.display.clone(),
        if plan.rate.is_some() {
            Mode::Open
        } else {
            Mode::Closed
        },
        plan.connections,
        plan.rate,
        elapsed,
        crate::report::Counts {
            completed,
            ok: total.ok,
            errors: total.http_errors,
            io_errors: total.io_errors,
            timeouts: total.timeouts,
            missed: total.missed,
            body_bytes: total.body_bytes,
        },
        &total.latency,
        plan.rate.is_some().then_some(&total.lag),
    ))
}

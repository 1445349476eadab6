//! `loadtest propagation`: how long a committed control-plane change takes to be visible at an
//! edge, against SPEC §9's "p99 ≤ 50 ms under 1,000 changes/s".
//!
//! **Changes.** Slot `k` of an open-loop run (the driver's, so no coordinated omission) is
//! `POST /api/v1/usage/ {"customerId": "{prefix}{k mod N}", "featureId": F, "set": base + k}`:
//! every change writes a value never written before. `base` comes from the wall clock (a new
//! range of 10^7 values per second, wrapping after 25 hours, all below the API's 10^12 cap), so
//! a value left over from an earlier run is never mistaken for this run's.
//!
//! **Clock start.** The control plane answers a usage report after its transaction committed,
//! so the moment the `POST`'s response has been read is the acknowledgement: latency is counted
//! from there. (A change that reached the edge before its own acknowledgement counts as ~one
//! poll round trip.)
//!
//! **Polling.** Every `k`-th acknowledged change is tracked (`k = ceil(rate / max tracked per
//! second)`), handed round-robin to a few pollers, each with its own keep-alive edge connection
//! and one request in flight. A poller cycles over its pending changes with
//! `GET /api/v1/entitlements/{F}/?customerId=…` until the edge's `currentUsage` shows the value
//! — or a later value of this run for the same customer (the edge applies deltas in commit
//! order, so a later write showing means this one was applied before it). Latency = arrival of
//! that poll's response − acknowledgement: an upper bound, too high by at most the
//! **resolution**, the time since the previous poll of the same change was sent, which is
//! reported too. A change not visible after `--visible-timeout-ms` counts as not visible.
//! A poller waits `--poll-interval-us` (1 ms; ~2 ms with tokio's timer ticks) between passes:
//! polling back to back resolves ~0.3 ms but costs ~10k GET/s, which on a 2-core machine slows
//! the control plane whose commits are being timed.
//!
//! **Bounds.** Changes are bounded by `rate × duration` (at most 10^7) and the driver's budget;
//! tracked changes by the sampling; every poller loop by a deadline
//! (duration + timeouts + visibility timeout) and a round budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{Api, describe};
use crate::cli::PropagationArgs;
use crate::control_plane::{check_seeded, json_id_prefix};
use crate::driver::{self, Observer, Plan};
use crate::plot;
use crate::report::{self, Counts, Latency, Mode, RunResult, SUSTAINED_FRACTION};
use crate::target::{Sender, Tally, Target, ensure_loopback, percent_encode};

/// SPEC §9.
pub const P99_TARGET_US: u64 = 50_000;
pub const RATE_TARGET: f64 = 1000.0;
/// Values of one run: `base .. base + MAX_CHANGES`.
const MAX_CHANGES: u64 = 10_000_000;
/// `base` is `(unix seconds mod BASE_PERIODS) × MAX_CHANGES + 1`: below 10^12 with any `k`.
const BASE_PERIODS: u64 = 90_000;
const EDGE_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// The first value of a run, from the wall clock.
fn value_base(now: SystemTime) -> u64 {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs % BASE_PERIODS) * MAX_CHANGES + 1
}

/// Tracked changes per sent one: every `k`-th.
fn track_every(rate: f64, max_tracked_per_sec: f64) -> u64 {
    ((rate / max_tracked_per_sec).ceil() as u64).max(1)
}

/// This run's values of one customer are `base + k`, increasing in send order; anything at or
/// above the tracked one and below the run's end means the tracked write has been applied.
fn shows(current: i64, value: u64, end: u64) -> bool {
    u64::try_from(current).is_ok_and(|c| c >= value && c < end)
}

/// One acknowledged change to watch for.
#[derive(Debug, Clone, Copy)]
struct Change {
    seq: u64,
    acked: Instant,
}

/// Hands every `every`-th acknowledged change to the pollers, round-robin.
struct Tracker {
    every: u64,
    queues: Mutex<Vec<mpsc::UnboundedSender<Change>>>,
    tracked: AtomicU64,
}

impl Observer for Tracker {
    fn acknowledged(&self, seq: u64, at: Instant) {
        // (`every` is at least 1; `checked_rem` keeps clear of `is_multiple_of`, newer than
        // the workspace's MSRV.)
        if seq.checked_rem(self.every) != Some(0) {
            return;
        }
        let Ok(queues) = self.queues.lock() else {
            return;
        };
        if queues.is_empty() {
            return;
        }
        let j = (seq / self.every % queues.len() as u64) as usize;
        if queues[j].send(Change { seq, acked: at }).is_ok() {
            self.tracked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Tracker {
    /// No more changes: pollers finish what they hold, then stop.
    fn close(&self) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.clear();
        }
    }
}

/// What all pollers share.
struct PollConfig {
    edge: Arc<Target>,
    /// `/api/v1/entitlements/{feature}/?customerId={encoded prefix}`.
    path_prefix: String,
    customers: u64,
    base: u64,
    end: u64,
    visible_timeout: Duration,
    interval: Duration,
    hard_end: Instant,
    max_rounds: u64,
}

struct Pending {
    change: Change,
    value: u64,
    path: String,
    polls: u32,
    last_sent: Option<Instant>,
}

struct PollStats {
    latency: Histogram<u64>,
    resolution: Histogram<u64>,
    rtt: Histogram<u64>,
    visible: u64,
    not_visible: u64,
    first_poll: u64,
    polls: u64,
    poll_errors: u64,
    first_error: Option<String>,
}

impl PollStats {
    fn new() -> anyhow::Result<PollStats> {
        Ok(PollStats {
            latency: driver::histogram()?,
            resolution: driver::histogram()?,
            rtt: driver::histogram()?,
            visible: 0,
            not_visible: 0,
            first_poll: 0,
            polls: 0,
            poll_errors: 0,
            first_error: None,
        })
    }

    fn merge(&mut self, o: &PollStats) -> anyhow::Result<()> {
        self.latency.add(&o.latency).context("merging histograms")?;
        self.resolution
            .add(&o.resolution)
            .context("merging histograms")?;
        self.rtt.add(&o.rtt).context("merging histograms")?;
        self.visible += o.visible;
        self.not_visible += o.not_visible;
        self.first_poll += o.first_poll;
        self.polls += o.polls;
        self.poll_errors += o.poll_errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        Ok(())
    }

    fn error(&mut self, e: String) {
        self.poll_errors += 1;
        self.first_error.get_or_insert(e);
    }
}

impl PollConfig {
    fn pending(&self, change: Change) -> Pending {
        let mut path = String::with_capacity(self.path_prefix.len() + 20);
        path.push_str(&self.path_prefix);
        path.push_str(&(change.seq % self.customers).to_string());
        Pending {
            change,
            value: self.base + change.seq,
            path,
            polls: 0,
            last_sent: None,
        }
    }
}

/// One `GET` of a customer's feature at the edge: its `currentUsage`.
async fn read_usage(
    conn: &mut Option<Sender>,
    edge: &Target,
    path: &str,
) -> anyhow::Result<(i64, Instant, Instant)> {
    if conn.as_ref().is_some_and(|s| s.is_closed()) {
        *conn = None;
    }
    if conn.is_none() {
        *conn = Some(edge.connect(EDGE_TIMEOUT).await?);
    }
    let sender = conn.as_mut().context("no connection")?;
    let req = edge.get(path)?;
    let sent = Instant::now();
    let work = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    let outcome = tokio::time::timeout(EDGE_TIMEOUT, work).await;
    let received = Instant::now();
    let (status, body) = match outcome {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e);
        }
        Err(_) => {
            *conn = None;
            bail!("GET {path} timed out");
        }
    };
    if !status.is_success() {
        bail!("GET {path}: HTTP {status}: {}", snippet(&body));
    }
    let usage = current_usage(&body).with_context(|| format!("GET {path}: {}", snippet(&body)))?;
    Ok((usage, sent, received))
}

fn current_usage(body: &[u8]) -> anyhow::Result<i64> {
    let v: Value = serde_json::from_slice(body).context("the edge's answer is not JSON")?;
    v.get("currentUsage")
        .and_then(Value::as_i64)
        .context("no currentUsage in the edge's answer (not a METER feature?)")
}

fn snippet(body: &Bytes) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// One poller: cycles over its pending changes until each shows, times out, or the run ends.
async fn poller(
    cfg: Arc<PollConfig>,
    mut rx: mpsc::UnboundedReceiver<Change>,
) -> anyhow::Result<PollStats> {
    let mut stats = PollStats::new()?;
    let mut conn: Option<Sender> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut open = true;
    for _ in 0..cfg.max_rounds {
        if Instant::now() >= cfg.hard_end {
            break;
        }
        if pending.is_empty() {
            if !open {
                break;
            }
            match tokio::time::timeout_at(cfg.hard_end.into(), rx.recv()).await {
                Ok(Some(change)) => pending.push(cfg.pending(change)),
                Ok(None) => {
                    open = false;
                    continue;
                }
                Err(_) => break,
            }
        }
        while let Ok(change) = rx.try_recv() {
            pending.push(cfg.pending(change));
        }
        let round = Instant::now();
        let mut i = 0;
        while i < pending.len() {
            let p = &mut pending[i];
            let polled = read_usage(&mut conn, &cfg.edge, &p.path).await;
            stats.polls += 1;
            let mut done = false;
            match polled {
                Ok((usage, sent, received)) => {
                    stats
                        .rtt
                        .saturating_record(micros(received.saturating_duration_since(sent)));
                    if shows(usage, p.value, cfg.end) {
                        let since = p.last_sent.unwrap_or(p.change.acked).max(p.change.acked);
                        stats.latency.saturating_record(micros(
                            received.saturating_duration_since(p.change.acked),
                        ));
                        stats
                            .resolution
                            .saturating_record(micros(received.saturating_duration_since(since)));
                        stats.visible += 1;
                        if p.polls == 0 {
                            stats.first_poll += 1;
                        }
                        done = true;
                    }
                    p.last_sent = Some(sent);
                    p.polls += 1;
                }
                Err(e) => {
                    stats.error(format!("{e:#}"));
                    if conn.is_none() {
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                    }
                }
            }
            if !done && p.change.acked.elapsed() > cfg.visible_timeout {
                stats.not_visible += 1;
                done = true;
            }
            if done {
                pending.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if !cfg.interval.is_zero() && !pending.is_empty() {
            tokio::time::sleep_until((round + cfg.interval).into()).await;
        }
    }
    // Whatever is left when the deadline or the round budget ends was never seen.
    stats.not_visible += pending.len() as u64;
    rx.close();
    while rx.try_recv().is_ok() {
        stats.not_visible += 1;
    }
    Ok(stats)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The edge's `/readyz`: its sync version, once it has a snapshot.
async fn edge_version(edge: &Api) -> anyhow::Result<u64> {
    let answer = edge.get("/readyz").await?;
    let v: Value = serde_json::from_slice(&answer.body)
        .with_context(|| format!("/readyz: {}", describe(&answer)))?;
    if v["hasSnapshot"] != Value::Bool(true) {
        bail!("the edge has no snapshot yet: {}", describe(&answer));
    }
    v["version"]
        .as_u64()
        .with_context(|| format!("no version in /readyz: {}", describe(&answer)))
}

fn usage_body(prefix: &str, feature: &str, customers: u64, base: u64) -> crate::target::BodyFn {
    let id = json_id_prefix(prefix);
    let feature = Value::from(feature).to_string();
    let customers = customers.max(1);
    Box::new(move |k| {
        Bytes::from(format!(
            r#"{{"customerId":{id}{}","featureId":{feature},"set":{}}}"#,
            k % customers,
            base + k
        ))
    })
}

/// `loadtest propagation`.
pub fn run(args: &PropagationArgs) -> anyhow::Result<()> {
    ensure_loopback(&args.control_plane_url)?;
    ensure_loopback(&args.edge_url)?;
    let rate = args.changes_per_sec;
    let total = (rate * args.duration.as_secs_f64()).ceil() as u64;
    if total > MAX_CHANGES {
        bail!("rate × duration is {total} changes; at most {MAX_CHANGES} per run");
    }
    let every = track_every(rate, args.max_tracked_per_sec);
    let base = value_base(SystemTime::now());
    let cp_timeout = Duration::from_millis(args.timeout_ms);
    let visible_timeout = Duration::from_millis(args.visible_timeout_ms);

    let sets = Arc::new(
        Target::post_json(
            &args.control_plane_url,
            &args.secret_key,
            "/api/v1/usage/",
            usage_body(&args.prefix, &args.feature, args.customers, base),
        )?
        .with_tally(Tally::Status),
    );
    let edge = Arc::new(Target::new(&args.edge_url, &args.key, &args.prefix, 1)?);
    let cp_api = Api::new(&args.control_plane_url, &args.secret_key, cp_timeout)?;
    let edge_api = Api::new(&args.edge_url, &args.key, EDGE_TIMEOUT)?;
    let mut path_prefix = String::from("/api/v1/entitlements/");
    percent_encode(&args.feature, &mut path_prefix);
    path_prefix.push_str("/?customerId=");
    percent_encode(&args.prefix, &mut path_prefix);

    let rt = driver::runtime(args.threads)?;
    let outcome = rt.block_on(async {
        check_seeded(&cp_api, &args.prefix, args.customers).await?;
        let before = edge_version(&edge_api).await?;
        // The feature must be a METER the edge reports usage for.
        let mut probe = None;
        read_usage(&mut probe, &edge, &format!("{path_prefix}0"))
            .await
            .context("probing the edge")?;

        let hard_end =
            Instant::now() + args.duration + cp_timeout + visible_timeout + Duration::from_secs(2);
        let cfg = Arc::new(PollConfig {
            edge: edge.clone(),
            path_prefix: path_prefix.clone(),
            customers: args.customers,
            base,
            end: base + total,
            visible_timeout,
            interval: Duration::from_micros(args.poll_interval_us),
            hard_end,
            max_rounds: (hard_end - Instant::now()).as_secs().saturating_add(1) * 1_000_000,
        });
        let mut queues = Vec::new();
        let mut pollers = Vec::new();
        for _ in 0..args.pollers {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.push(tx);
            pollers.push(tokio::spawn(poller(cfg.clone(), rx)));
        }
        let tracker = Arc::new(Tracker {
            every,
            queues: Mutex::new(queues),
            tracked: AtomicU64::new(0),
        });
        let plan = Plan {
            label: "set reports".into(),
            connections: args.connections,
            duration: args.duration,
            rate: Some(rate),
            timeout: cp_timeout,
            max_requests: total.max(1),
            progress: !args.output.quiet,
        };
        let started = Instant::now();
        let observer: Arc<dyn Observer> = tracker.clone();
        let measured = driver::measure_observed(sets.clone(), plan, Some(observer)).await;
        tracker.close();
        let mut polls = PollStats::new()?;
        for p in pollers {
            polls.merge(&p.await.context("a poller panicked")??)?;
        }
        let elapsed = started.elapsed();
        let after = edge_version(&edge_api).await.ok();
        anyhow::Ok((
            measured?,
            polls,
            tracker.tracked.load(Ordering::Relaxed),
            elapsed,
            before,
            after,
        ))
    });
    let (measured, polls, tracked, elapsed, before, after) = outcome?;

    let sets_run = measured.result();
    let mut visible_run = RunResult::new(
        "visible at edge".into(),
        edge.display.clone(),
        Mode::Open,
        args.pollers,
        Some(rate),
        elapsed,
        Counts {
            completed: polls.visible,
            ok: polls.visible,
            errors: polls.not_visible,
            io_errors: polls.poll_errors,
            timeouts: 0,
            missed: 0,
            body_bytes: 0,
        },
        &polls.latency,
        None,
    );
    visible_run.first_error.clone_from(&polls.first_error);
    let runs = vec![sets_run, visible_run];
    report::print_table(&runs);

    let set = &runs[0];
    let c = &set.counts;
    let lat = Latency::of(&polls.latency);
    let clean = c.errors + c.io_errors + c.timeouts + c.missed == 0;
    let achieved = c.ok as f64 / set.elapsed_secs.max(1e-9);
    // The control plane kept up: every change committed, at (nearly) the offered rate. When it
    // cannot, changes queue before they commit and the rate SPEC names was never reached.
    let sustained = clean && achieved >= SUSTAINED_FRACTION * rate;
    let met = sustained
        && polls.not_visible == 0
        && polls.visible > 0
        && rate >= RATE_TARGET
        && lat.p99 <= P99_TARGET_US;
    let summary = json!({
        "changesPerSec": rate,
        "rateTarget": RATE_TARGET,
        "scheduled": total,
        "acknowledged": c.ok,
        "achievedChangesPerSec": achieved,
        "rateSustained": sustained,
        "setFailures": c.errors + c.io_errors + c.timeouts + c.missed,
        "setLatencyUs": set.latency_us,
        "trackEvery": every,
        "tracked": tracked,
        "visible": polls.visible,
        "notVisible": polls.not_visible,
        "visibleOnFirstPoll": polls.first_poll,
        "latencyUs": lat,
        "p99TargetUs": P99_TARGET_US,
        "met": met,
        "resolutionUs": Latency::of(&polls.resolution),
        "pollRttUs": Latency::of(&polls.rtt),
        "polls": polls.polls,
        "pollErrors": polls.poll_errors,
        "pollers": args.pollers,
        "pollIntervalUs": args.poll_interval_us,
        "customers": args.customers,
        "valueBase": base,
        "edgeVersion": {
            "before": before,
            "after": after,
            "applied": after.map(|a| a.saturating_sub(before)),
        },
    });
    print_summary(&summary);
    if let Some(path) = &args.output.json {
        report::write_json(path, &json!({ "summary": summary, "runs": runs }))?;
    }
    if let Some(path) = &args.output.plot {
        let title = format!(
            "loadtest propagation: {rate:.0} changes/s, {} -> {}",
            sets.display, edge.display
        );
        plot::write(path, &title, &runs)?;
    }
    Ok(())
}

fn print_summary(s: &Value) {
    let l = &s["latencyUs"];
    println!();
    println!(
        "commit -> visible at the edge: p50 {} us, p90 {} us, p99 {} us, max {} us over {} tracked \
         changes (1 in {})  (SPEC: p99 <= {P99_TARGET_US} us at >= {RATE_TARGET:.0}/s: {})",
        l["p50"],
        l["p90"],
        l["p99"],
        l["max"],
        s["visible"],
        s["trackEvery"],
        if s["met"].as_bool() == Some(true) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  changes: {} acknowledged of {} scheduled ({:.0}/s achieved{}), {} failed; tracked {}, \
         not visible {}, visible on the first poll {}",
        s["acknowledged"],
        s["scheduled"],
        s["achievedChangesPerSec"].as_f64().unwrap_or(0.0),
        if s["rateSustained"].as_bool() == Some(true) {
            ""
        } else {
            ": the control plane did NOT keep up with the offered rate"
        },
        s["setFailures"],
        s["tracked"],
        s["notVisible"],
        s["visibleOnFirstPoll"],
    );
    println!(
        "  resolution (upper bound minus lower bound) p50 {} us, p99 {} us; poll round trip p50 {} us; \
         {} polls, {} poll errors; edge versions applied {}",
        s["resolutionUs"]["p50"],
        s["resolutionUs"]["p99"],
        s["pollRttUs"]["p50"],
        s["polls"],
        s["pollErrors"],
        s["edgeVersion"]["applied"],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_under_the_api_cap_and_move_with_the_clock() {
        let t = UNIX_EPOCH + Duration::from_secs(1_763_000_000);
        let b = value_base(t);
        assert!(b + MAX_CHANGES <= 1_000_000_000_000);
        assert_eq!(value_base(t + Duration::from_secs(1)), b + MAX_CHANGES);
        let worst = (BASE_PERIODS - 1) * MAX_CHANGES + 1 + MAX_CHANGES;
        assert!(worst <= 1_000_000_000_000);
    }

    #[test]
    fn sampling() {
        assert_eq!(track_every(1000.0, 200.0), 5);
        assert_eq!(track_every(1001.0, 200.0), 6);
        assert_eq!(track_every(50.0, 200.0), 1);
    }

    #[test]
    fn what_counts_as_visible() {
        assert!(shows(105, 105, 200));
        assert!(shows(150, 105, 200), "a later write of this run");
        assert!(!shows(104, 105, 200), "still the previous value");
        assert!(!shows(200, 105, 200), "not a value of this run");
        assert!(!shows(-1, 105, 200));
    }

    #[test]
    fn set_bodies() {
        let body = usage_body("c\"", "api-calls", 10, 1000)(23);
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["customerId"], "c\"3");
        assert_eq!(v["featureId"], "api-calls");
        assert_eq!(v["set"], 1023);
        assert_eq!(
            current_usage(br#"{"featureId":"api-calls","currentUsage":7}"#).expect("usage"),
            7
        );
        assert!(current_usage(br#"{"featureId":"sso","hasAccess":true}"#).is_err());
    }

    #[test]
    fn tracker_samples_and_stops_after_close() {
        let (tx0, mut rx0) = mpsc::unbounded_channel();
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let t = Tracker {
            every: 5,
            queues: Mutex::new(vec![tx0, tx1]),
            tracked: AtomicU64::new(0),
        };
        let now = Instant::now();
        for seq in 0..20 {
            t.acknowledged(seq, now);
        }
        t.close();
        t.acknowledged(20, now);
        assert_eq!(t.tracked.load(Ordering::Relaxed), 4);
        let mut got0 = Vec::new();
        while let Ok(c) = rx0.try_recv() {
            got0.push(c.seq);
        }
        let mut got1 = Vec::new();
        while let Ok(c) = rx1.try_recv() {
            got1.push(c.seq);
        }
        assert_eq!(got0, [0, 10]);
        assert_eq!(got1, [5, 15]);
    }
}

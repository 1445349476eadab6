//! The `edge` and `compare` scenarios, assembled from target, driver, baseline and report.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::baseline;
use crate::cli::{CompareArgs, EdgeArgs, LoadArgs};
use crate::cpu::{self, Ticks};
use crate::driver::{self, Measured, Plan};
use crate::plot;
use crate::report::{self, RunResult};
use crate::target::{Target, Variant};

/// SPEC §9 targets, printed next to the measurements.
const THROUGHPUT_RATIO_TARGET: f64 = 0.9;
const OPEN_P99_TARGET_US: u64 = 1_000;

pub fn plan(load: &LoadArgs, label: &str, duration: Duration, rate: Option<f64>) -> Plan {
    Plan {
        label: label.to_owned(),
        connections: load.connections,
        duration,
        rate,
        timeout: Duration::from_millis(load.timeout_ms),
        max_requests: load.max_requests,
        progress: !load.quiet,
    }
}

async fn measure(
    target: &Arc<Target>,
    load: &LoadArgs,
    label: &str,
    rate: Option<f64>,
) -> anyhow::Result<RunResult> {
    if !load.warmup.is_zero() {
        let warm = plan(load, &format!("{label} warm-up"), load.warmup, None);
        driver::run(target.clone(), warm).await?;
    }
    driver::run(target.clone(), plan(load, label, load.duration, rate)).await
}

fn write_outputs(
    load: &LoadArgs,
    title: &str,
    runs: &[RunResult],
    json: &serde_json::Value,
) -> anyhow::Result<()> {
    if let Some(path) = &load.json {
        report::write_json(path, json)?;
    }
    if let Some(path) = &load.plot {
        plot::write(path, title, runs)?;
    }
    Ok(())
}

/// `loadtest edge`: one run against one target.
pub fn edge(args: &EdgeArgs) -> anyhow::Result<()> {
    let load = &args.load;
    let target = Arc::new(Target::new(
        &args.url,
        &load.key,
        &load.customer_prefix,
        load.customers,
    )?);
    let rt = driver::runtime(load.threads)?;
    let run = rt.block_on(measure(&target, load, "edge", args.rate))?;
    let runs = vec![run];
    report::print_table(&runs);
    write_outputs(
        load,
        &format!("loadtest edge {}", target.display),
        &runs,
        &json!({ "runs": runs }),
    )
}

/// One side of a comparison: a target, where to read its CPU time, and what it measured.
pub(crate) struct Side {
    pub name: &'static str,
    pub target: Arc<Target>,
    cpu: Option<cpu::Source>,
    pub closed: Option<Measured>,
    closed_ticks: Ticks,
    /// Closed-loop req/s of each round, in order.
    pub rounds: Vec<f64>,
}

impl Side {
    pub(crate) fn new(name: &'static str, target: Arc<Target>, cpu: Option<cpu::Source>) -> Side {
        Side {
            name,
            target,
            cpu,
            closed: None,
            closed_ticks: Ticks::default(),
            rounds: Vec::new(),
        }
    }

    /// One measured run, with the server's CPU time over exactly that run.
    async fn measure(&self, plan: Plan) -> anyhow::Result<(Measured, Option<Ticks>)> {
        let before = self.cpu.as_ref().and_then(Ticks::read);
        let measured = driver::measure(self.target.clone(), plan).await?;
        let after = self.cpu.as_ref().and_then(Ticks::read);
        let spent = before.zip(after).map(|(b, a)| a.since(b));
        Ok((measured, spent))
    }

    /// One closed-loop slice, added to this side's totals.
    pub(crate) async fn closed_round(&mut self, plan: Plan) -> anyhow::Result<()> {
        let (measured, spent) = self.measure(plan).await?;
        self.rounds.push(measured.requests_per_sec());
        self.closed_ticks = self.closed_ticks.plus(spent.unwrap_or_default());
        match &mut self.closed {
            Some(total) => total.merge(&measured)?,
            None => self.closed = Some(measured),
        }
        Ok(())
    }

    pub(crate) fn closed_result(&self) -> Option<RunResult> {
        let m = self.closed.as_ref()?;
        let mut r = m.result();
        r.server_cpu = self
            .cpu
            .as_ref()
            .and_then(|_| self.closed_ticks.per_request(m.completed()));
        Some(r)
    }
}

/// `loadtest compare`: baseline and edge under the same generator, body size and settings.
///
/// Closed-loop first, in `rounds` alternating slices (B E E B B E …) whose results are merged
/// per server, so background load that comes and goes during the run is shared fairly; then
/// open-loop, one run each, at `open_fraction` of each server's closed-loop peak.
pub fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let rt = driver::runtime(args.load.threads)?;
    let compared = run_compare(&rt, args, false)?;
    report::print_table(&compared.runs);
    print_summary(&compared.summary);
    write_outputs(
        &args.load,
        &format!(
            "loadtest compare: baseline vs {} ({}-byte body)",
            compared.edge_display, compared.body_bytes
        ),
        &compared.runs,
        &json!({ "summary": compared.summary, "runs": compared.runs }),
    )
}

/// What [`run_compare`] measured.
pub struct Compared {
    pub runs: Vec<RunResult>,
    pub summary: serde_json::Value,
    pub body_bytes: usize,
    pub edge_display: String,
}

/// The measurement behind `compare`, on the generator runtime `rt`, printing nothing but
/// progress. `scatter` spreads requests over all customers (see [`Target::entitlements`]).
pub fn run_compare(
    rt: &tokio::runtime::Runtime,
    args: &CompareArgs,
    scatter: bool,
) -> anyhow::Result<Compared> {
    let load = &args.load;
    let timeout = Duration::from_millis(load.timeout_ms);
    let edge = Arc::new(Target::entitlements(
        &args.edge_url,
        &load.key,
        &load.customer_prefix,
        load.customers,
        Variant::List,
        scatter,
    )?);

    let (status, probe) = rt
        .block_on(edge.fetch_once(0, timeout))
        .with_context(|| format!("probing {}", edge.display))?;
    if !status.is_success() {
        let snippet: String = String::from_utf8_lossy(&probe).chars().take(200).collect();
        bail!("the edge answered the probe with {status}: {snippet}");
    }
    let body_bytes = probe.len();
    println!("edge body: {body_bytes} bytes; starting a baseline server with the same body size");

    let server = baseline::spawn(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        baseline::body_of_len(body_bytes),
        args.baseline_threads,
    )?;
    let base = Arc::new(Target::entitlements(
        &format!("http://{}", server.addr()),
        &load.key,
        &load.customer_prefix,
        load.customers,
        Variant::List,
        scatter,
    )?);
    let mut sides = [
        Side::new(
            "baseline",
            base,
            Some(cpu::Source::OwnThreads(baseline::THREAD_NAME)),
        ),
        Side::new(
            "edge",
            edge.clone(),
            args.edge_pid.map(cpu::Source::Process),
        ),
    ];

    let rounds = u32::from(args.rounds.max(1));
    let slice = load.duration / rounds;
    let runs = rt.block_on(async {
        if !load.warmup.is_zero() {
            for side in &sides {
                let label = format!("{} warm-up", side.name);
                driver::run(side.target.clone(), plan(load, &label, load.warmup, None)).await?;
            }
        }
        for round in 0..rounds {
            // B E, E B, B E, …: each server goes first half of the time.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let side = &mut sides[i];
                let p = plan(load, side.name, slice, None);
                side.closed_round(p).await?;
            }
        }
        let mut runs: Vec<RunResult> = sides.iter().filter_map(Side::closed_result).collect();
        if !args.no_open_loop {
            for side in &sides {
                let label = format!("{} open", side.name);
                let peak = side.closed.as_ref().map_or(0.0, Measured::requests_per_sec);
                let rate = peak * args.open_fraction;
                if rate < 1.0 {
                    eprintln!("{label}: skipped, the closed-loop peak was {peak:.1} req/s");
                    continue;
                }
                let (measured, spent) = side
                    .measure(plan(load, &label, load.duration, Some(rate)))
                    .await?;
                let mut r = measured.result();
                r.server_cpu = spent.and_then(|t| t.per_request(measured.completed()));
                runs.push(r);
            }
        }
        anyhow::Ok(runs)
    })?;
    server.stop()?;

    let summary = summarize(&runs, &sides, body_bytes, args.open_fraction);
    Ok(Compared {
        runs,
        summary,
        body_bytes,
        edge_display: edge.display.clone(),
    })
}

fn find<'a>(runs: &'a [RunResult], label: &str) -> Option<&'a RunResult> {
    runs.iter().find(|r| r.label == label)
}

fn summarize(
    runs: &[RunResult],
    sides: &[Side; 2],
    body_bytes: usize,
    open_fraction: f64,
) -> serde_json::Value {
    let rps = |l| find(runs, l).map(|r| r.requests_per_sec);
    let p99 = |l| find(runs, l).map(|r| r.latency_us.p99);
    let cpu = |l| find(runs, l).and_then(|r| r.server_cpu);
    let ratio = match (rps("edge"), rps("baseline")) {
        (Some(e), Some(b)) if b > 0.0 => Some(e / b),
        _ => None,
    };
    let rounds: Vec<_> = sides[0]
        .rounds
        .iter()
        .zip(&sides[1].rounds)
        .map(|(b, e)| json!({ "baselineRps": b, "edgeRps": e, "ratio": e / b.max(1e-9) }))
        .collect();
    let round_ratios = sides[0]
        .rounds
        .iter()
        .zip(&sides[1].rounds)
        .map(|(b, e)| e / b.max(1e-9));
    let range = round_ratios
        .clone()
        .fold(None, |acc: Option<(f64, f64)>, r| {
            Some(acc.map_or((r, r), |(lo, hi)| (lo.min(r), hi.max(r))))
        });
    let cpu_ratio = match (cpu("edge"), cpu("baseline")) {
        (Some(e), Some(b)) if b.total_us > 0.0 => Some(e.total_us / b.total_us),
        _ => None,
    };
    json!({
        "bodyBytes": body_bytes,
        "baselineRps": rps("baseline"),
        "edgeRps": rps("edge"),
        "throughputRatio": ratio,
        "throughputRatioTarget": THROUGHPUT_RATIO_TARGET,
        "throughputRatioRoundRange": range.map(|(lo, hi)| [lo, hi]),
        "rounds": rounds,
        "serverCpuUsPerRequest": { "baseline": cpu("baseline"), "edge": cpu("edge") },
        "serverCpuRatio": cpu_ratio,
        "closedP99Us": { "baseline": p99("baseline"), "edge": p99("edge") },
        "openLoopFraction": open_fraction,
        "openP99Us": { "baseline": p99("baseline open"), "edge": p99("edge open") },
        "openP99TargetUs": OPEN_P99_TARGET_US,
    })
}

pub fn print_summary(s: &serde_json::Value) {
    println!();
    if let Some(ratio) = s["throughputRatio"].as_f64() {
        println!(
            "throughput edge/baseline = {ratio:.3}  (target >= {THROUGHPUT_RATIO_TARGET}: {})",
            if ratio >= THROUGHPUT_RATIO_TARGET {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    if let Some([lo, hi]) = s["throughputRatioRoundRange"]
        .as_array()
        .and_then(|a| Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?]))
    {
        println!(
            "  per round: {lo:.3} .. {hi:.3} over {} rounds",
            s["rounds"].as_array().map_or(0, Vec::len)
        );
    }
    if let Some(cpu_ratio) = s["serverCpuRatio"].as_f64() {
        println!(
            "server CPU per request: baseline {:.2} us, edge {:.2} us (edge/baseline = {cpu_ratio:.3})",
            s["serverCpuUsPerRequest"]["baseline"]["total_us"]
                .as_f64()
                .unwrap_or(0.0),
            s["serverCpuUsPerRequest"]["edge"]["total_us"]
                .as_f64()
                .unwrap_or(0.0),
        );
    }
    println!(
        "closed-loop p99: baseline {} us, edge {} us",
        s["closedP99Us"]["baseline"], s["closedP99Us"]["edge"]
    );
    if let Some(edge_open) = s["openP99Us"]["edge"].as_u64() {
        println!(
            "open-loop p99 at {:.0}% of peak: baseline {} us, edge {edge_open} us  (target <= {OPEN_P99_TARGET_US} us: {})",
            s["openLoopFraction"].as_f64().unwrap_or(0.0) * 100.0,
            s["openP99Us"]["baseline"],
            if edge_open <= OPEN_P99_TARGET_US {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

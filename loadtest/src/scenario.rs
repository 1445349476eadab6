//! The `edge` and `compare` scenarios, assembled from target, driver, baseline and report.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::baseline;
use crate::cli::{CompareArgs, EdgeArgs, LoadArgs};
use crate::driver::{self, Plan};
use crate::plot;
use crate::report::{self, RunResult};
use crate::target::Target;

/// SPEC §9 targets, printed next to the measurements.
const THROUGHPUT_RATIO_TARGET: f64 = 0.9;
const OPEN_P99_TARGET_US: u64 = 1_000;

fn plan(load: &LoadArgs, label: &str, duration: Duration, rate: Option<f64>) -> Plan {
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

/// `loadtest compare`: baseline and edge under the same generator, body size and settings.
pub fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let load = &args.load;
    let timeout = Duration::from_millis(load.timeout_ms);
    let edge = Arc::new(Target::new(
        &args.edge_url,
        &load.key,
        &load.customer_prefix,
        load.customers,
    )?);
    let rt = driver::runtime(load.threads)?;

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
    let base = Arc::new(Target::new(
        &format!("http://{}", server.addr()),
        &load.key,
        &load.customer_prefix,
        load.customers,
    )?);

    let runs = rt.block_on(async {
        let mut runs = vec![
            measure(&base, load, "baseline", None).await?,
            measure(&edge, load, "edge", None).await?,
        ];
        if !args.no_open_loop {
            for (target, label, peak) in [
                (&base, "baseline open", runs[0].requests_per_sec),
                (&edge, "edge open", runs[1].requests_per_sec),
            ] {
                let rate = peak * args.open_fraction;
                if rate < 1.0 {
                    eprintln!("{label}: skipped, the closed-loop peak was {peak:.1} req/s");
                    continue;
                }
                let p = plan(load, label, load.duration, Some(rate));
                runs.push(driver::run(target.clone(), p).await?);
            }
        }
        anyhow::Ok(runs)
    })?;
    server.stop()?;

    report::print_table(&runs);
    let summary = summarize(&runs, body_bytes, args.open_fraction);
    print_summary(&summary);
    write_outputs(
        load,
        &format!(
            "loadtest compare: baseline vs {} ({body_bytes}-byte body)",
            edge.display
        ),
        &runs,
        &json!({ "summary": summary, "runs": runs }),
    )
}

fn find<'a>(runs: &'a [RunResult], label: &str) -> Option<&'a RunResult> {
    runs.iter().find(|r| r.label == label)
}

fn summarize(runs: &[RunResult], body_bytes: usize, open_fraction: f64) -> serde_json::Value {
    let rps = |l| find(runs, l).map(|r| r.requests_per_sec);
    let p99 = |l| find(runs, l).map(|r| r.latency_us.p99);
    let ratio = match (rps("edge"), rps("baseline")) {
        (Some(e), Some(b)) if b > 0.0 => Some(e / b),
        _ => None,
    };
    json!({
        "bodyBytes": body_bytes,
        "baselineRps": rps("baseline"),
        "edgeRps": rps("edge"),
        "throughputRatio": ratio,
        "throughputRatioTarget": THROUGHPUT_RATIO_TARGET,
        "closedP99Us": { "baseline": p99("baseline"), "edge": p99("edge") },
        "openLoopFraction": open_fraction,
        "openP99Us": { "baseline": p99("baseline open"), "edge": p99("edge open") },
        "openP99TargetUs": OPEN_P99_TARGET_US,
    })
}

fn print_summary(s: &serde_json::Value) {
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

//! Results of a run, as a table for people and JSON for tools.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::PerRequest;

/// An open-loop run sustained its offered rate when its successful responses per second reached
/// at least this fraction of it (the elapsed time includes draining the last responses).
pub const SUSTAINED_FRACTION: f64 = 0.97;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    /// Responses received (any status).
    pub completed: u64,
    /// 2xx and 304 responses.
    pub ok: u64,
    /// Other statuses.
    pub errors: u64,
    /// Connect, protocol or body errors.
    pub io_errors: u64,
    pub timeouts: u64,
    /// Open-loop slots never sent before the run's hard end.
    pub missed: u64,
    pub body_bytes: u64,
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub samples: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            samples: h.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub label: String,
    pub target: String,
    pub mode: Mode,
    pub connections: u16,
    pub target_rate: Option<f64>,
    pub elapsed_secs: f64,
    pub requests_per_sec: f64,
    pub counts: Counts,
    pub latency_us: Latency,
    /// Open-loop only: how late the generator itself sent requests on idle connections.
    pub generator_lag_us: Option<Latency>,
    /// `(quantile, microseconds)` points of the latency distribution, for plotting.
    pub percentiles: Vec<(f64, u64)>,
    /// Server CPU time per request, where the server's process could be watched.
    #[serde(rename = "serverCpuUsPerRequest")]
    pub server_cpu: Option<PerRequest>,
    /// Responses by status or by a field of the body, where the scenario counts them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tally: BTreeMap<String, u64>,
    /// Status and start of the body of the first failed response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl RunResult {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: String,
        target: String,
        mode: Mode,
        connections: u16,
        target_rate: Option<f64>,
        elapsed: Duration,
        counts: Counts,
        latency: &Histogram<u64>,
        lag: Option<&Histogram<u64>>,
    ) -> RunResult {
        let secs = elapsed.as_secs_f64().max(1e-9);
        RunResult {
            label,
            target,
            mode,
            connections,
            target_rate,
            elapsed_secs: secs,
            requests_per_sec: counts.completed as f64 / secs,
            counts,
            latency_us: Latency::of(latency),
            generator_lag_us: lag.map(Latency::of),
            percentiles: latency
                .iter_quantiles(2)
                .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
                .collect(),
            server_cpu: None,
            tally: BTreeMap::new(),
            first_error: None,
        }
    }
}

pub fn print_table(runs: &[RunResult]) {
    println!(
        "{:<18} {:>6} {:>5} {:>10} {:>10} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "run",
        "mode",
        "conns",
        "target/s",
        "req/s",
        "errors",
        "io/tmo",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "cpu us/req"
    );
    for r in runs {
        let l = &r.latency_us;
        let target = r
            .target_rate
            .map_or_else(|| "-".into(), |t| format!("{t:.0}"));
        let mode = match r.mode {
            Mode::Closed => "closed",
            Mode::Open => "open",
        };
        let cpu = r
            .server_cpu
            .map_or_else(|| "-".into(), |c| format!("{:.2}", c.total_us));
        println!(
            "{:<18} {:>6} {:>5} {:>10} {:>10.0} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
            r.label,
            mode,
            r.connections,
            target,
            r.requests_per_sec,
            r.counts.errors,
            r.counts.io_errors + r.counts.timeouts + r.counts.missed,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            cpu
        );
    }
    for r in runs {
        if !r.tally.is_empty() {
            let parts: Vec<String> = r.tally.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("{}: {}", r.label, parts.join(", "));
        }
        if let Some(e) = &r.first_error {
            println!("{}: first error: {e}", r.label);
        }
        if let Some(lag) = &r.generator_lag_us {
            println!(
                "{}: generator lag p99 {} us, max {} us{}",
                r.label,
                lag.p99,
                lag.max,
                if r.counts.missed > 0 {
                    format!(", {} slots missed", r.counts.missed)
                } else {
                    String::new()
                }
            );
        }
    }
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serializing results")?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

//! `loadtest edge-scale`: the edge at N customers (default 1,000,000), end to end (issue 8).
//!
//! 1. Builds a synthetic protocol-1 snapshot of N customers in memory ([`snapshot`]).
//! 2. Starts a stand-in control plane serving it ([`standin`]) and the real `edge` binary
//!    against it ([`process`]); reads the edge's RSS while it is connected but still empty.
//! 3. Releases the snapshot and polls `/readyz` until 200: *snapshot-ready seconds* count from
//!    the first byte of the stream. RSS once loaded, minus the empty RSS, over N: *bytes per
//!    customer*.
//! 4. Reload: the stand-in drops the stream and serves the snapshot again at the next version;
//!    the edge's peak RSS while it loads the new one beside the old, over the steady RSS.
//! 5. Throughput and latency against the minimal hyper baseline (`compare`'s method: same
//!    generator, same body size, alternating rounds), requests scattered over all N customers;
//!    then list vs single-feature vs `feature_id` reads of the edge alone; then one
//!    `If-None-Match` request, which must be answered 304.
//! 6. Prints a summary and writes `edge-scale-{label}-{N}.json` and `.svg` (latency
//!    percentiles) into the results directory.

pub(crate) mod process;
pub(crate) mod snapshot;
pub(crate) mod standin;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::header::{ETAG, HeaderValue, IF_NONE_MATCH};
use serde_json::{Value, json};

use crate::cli::{CompareArgs, EdgeScaleArgs, LoadArgs};
use crate::driver::{self, Measured};
use crate::report::{self, RunResult};
use crate::scenario;
use crate::target::{Sender, Target, Variant};
use process::{EdgeProcess, Memory};
use standin::StandIn;

const VERSION: u64 = 1_000;
const FEATURE: &str = "api-calls";

pub fn run(args: &EdgeScaleArgs) -> anyhow::Result<()> {
    let n = args.customers;
    let bin = args
        .edge_bin
        .clone()
        .unwrap_or_else(process::default_edge_bin);
    println!("edge-scale: {n} customers, edge {}", bin.display());

    let started = Instant::now();
    let chunks = snapshot::chunk_lines(&args.customer_prefix, n, 2);
    let stream_bytes: usize = chunks.iter().map(Bytes::len).sum();
    println!(
        "snapshot: {} chunk frames, {:.1} MB, generated in {:.1} s",
        chunks.len(),
        stream_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let standin = StandIn::start(chunks, n, VERSION)?;

    let mut edge_args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--control-plane-url".to_owned(),
        standin.url(),
        "--sync-key".to_owned(),
        snapshot::SYNC_KEY.to_owned(),
    ];
    edge_args.extend(args.edge_arg.iter().cloned());
    let edge = EdgeProcess::start(&bin, &edge_args)?;
    let rt = driver::runtime(args.threads)?;
    let probe = Arc::new(Target::entitlements(
        &edge.url(),
        snapshot::KEY,
        &args.customer_prefix,
        n,
        Variant::List,
        true,
    )?);

    let figures = rt.block_on(load_figures(args, &edge, &standin, &probe))?;
    print_load(&figures, n);

    let mut runs: Vec<RunResult> = Vec::new();
    let mut compare_summary = Value::Null;
    if !args.no_throughput {
        let compare = CompareArgs {
            edge_url: edge.url(),
            open_fraction: args.open_fraction,
            no_open_loop: args.no_open_loop,
            baseline_threads: None,
            rounds: args.rounds,
            edge_pid: Some(edge.pid()),
            load: load_args(args),
        };
        let compared = scenario::run_compare(&rt, &compare, true)?;
        report::print_table(&compared.runs);
        scenario::print_summary(&compared.summary);
        compare_summary = compared.summary;
        runs.extend(compared.runs);
    }
    let mut variants = Value::Null;
    if !args.no_variants {
        let (vruns, summary) = rt.block_on(variant_rounds(args, &edge))?;
        report::print_table(&vruns);
        println!(
            "closed-loop edge, feature/list: path {}, feature_id {}",
            summary["featurePathVsList"], summary["featureQueryVsList"]
        );
        variants = summary;
        runs.extend(vruns);
    }
    let not_modified = rt.block_on(check_not_modified(&probe, args.timeout()))?;
    println!("If-None-Match with the ETag: HTTP {not_modified}");

    let metrics = rt.block_on(edge_metrics(&probe, args.timeout()))?;
    let log = edge.log_lines("snapshot");
    let result = json!({
        "label": args.label,
        "customers": n,
        "streamBytes": stream_bytes,
        "load": figures.to_json(n),
        "compare": compare_summary,
        "variants": variants,
        "ifNoneMatchStatus": not_modified,
        "edgeMetrics": metrics,
        "edgeSnapshotLog": log,
        "runs": runs,
    });
    edge.stop()?;
    standin.stop()?;

    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("creating {}", args.results.display()))?;
    let stem = format!("edge-scale-{}-{}", args.label, n);
    report::write_json(&args.results.join(format!("{stem}.json")), &result)?;
    if !runs.is_empty() {
        crate::plot::write(
            &args.results.join(format!("{stem}.svg")),
            &format!("loadtest edge-scale: {} customers ({})", n, args.label),
            &runs,
        )?;
    }
    Ok(())
}

fn load_args(args: &EdgeScaleArgs) -> LoadArgs {
    LoadArgs {
        key: snapshot::KEY.to_owned(),
        customers: args.customers,
        customer_prefix: args.customer_prefix.clone(),
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        threads: args.threads,
        timeout_ms: args.timeout_ms,
        max_requests: 100_000_000,
        json: None,
        plot: None,
        quiet: args.quiet,
    }
}

/// What loading the snapshot cost.
struct LoadFigures {
    empty: Memory,
    loaded: Memory,
    /// First byte of the stream → `/readyz` 200.
    ready_secs: f64,
    /// First → last byte of the stream (how fast the edge consumed it).
    stream_secs: f64,
    reload: Option<Reload>,
    readyz: Value,
}

struct Reload {
    ready_secs: f64,
    /// Peak RSS while the second snapshot loaded beside the first.
    peak: u64,
    after: Memory,
}

impl LoadFigures {
    fn to_json(&self, n: u64) -> Value {
        let held = self.loaded.rss.saturating_sub(self.empty.rss);
        json!({
            "emptyRssBytes": self.empty.rss,
            "loadedRssBytes": self.loaded.rss,
            "loadedPeakRssBytes": self.loaded.peak,
            "bytesPerCustomer": held as f64 / n as f64,
            "bytesPerCustomerTarget": 256,
            "snapshotReadySecs": self.ready_secs,
            "snapshotReadyTargetSecs": 2.0,
            "streamSecs": self.stream_secs,
            "reload": self.reload.as_ref().map(|r| json!({
                "readySecs": r.ready_secs,
                "peakRssBytes": r.peak,
                "peakOverSteady": r.peak as f64 / self.loaded.rss.max(1) as f64,
                "peakOverSteadyTarget": 2.0,
                "rssAfterBytes": r.after.rss,
            })),
            "readyz": self.readyz,
        })
    }
}

fn print_load(f: &LoadFigures, n: u64) {
    let mb = |b: u64| b as f64 / 1e6;
    let held = f.loaded.rss.saturating_sub(f.empty.rss);
    println!();
    println!(
        "RSS: empty {:.1} MB, loaded {:.1} MB (peak while loading {:.1} MB)",
        mb(f.empty.rss),
        mb(f.loaded.rss),
        mb(f.loaded.peak)
    );
    println!(
        "bytes per customer: {:.0}  (target <= 256, stretch 128)",
        held as f64 / n as f64
    );
    println!(
        "snapshot ready: {:.2} s from the first byte (stream consumed in {:.2} s)  (target <= 2 s, stretch 1 s)",
        f.ready_secs, f.stream_secs
    );
    if let Some(r) = &f.reload {
        println!(
            "reload: ready in {:.2} s, peak RSS {:.1} MB = {:.2} x steady (target < 2), after {:.1} MB",
            r.ready_secs,
            mb(r.peak),
            r.peak as f64 / f.loaded.rss.max(1) as f64,
            mb(r.after.rss)
        );
    }
    println!();
}

async fn get(
    target: &Target,
    sender: &mut Option<Sender>,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(target.connect(timeout).await?);
    }
    let Some(s) = sender.as_mut() else {
        bail!("no connection")
    };
    let work = async {
        s.ready().await?;
        let resp = s.send_request(target.get(path)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            *sender = None;
            Err(e)
        }
        Err(_) => {
            *sender = None;
            bail!("{path} timed out")
        }
    }
}

/// Polls `/readyz` until it is 200 at `version`; returns when that was seen and the body.
pub(crate) async fn wait_ready(
    target: &Target,
    version: u64,
    deadline: Duration,
) -> anyhow::Result<(Instant, Value)> {
    let until = Instant::now() + deadline;
    let mut conn = None;
    while Instant::now() < until {
        if let Ok((status, body)) = get(target, &mut conn, "/readyz", Duration::from_secs(5)).await
        {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status == StatusCode::OK && v["version"].as_u64() == Some(version) {
                return Ok((Instant::now(), v));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!("the edge was not ready at version {version} within {deadline:?}")
}

async fn load_figures(
    args: &EdgeScaleArgs,
    edge: &EdgeProcess,
    standin: &StandIn,
    probe: &Target,
) -> anyhow::Result<LoadFigures> {
    let until = Instant::now() + Duration::from_secs(30);
    while standin.requests().is_empty() {
        if Instant::now() > until {
            bail!("the edge never opened the sync stream");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let start-up allocations settle before reading the empty edge.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let empty = edge.memory()?;
    edge.reset_peak()?;
    standin.release();
    let deadline = Duration::from_secs(args.ready_timeout_secs);
    let (ready_at, _) = wait_ready(probe, VERSION, deadline).await?;
    let sent = *standin
        .sent()
        .first()
        .context("the stand-in sent no snapshot")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = edge.memory()?;

    let mut reload = None;
    if !args.no_reload {
        edge.reset_peak()?;
        standin.reload_at(VERSION + 1);
        let (ready, _) = wait_ready(probe, VERSION + 1, deadline).await?;
        let sent = standin
            .sent()
            .into_iter()
            .find(|s| s.version == VERSION + 1)
            .context("the stand-in sent no second snapshot")?;
        let peak = edge.memory()?.peak;
        tokio::time::sleep(Duration::from_secs(2)).await;
        reload = Some(Reload {
            ready_secs: ready
                .saturating_duration_since(sent.first_byte)
                .as_secs_f64(),
            peak,
            after: edge.memory()?,
        });
    }
    let version = if args.no_reload { VERSION } else { VERSION + 1 };
    let (_, readyz) = wait_ready(probe, version, deadline).await?;
    Ok(LoadFigures {
        empty,
        loaded,
        ready_secs: ready_at
            .saturating_duration_since(sent.first_byte)
            .as_secs_f64(),
        stream_secs: sent
            .last_byte
            .saturating_duration_since(sent.first_byte)
            .as_secs_f64(),
        reload,
        readyz,
    })
}

/// Closed-loop rounds of list, single-feature (path) and `feature_id` reads, alternating so
/// background load hits each alike.
async fn variant_rounds(
    args: &EdgeScaleArgs,
    edge: &EdgeProcess,
) -> anyhow::Result<(Vec<RunResult>, Value)> {
    let load = load_args(args);
    let names = ["edge list", "edge feature", "edge feature_id"];
    let variants = [
        Variant::List,
        Variant::FeaturePath(FEATURE.into()),
        Variant::FeatureQuery(FEATURE.into()),
    ];
    let mut targets = Vec::new();
    for v in variants {
        targets.push(Arc::new(Target::entitlements(
            &edge.url(),
            snapshot::KEY,
            &args.customer_prefix,
            args.customers,
            v,
            true,
        )?));
    }
    let rounds = u32::from(args.rounds.max(1));
    let slice = args.duration / rounds;
    let mut merged: Vec<Option<Measured>> = vec![None, None, None];
    for (i, t) in targets.iter().enumerate() {
        let warm = scenario::plan(&load, &format!("{} warm-up", names[i]), args.warmup, None);
        driver::run(t.clone(), warm).await?;
    }
    for round in 0..rounds {
        let order: Vec<usize> = (0..3).map(|k| (k + round as usize) % 3).collect();
        for i in order {
            let m = driver::measure(
                targets[i].clone(),
                scenario::plan(&load, names[i], slice, None),
            )
            .await?;
            match &mut merged[i] {
                Some(total) => total.merge(&m)?,
                slot => *slot = Some(m),
            }
        }
    }
    let runs: Vec<RunResult> = merged.iter().flatten().map(Measured::result).collect();
    let rps = |i: usize| runs.get(i).map_or(0.0, |r| r.requests_per_sec);
    let p99 = |i: usize| runs.get(i).map_or(0, |r| r.latency_us.p99);
    let summary = json!({
        "listRps": rps(0),
        "featurePathRps": rps(1),
        "featureQueryRps": rps(2),
        "featurePathVsList": rps(1) / rps(0).max(1e-9),
        "featureQueryVsList": rps(2) / rps(0).max(1e-9),
        "p99Us": { "list": p99(0), "featurePath": p99(1), "featureQuery": p99(2) },
    });
    Ok((runs, summary))
}

/// Asks for customer 0 once, then again with its ETag in `If-None-Match`; returns the status
/// of the second answer (304 expected).
async fn check_not_modified(target: &Target, timeout: Duration) -> anyhow::Result<u16> {
    let mut sender = target.connect(timeout).await?;
    sender.ready().await?;
    let first = sender.send_request(target.request(0)?).await?;
    let etag = first
        .headers()
        .get(ETAG)
        .cloned()
        .unwrap_or(HeaderValue::from_static("\"none\""));
    first.into_body().collect().await?;
    let mut again = target.request(0)?;
    again.headers_mut().insert(IF_NONE_MATCH, etag);
    sender.ready().await?;
    let second = sender.send_request(again).await?;
    Ok(second.status().as_u16())
}

/// The edge's own `tollgate_edge_*` metric lines.
async fn edge_metrics(target: &Target, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let mut conn = None;
    let (_, body) = get(target, &mut conn, "/metrics", timeout).await?;
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("tollgate_edge_") && !l.contains("requests_total"))
        .map(str::to_owned)
        .collect())
}

impl EdgeScaleArgs {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

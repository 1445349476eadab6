//! `loadtest edge-apps`: the edge for client apps (issue 20), end to end, every figure a ratio
//! against a baseline measured in the same run.
//!
//! 1. A synthetic snapshot of N customers (default 100,000; `edge-scale`'s generator) served by
//!    the in-process stand-in control plane to a real `edge` process.
//! 2. **OFREP**: closed-loop rounds alternating five sides — the minimal hyper server with a
//!    body of the OFREP single answer's size (it does not even read the request), the same
//!    server reading each request's body first (what any server of POSTed evaluations must
//!    do), OFREP single evaluation (`POST /ofrep/v1/evaluate/flags/api-calls`, customers
//!    scattered over all N), the body-reading server with the bulk answer's size, and OFREP
//!    bulk evaluation. The same request bodies go to the baselines, so the generator does the
//!    same work for all.
//! 3. **Fan-out**: one subscriber to one customer's stream; K changes to that customer, each
//!    pushed by the stand-in as one delta: delivery = event received − delta handed to the
//!    sync stream. Then `--subscribers` (10,000) streams of that customer and the same K
//!    changes: the p99 over every (subscriber, change), against the single subscriber's.
//! 4. **GET beside subscribers**: closed-loop GET rounds without streams, with the 10,000
//!    connected (idle, heartbeating), with, without: the ratio of the two throughputs. The
//!    edge's RSS with and without them gives the memory per stream.
//!
//! Writes `edge-apps-{label}-{N}.json` (and `.svg`) into the results directory.

mod sse;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tollgate_shared::sync::{Change, Delta, Frame, FrameBody};
use tollgate_shared::{CustomerEntitlements, Mode};

use crate::baseline;
use crate::cli::{EdgeAppsArgs, LoadArgs};
use crate::cpu;
use crate::driver::{self, Measured};
use crate::edge_scale::process::{self as edge_process, EdgeProcess};
use crate::edge_scale::snapshot;
use crate::edge_scale::standin::StandIn;
use crate::edge_scale::wait_ready;
use crate::report::{self, RunResult};
use crate::scenario::{self, Side};
use crate::target::{Target, Variant, scatter_index};

const VERSION: u64 = 1_000;
/// The customer every stream follows.
const STREAMED: u64 = 7;
/// OFREP's goal for single evaluation against the baseline (issue 20).
const OFREP_TARGET: f64 = 0.85;
/// GET throughput with the streams connected against without them.
const GET_TARGET: f64 = 0.8;

pub fn run(args: &EdgeAppsArgs) -> anyhow::Result<()> {
    let n = args.customers;
    let bin = args
        .edge_bin
        .clone()
        .unwrap_or_else(edge_process::default_edge_bin);
    println!("edge-apps: {n} customers, edge {}", bin.display());
    let chunks = snapshot::chunk_lines(&args.customer_prefix, n, 2);
    let standin = StandIn::start(chunks, n, VERSION)?;
    standin.release();
    let max_streams = args.subscribers as usize + 16;
    let mut edge_args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--control-plane-url".to_owned(),
        standin.url(),
        "--sync-key".to_owned(),
        snapshot::SYNC_KEY.to_owned(),
        format!("--max-streams={max_streams}"),
        format!("--max-connections={}", max_streams + 1_024),
    ];
    edge_args.extend(args.edge_arg.iter().cloned());
    let edge = EdgeProcess::start(&bin, &edge_args)?;
    let rt = driver::runtime(args.threads)?;
    let probe = Target::entitlements(
        &edge.url(),
        snapshot::KEY,
        &args.customer_prefix,
        n,
        Variant::List,
        true,
    )?;
    rt.block_on(wait_ready(&probe, VERSION, Duration::from_secs(300)))?;
    println!("snapshot loaded");

    let mut runs = Vec::new();
    let mut summary = serde_json::Map::new();
    if !args.no_ofrep {
        let (r, s) = ofrep(&rt, args, &edge)?;
        runs.extend(r);
        summary.insert("ofrep".into(), s);
    }
    if !args.no_streams {
        let (r, s) = rt.block_on(streams(args, &edge, &standin))?;
        runs.extend(r);
        summary.insert("streams".into(), s);
    }
    let summary = Value::Object(summary);
    println!("\n{}", serde_json::to_string_pretty(&summary)?);
    report::print_table(&runs);

    edge.stop()?;
    standin.stop()?;
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("creating {}", args.results.display()))?;
    let stem = format!("edge-apps-{}-{}", args.label, n);
    let result = json!({ "label": args.label, "customers": n, "summary": summary, "runs": runs });
    report::write_json(&args.results.join(format!("{stem}.json")), &result)?;
    if !runs.is_empty() {
        crate::plot::write(
            &args.results.join(format!("{stem}.svg")),
            &format!("loadtest edge-apps: {n} customers ({})", args.label),
            &runs,
        )?;
    }
    Ok(())
}

fn load_args(args: &EdgeAppsArgs) -> LoadArgs {
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

/// `{"context":{"targetingKey":"cus_…"}}` for request `i`, customers scattered over all `n`.
fn context_body(prefix: String, n: u64) -> crate::target::BodyFn {
    Box::new(move |i| {
        Bytes::from(format!(
            "{{\"context\":{{\"targetingKey\":\"{prefix}{}\",\"app\":\"loadtest\"}}}}",
            scatter_index(i) % n
        ))
    })
}

fn ofrep(
    rt: &tokio::runtime::Runtime,
    args: &EdgeAppsArgs,
    edge: &EdgeProcess,
) -> anyhow::Result<(Vec<RunResult>, Value)> {
    let load = load_args(args);
    let n = args.customers;
    let prefix = &args.customer_prefix;
    let single_path = "/ofrep/v1/evaluate/flags/api-calls";
    let bulk_path = "/ofrep/v1/evaluate/flags";
    let post = |url: &str, path: &str| {
        Target::post_json(url, snapshot::KEY, path, context_body(prefix.clone(), n)).map(Arc::new)
    };
    let single = post(&edge.url(), single_path)?;
    let bulk = post(&edge.url(), bulk_path)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let size = |t: &Target| -> anyhow::Result<usize> {
        let (status, body) = rt.block_on(t.fetch_once(1, timeout))?;
        if !status.is_success() {
            bail!(
                "{} answered {status}: {}",
                t.display,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body.len())
    };
    let (single_bytes, bulk_bytes) = (size(&single)?, size(&bulk)?);
    println!("OFREP bodies: single {single_bytes} bytes, bulk {bulk_bytes} bytes");
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let base_fixed = baseline::spawn(local, baseline::body_of_len(single_bytes), None)?;
    let base_single = baseline::spawn_reading(local, baseline::body_of_len(single_bytes), None)?;
    let base_bulk = baseline::spawn_reading(local, baseline::body_of_len(bulk_bytes), None)?;
    let edge_cpu = || Some(cpu::Source::Process(edge.pid()));
    let base_cpu = || Some(cpu::Source::OwnThreads(baseline::THREAD_NAME));
    let url = |r: &baseline::Running| format!("http://{}", r.addr());
    let mut sides = [
        Side::new(
            "baseline (fixed)",
            post(&url(&base_fixed), single_path)?,
            base_cpu(),
        ),
        Side::new(
            "baseline (reads body)",
            post(&url(&base_single), single_path)?,
            base_cpu(),
        ),
        Side::new("ofrep single", single, edge_cpu()),
        Side::new(
            "baseline (bulk size)",
            post(&url(&base_bulk), bulk_path)?,
            base_cpu(),
        ),
        Side::new("ofrep bulk", bulk, edge_cpu()),
    ];
    let rounds = u32::from(args.rounds.max(1));
    let slice = args.duration / rounds;
    rt.block_on(async {
        for side in &sides {
            let warm = scenario::plan(&load, &format!("{} warm-up", side.name), args.warmup, None);
            driver::run(side.target.clone(), warm).await?;
        }
        for round in 0..rounds {
            // Forwards, backwards, and rotated: background load hits every side alike.
            let mut order = [0usize, 1, 2, 3, 4];
            order.rotate_left(round as usize % 5);
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let side = &mut sides[i];
                side.closed_round(scenario::plan(&load, side.name, slice, None))
                    .await?;
            }
        }
        anyhow::Ok(())
    })?;
    base_fixed.stop()?;
    base_single.stop()?;
    base_bulk.stop()?;
    let runs: Vec<RunResult> = sides.iter().filter_map(Side::closed_result).collect();
    let rps = |i: usize| {
        sides[i]
            .closed
            .as_ref()
            .map_or(0.0, Measured::requests_per_sec)
    };
    let cpu_us = |i: usize| runs.get(i).and_then(|r| r.server_cpu).map(|c| c.total_us);
    let p99 = |i: usize| runs.get(i).map(|r| r.latency_us.p99);
    let round_ratios = |b: usize, e: usize| -> Vec<f64> {
        sides[b]
            .rounds
            .iter()
            .zip(&sides[e].rounds)
            .map(|(b, e)| e / b.max(1e-9))
            .collect()
    };
    let fixed_ratio = rps(2) / rps(0).max(1e-9);
    let single_ratio = rps(2) / rps(1).max(1e-9);
    let bulk_ratio = rps(4) / rps(3).max(1e-9);
    let met = |r: f64| if r >= OFREP_TARGET { "met" } else { "NOT met" };
    println!(
        "OFREP single / baseline = {fixed_ratio:.3} against the fixed-body server ({}), \
         {single_ratio:.3} against the one that reads the body ({}); goal >= {OFREP_TARGET}; \
         bulk / baseline (reads body) = {bulk_ratio:.3}",
        met(fixed_ratio),
        met(single_ratio)
    );
    let summary = json!({
        "bodyBytes": { "single": single_bytes, "bulk": bulk_bytes },
        "rps": { "baselineFixed": rps(0), "baselineReadsBody": rps(1), "single": rps(2),
            "baselineBulk": rps(3), "bulk": rps(4) },
        "singleRatioFixedBaseline": fixed_ratio,
        "singleRatio": single_ratio,
        "singleRatioGoal": OFREP_TARGET,
        "singleRoundRatiosFixedBaseline": round_ratios(0, 2),
        "singleRoundRatios": round_ratios(1, 2),
        "bulkRatio": bulk_ratio,
        "bulkRoundRatios": round_ratios(3, 4),
        "serverCpuUsPerRequest": {
            "baselineFixed": cpu_us(0), "baselineReadsBody": cpu_us(1), "single": cpu_us(2),
            "baselineBulk": cpu_us(3), "bulk": cpu_us(4),
        },
        "p99Us": { "baselineFixed": p99(0), "baselineReadsBody": p99(1), "single": p99(2),
            "baselineBulk": p99(3), "bulk": p99(4) },
    });
    Ok((runs, summary))
}

/// A delta at `version` changing the streamed customer (its usage becomes `version`).
fn delta_line(prefix: &str, version: u64) -> Bytes {
    let mut entitlements = snapshot::entitlements_for(STREAMED);
    if let Some(e) = entitlements.first_mut() {
        e.current_usage = Some(version as i64 % 1_000);
        e.remaining = None;
    }
    let change = Change::Customer(CustomerEntitlements {
        mode: Mode::Test,
        customer_id: format!("{prefix}{STREAMED}"),
        entitlements,
    });
    Bytes::from(
        Frame::new(FrameBody::Delta(Delta {
            version,
            changes: vec![change],
        }))
        .to_line(),
    )
}

/// Pushes `changes` deltas one after the other, each once every subscriber has the last; the
/// delivery latency of every (subscriber, change).
async fn fan_out(
    standin: &StandIn,
    subs: &sse::Subscribers,
    prefix: &str,
    first_version: u64,
    changes: u64,
) -> anyhow::Result<(Histogram<u64>, Vec<f64>)> {
    let mut hist = driver::histogram()?;
    let mut all_delivered_ms = Vec::new();
    for k in 0..changes {
        let version = first_version + k;
        let sent = standin.push(delta_line(prefix, version));
        let deadline = Instant::now() + Duration::from_secs(60);
        while subs.delivered(version) < subs.count {
            if Instant::now() > deadline {
                bail!(
                    "change {version}: {} of {} subscribers got it",
                    subs.delivered(version),
                    subs.count
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let arrivals = subs.arrivals(version);
        let mut last = sent;
        for at in &arrivals {
            let us = at.saturating_duration_since(sent).as_micros() as u64;
            hist.record(us.max(1))?;
            last = last.max(*at);
        }
        all_delivered_ms.push(last.saturating_duration_since(sent).as_secs_f64() * 1e3);
        // Spaced out, so each change is measured on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((hist, all_delivered_ms))
}

fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "samples": h.len(),
        "p50Us": h.value_at_quantile(0.50),
        "p90Us": h.value_at_quantile(0.90),
        "p99Us": h.value_at_quantile(0.99),
        "maxUs": h.max(),
    })
}

async fn streams(
    args: &EdgeAppsArgs,
    edge: &EdgeProcess,
    standin: &StandIn,
) -> anyhow::Result<(Vec<RunResult>, Value)> {
    let prefix = args.customer_prefix.clone();
    let streamed = format!("{prefix}{STREAMED}");
    let mut version = VERSION + 1;

    // One subscriber.
    let one = sse::Subscribers::open(&edge.addr, snapshot::KEY, 1, |_| streamed.clone(), 1).await?;
    let (single, _) = fan_out(standin, &one, &prefix, version, args.changes).await?;
    version += args.changes;
    one.close();
    println!(
        "1 subscriber: delivery p50 {} µs, p99 {} µs",
        single.value_at_quantile(0.5),
        single.value_at_quantile(0.99)
    );

    // GET without streams, first round.
    let load = load_args(args);
    let get = Arc::new(Target::entitlements(
        &edge.url(),
        snapshot::KEY,
        &prefix,
        args.customers,
        Variant::List,
        true,
    )?);
    // Rounds alternate: without, with × half, without × (half − 1) (at least one each).
    let rounds = u32::from(args.rounds.max(2));
    let half = rounds / 2;
    let slice = args.duration / rounds;
    let edge_cpu = || Some(cpu::Source::Process(edge.pid()));
    let mut without = Side::new("get, no streams", get.clone(), edge_cpu());
    let mut with = Side::new("get, streams open", get.clone(), edge_cpu());
    driver::run(
        get.clone(),
        scenario::plan(&load, "get warm-up", args.warmup, None),
    )
    .await?;
    without
        .closed_round(scenario::plan(&load, without.name, slice, None))
        .await?;

    // Ten thousand subscribers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = edge.memory()?;
    let opened = Instant::now();
    let many = sse::Subscribers::open(
        &edge.addr,
        snapshot::KEY,
        args.subscribers as usize,
        |_| streamed.clone(),
        256,
    )
    .await?;
    let open_secs = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = edge.memory()?;
    println!(
        "{} subscribers open in {open_secs:.1} s; edge RSS {:.1} -> {:.1} MB",
        args.subscribers,
        before.rss as f64 / 1e6,
        after.rss as f64 / 1e6
    );
    for _ in 0..half {
        with.closed_round(scenario::plan(&load, with.name, slice, None))
            .await?;
    }
    let (fanned, all_ms) = fan_out(standin, &many, &prefix, version, args.changes).await?;
    println!(
        "{} subscribers: delivery p50 {} µs, p99 {} µs",
        args.subscribers,
        fanned.value_at_quantile(0.5),
        fanned.value_at_quantile(0.99)
    );
    many.close();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 1..half {
        without
            .closed_round(scenario::plan(&load, without.name, slice, None))
            .await?;
    }

    let p99_ratio =
        fanned.value_at_quantile(0.99) as f64 / single.value_at_quantile(0.99).max(1) as f64;
    let rps = |s: &Side| s.closed.as_ref().map_or(0.0, Measured::requests_per_sec);
    let get_ratio = rps(&with) / rps(&without).max(1e-9);
    println!(
        "fan-out p99 / single p99 = {p99_ratio:.2}; GET with/without streams = {get_ratio:.3} (goal >= {GET_TARGET}: {})",
        if get_ratio >= GET_TARGET {
            "met"
        } else {
            "NOT met"
        }
    );
    let runs: Vec<RunResult> = [&without, &with]
        .into_iter()
        .filter_map(Side::closed_result)
        .collect();
    let summary = json!({
        "subscribers": args.subscribers,
        "changes": args.changes,
        "single": percentiles(&single),
        "fanOut": percentiles(&fanned),
        "fanOutAllDeliveredMs": all_ms,
        "p99Ratio": p99_ratio,
        "openSecs": open_secs,
        "edgeRss": { "before": before.rss, "after": after.rss,
            "bytesPerStream": (after.rss.saturating_sub(before.rss)) as f64 / args.subscribers.max(1) as f64 },
        "get": {
            "withoutRps": rps(&without), "withRps": rps(&with), "ratio": get_ratio, "goal": GET_TARGET,
            "withoutRounds": without.rounds, "withRounds": with.rounds,
        },
    });
    Ok((runs, summary))
}

//! `loadtest control-plane`: open-loop write load on a control plane, against SPEC §9's
//! "≥ 2,000 usage reports/s and ≥ 500 subscription changes/s on SQLite, p99 ≤ 25 ms".
//!
//! * `--mix usage`: request `i` is `POST /api/v1/usage/ {"customerId": "{prefix}{i mod N}",
//!   "featureId": "api-calls", "quantity": 1}`.
//! * `--mix subscriptions`: a setup phase first puts `pm_card_visa` on file for every customer
//!   (`POST /api/v1/customers/{id}/payment-methods/`, with an idempotency key, so re-runs replay
//!   it). Then request `i` is `POST /api/v1/subscribe/` for customer `i mod N`, MONTHLY,
//!   alternating `enterprise` and `pro` on the customer's successive visits (`i / N`). Which
//!   one comes first is read per customer before each measured run
//!   (`GET /api/v1/subscriptions/?customer_id=…`), so that no request is a no-op: `pro` first
//!   for a customer on Enterprise with nothing pending, `enterprise` first for everyone else.
//!   So a Pro customer's first visit is an upgrade (prorated invoice, charged now), a free
//!   customer's a new subscription (Enterprise has a trial, so no charge); moving back to Pro is
//!   a downgrade scheduled for period end, and the next Enterprise request resumes (clears the
//!   pending change), and so on: after the first visit, steady state is scheduled downgrades and
//!   resumes. The answers' `action`s are counted and reported, so what the rate consisted of is
//!   on record.
//!
//! The load is the driver's open loop (no coordinated omission: see `driver::open`), optionally
//! followed by a closed-loop run that finds the peak rate (after, so that the open-loop run gets
//! the customers' first visits). No request carries an idempotency key,
//! so the measured requests are the writes themselves and nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::{self, Api, describe};
use crate::cli::{ControlPlaneArgs, Mix};
use crate::cpu::{self, Ticks};
use crate::driver::{self, Measured, Plan};
use crate::plot;
use crate::report::{self, RunResult};
use crate::target::{BodyFn, Tally, Target, ensure_loopback};

/// SPEC §9.
pub const USAGE_RATE_TARGET: f64 = 2000.0;
pub const SUBSCRIPTION_RATE_TARGET: f64 = 500.0;
pub const P99_TARGET_US: u64 = 25_000;

pub const METER_FEATURE: &str = "api-calls";
const CARD: &str = "pm_card_visa";
const PLANS: [&str; 2] = ["enterprise", "pro"];
const CHARGE_PERIOD: &str = "MONTHLY";

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Usage => "usage",
            Mix::Subscriptions => "subscriptions",
        }
    }

    fn spec_rate(self) -> f64 {
        match self {
            Mix::Usage => USAGE_RATE_TARGET,
            Mix::Subscriptions => SUBSCRIPTION_RATE_TARGET,
        }
    }
}

/// `"{prefix}` JSON-escaped, without the closing quote: append digits and `"` to get a string.
pub fn json_id_prefix(prefix: &str) -> String {
    let quoted = serde_json::Value::from(prefix).to_string();
    quoted[..quoted.len() - 1].to_owned()
}

/// Request `i` of a mix, as a JSON body. For subscriptions, `pro_first[c]` says that customer
/// `c`'s first visit asks for `pro` (missing entries: `enterprise` first).
pub fn body_fn(mix: Mix, prefix: &str, customers: u64, pro_first: Arc<[bool]>) -> BodyFn {
    let id = json_id_prefix(prefix);
    let customers = customers.max(1);
    match mix {
        Mix::Usage => Box::new(move |i| {
            Bytes::from(format!(
                r#"{{"customerId":{id}{}","featureId":"{METER_FEATURE}","quantity":1}}"#,
                i % customers
            ))
        }),
        Mix::Subscriptions => Box::new(move |i| {
            let c = i % customers;
            let first = usize::try_from(c)
                .ok()
                .and_then(|c| pro_first.get(c).copied())
                .unwrap_or(false);
            let visit = i / customers + u64::from(first);
            let plan = PLANS[usize::from(visit % 2 == 1)];
            Bytes::from(format!(
                r#"{{"customerId":{id}{c}","planId":"{plan}","chargePeriod":"{CHARGE_PERIOD}"}}"#
            ))
        }),
    }
}

/// Where a customer stands in the `base` group, as far as the next `subscribe` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// No paid subscription: `enterprise` creates one.
    Free,
    /// Pro: `enterprise` upgrades.
    Pro,
    /// Enterprise with a change pending: `enterprise` resumes.
    EnterprisePending,
    /// Enterprise, nothing pending: `enterprise` would be a no-op, so `pro` goes first.
    Enterprise,
    /// Something this scenario does not make (another plan or period): `enterprise` first.
    Other,
}

impl Standing {
    fn name(self) -> &'static str {
        match self {
            Standing::Free => "free",
            Standing::Pro => "pro",
            Standing::EnterprisePending => "enterprise with a change pending",
            Standing::Enterprise => "enterprise",
            Standing::Other => "other",
        }
    }

    /// Reads a `GET /api/v1/subscriptions/?customer_id=` page.
    fn of(list: &Value) -> Standing {
        let granting = list["results"].as_array().and_then(|subs| {
            subs.iter().find(|s| {
                matches!(
                    s["status"].as_str(),
                    Some("trialing" | "active" | "past_due")
                ) && matches!(s["plan"]["identifier"].as_str(), Some("pro" | "enterprise"))
            })
        });
        let Some(sub) = granting else {
            return Standing::Free;
        };
        let monthly = sub["chargePeriod"] == CHARGE_PERIOD;
        let pending = !sub["scheduledChange"].is_null() || sub["cancelAtPeriodEnd"] == true;
        match (sub["plan"]["identifier"].as_str(), monthly, pending) {
            (Some("pro"), true, false) => Standing::Pro,
            (Some("enterprise"), true, true) => Standing::EnterprisePending,
            (Some("enterprise"), true, false) => Standing::Enterprise,
            _ => Standing::Other,
        }
    }
}

/// Reads every customer's standing; returns who goes `pro` first and how many stood where.
async fn read_standings(
    api: Arc<Api>,
    args: &ControlPlaneArgs,
) -> anyhow::Result<(Arc<[bool]>, BTreeMap<&'static str, u64>)> {
    let n = usize::try_from(args.customers).context("too many customers")?;
    let standings: Arc<Vec<Mutex<Option<Standing>>>> =
        Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let pb = api::progress_bar(
        args.customers,
        args.output.quiet,
        "setup: reading subscriptions [{bar:30}] {pos}/{len} {per_sec}",
    );
    let (prefix, out) = (args.prefix.clone(), standings.clone());
    let outcome = api::for_each(args.customers, args.setup_concurrency, &pb, move |i| {
        let (api, out) = (api.clone(), out.clone());
        let mut path = String::from("/api/v1/subscriptions/?page_size=100&customer_id=");
        crate::target::percent_encode(&format!("{prefix}{i}"), &mut path);
        async move {
            let answer = api.get(&path).await?;
            if !answer.status.is_success() {
                bail!("GET {path}: {}", describe(&answer));
            }
            let list: Value = serde_json::from_slice(&answer.body)
                .with_context(|| format!("GET {path}: {}", describe(&answer)))?;
            let slot = usize::try_from(i).ok().and_then(|i| out.get(i));
            if let Some(Ok(mut slot)) = slot.map(|m| m.lock()) {
                *slot = Some(Standing::of(&list));
            }
            Ok(())
        }
    })
    .await;
    pb.finish_and_clear();
    outcome?;
    let mut counts = BTreeMap::new();
    let pro_first: Vec<bool> = standings
        .iter()
        .map(|m| {
            let s = m.lock().ok().and_then(|s| *s).unwrap_or(Standing::Other);
            *counts.entry(s.name()).or_default() += 1;
            s == Standing::Enterprise
        })
        .collect();
    Ok((pro_first.into(), counts))
}

fn path(mix: Mix) -> &'static str {
    match mix {
        Mix::Usage => "/api/v1/usage/",
        Mix::Subscriptions => "/api/v1/subscribe/",
    }
}

/// Fails early, with a hint, when the first and last customers do not exist.
pub async fn check_seeded(api: &Api, prefix: &str, customers: u64) -> anyhow::Result<()> {
    for i in [0, customers.saturating_sub(1)] {
        let mut path = String::from("/api/v1/customers/");
        crate::target::percent_encode(&format!("{prefix}{i}"), &mut path);
        path.push('/');
        let answer = api.get(&path).await?;
        if !answer.status.is_success() {
            bail!(
                "customer {prefix}{i}: {} (seed them first: loadtest seed --customers {customers})",
                describe(&answer),
            );
        }
    }
    Ok(())
}

/// Puts a test card on file for every customer; returns how many were replays of earlier runs.
async fn attach_cards(api: Arc<Api>, args: &ControlPlaneArgs) -> anyhow::Result<u64> {
    let pb = api::progress_bar(
        args.customers,
        args.output.quiet,
        "setup: cards [{bar:30}] {pos}/{len} customers {per_sec}",
    );
    let replayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (prefix, counter) = (args.prefix.clone(), replayed.clone());
    let outcome = api::for_each(args.customers, args.setup_concurrency, &pb, move |i| {
        let (api, counter) = (api.clone(), counter.clone());
        let id = format!("{prefix}{i}");
        async move {
            let mut path = String::from("/api/v1/customers/");
            crate::target::percent_encode(&id, &mut path);
            path.push_str("/payment-methods/");
            let answer = api
                .post(
                    &path,
                    &format!("loadtest:{id}:card:{CARD}"),
                    &json!({ "token": CARD }),
                )
                .await?;
            if answer.status != hyper::StatusCode::CREATED {
                bail!("attaching {CARD} to {id}: {}", describe(&answer));
            }
            if answer.replayed {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await;
    pb.finish_and_clear();
    outcome?;
    Ok(replayed.load(std::sync::atomic::Ordering::Relaxed))
}

fn plan(args: &ControlPlaneArgs, label: String, duration: Duration, rate: Option<f64>) -> Plan {
    Plan {
        label,
        connections: args.connections,
        duration,
        rate,
        timeout: Duration::from_millis(args.timeout_ms),
        max_requests: args.max_requests,
        progress: !args.output.quiet,
    }
}

/// One run, with the control plane's CPU time over exactly that run when its pid is known.
async fn measure(
    target: &Arc<Target>,
    source: Option<&cpu::Source>,
    plan: Plan,
) -> anyhow::Result<RunResult> {
    let before = source.and_then(Ticks::read);
    let measured: Measured = driver::measure(target.clone(), plan).await?;
    let after = source.and_then(Ticks::read);
    let mut r = measured.result();
    r.server_cpu = before
        .zip(after)
        .and_then(|(b, a)| a.since(b).per_request(measured.completed()));
    Ok(r)
}

/// The target of one measured run; for subscriptions, after reading where every customer
/// stands (recorded in `setup` under `key`).
async fn prepare(
    args: &ControlPlaneArgs,
    api: &Arc<Api>,
    setup: &mut serde_json::Map<String, Value>,
    key: &str,
) -> anyhow::Result<Arc<Target>> {
    let (tally, pro_first) = match args.mix {
        Mix::Usage => (Tally::Status, Arc::from(Vec::new())),
        Mix::Subscriptions => {
            let (pro_first, counts) = read_standings(api.clone(), args).await?;
            setup.insert(key.to_owned(), json!(counts));
            (Tally::Field("action"), pro_first)
        }
    };
    let target = Target::post_json(
        &args.url,
        &args.secret_key,
        path(args.mix),
        body_fn(args.mix, &args.prefix, args.customers, pro_first),
    )?;
    Ok(Arc::new(target.with_tally(tally)))
}

/// `loadtest control-plane`.
pub fn run(args: &ControlPlaneArgs) -> anyhow::Result<()> {
    ensure_loopback(&args.url)?;
    let mix = args.mix;
    let rate = args.rate.unwrap_or_else(|| mix.spec_rate());
    let timeout = Duration::from_millis(args.timeout_ms);
    let api = Arc::new(Api::new(&args.url, &args.secret_key, timeout)?);
    let source = args.control_plane_pid.map(cpu::Source::Process);
    let rt = driver::runtime(args.threads)?;

    let (setup, runs) = rt.block_on(async {
        check_seeded(&api, &args.prefix, args.customers)
            .await
            .with_context(|| format!("checking the customers at {}", args.url))?;
        let mut setup = serde_json::Map::new();
        if mix == Mix::Subscriptions {
            let started = std::time::Instant::now();
            let replayed = attach_cards(api.clone(), args).await?;
            setup.insert("cardsAttached".into(), json!(args.customers));
            setup.insert("cardsReplayedFromEarlierRuns".into(), json!(replayed));
            setup.insert("cardsSecs".into(), json!(started.elapsed().as_secs_f64()));
        }
        // The rate SPEC asks for first, while every customer's first visit (for subscriptions:
        // the upgrades and new subscriptions) is still to come; then, optionally, the peak.
        let target = prepare(args, &api, &mut setup, "startingStates").await?;
        let p = plan(args, mix.name().to_owned(), args.duration, Some(rate));
        let mut runs = vec![measure(&target, source.as_ref(), p).await?];
        if !args.peak_secs.is_zero() {
            let target = prepare(args, &api, &mut setup, "peakStartingStates").await?;
            let p = plan(args, format!("{} peak", mix.name()), args.peak_secs, None);
            runs.push(measure(&target, source.as_ref(), p).await?);
        }
        anyhow::Ok((Value::Object(setup), runs))
    })?;

    report::print_table(&runs);
    let summary = summarize(args, rate, &runs, setup);
    print_summary(&summary);
    if let Some(path) = &args.output.json {
        report::write_json(path, &json!({ "summary": summary, "runs": runs }))?;
    }
    if let Some(path) = &args.output.plot {
        let title = format!(
            "loadtest control-plane --mix {} at {rate:.0}/s ({})",
            mix.name(),
            args.url
        );
        plot::write(path, &title, &runs)?;
    }
    Ok(())
}

fn summarize(
    args: &ControlPlaneArgs,
    rate: f64,
    runs: &[RunResult],
    setup: serde_json::Value,
) -> serde_json::Value {
    let spec_rate = args.mix.spec_rate();
    let open = runs.iter().find(|r| r.label == args.mix.name());
    let peak = runs.iter().find(|r| r.label.ends_with(" peak"));
    let (achieved, p99, clean) = open.map_or((0.0, None, false), |r| {
        let c = &r.counts;
        (
            c.ok as f64 / r.elapsed_secs.max(1e-9),
            Some(r.latency_us.p99),
            c.errors + c.io_errors + c.timeouts + c.missed == 0,
        )
    });
    let p99_met = p99.is_some_and(|p| p <= P99_TARGET_US);
    let sustained = clean && achieved >= report::SUSTAINED_FRACTION * rate;
    json!({
        "mix": args.mix.name(),
        "customers": args.customers,
        "setup": setup,
        "offeredRate": rate,
        "achievedRate": achieved,
        "rateTarget": spec_rate,
        "p99Us": p99,
        "p99TargetUs": P99_TARGET_US,
        "allAnsweredOk": clean,
        "rateSustained": sustained,
        // Met at this rate: every scheduled request answered with 2xx at (nearly) the offered
        // rate, p99 within target, and the offered rate at least SPEC's.
        "met": sustained && p99_met && rate >= spec_rate,
        "peakRps": peak.map(|r| r.requests_per_sec),
        "peakP99Us": peak.map(|r| r.latency_us.p99),
        "tally": open.map(|r| &r.tally),
        "serverCpuUsPerRequest": open.and_then(|r| r.server_cpu),
    })
}

fn print_summary(s: &serde_json::Value) {
    println!();
    println!(
        "{}: offered {:.0}/s, achieved {:.0}/s ok, p99 {} us  (SPEC: >= {:.0}/s with p99 <= {} us: {})",
        s["mix"].as_str().unwrap_or("?"),
        s["offeredRate"].as_f64().unwrap_or(0.0),
        s["achievedRate"].as_f64().unwrap_or(0.0),
        s["p99Us"],
        s["rateTarget"].as_f64().unwrap_or(0.0),
        P99_TARGET_US,
        if s["met"].as_bool() == Some(true) {
            "met"
        } else {
            "NOT met"
        }
    );
    if let Some(peak) = s["peakRps"].as_f64() {
        println!("closed-loop peak: {peak:.0}/s (p99 {} us)", s["peakP99Us"]);
    }
    if let Some(cpu) = s["serverCpuUsPerRequest"]["total_us"].as_f64() {
        println!("control-plane CPU per request: {cpu:.0} us");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(mix: Mix, prefix: &str, n: u64, i: u64) -> serde_json::Value {
        let pro_first: Arc<[bool]> = Arc::from(vec![false, true]);
        serde_json::from_slice(&body_fn(mix, prefix, n, pro_first)(i)).expect("valid JSON")
    }

    #[test]
    fn usage_bodies() {
        let b = body(Mix::Usage, "c\"u\\", 10, 23);
        assert_eq!(b["customerId"], "c\"u\\3");
        assert_eq!(b["featureId"], METER_FEATURE);
        assert_eq!(b["quantity"], 1);
    }

    #[test]
    fn subscription_bodies_alternate_per_visit() {
        // Customer 1 goes `pro` first; 0 and 9 (no entry) `enterprise` first.
        let plans: Vec<_> = [0, 1, 9, 10, 11, 19, 20, 21]
            .iter()
            .map(|&i| body(Mix::Subscriptions, "cus_", 10, i))
            .collect();
        assert_eq!(plans[0]["customerId"], "cus_0");
        assert_eq!(plans[2]["customerId"], "cus_9");
        let ids: Vec<_> = plans.iter().map(|b| b["planId"].clone()).collect();
        assert_eq!(
            ids,
            [
                "enterprise",
                "pro",
                "enterprise",
                "pro",
                "enterprise",
                "pro",
                "enterprise",
                "pro"
            ]
        );
        assert!(plans.iter().all(|b| b["chargePeriod"] == CHARGE_PERIOD));
    }

    #[test]
    fn standings() {
        let page = |subs: Value| json!({ "count": 1, "results": subs });
        let sub = |plan: &str, status: &str, pending: bool| {
            json!({
                "status": status,
                "plan": { "identifier": plan },
                "chargePeriod": "MONTHLY",
                "cancelAtPeriodEnd": false,
                "scheduledChange": if pending { json!({ "planIdentifier": "pro" }) } else { Value::Null },
            })
        };
        assert_eq!(Standing::of(&page(json!([]))), Standing::Free);
        assert_eq!(
            Standing::of(&page(json!([sub("pro", "canceled", false)]))),
            Standing::Free
        );
        assert_eq!(
            Standing::of(&page(json!([sub("pro", "active", false)]))),
            Standing::Pro
        );
        assert_eq!(
            Standing::of(&page(json!([
                sub("pro", "canceled", false),
                sub("enterprise", "trialing", true)
            ]))),
            Standing::EnterprisePending
        );
        assert_eq!(
            Standing::of(&page(json!([sub("enterprise", "active", false)]))),
            Standing::Enterprise
        );
        let mut yearly = sub("enterprise", "active", false);
        yearly["chargePeriod"] = json!("YEARLY");
        assert_eq!(Standing::of(&page(json!([yearly]))), Standing::Other);
    }
}

//! `loadtest renewals`: renewals charged per second. `--customers` customers live on one test
//! clock, each with `pm_card_visa` on file and a paid monthly subscription; then the clock is
//! advanced one month at a time, `--rounds` times. Each advance renews (and charges) every
//! subscription, and answers once the charges have settled, so renewals per second is the
//! customer count over the advance's wall time. The median round is reported.
//!
//! It runs against any control plane with test clocks, so the same run can measure two builds
//! side by side (`scripts/renewals-bench.sh`: the build before payment intents against this
//! one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::api::{Api, describe, for_each, progress_bar};
use crate::cli::RenewalsArgs;

/// The clock starts here; round `r` advances it to the first of month `r + 1`.
const START: &str = "2026-01-01T00:00:00Z";

fn month_start(round: u32) -> String {
    let month = 2 + round;
    let (year, month) = (2026 + (month - 1) / 12, (month - 1) % 12 + 1);
    format!("{year}-{month:02}-01T00:00:00Z")
}

pub fn run(args: &RenewalsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &RenewalsArgs) -> anyhow::Result<()> {
    let api = Arc::new(Api::new(
        &args.control_plane_url,
        &args.secret_key,
        Duration::from_millis(args.timeout_ms),
    )?);
    let clock = api
        .post(
            "/api/v1/test-clocks/",
            &format!("renewals:{}:clock", args.customer_prefix),
            &json!({"frozenTime": START}),
        )
        .await?;
    if clock.status != StatusCode::CREATED {
        bail!("creating a test clock: {}", describe(&clock));
    }
    let clock: Value = serde_json::from_slice(&clock.body).context("reading the test clock")?;
    let clock_id = clock["id"]
        .as_str()
        .context("the test clock has no id")?
        .to_owned();

    let pb = progress_bar(args.customers, args.quiet, "subscribing {pos}/{len}");
    let (setup_api, prefix, clock_for_setup) =
        (api.clone(), args.customer_prefix.clone(), clock_id.clone());
    for_each(args.customers, args.concurrency, &pb, move |i| {
        let (api, prefix, clock) = (setup_api.clone(), prefix.clone(), clock_for_setup.clone());
        async move { subscribe(&api, &prefix, &clock, i).await }
    })
    .await?;
    pb.finish_and_clear();

    let mut rates = Vec::with_capacity(args.rounds as usize);
    for round in 0..args.rounds {
        let to = month_start(round);
        let started = Instant::now();
        let moved = api
            .post(
                &format!("/api/v1/test-clocks/{clock_id}/advance/"),
                &format!("renewals:{}:advance:{round}", args.customer_prefix),
                &json!({"frozenTime": to}),
            )
            .await?;
        let secs = started.elapsed().as_secs_f64();
        if moved.status != StatusCode::OK {
            bail!("advancing the clock to {to}: {}", describe(&moved));
        }
        let body: Value = serde_json::from_slice(&moved.body).unwrap_or_default();
        let steps = body["stepsRun"].as_u64().unwrap_or(0);
        if steps < args.customers {
            bail!(
                "advancing to {to} ran {steps} steps for {} subscriptions",
                args.customers
            );
        }
        let rate = args.customers as f64 / secs;
        println!(
            "renewals: round {}: {} renewals in {secs:.3} s = {rate:.0}/s",
            round + 1,
            args.customers
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "renewals: median {median:.0} renewals/s over {} rounds of {} customers",
        args.rounds, args.customers
    );
    if let Some(out) = &args.json {
        let body = json!({
            "scenario": "renewals",
            "customers": args.customers,
            "rounds": args.rounds,
            "renewalsPerSec": rates,
            "medianRenewalsPerSec": median,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Customer `{prefix}{i}` on the clock, with a card and a paid Pro subscription.
async fn subscribe(api: &Api, prefix: &str, clock: &str, i: u64) -> anyhow::Result<()> {
    let id = format!("{prefix}{i}");
    let made = api
        .post(
            "/api/v1/customers/",
            &format!("renewals:{id}:customer"),
            &json!({"customerId": id, "testClock": clock}),
        )
        .await?;
    if made.status != StatusCode::CREATED {
        bail!("creating customer {id}: {}", describe(&made));
    }
    let card = api
        .post(
            &format!("/api/v1/customers/{id}/payment-methods/"),
            &format!("renewals:{id}:card"),
            &json!({"token": "pm_card_visa"}),
        )
        .await?;
    if card.status != StatusCode::CREATED {
        bail!("putting a card on file for {id}: {}", describe(&card));
    }
    let sub = api
        .post(
            "/api/v1/subscribe/",
            &format!("renewals:{id}:subscribe"),
            &json!({"customerId": id, "planId": "pro", "chargePeriod": "MONTHLY"}),
        )
        .await?;
    if sub.status != StatusCode::OK {
        bail!("subscribing {id}: {}", describe(&sub));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_move_a_month_each() {
        assert_eq!(month_start(0), "2026-02-01T00:00:00Z");
        assert_eq!(month_start(10), "2026-12-01T00:00:00Z");
        assert_eq!(month_start(11), "2027-01-01T00:00:00Z");
    }
}

//! `loadtest seed`: fills a control plane with the customers a load run asks the edge for.
//!
//! Customer `i` is `{prefix}{i}`, created with `POST /api/v1/customers/`; every `paid_every`-th
//! one (the 2nd, 4th, … by default) also buys a paid plan: `POST /api/v1/checkout/`, then
//! `POST /api/v1/checkout/{id}/complete/` with the test card `pm_card_visa`. So the edge serves
//! a mix of default-plan and paid bodies, as it would in production.
//!
//! Every POST carries an `Idempotency-Key` derived from the customer id, so a request retried
//! after a timeout or a 5xx is answered once, and seeding the same control plane twice replays
//! the first run instead of piling up subscriptions. A customer that exists without such a
//! record (made some other way, a 409) is left as it is.
//!
//! A fixed number of worker tasks claim customer indices from one counter: at most
//! `concurrency` requests are in flight, and every loop is bounded by the customer count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hyper::StatusCode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::api::{Api, describe};
use crate::cli::SeedArgs;

const SUCCESS_URL: &str = "https://a.example.com/";
const PAYMENT_METHOD: &str = "pm_card_visa";

/// What happened to one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seeded {
    /// Created by this run.
    Created { paid: bool },
    /// Already seeded by an earlier run with the same prefix (idempotent replay).
    Replayed { paid: bool },
    /// Exists, made some other way; left untouched.
    Existed,
}

async fn seed_one(api: &Api, args: &SeedArgs, i: u64) -> anyhow::Result<Seeded> {
    let id = format!("{}{i}", args.customer_prefix);
    let created = api
        .post(
            "/api/v1/customers/",
            &format!("seed:{id}:customer"),
            &json!({ "customerId": id }),
        )
        .await?;
    let replayed = match created.status {
        StatusCode::CREATED => created.replayed,
        StatusCode::CONFLICT => return Ok(Seeded::Existed),
        _ => bail!("creating customer {id}: {}", describe(&created)),
    };
    // `paid_every` 0: `checked_rem` is `None`, nobody pays.
    let paid = (i + 1).checked_rem(args.paid_every) == Some(0);
    if paid {
        subscribe(api, args, &id).await?;
    }
    Ok(if replayed {
        Seeded::Replayed { paid }
    } else {
        Seeded::Created { paid }
    })
}

/// A paid subscription through the checkout API, paid with the test card.
async fn subscribe(api: &Api, args: &SeedArgs, id: &str) -> anyhow::Result<()> {
    let checkout = api
        .post(
            "/api/v1/checkout/",
            &format!("seed:{id}:checkout:{}", args.plan),
            &json!({
                "planIdentifier": args.plan,
                "chargePeriod": args.charge_period,
                "customerId": id,
                "successUrl": SUCCESS_URL,
            }),
        )
        .await?;
    if checkout.status != StatusCode::CREATED {
        bail!("opening a checkout for {id}: {}", describe(&checkout));
    }
    let session: Value = serde_json::from_slice(&checkout.body)
        .with_context(|| format!("reading the checkout session for {id}"))?;
    let session_id = session["checkoutSessionId"]
        .as_str()
        .with_context(|| format!("no checkoutSessionId in {}", describe(&checkout)))?;
    // Session ids are `cs_{mode}_{hex}`; anything else would not be safe in a path.
    if !session_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("unexpected checkoutSessionId {session_id:?}");
    }
    let completed = api
        .post(
            &format!("/api/v1/checkout/{session_id}/complete/"),
            &format!("seed:{id}:complete:{session_id}"),
            &json!({ "paymentMethod": PAYMENT_METHOD }),
        )
        .await?;
    if completed.status != StatusCode::OK {
        bail!("completing the checkout for {id}: {}", describe(&completed));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    created: AtomicU64,
    replayed: AtomicU64,
    existed: AtomicU64,
    paid: AtomicU64,
}

impl Tally {
    fn add(&self, seeded: Seeded) {
        let (counter, paid) = match seeded {
            Seeded::Created { paid } => (&self.created, paid),
            Seeded::Replayed { paid } => (&self.replayed, paid),
            Seeded::Existed => (&self.existed, false),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if paid {
            self.paid.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) =
        ProgressStyle::with_template("seeding [{bar:30}] {pos}/{len} customers {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// `loadtest seed`.
pub fn run(args: &SeedArgs) -> anyhow::Result<()> {
    let api = Arc::new(Api::new(
        &args.control_plane_url,
        &args.secret_key,
        Duration::from_millis(args.timeout_ms),
    )?);
    let rt = crate::driver::runtime(2)?;
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let pb = progress_bar(args.customers, args.quiet);
    let result = rt.block_on(async {
        let next = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency.max(1) {
            let (api, next, failed, tally, pb) = (
                api.clone(),
                next.clone(),
                failed.clone(),
                tally.clone(),
                pb.clone(),
            );
            let args = args.clone();
            workers.spawn(async move {
                for _ in 0..args.customers {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.customers || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    match seed_one(&api, &args, i).await {
                        Ok(seeded) => tally.add(seeded),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    pb.inc(1);
                }
                anyhow::Ok(())
            });
        }
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            let outcome = joined
                .map_err(|e| anyhow!("a seeding task panicked: {e}"))
                .and_then(|r| r);
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    });
    pb.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let done = load(&tally.created) + load(&tally.replayed) + load(&tally.existed);
    println!(
        "seeded {done} of {} customers '{}0'..: {} created, {} already seeded, {} existed; \
         {} on plan '{}'; {elapsed:.1} s ({:.0} customers/s)",
        args.customers,
        args.customer_prefix,
        load(&tally.created),
        load(&tally.replayed),
        load(&tally.existed),
        load(&tally.paid),
        args.plan,
        done as f64 / elapsed.max(1e-3),
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_paid_customers() {
        let t = Tally::default();
        t.add(Seeded::Created { paid: true });
        t.add(Seeded::Created { paid: false });
        t.add(Seeded::Replayed { paid: true });
        t.add(Seeded::Existed);
        assert_eq!(t.created.load(Ordering::Relaxed), 2);
        assert_eq!(t.paid.load(Ordering::Relaxed), 2);
        assert_eq!(t.existed.load(Ordering::Relaxed), 1);
    }
}

//! Closed-loop: each connection sends its next request as soon as the previous response has
//! been read. Measures peak throughput; latencies are pure service times.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Shared;
use super::conn::{ConnStats, ensure, exchange, settle};
use crate::target::Sender;

/// Connection `j` asks for customers `j, j + C, j + 2C, …` until the deadline or `budget`.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut conn: Option<Sender>,
    j: u64,
    budget: u64,
) -> anyhow::Result<ConnStats> {
    let mut stats = ConnStats::new()?;
    let plan = &shared.plan;
    let deadline = shared.start + plan.duration;
    let stride = u64::from(plan.connections);
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
        let answered = Instant::now();
        shared.observe(seq, &outcome, answered);
        let tally = shared.target.tally;
        settle(
            &mut stats,
            &mut conn,
            tally,
            outcome,
            answered.saturating_duration_since(sent),
        );
        shared.done.fetch_add(1, Ordering::Relaxed);
        seq = seq.wrapping_add(stride);
    }
    Ok(stats)
}

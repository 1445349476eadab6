//! Open-loop: requests are due on a fixed schedule, slot `k` at `start + k/rate`, whatever the
//! server does. Connections claim slots in order from one shared counter, so whichever
//! connection is free takes the next slot and one slow response does not hold back slots that
//! another connection could send.
//!
//! Latency, without coordinated omission:
//! * A slot claimed only *after* it was due waited because every connection was busy — the
//!   server had them all. Its latency is measured from the due time, so the server is charged
//!   for the wait.
//! * A slot claimed *before* it was due was ready on an idle connection. Its latency is measured
//!   from the actual send; any delay between due time and send is the generator's own (timer,
//!   CPU) and is reported separately as `generator lag` — if that grows large, the generator,
//!   not the server, is the bottleneck.
//!
//! tokio's timer fires on millisecond ticks, so a connection sleeps until the tick *before* its
//! slot and sends right away: sends may be up to a tick early (and are then measured from the
//! send, never from the later due time) but are not a tick late. The offered rate is exact over
//! any millisecond; within one, sends come in a burst, a slightly harsher load than a smooth
//! stream. Slots not yet claimed at `duration + timeout` count as `missed` and are recorded with
//! the latency they had reached by then.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::conn::{ConnStats, ensure, exchange, micros, settle};
use crate::target::Sender;

const TIMER_TICK: Duration = Duration::from_millis(1);

pub(super) async fn run(
    shared: Arc<Shared>,
    mut conn: Option<Sender>,
    rate: f64,
) -> anyhow::Result<ConnStats> {
    let mut stats = ConnStats::new()?;
    let plan = &shared.plan;
    let total = ((plan.duration.as_secs_f64() * rate).ceil() as u64).min(plan.max_requests);
    let due = |k: u64| shared.start + Duration::from_secs_f64(k as f64 / rate);
    let hard_end = shared.start + plan.duration + plan.timeout;
    for _ in 0..total {
        let k = shared.next_slot.fetch_add(1, Ordering::Relaxed);
        if k >= total {
            break;
        }
        let claimed = Instant::now();
        let scheduled = due(k);
        if claimed >= hard_end {
            // Give up on this slot and on every slot nobody has claimed yet.
            let unclaimed = shared.next_slot.swap(total, Ordering::Relaxed).min(total);
            for late in std::iter::once(k).chain(unclaimed..total) {
                stats.missed += 1;
                let waited = claimed.saturating_duration_since(due(late));
                stats.latency.saturating_record(micros(waited));
            }
            break;
        }
        if scheduled > claimed + TIMER_TICK {
            tokio::time::sleep_until((scheduled - TIMER_TICK).into()).await;
        }
        let Some(sender) = ensure(&mut conn, &shared.target, plan.timeout, &mut stats).await else {
            continue;
        };
        let sent = Instant::now();
        let origin = if claimed <= scheduled {
            stats
                .lag
                .saturating_record(micros(sent.saturating_duration_since(scheduled)));
            sent
        } else {
            scheduled
        };
        let outcome = exchange(sender, &shared.target, k, plan.timeout).await;
        let answered = Instant::now();
        shared.observe(k, &outcome, answered);
        let tally = shared.target.tally;
        settle(
            &mut stats,
            &mut conn,
            tally,
            outcome,
            answered.saturating_duration_since(origin),
        );
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(stats)
}

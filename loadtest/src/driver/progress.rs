//! The progress bar: elapsed time against the run's duration, with a live request rate.
//! Hidden with `--quiet` and whenever stderr is not a terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Plan, Shared};

pub(super) fn bar(plan: &Plan) -> ProgressBar {
    let total_ms = u64::try_from(plan.duration.as_millis()).unwrap_or(u64::MAX);
    let target = if plan.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(total_ms), target);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>18} [{bar:30}] {msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(plan.label.clone());
    pb
}

/// Updates the bar every 200 ms until `stop` is set (at most duration + timeout + 1 s).
pub(super) async fn tick(shared: Arc<Shared>, pb: ProgressBar, stop: Arc<AtomicBool>) {
    const EVERY: Duration = Duration::from_millis(200);
    let limit = shared.plan.duration + shared.plan.timeout + Duration::from_secs(1);
    let ticks = limit.as_millis() / EVERY.as_millis() + 1;
    let mut interval = tokio::time::interval(EVERY);
    for _ in 0..ticks {
        interval.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let elapsed = shared.start.elapsed();
        let done = shared.done.load(Ordering::Relaxed);
        pb.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        pb.set_message(format!(
            "{done} req, {:.0} req/s",
            done as f64 / elapsed.as_secs_f64().max(1e-3)
        ));
    }
}

//! Read-your-writes (docs/entitlements-clients.md): a read that carries `minVersion` — the
//! change-log version a control-plane write answered with in `Tollgate-Version` — waits until
//! the edge has applied that version, for at most [`ReadLimits::min_version_wait`]
//! (`--min-version-wait-ms`). Past the bound the read is answered with what the edge has,
//! marked `Tollgate-Stale: true`.
//!
//! The version compared against is the root's: the change-log version of the last snapshot or
//! delta the sync task published. Waiters follow it through a `watch` channel the sync task
//! sets after each publish (never awaiting anyone), so a read wakes as soon as its version
//! is served.
//!
//! [`ReadLimits::min_version_wait`]: crate::state::ReadLimits::min_version_wait

use crate::state::{EdgeState, Waited};

/// Waits until the edge serves `min` or the bound passes.
pub async fn version(state: &EdgeState, min: u64) -> Waited {
    let mut versions = state.store.versions();
    let reached = if state.store.version() >= min {
        true
    } else {
        matches!(
            tokio::time::timeout(
                state.reads.min_version_wait,
                versions.wait_for(|v| *v >= min),
            )
            .await,
            Ok(Ok(_))
        )
    };
    Waited {
        min,
        reached: reached && state.store.version() >= min,
    }
}

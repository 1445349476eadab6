use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tollgate_edge::sync::{CacheConfig, SyncConfig};
use tollgate_edge::{EdgeState, Store};
use tollgate_shared::server::ServerArgs;

/// Tollgate edge: serves entitlements from memory, fed by the control plane's sync stream.
#[derive(Parser, Debug)]
#[command(name = "edge", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "TOLLGATE_EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Base URL of the control plane to sync from, or several, comma-separated: on a failed or
    /// dropped stream the edge moves to the next one and resumes from its version.
    #[arg(
        long,
        env = "TOLLGATE_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    control_plane_url: Vec<String>,
    /// Edge sync key (`esk_…`) that the control plane printed or was given.
    #[arg(long, env = "TOLLGATE_EDGE_SYNC_KEY", hide_env_values = true)]
    sync_key: String,
    /// The longest sync frame (one line of the stream) accepted; a longer one ends the stream
    /// and the edge reconnects. Snapshot chunks are far smaller.
    #[arg(
        long,
        env = "TOLLGATE_EDGE_MAX_SYNC_FRAME_BYTES",
        default_value_t = 64 << 20,
        value_parser = clap::value_parser!(u64).range(65_536..)
    )]
    max_sync_frame_bytes: u64,
    /// Reconnect when the control plane has sent nothing, not even a heartbeat, for this long.
    #[arg(long, env = "TOLLGATE_EDGE_IDLE_TIMEOUT_MS", default_value_t = 10_000)]
    idle_timeout_ms: u64,
    /// Longest wait between reconnect attempts.
    #[arg(long, env = "TOLLGATE_EDGE_BACKOFF_MAX_MS", default_value_t = 5_000)]
    backoff_max_ms: u64,
    /// `/readyz` turns 503 after this long without the control plane (data keeps being served).
    #[arg(
        long,
        env = "TOLLGATE_EDGE_MAX_STALENESS_SECS",
        default_value_t = 300.0
    )]
    max_staleness_secs: f64,
    /// Keep what is served in this directory (written after every snapshot and every
    /// `--cache-interval-secs` after deltas); started while the control plane is unreachable,
    /// the edge serves from it at once and resumes the stream from its version.
    #[arg(long, env = "TOLLGATE_EDGE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Rewrite the cache file at most this often while deltas arrive.
    #[arg(long, env = "TOLLGATE_EDGE_CACHE_INTERVAL_SECS", default_value_t = 30)]
    cache_interval_secs: u64,
    /// PEM CA certificate(s) to trust for an `https://` control plane, besides the system's.
    #[arg(long, env = "TOLLGATE_CONTROL_PLANE_CA")]
    control_plane_ca: Option<PathBuf>,
    /// Longest a read with `minVersion` waits for the edge to apply that version before it is
    /// answered with what the edge has, marked `Tollgate-Stale: true` (at most 10,000).
    #[arg(
        long,
        env = "TOLLGATE_EDGE_MIN_VERSION_WAIT_MS",
        default_value_t = 1_000
    )]
    min_version_wait_ms: u64,
    /// Reads waiting for a `minVersion` at once (GET, OFREP, streams); more get 429 with
    /// `Retry-After: 1`.
    #[arg(long, env = "TOLLGATE_EDGE_MAX_PENDING_READS", default_value_t = 1_024)]
    max_pending_reads: usize,
    /// Largest OFREP request body; larger ones get 413.
    #[arg(
        long,
        env = "TOLLGATE_EDGE_OFREP_BODY_LIMIT_BYTES",
        default_value_t = 16_384
    )]
    ofrep_body_limit_bytes: usize,
    /// Event streams open at once; one more gets 503 with `Retry-After: 5`. Each is also a
    /// connection: keep `--max-connections` above it.
    #[arg(long, env = "TOLLGATE_EDGE_MAX_STREAMS", default_value_t = 5_000)]
    max_streams: usize,
    /// Changes a stream may leave untaken (changes coalesce: only a stream that cannot run
    /// while its customer keeps changing gets there) before it is dropped.
    #[arg(long, env = "TOLLGATE_EDGE_STREAM_BUFFER", default_value_t = 1_024)]
    stream_buffer: u32,
    /// Heartbeat comment on every open stream this often.
    #[arg(
        long,
        env = "TOLLGATE_EDGE_STREAM_HEARTBEAT_MS",
        default_value_t = 15_000
    )]
    stream_heartbeat_ms: u64,
    /// A stream whose socket refused writes (its client stopped reading) for this many
    /// heartbeat intervals is dropped.
    #[arg(long, env = "TOLLGATE_EDGE_STREAM_STALL_BEATS", default_value_t = 2)]
    stream_stall_beats: u32,
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    tollgate_edge::metrics::register();

    let tls = args.server.tls().context("loading --tls-cert/--tls-key")?;
    let store = Arc::new(Store::new(tollgate_edge::stream::StreamLimits {
        max_subscribers: args.max_streams.max(1),
        buffer: args.stream_buffer.max(1),
        heartbeat: Duration::from_millis(args.stream_heartbeat_ms.clamp(10, 600_000)),
        stall_ticks: args.stream_stall_beats.max(1),
    }));
    if let Some(dir) = &args.cache_dir {
        warm_start(&store, dir);
    }
    let urls: Vec<String> = args
        .control_plane_url
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let sync = SyncConfig {
        control_plane_urls: urls.clone(),
        sync_key: args.sync_key.clone(),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(args.backoff_max_ms),
        cache: args.cache_dir.clone().map(|dir| CacheConfig {
            dir,
            interval: Duration::from_secs(args.cache_interval_secs.max(1)),
        }),
        max_frame_bytes: usize::try_from(args.max_sync_frame_bytes).unwrap_or(usize::MAX),
    };
    for url in &urls {
        if let Some(host) = plain_http_host(url) {
            tracing::warn!(
                url,
                "the control plane is reached over plain http:// at {host}, which is not loopback: \
                 the sync key and every customer's entitlements cross the network readable; use \
                 https:// in production (docs/operations.md)"
            );
        }
    }
    let ca = match &args.control_plane_ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let client = tollgate_edge::sync::client(ca.as_deref())
        .context("building the sync client (is --control-plane-ca a PEM certificate?)")?;
    tokio::spawn(tollgate_edge::sync::run_with(store.clone(), sync, client));
    let limits = args.server.limits();

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("edge listening on {scheme}://{addr}");
    tracing::info!(%addr, control_planes = ?urls, "edge started");
    let mut state = EdgeState::new(store);
    state.metrics = Some(metrics);
    state.max_staleness_secs = args.max_staleness_secs;
    state.reads = tollgate_edge::state::ReadLimits {
        min_version_wait: Duration::from_millis(args.min_version_wait_ms.min(10_000)),
        max_pending: args.max_pending_reads.max(1),
        ofrep_body_limit: args.ofrep_body_limit_bytes.max(64),
    };
    let state = Arc::new(state);
    tollgate_edge::serve_with(
        listener,
        state,
        limits,
        tls,
        shutdown_signal(),
        args.server.drain(),
    )
    .await?;
    Ok(())
}

/// Serves the cache file in `dir`, if there is a sound one; anything else is logged and
/// ignored (the edge then waits for its first snapshot, as without a cache).
fn warm_start(store: &Store, dir: &std::path::Path) {
    let started = std::time::Instant::now();
    match tollgate_edge::cache::warm_start(store, dir) {
        Ok(h) => tracing::info!(
            version = h.version,
            customers = h.customers,
            age_secs = tollgate_edge::store::now_ms().saturating_sub(h.written_at_ms) / 1000,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "serving the cache file (stale) until a control plane answers"
        ),
        Err(tollgate_edge::cache::CacheError::Missing(path)) => tracing::info!(
            path = %path.display(),
            "no cache file yet; waiting for the first snapshot"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the cache file; waiting for the first snapshot")
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// The host of a plain `http://` control-plane URL that is not loopback (the edge warns).
fn plain_http_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let loopback = match parsed.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (!loopback).then(|| parsed.host_str().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_http_to_other_hosts_is_warned_about() {
        for (url, warned) in [
            ("http://127.0.0.1:8080", false),
            ("http://localhost:8080", false),
            ("http://[::1]:8080", false),
            ("https://cp.example.com", false),
            ("http://cp.example.com", true),
            ("http://10.0.0.5:8080", true),
        ] {
            assert_eq!(super::plain_http_host(url).is_some(), warned, "{url}");
        }
    }
}

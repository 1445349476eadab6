//! Command-line interface. Doc comments are the help text; every flag also reads an env var.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples (loopback only):
  loadtest seed --control-plane-url http://127.0.0.1:8080 --secret-key sk_test_... \\
      --customers 1000
  loadtest baseline --listen 127.0.0.1:8090 --body-bytes 600
  loadtest edge --url http://127.0.0.1:8081 --key pk_test_... --customers 1000 \\
      --connections 16 --duration 10
  loadtest edge --url http://127.0.0.1:8081 --key pk_test_... --rate 5000 --plot open.svg
  loadtest compare --edge-url http://127.0.0.1:8081 --key pk_test_... --customers 1000 \\
      --connections 16 --duration 10 --rounds 4 --edge-pid 1234 \\
      --json compare.json --plot compare.svg
  loadtest control-plane --url http://127.0.0.1:8080 --secret-key sk_test_... \\
      --customers 1000 --mix usage --rate 2000 --duration 10 --json usage.json
  loadtest control-plane --url http://127.0.0.1:8080 --secret-key sk_test_... \\
      --customers 1000 --mix subscriptions --rate 500 --peak-secs 5
  loadtest propagation --control-plane-url http://127.0.0.1:8080 --secret-key sk_test_... \\
      --edge-url http://127.0.0.1:8081 --key pk_test_... --changes-per-sec 1000 \\
      --duration 10 --customers 1000 --plot propagation.svg
  loadtest edge-scale --customers 1000000 --label after     # starts target/release/edge itself
  loadtest edge-apps --customers 100000 --subscribers 10000  # OFREP, streams; starts the edge too";

/// Tollgate load generator: drives an edge (or a baseline hyper server), or a control plane, over keep-alive
/// HTTP/1 connections and reports throughput and latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "loadtest", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a fixed JSON body of N bytes: the minimal hyper server an edge is compared against.
    Baseline(BaselineArgs),
    /// Load one edge: closed-loop (max throughput), or open-loop at a fixed --rate.
    Edge(EdgeArgs),
    /// Baseline vs edge in one run: same generator, same body size, same settings.
    Compare(CompareArgs),
    /// Create customers `{prefix}0..N` through a control plane's API, every second one with a
    /// paid subscription, so an edge has realistic data to serve.
    Seed(SeedArgs),
    /// Open-loop write load on a control plane (loopback only): usage reports, or subscription
    /// changes (pro <-> enterprise) for seeded customers.
    ControlPlane(ControlPlaneArgs),
    /// Commit -> visible-at-edge latency (loopback only): usage `set` reports at a fixed rate to
    /// the control plane, polled at the edge until they show.
    Propagation(PropagationArgs),
    /// The bare SQLite loop (WAL, synchronous=FULL, one row per commit) the control plane's
    /// group commit is compared with, on a file in --dir (use the control plane's disk).
    SqliteBaseline(SqliteBaselineArgs),
    /// The edge at scale (default 1,000,000 customers): an in-process stand-in control plane
    /// streams a synthetic snapshot to a real `edge` process; reports RSS per customer,
    /// snapshot-ready seconds, reload memory, and throughput against the baseline with requests
    /// spread over every customer.
    EdgeScale(EdgeScaleArgs),
    /// The edge for client apps: OFREP single and bulk evaluation against the minimal hyper
    /// baseline, one change fanned out to 10,000 event-stream subscribers against one, and GET
    /// throughput with those subscribers connected against without (stand-in control plane).
    EdgeApps(EdgeAppsArgs),
    /// Renewals charged per second: customers on one test clock with paid monthly plans, the
    /// clock advanced a month at a time (each advance answers once the charges settled).
    Renewals(RenewalsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RenewalsArgs {
    /// Base URL of the control plane (plain http).
    #[arg(
        long,
        env = "LOADTEST_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub control_plane_url: String,
    /// Test-mode secret key (`sk_test_…`).
    #[arg(long, env = "LOADTEST_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Customers (and subscriptions) on the clock.
    #[arg(long, env = "LOADTEST_RENEWALS_CUSTOMERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub customers: u64,
    /// Customer id prefix (use a fresh one per run on the same control plane).
    #[arg(long, env = "LOADTEST_CUSTOMER_PREFIX", default_value = "ren_")]
    pub customer_prefix: String,
    /// Months to advance, one round each.
    #[arg(long, env = "LOADTEST_RENEWALS_ROUNDS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Set-up requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Give up on one request after this many milliseconds.
    #[arg(long, default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeAppsArgs {
    /// Customers in the synthetic snapshot (five features each, the example catalog's).
    #[arg(long, env = "LOADTEST_APPS_CUSTOMERS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    pub customers: u64,
    /// Customer id prefix: customers are `{prefix}0` … `{prefix}{N-1}`.
    #[arg(long, env = "LOADTEST_CUSTOMER_PREFIX", default_value = "cus_")]
    pub customer_prefix: String,
    /// The `edge` binary to start (default: the one next to this `loadtest`).
    #[arg(long, env = "LOADTEST_EDGE_BIN")]
    pub edge_bin: Option<PathBuf>,
    /// One more argument for the edge (repeat for several).
    #[arg(long, allow_hyphen_values = true)]
    pub edge_arg: Vec<String>,
    /// Names this run in the results' file names (`edge-apps-{label}-{N}.json`).
    #[arg(long, env = "LOADTEST_APPS_LABEL", default_value = "edge")]
    pub label: String,
    /// Directory for the JSON results and the plot.
    #[arg(long, env = "LOADTEST_RESULTS", default_value = "loadtest/results")]
    pub results: PathBuf,
    /// Event-stream subscribers for the fan-out and GET-beside-streams phases.
    #[arg(long, env = "LOADTEST_APPS_SUBSCRIBERS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=15_000))]
    pub subscribers: u32,
    /// Changes fanned out (each measured on its own).
    #[arg(long, env = "LOADTEST_APPS_CHANGES", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub changes: u64,
    /// Skip the OFREP comparison.
    #[arg(long, env = "LOADTEST_APPS_NO_OFREP")]
    pub no_ofrep: bool,
    /// Skip the stream phases.
    #[arg(long, env = "LOADTEST_APPS_NO_STREAMS")]
    pub no_streams: bool,
    /// Keep-alive HTTP/1 connections, each with one request in flight.
    #[arg(long, env = "LOADTEST_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Length of each measured comparison, in seconds (cut into `--rounds` slices).
    #[arg(long, env = "LOADTEST_DURATION_SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Unrecorded closed-loop warm-up per target, in seconds.
    #[arg(long, env = "LOADTEST_WARMUP_SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Alternating slices per comparison.
    #[arg(long, env = "LOADTEST_ROUNDS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub rounds: u16,
    /// Generator worker threads.
    #[arg(long, env = "LOADTEST_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Give up on one request (and reconnect) after this many milliseconds.
    #[arg(long, env = "LOADTEST_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SqliteBaselineArgs {
    /// Directory for the throw-away database (the same disk as the control plane's).
    #[arg(long, env = "LOADTEST_SQLITE_DIR", default_value = "/tmp")]
    pub dir: PathBuf,
    /// How long to commit, in seconds.
    #[arg(long, env = "LOADTEST_SQLITE_SECS", default_value_t = 5.0)]
    pub secs: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeScaleArgs {
    /// Customers in the synthetic snapshot (five features each, the example catalog's).
    #[arg(long, env = "LOADTEST_SCALE_CUSTOMERS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    pub customers: u64,
    /// Customer id prefix: customers are `{prefix}0` … `{prefix}{N-1}`.
    #[arg(long, env = "LOADTEST_CUSTOMER_PREFIX", default_value = "cus_")]
    pub customer_prefix: String,
    /// The `edge` binary to start (default: the one next to this `loadtest`).
    #[arg(long, env = "LOADTEST_EDGE_BIN")]
    pub edge_bin: Option<PathBuf>,
    /// One more argument for the edge (repeat for several), e.g. `--edge-arg=--cache-dir=/tmp/c`.
    #[arg(long, allow_hyphen_values = true)]
    pub edge_arg: Vec<String>,
    /// Names this run in the results' file names (`edge-scale-{label}-{N}.json`).
    #[arg(long, env = "LOADTEST_SCALE_LABEL", default_value = "edge")]
    pub label: String,
    /// Directory for the JSON results and the plot.
    #[arg(long, env = "LOADTEST_RESULTS", default_value = "loadtest/results")]
    pub results: PathBuf,
    /// Give up when the edge is not ready this many seconds after the snapshot starts.
    #[arg(long, env = "LOADTEST_READY_TIMEOUT_SECS", default_value_t = 300)]
    pub ready_timeout_secs: u64,
    /// Skip the second snapshot (reload memory).
    #[arg(long, env = "LOADTEST_NO_RELOAD")]
    pub no_reload: bool,
    /// Skip the throughput comparison against the baseline.
    #[arg(long, env = "LOADTEST_NO_THROUGHPUT")]
    pub no_throughput: bool,
    /// Skip the list / single-feature / `feature_id` rounds.
    #[arg(long, env = "LOADTEST_NO_VARIANTS")]
    pub no_variants: bool,
    /// Keep-alive HTTP/1 connections, each with one request in flight.
    #[arg(long, env = "LOADTEST_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Length of each measured comparison, in seconds (cut into `--rounds` slices).
    #[arg(long, env = "LOADTEST_DURATION_SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Unrecorded closed-loop warm-up per target, in seconds.
    #[arg(long, env = "LOADTEST_WARMUP_SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Alternating slices per comparison.
    #[arg(long, env = "LOADTEST_ROUNDS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub rounds: u16,
    /// Open-loop rate as a fraction of each server's closed-loop peak.
    #[arg(long, env = "LOADTEST_OPEN_FRACTION", default_value_t = 0.5, value_parser = parse_fraction)]
    pub open_fraction: f64,
    /// Skip the open-loop phase of the comparison.
    #[arg(long, env = "LOADTEST_NO_OPEN_LOOP")]
    pub no_open_loop: bool,
    /// Generator worker threads.
    #[arg(long, env = "LOADTEST_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Give up on one request (and reconnect) after this many milliseconds.
    #[arg(long, env = "LOADTEST_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// Base URL of the control plane (plain http).
    #[arg(
        long,
        env = "LOADTEST_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub control_plane_url: String,
    /// Test-mode secret key (`sk_test_…`), sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "LOADTEST_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Customers to create: `{prefix}0` … `{prefix}{N-1}`.
    #[arg(long, env = "LOADTEST_CUSTOMERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,
    /// Customer id prefix.
    #[arg(long, env = "LOADTEST_CUSTOMER_PREFIX", default_value = "cus_")]
    pub customer_prefix: String,
    /// Every Nth customer (the 2nd, 4th, … for 2) buys `--plan`; 0 gives nobody a subscription.
    #[arg(long, env = "LOADTEST_SEED_PAID_EVERY", default_value_t = 2)]
    pub paid_every: u64,
    /// Plan identifier of the paid subscriptions.
    #[arg(long, env = "LOADTEST_SEED_PLAN", default_value = "pro")]
    pub plan: String,
    /// Charge period of the paid subscriptions.
    #[arg(long, env = "LOADTEST_SEED_CHARGE_PERIOD", default_value = "MONTHLY")]
    pub charge_period: String,
    /// Requests in flight at once.
    #[arg(long, env = "LOADTEST_SEED_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Give up on one request after this many milliseconds (it is retried a few times).
    #[arg(long, env = "LOADTEST_SEED_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(
        long,
        env = "LOADTEST_BASELINE_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// Size of the response body in bytes.
    #[arg(long, env = "LOADTEST_BODY_BYTES", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(0..=16 * 1024 * 1024))]
    pub body_bytes: u32,
    /// Server worker threads (default: one per CPU, like the edge's runtime).
    #[arg(long, env = "LOADTEST_BASELINE_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Exit after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, env = "LOADTEST_EXIT_AFTER_SECS", value_parser = parse_secs)]
    pub exit_after: Option<Duration>,
}

/// What every load run needs, shared by `edge` and `compare`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Publishable (or secret) key sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "LOADTEST_KEY", hide_env_values = true)]
    pub key: String,
    /// Customers to cycle over: request i asks for `{prefix}{i mod N}`.
    #[arg(long, env = "LOADTEST_CUSTOMERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub customers: u64,
    /// Customer id prefix (percent-encoded into the query string).
    #[arg(long, env = "LOADTEST_CUSTOMER_PREFIX", default_value = "cus_")]
    pub customer_prefix: String,
    /// Keep-alive HTTP/1 connections, each with one request in flight.
    #[arg(long, env = "LOADTEST_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Length of each measured run, in seconds (fractions allowed).
    #[arg(long, env = "LOADTEST_DURATION_SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Unrecorded closed-loop warm-up before each target's first run, in seconds (0 disables).
    #[arg(long, env = "LOADTEST_WARMUP_SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Generator worker threads. Keep it low on small machines so the server under test gets CPU.
    #[arg(long, env = "LOADTEST_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Give up on one request (and reconnect) after this many milliseconds.
    #[arg(long, env = "LOADTEST_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Hard cap on requests per run, whatever the duration.
    #[arg(long, env = "LOADTEST_MAX_REQUESTS", default_value_t = 100_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: u64,
    /// Write the results as JSON to this file.
    #[arg(long, env = "LOADTEST_JSON")]
    pub json: Option<PathBuf>,
    /// Write an SVG latency-percentile plot to this file.
    #[arg(long, env = "LOADTEST_PLOT")]
    pub plot: Option<PathBuf>,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EdgeArgs {
    /// Base URL of the edge (plain http).
    #[arg(long, env = "LOADTEST_URL", default_value = "http://127.0.0.1:8081")]
    pub url: String,
    /// Open-loop: send this many requests per second in total on a fixed schedule and measure
    /// latency from each scheduled send time. Without it the run is closed-loop.
    #[arg(long, env = "LOADTEST_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Base URL of the edge (plain http).
    #[arg(
        long,
        env = "LOADTEST_EDGE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub edge_url: String,
    /// Open-loop rate for the second phase, as a fraction of each server's closed-loop peak.
    #[arg(long, env = "LOADTEST_OPEN_FRACTION", default_value_t = 0.5, value_parser = parse_fraction)]
    pub open_fraction: f64,
    /// Skip the open-loop phase.
    #[arg(long, env = "LOADTEST_NO_OPEN_LOOP")]
    pub no_open_loop: bool,
    /// Worker threads of the in-process baseline server (default: one per CPU).
    #[arg(long, env = "LOADTEST_BASELINE_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub baseline_threads: Option<u16>,
    /// Split each closed-loop measurement into this many slices, alternating baseline and edge
    /// (B E E B B E …), so a change in background load hits both alike.
    #[arg(long, env = "LOADTEST_ROUNDS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub rounds: u16,
    /// Process id of the edge (Linux): also report its CPU time per request.
    #[arg(long, env = "LOADTEST_EDGE_PID")]
    pub edge_pid: Option<u32>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `--json`, `--plot` and `--quiet`, for the control-plane scenarios.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the results as JSON to this file.
    #[arg(long, env = "LOADTEST_JSON")]
    pub json: Option<PathBuf>,
    /// Write an SVG latency-percentile plot to this file.
    #[arg(long, env = "LOADTEST_PLOT")]
    pub plot: Option<PathBuf>,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_QUIET")]
    pub quiet: bool,
}

/// What `control-plane` sends.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// `POST /api/v1/usage/` with `quantity: 1` for METER feature `api-calls`, customer
    /// `{prefix}{i mod N}`.
    Usage,
    /// `POST /api/v1/subscribe/` for customer `{prefix}{i mod N}`, MONTHLY, alternating
    /// `enterprise` and `pro` on each visit; a setup phase first puts `pm_card_visa` on file.
    Subscriptions,
}

#[derive(Args, Debug, Clone)]
pub struct ControlPlaneArgs {
    /// Base URL of the control plane (plain http, loopback).
    #[arg(
        long,
        visible_alias = "control-plane-url",
        env = "LOADTEST_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Test-mode secret key (`sk_test_…`), sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "LOADTEST_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Seeded customers to spread the load over: `{prefix}0` … `{prefix}{N-1}`.
    #[arg(long, env = "LOADTEST_CUSTOMERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,
    /// Customer id prefix (as given to `loadtest seed`).
    #[arg(
        long,
        visible_alias = "customer-prefix",
        env = "LOADTEST_CUSTOMER_PREFIX",
        default_value = "cus_"
    )]
    pub prefix: String,
    /// What to send.
    #[arg(long, env = "LOADTEST_MIX", value_enum, default_value_t = Mix::Usage)]
    pub mix: Mix,
    /// Open-loop rate, requests per second (default: SPEC §9's target for the mix, 2000 for
    /// usage, 500 for subscriptions).
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Length of the open-loop run, in seconds.
    #[arg(long, env = "LOADTEST_DURATION_SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// After the open-loop run, a closed-loop run of this many seconds to find the peak rate
    /// (0 skips it).
    #[arg(long, env = "LOADTEST_PEAK_SECS", default_value = "0", value_parser = parse_secs)]
    pub peak_secs: Duration,
    /// Keep-alive HTTP/1 connections, each with one request in flight.
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Generator worker threads.
    #[arg(long, env = "LOADTEST_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Give up on one request (and reconnect) after this many milliseconds.
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Hard cap on requests per run, whatever the duration.
    #[arg(long, env = "LOADTEST_MAX_REQUESTS", default_value_t = 100_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: u64,
    /// Requests in flight at once during the setup phase (attaching cards).
    #[arg(long, env = "LOADTEST_SETUP_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub setup_concurrency: u16,
    /// Process id of the control plane (Linux): also report its CPU time per request.
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_PID")]
    pub control_plane_pid: Option<u32>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct PropagationArgs {
    /// Base URL of the control plane (plain http, loopback).
    #[arg(
        long,
        env = "LOADTEST_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub control_plane_url: String,
    /// Test-mode secret key (`sk_test_…`) for the control plane.
    #[arg(long, env = "LOADTEST_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// Base URL of the edge (plain http, loopback).
    #[arg(
        long,
        env = "LOADTEST_EDGE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub edge_url: String,
    /// Publishable (or secret) key for the edge.
    #[arg(long, env = "LOADTEST_KEY", hide_env_values = true)]
    pub key: String,
    /// Usage `set` reports per second, open loop; each one is a committed change.
    #[arg(long, env = "LOADTEST_CHANGES_PER_SEC", default_value = "1000", value_parser = parse_rate)]
    pub changes_per_sec: f64,
    /// Length of the run, in seconds.
    #[arg(long, env = "LOADTEST_DURATION_SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Seeded customers to spread the changes over (change i goes to `{prefix}{i mod N}`). Keep
    /// N / rate well above the latencies measured, so one customer's changes never overlap.
    #[arg(long, env = "LOADTEST_CUSTOMERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub customers: u64,
    /// Customer id prefix (as given to `loadtest seed`).
    #[arg(
        long,
        visible_alias = "customer-prefix",
        env = "LOADTEST_CUSTOMER_PREFIX",
        default_value = "cus_"
    )]
    pub prefix: String,
    /// METER feature whose usage is set and polled.
    #[arg(
        long,
        env = "LOADTEST_PROPAGATION_FEATURE",
        default_value = "api-calls"
    )]
    pub feature: String,
    /// Track at most this many changes per second (every k-th acknowledged change, k =
    /// ceil(rate / this)); the others are sent but not polled for.
    #[arg(long, env = "LOADTEST_MAX_TRACKED_PER_SEC", default_value = "200", value_parser = parse_rate)]
    pub max_tracked_per_sec: f64,
    /// Dedicated keep-alive edge connections polling for tracked changes, one poll in flight
    /// each; tracked change j goes to poller j mod P.
    #[arg(long, env = "LOADTEST_POLLERS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pollers: u16,
    /// Minimum time between two passes of one poller over its pending changes, in µs. tokio's
    /// timer rounds up to 1 ms ticks, so 1000 gives ~2 ms resolution. 0 polls back to back
    /// (~0.3 ms resolution), but on a small machine its ~10k GET/s take enough CPU from the
    /// control plane to slow the very commits being measured.
    #[arg(long, env = "LOADTEST_POLL_INTERVAL_US", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub poll_interval_us: u64,
    /// A tracked change not visible after this many milliseconds counts as not visible.
    #[arg(long, env = "LOADTEST_VISIBLE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub visible_timeout_ms: u64,
    /// Keep-alive connections to the control plane for the `set` reports.
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub connections: u16,
    /// Generator worker threads (reports and polling share them).
    #[arg(long, env = "LOADTEST_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Give up on one request (and reconnect) after this many milliseconds.
    #[arg(long, env = "LOADTEST_CONTROL_PLANE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

const MAX_SECS: f64 = 24.0 * 3600.0;

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!("must be between 0 and {MAX_SECS} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
        return Err("must be a positive number of requests per second, at most 10000000".into());
    }
    Ok(rate)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if !(f > 0.0 && f <= 1.0) {
        return Err("must be in (0, 1]".into());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("nan").is_err());
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_fraction("1.5").is_err());
    }
}

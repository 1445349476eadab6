use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tollgate_control_plane::app::{Application, Config};
use tollgate_control_plane::domain::auth::model::BootstrapKeys;
use tollgate_control_plane::platform::clock::SystemClock;
use tollgate_control_plane::platform::db::PoolSizes;
use tollgate_control_plane::platform::settings::{Settings, StripeSettings};
use tollgate_shared::server::ServerArgs;

/// Tollgate control plane: catalog, customers, checkout, subscriptions, and edge sync.
#[derive(Parser, Debug)]
#[command(name = "control-plane", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API, the hosted checkout pages and the edge sync stream.
    Serve(Box<Serve>),
    /// Print the OpenAPI document (JSON) and exit.
    Openapi(OpenapiArgs),
    /// Copy a whole embedded (SQLite) database into an empty PostgreSQL database: every table,
    /// both modes, keys still hashed, the change log and its versions intact.
    Copy(Copy),
}

#[derive(Parser, Debug)]
struct OpenapiArgs {
    /// The edge's document (what an edge node serves) instead of the control plane's.
    #[arg(long)]
    edge: bool,
}

#[derive(Parser, Debug)]
struct Copy {
    /// The SQLite database to copy (stop the control plane that uses it first).
    #[arg(long, env = "TOLLGATE_COPY_FROM", hide_env_values = true)]
    from: String,
    /// The PostgreSQL database to copy into; it is migrated, and must hold no data.
    #[arg(long, env = "TOLLGATE_COPY_TO", hide_env_values = true)]
    to: String,
}

#[derive(Parser, Debug)]
struct Serve {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL; the default is an embedded SQLite file under ./data/.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/tollgate.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Declarative catalog file (JSON) applied at start to test and live mode.
    #[arg(long, env = "TOLLGATE_CATALOG")]
    catalog: Option<PathBuf>,
    /// Public base URL for links we hand out (checkout pages, pagination). Defaults to the
    /// listen address.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Test-mode secret key to accept from the first request on (generated when unset).
    #[arg(long, env = "TOLLGATE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Test-mode publishable key (generated when unset).
    #[arg(long, env = "TOLLGATE_PUBLISHABLE_KEY", hide_env_values = true)]
    publishable_key: Option<String>,
    /// Live-mode secret key (generated when unset).
    #[arg(long, env = "TOLLGATE_LIVE_SECRET_KEY", hide_env_values = true)]
    live_secret_key: Option<String>,
    /// Key edges present on the sync stream (generated when unset).
    #[arg(long, env = "TOLLGATE_EDGE_SYNC_KEY", hide_env_values = true)]
    edge_sync_key: Option<String>,
    /// Where keys generated on first start are written, once, readable by the owner only
    /// (0600). They are printed too, but only when standard output is a terminal: otherwise it
    /// is a log stream.
    #[arg(
        long,
        env = "TOLLGATE_GENERATED_KEYS_FILE",
        default_value = "data/generated-keys.env"
    )]
    generated_keys_file: PathBuf,
    /// Comma-separated hosts that successUrl/cancelUrl may point at (default: any).
    #[arg(long, env = "TOLLGATE_REDIRECT_HOSTS", value_delimiter = ',')]
    redirect_hosts: Vec<String>,
    /// Heartbeat interval on idle sync streams, in milliseconds.
    #[arg(long, env = "TOLLGATE_SYNC_HEARTBEAT_MS", default_value_t = 2_000)]
    sync_heartbeat_ms: u64,
    /// Days after a failed renewal on which the charge is retried (comma-separated); when the
    /// last retry fails the subscription is canceled and the customer falls back to free.
    #[arg(
        long,
        env = "TOLLGATE_DUNNING_RETRY_DAYS",
        value_delimiter = ',',
        default_value = "3,5,7"
    )]
    dunning_retry_days: Vec<u32>,
    /// How often the billing clock looks for renewals, trial ends and retries, in milliseconds.
    #[arg(long, env = "TOLLGATE_BILLING_TICK_MS", default_value_t = 1_000)]
    billing_tick_ms: u64,
    /// First retry delay of a failed webhook delivery, in milliseconds (later ones double).
    #[arg(long, env = "TOLLGATE_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000)]
    webhook_retry_base_ms: u64,
    /// Read connections in the API's pool (writes have one connection of their own).
    #[arg(long, env = "TOLLGATE_READ_POOL", default_value_t = 8)]
    read_pool: u32,
    /// PostgreSQL: writer connections working the write queue side by side (SQLite always has
    /// one writer). Two let one batch run while the other waits for its commit to reach disk
    /// (2.5x one writer's rate on 2 cores, BENCHMARKS.md); more can pay on more cores.
    #[arg(long, env = "TOLLGATE_PG_WRITERS", default_value_t = 2)]
    pg_writers: usize,
    /// Read connections reserved for edge sync streams.
    #[arg(long, env = "TOLLGATE_SYNC_POOL", default_value_t = 4)]
    sync_pool: u32,
    /// Request bodies larger than this are refused with 413.
    #[arg(long, env = "TOLLGATE_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    body_limit_bytes: usize,
    /// How long an idempotent answer is replayed (and kept), in seconds.
    #[arg(long, env = "TOLLGATE_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    idempotency_ttl_secs: i64,
    /// How long a checkout session can be paid, in seconds (Stripe's 24 h by default).
    #[arg(long, env = "TOLLGATE_CHECKOUT_TTL_SECS", default_value_t = 86_400)]
    checkout_ttl_secs: i64,
    /// How long a customer-portal link (`portal.create_session`'s `customerPortalUrl`) works,
    /// in seconds (1-86400).
    #[arg(
        long,
        env = "TOLLGATE_PORTAL_SESSION_TTL_SECS",
        default_value_t = 3_600,
        value_parser = clap::value_parser!(i64).range(1..=86_400)
    )]
    portal_session_ttl_secs: i64,
    /// How long the payments worker's claim on a payment intent lasts, in seconds (2-3600).
    /// After a crash an intent is reconciled and charged again only once it runs out; a
    /// processor call is given up well within it.
    #[arg(
        long,
        env = "TOLLGATE_PAYMENT_LEASE_SECS",
        default_value_t = 45,
        value_parser = clap::value_parser!(i64).range(2..=3_600)
    )]
    payment_lease_secs: i64,
    /// SQLite: once the write-ahead log passes this many bytes (1 MiB at least), the writer
    /// truncates it between batches, waiting at most 100 ms for readers still in it
    /// (docs/operations.md).
    #[arg(
        long,
        env = "TOLLGATE_SQLITE_WAL_LIMIT_BYTES",
        default_value_t = tollgate_control_plane::platform::db::DEFAULT_WAL_LIMIT_BYTES,
        value_parser = clap::value_parser!(u64).range(1_048_576..)
    )]
    sqlite_wal_limit_bytes: u64,
    /// JSON API requests a second one client address may make (twice that in a burst); more
    /// get 429 with `Retry-After`. 0 turns it off (behind a proxy, limit there instead).
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_PER_IP", default_value_t = 1_000)]
    rate_limit_per_ip: u32,
    /// JSON API requests a second one credential may make (twice that in a burst), the
    /// unknown ones included; 0 turns it off.
    #[arg(long, env = "TOLLGATE_RATE_LIMIT_PER_KEY", default_value_t = 1_000)]
    rate_limit_per_key: u32,
    /// Serve `/metrics` and `/readyz` (which asks the database) on this address only, not on
    /// the public listener (which then answers them 404). Unset, they stay on the public
    /// listener: one port for development, but anyone who reaches it reads the metrics and
    /// can make it ask the database. Production: an internal address (docs/operations.md).
    #[arg(long, env = "TOLLGATE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// How long one snapshot to an edge may take in all, in seconds; a slower edge is dropped
    /// and reconnects, so none holds a read transaction (and the WAL) for longer.
    #[arg(
        long,
        env = "TOLLGATE_SNAPSHOT_DEADLINE_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    snapshot_deadline_secs: u64,
    /// How long an edge waits for one of the two snapshot slots, in seconds, before its
    /// stream ends (it reconnects with backoff).
    #[arg(
        long,
        env = "TOLLGATE_SNAPSHOT_SLOT_WAIT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    snapshot_slot_wait_secs: u64,
    /// Injects a fault, for crash tests: `payments-after-charge` aborts the process after the
    /// processor answered a charge and before it is settled. Debug builds only: a release
    /// build refuses to start with it.
    #[arg(long, env = "TOLLGATE_FAILPOINT", hide = true)]
    failpoint: Option<String>,
    /// Stripe secret key for test mode (`sk_test_…`): test-mode charges go through Stripe
    /// instead of the test cards.
    #[arg(long, env = "TOLLGATE_STRIPE_TEST_SECRET_KEY", hide_env_values = true)]
    stripe_test_secret_key: Option<String>,
    /// Stripe secret key for live mode (`sk_live_…`); without it live charges decline.
    #[arg(long, env = "TOLLGATE_STRIPE_LIVE_SECRET_KEY", hide_env_values = true)]
    stripe_live_secret_key: Option<String>,
    /// Stripe publishable key for test mode (`pk_test_…`), for Stripe.js on the hosted pages.
    #[arg(long, env = "TOLLGATE_STRIPE_TEST_PUBLISHABLE_KEY")]
    stripe_test_publishable_key: Option<String>,
    /// Stripe publishable key for live mode (`pk_live_…`).
    #[arg(long, env = "TOLLGATE_STRIPE_LIVE_PUBLISHABLE_KEY")]
    stripe_live_publishable_key: Option<String>,
    /// Signing secret(s) of the test-mode Stripe webhook endpoint (`whsec_…`); two, comma
    /// separated, while rotating.
    #[arg(
        long,
        env = "TOLLGATE_STRIPE_TEST_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    stripe_test_webhook_secret: Option<String>,
    /// Signing secret(s) of the live-mode Stripe webhook endpoint.
    #[arg(
        long,
        env = "TOLLGATE_STRIPE_LIVE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    stripe_live_webhook_secret: Option<String>,
    /// Stripe's API base URL (tests point it at an emulator).
    #[arg(
        long,
        env = "TOLLGATE_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    stripe_api_base: String,
    /// Where the hosted pages load Stripe.js from.
    #[arg(
        long,
        env = "TOLLGATE_STRIPE_JS_URL",
        default_value = "https://js.stripe.com/v3/"
    )]
    stripe_js_url: String,
    /// How long the change log keeps entries, in seconds (edges further behind resync with a
    /// snapshot; the newest 10,000 entries are always kept).
    #[arg(long, env = "TOLLGATE_CHANGE_LOG_RETENTION_SECS", default_value_t = 7 * 86_400)]
    change_log_retention_secs: i64,
    /// How long a reported usage event (`POST /api/v1/report/event/`) is kept at least, in
    /// seconds; after that it is pruned once the billing period it fell in has closed (its
    /// idempotency key is honoured as long as the event is kept).
    #[arg(
        long,
        env = "TOLLGATE_USAGE_EVENT_RETENTION_SECS",
        default_value_t = 35 * 86_400,
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    usage_event_retention_secs: i64,
    /// How often pruning runs, in seconds.
    #[arg(long, env = "TOLLGATE_MAINTENANCE_SECS", default_value_t = 60)]
    maintenance_secs: u64,
    /// Accept webhook endpoint URLs that resolve to loopback, private, link-local, multicast or
    /// unspecified addresses (local development and tests only).
    #[arg(long, env = "TOLLGATE_ALLOW_PRIVATE_WEBHOOK_URLS")]
    allow_private_webhook_urls: bool,
    /// Webhook endpoints per mode.
    #[arg(long, env = "TOLLGATE_MAX_WEBHOOK_ENDPOINTS", default_value_t = 16)]
    max_webhook_endpoints: usize,
    /// Consecutive failed deliveries that open an endpoint's circuit (it is disabled until
    /// re-enabled with PATCH .../webhook-endpoints/{id} {"disabled": false}).
    #[arg(long, env = "TOLLGATE_WEBHOOK_BREAKER_FAILURES", default_value_t = 20)]
    webhook_breaker_failures: u32,
    #[command(flatten)]
    server: ServerArgs,
}

/// Every request allocates a few dozen small objects (JSON, rows, strings) across threads;
/// glibc's allocator showed as a tenth of the control plane's CPU under write load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Openapi(args) => {
            let doc = if args.edge {
                tollgate_control_plane::api::openapi::edge_document()
            } else {
                tollgate_control_plane::api::router::document()
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
        Command::Serve(args) => serve(*args).await,
        Command::Copy(args) => {
            let counts =
                tollgate_control_plane::platform::db::copy::run(&args.from, &args.to).await?;
            for (table, n) in counts {
                println!("{table:24} {n}");
            }
            Ok(())
        }
    }
}

async fn serve(args: Serve) -> anyhow::Result<()> {
    tollgate_control_plane::platform::observe::install_metrics();
    let mut settings = Settings::for_url("");
    settings.redirect_hosts = args
        .redirect_hosts
        .into_iter()
        .filter(|h| !h.is_empty())
        .collect();
    settings.sync_heartbeat = Duration::from_millis(args.sync_heartbeat_ms);
    settings.dunning_retry_days = args.dunning_retry_days;
    settings.webhook_retry_base = Duration::from_millis(args.webhook_retry_base_ms);
    settings.body_limit = args.body_limit_bytes;
    settings.idempotency_ttl_secs = args.idempotency_ttl_secs;
    settings.checkout_ttl_secs = args.checkout_ttl_secs;
    settings.payment_lease_secs = args.payment_lease_secs;
    settings.sqlite_wal_limit_bytes = args.sqlite_wal_limit_bytes;
    settings.rate_limit_per_ip = args.rate_limit_per_ip;
    settings.rate_limit_per_key = args.rate_limit_per_key;
    settings.admin_listen = args.admin_listen;
    settings.snapshot_deadline = Duration::from_secs(args.snapshot_deadline_secs);
    settings.snapshot_slot_wait = Duration::from_secs(args.snapshot_slot_wait_secs);
    if args.failpoint.is_some() && !cfg!(debug_assertions) {
        anyhow::bail!("--failpoint is for crash tests and only works in debug builds");
    }
    settings.failpoint = args.failpoint.clone();
    let stripe = |secret: &Option<String>, publishable: &Option<String>, hook: &Option<String>| {
        secret
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|secret_key| StripeSettings {
                secret_key: secret_key.clone(),
                publishable_key: publishable.clone(),
                webhook_secrets: hook
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
    };
    settings.stripe_test = stripe(
        &args.stripe_test_secret_key,
        &args.stripe_test_publishable_key,
        &args.stripe_test_webhook_secret,
    );
    settings.stripe_live = stripe(
        &args.stripe_live_secret_key,
        &args.stripe_live_publishable_key,
        &args.stripe_live_webhook_secret,
    );
    settings.stripe_api_base = args.stripe_api_base.clone();
    settings.stripe_js_url = args.stripe_js_url.clone();
    settings.portal_session_ttl_secs = args.portal_session_ttl_secs;
    settings.change_log_retention_secs = args.change_log_retention_secs;
    settings.usage_event_retention_secs = args.usage_event_retention_secs;
    settings.allow_private_webhook_urls = args.allow_private_webhook_urls;
    settings.max_webhook_endpoints = args.max_webhook_endpoints.max(1);
    settings.webhook_breaker_failures = args.webhook_breaker_failures.max(1);
    let tls = args.server.tls().context("loading --tls-cert/--tls-key")?;
    let args_tls = tls.is_some();
    // Opened before the database is touched: keys generated now are stored only hashed, so a
    // file that cannot be written (a planted symlink) must stop the start before they exist.
    // With every key configured nothing is generated, and no file is needed.
    let generated_keys_file = args.generated_keys_file.clone();
    let may_generate = args.secret_key.is_none()
        || args.publishable_key.is_none()
        || args.live_secret_key.is_none()
        || args.edge_sync_key.is_none();
    let keys_file_existed = generated_keys_file.exists();
    let mut keys_out = match may_generate {
        true => Some(
            open_generated_keys_file(&generated_keys_file).with_context(|| {
                format!(
                    "opening --generated-keys-file {}",
                    generated_keys_file.display()
                )
            })?,
        ),
        false => None,
    };
    let config = Config {
        listen: args.listen,
        database_url: args.database_url,
        pools: PoolSizes {
            read: args.read_pool,
            sync: args.sync_pool,
        },
        pg_writers: args.pg_writers,
        catalog: args.catalog,
        public_url: args.public_url,
        keys: BootstrapKeys {
            secret: args.secret_key,
            publishable: args.publishable_key,
            live_secret: args.live_secret_key,
            edge_sync: args.edge_sync_key,
        },
        settings,
        drain: args.server.drain(),
        billing_tick: Duration::from_millis(args.billing_tick_ms),
        maintenance_every: Duration::from_secs(args.maintenance_secs),
        limits: args.server.limits(),
        tls,
    };
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    let addr = app.local_addr()?;
    let scheme = if args_tls { "https" } else { "http" };
    println!(
        "control plane listening on {scheme}://{addr} (public URL {})",
        app.public_url()
    );
    if let Some(admin) = app.admin_addr() {
        println!("admin (metrics, readiness) on http://{admin}");
    }
    if let (Some(file), false) = (keys_out.as_mut(), app.generated_keys.is_empty()) {
        let path = &generated_keys_file;
        write_generated_keys(file, &app.generated_keys)
            .with_context(|| format!("writing the generated keys to {}", path.display()))?;
        if std::io::stdout().is_terminal() {
            for (label, key) in &app.generated_keys {
                println!("generated {label}: {key}");
            }
        }
        println!(
            "generated keys written to {} (mode 0600; stored hashed, shown only there; keep them)",
            path.display()
        );
    } else if keys_out.take().is_some() && !keys_file_existed {
        let _ = std::fs::remove_file(&generated_keys_file);
    }
    app.run(shutdown_signal()).await
}

/// The generated-keys file, for appending: created 0600, never opened through a symlink (a
/// planted link cannot send the keys elsewhere).
fn open_generated_keys_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Appends the generated keys as the environment lines `serve` reads them from
/// (`TOLLGATE_SECRET_KEY=…`), so the file can be sourced.
fn write_generated_keys(
    file: &mut std::fs::File,
    keys: &[(String, String)],
) -> std::io::Result<()> {
    use std::io::Write;
    for (label, key) in keys {
        let name = match label.as_str() {
            "secret key (test)" => "TOLLGATE_SECRET_KEY",
            "publishable key (test)" => "TOLLGATE_PUBLISHABLE_KEY",
            "secret key (live)" => "TOLLGATE_LIVE_SECRET_KEY",
            "edge sync key" => "TOLLGATE_EDGE_SYNC_KEY",
            _ => "TOLLGATE_KEY",
        };
        writeln!(file, "{name}={key}")?;
    }
    file.sync_all()
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

//! Startup: the state every handler sees, the router, the background workers, and the server
//! loop with its graceful shutdown. `main.rs` only parses flags and calls
//! [`Application::build`] / [`Application::run`].

pub mod bootstrap;
pub mod catalog_file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tollgate_shared::server::{ServerLimits, TlsConfig};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tracing::info;

use crate::api::state::{AppInner, AppState};
use crate::domain::auth::keys::KeyCache;
use crate::domain::auth::model::BootstrapKeys;
use crate::domain::sync::notifier::SyncNotifier;
use crate::payments::Processors;
use crate::platform::clock::SharedClock;
use crate::platform::db::{Backend, Db, PoolSizes};
use crate::platform::http::error::ApiError;
use crate::platform::settings::Settings;
use crate::workers::billing_clock::BillingClock;
use crate::workers::payments::PaymentsWorker;
use crate::write::{Hooks, Writer, WriterControl};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub pools: PoolSizes,
    /// Writer connections on PostgreSQL (SQLite has one writer).
    pub pg_writers: usize,
    pub catalog: Option<PathBuf>,
    /// Base of the URLs we hand out (checkout pages, pagination links). Defaults to the
    /// listen address.
    pub public_url: Option<String>,
    pub keys: BootstrapKeys,
    pub settings: Settings,
    pub drain: Duration,
    /// How often the billing clock looks for due work (renewals, trial ends, retries).
    pub billing_tick: Duration,
    /// How often pruning runs.
    pub maintenance_every: Duration,
    /// Header, idle and request timeouts and the connection cap of the listener.
    pub limits: ServerLimits,
    /// Serve HTTPS only, with this certificate.
    pub tls: Option<TlsConfig>,
}

pub struct Application {
    listener: TcpListener,
    /// `--admin-listen`: `/metrics` and `/readyz`, off the public listener.
    admin: Option<TcpListener>,
    router: Router,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    writer: WriterControl,
    drain: Duration,
    billing_tick: Duration,
    maintenance_every: Duration,
    limits: ServerLimits,
    tls: Option<TlsConfig>,
    /// Keys generated on this start, to print once.
    pub generated_keys: Vec<(String, String)>,
}

impl Application {
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Application> {
        let db = Db::open(&config.database_url, config.pools)
            .await
            .with_context(|| format!("opening {}", redact(&config.database_url)))?
            .with_wal_limit(config.settings.sqlite_wal_limit_bytes);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let admin = match config.settings.admin_listen {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding --admin-listen {at}"))?,
            ),
            None => None,
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| {
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{addr}")
            })
            .trim_end_matches('/')
            .to_owned();
        let latest = {
            let mut conn = db.read_for_sync().await?;
            crate::domain::sync::changelog::latest(&mut conn).await?
        };
        let notifier = SyncNotifier::new(latest);
        let webhook_wake = Arc::new(Notify::new());
        let payment_wake = Arc::new(Notify::new());
        let auth = KeyCache::new(db.clone());
        let forget = auth.clone();
        let (writer, writer_control) = Writer::start(
            &db,
            clock.clone(),
            Hooks {
                sync: notifier.clone(),
                webhook_wake: webhook_wake.clone(),
                payment_wake: payment_wake.clone(),
                revoked: Arc::new(move |hashes: &[String]| forget.forget(hashes)),
            },
            config.pg_writers,
        )
        .await
        .context("starting the writer")?;
        let token_key = token_signing_key(&writer).await?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let settings = Settings {
            public_url,
            ..config.settings.clone()
        };
        let billing = BillingClock {
            writer: writer.clone(),
            db: db.clone(),
            clock: clock.clone(),
            retry_days: settings.dunning_retry_days.clone().into(),
            checkout_ttl_secs: settings.checkout_ttl_secs,
        };
        let payments = PaymentsWorker {
            writer: writer.clone(),
            clock: clock.clone(),
            processors: processors(&settings)?,
            wake: payment_wake,
            settled: Arc::new(Notify::new()),
            retry_days: settings.dunning_retry_days.clone().into(),
            lease_secs: settings.payment_lease_secs,
            failpoint: settings.failpoint.clone(),
        };
        let rate_limits = crate::platform::http::rate_limit::RateLimits::new(
            settings.rate_limit_per_ip,
            settings.rate_limit_per_key,
        );
        let state = AppState::new(AppInner {
            db,
            writer,
            clock,
            config: Arc::new(settings),
            auth,
            rate_limits,
            sync: notifier,
            token_verifying_key: tollgate_shared::token::encode_verifying_key(
                &token_key.verifying_key(),
            ),
            token_key: Arc::new(token_key),
            shutdown,
            webhook_wake,
            recompile_wake: Arc::new(Notify::new()),
            snapshot_slots: Arc::new(Semaphore::new(2)),
            billing,
            payments,
        });
        let generated_keys = bootstrap::bootstrap(&state.writer, &config.keys).await?;
        if let Some(path) = &config.catalog {
            let file = catalog_file::read(path)?;
            let changed = catalog_file::apply(&state.writer, &file).await?;
            info!(path = %path.display(), changed, "catalog file applied");
        }
        Ok(Application {
            listener,
            admin,
            router: crate::api::router::router(state.clone()),
            state,
            shutdown_tx,
            writer: writer_control,
            drain: config.drain,
            billing_tick: config.billing_tick,
            maintenance_every: config.maintenance_every,
            limits: config.limits,
            tls: config.tls,
            generated_keys,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The `--admin-listen` address, bound.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn public_url(&self) -> &str {
        &self.state.config.public_url
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends the sync streams and waits
    /// up to the drain deadline for in-flight requests; the writer finishes what is queued.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let app = NormalizePathLayer::trim_trailing_slash().layer(self.router);
        let stopping = state.shutdown.clone();
        tokio::spawn(
            crate::workers::webhooks::Deliverer {
                writer: state.writer.clone(),
                clock: state.clock.clone(),
                retry_base: state.config.webhook_retry_base,
                wake: state.webhook_wake.clone(),
                allow_private: state.config.allow_private_webhook_urls,
                breaker_failures: state.config.webhook_breaker_failures,
            }
            .run_forever(Duration::from_secs(1), stopping.clone()),
        );
        tokio::spawn(
            state
                .billing
                .clone()
                .run_forever(self.billing_tick, stopping.clone()),
        );
        tokio::spawn(
            crate::workers::maintenance::Maintenance {
                writer: state.writer.clone(),
                clock: state.clock.clone(),
                idempotency_ttl_secs: state.config.idempotency_ttl_secs,
                change_log_retention_secs: state.config.change_log_retention_secs,
                usage_event_retention_secs: state.config.usage_event_retention_secs,
            }
            .run_forever(self.maintenance_every, stopping.clone()),
        );
        if state.db.backend() == Backend::Postgres {
            tokio::spawn(crate::workers::sync_listen::run(
                state.db.clone(),
                state.db.write_url().to_owned(),
                state.sync.clone(),
                stopping.clone(),
            ));
        }
        tokio::spawn(
            state
                .payments
                .clone()
                .run_forever(Duration::from_secs(1), stopping.clone()),
        );
        tokio::spawn(
            crate::workers::recompile::Recompiler {
                writer: state.writer.clone(),
                wake: state.recompile_wake.clone(),
            }
            .run_forever(Duration::from_secs(1), stopping.clone()),
        );
        tokio::spawn(crate::workers::gauges::gauges(
            state.db.clone(),
            state.writer.clone(),
            state.sync.clone(),
            stopping.clone(),
        ));
        state.db.start_checkpointer(stopping.clone())?;
        if let Some(admin) = self.admin {
            // Plain HTTP on an internal address; the same hardened loop, its own drain.
            let router = crate::api::router::admin_router(state.clone());
            let mut stop = stopping.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                let served = tollgate_shared::server::serve(
                    admin,
                    move |_peer| TowerToHyperService::new(router.clone()),
                    limits,
                    None,
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                    Duration::from_secs(1),
                )
                .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "the admin listener failed");
                }
            });
        }
        {
            // Rate limiters forget the addresses and credentials whose buckets refilled.
            let state = state.clone();
            let mut stop = stopping.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => state.rate_limits.forget_idle(),
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            });
        }
        let shutdown_tx = self.shutdown_tx;
        // One hardened loop for both binaries: header/idle/request timeouts, a connection cap,
        // TLS, TCP_NODELAY (Nagle and delayed ACKs would hold small sync frames ~40 ms) and a
        // drain with a deadline.
        let drain = self.drain;
        tollgate_shared::server::serve(
            self.listener,
            move |peer| {
                TowerToHyperService::new(
                    axum::Extension(crate::platform::http::rate_limit::ClientAddr(peer))
                        .layer(app.clone()),
                )
            },
            self.limits,
            self.tls,
            async move {
                shutdown.await;
                info!("shutting down: draining requests");
                // Ends the sync streams, which would otherwise hold the drain open.
                let _ = shutdown_tx.send(true);
            },
            drain,
        )
        .await?;
        self.writer.stop(drain).await;
        state.db.close().await;
        Ok(())
    }
}

/// A database URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The customer-token signing key: made on first start, shared by every replica.
async fn token_signing_key(writer: &Writer) -> anyhow::Result<SigningKey> {
    let fresh = B64.encode(tollgate_shared::token::new_signing_key().to_bytes());
    let stored = writer
        .run("token_signing_key", async move |uow| {
            Ok::<_, ApiError>(
                crate::domain::auth::store::setting_or_insert(uow, "token_signing_key", &fresh)
                    .await?,
            )
        })
        .await
        .map_err(|e| anyhow::anyhow!("storing the token signing key: {e}"))?;
    let bytes: [u8; 32] = B64
        .decode(stored)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored token signing key is corrupt"))?;
    Ok(tollgate_shared::token::signing_key_from_bytes(&bytes))
}

/// Stripe for each mode that has a secret key (docs/payments.md), the test cards otherwise.
fn processors(settings: &Settings) -> anyhow::Result<Processors> {
    let config = |s: &Option<crate::platform::settings::StripeSettings>| {
        s.as_ref().map(|s| crate::payments::stripe::StripeConfig {
            secret_key: s.secret_key.clone(),
            publishable_key: s.publishable_key.clone(),
            webhook_secrets: s.webhook_secrets.clone(),
            api_base: settings.stripe_api_base.clone(),
            js_url: settings.stripe_js_url.clone(),
        })
    };
    Processors::configured(config(&settings.stripe_test), config(&settings.stripe_live))
        .map_err(|e| anyhow::anyhow!("setting up the payment processors: {e}"))
}

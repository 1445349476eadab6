//! Startup: the state every handler sees, the router, the background workers, and the server
//! loop with its graceful shutdown. `main.rs` only parses flags and calls
//! [`Application::build`] / [`Application::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
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
use crate::platform::clock::SharedClock;
use crate::platform::db::{Backend, Db, PoolSizes};
use crate::platform::http::error::ApiError;
use crate::platform::http::hosted;
use crate::platform::settings::Settings;
use crate::workers::billing_clock::BillingClock;
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
            .with_context(|| format!("opening {}", redact(&config.database_url)))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
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
        let auth = KeyCache::new(db.clone());
        let forget = auth.clone();
        let (writer, writer_control) = Writer::start(
            &db,
            clock.clone(),
            Hooks {
                sync: notifier.clone(),
                webhook_wake: webhook_wake.clone(),
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
        let state = AppState::new(AppInner {
            db,
            writer,
            clock,
            config: Arc::new(settings),
            auth,
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
        });
        let generated_keys = bootstrap::bootstrap(&state.writer, &config.keys).await?;
        if let Some(path) = &config.catalog {
            let file = catalog_file::read(path)?;
            let changed = catalog_file::apply(&state.writer, &file).await?;
            info!(path = %path.display(), changed, "catalog file applied");
        }
        Ok(Application {
            listener,
            router: router(state.clone()),
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
            crate::workers::recompile::Recompiler {
                writer: state.writer.clone(),
                wake: state.recompile_wake.clone(),
            }
            .run_forever(Duration::from_secs(1), stopping.clone()),
        );
        tokio::spawn(crate::api::routes::ops::gauges(
            state.clone(),
            stopping.clone(),
        ));
        state.db.start_checkpointer(stopping.clone())?;
        let shutdown_tx = self.shutdown_tx;
        // One hardened loop for both binaries: header/idle/request timeouts, a connection cap,
        // TLS, TCP_NODELAY (Nagle and delayed ACKs would hold small sync frames ~40 ms) and a
        // drain with a deadline.
        let drain = self.drain;
        tollgate_shared::server::serve(
            self.listener,
            move |_peer| TowerToHyperService::new(app.clone()),
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

fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let api = Router::new()
        .route(
            "/api/v1/customers",
            post(crate::api::routes::customers::create).get(crate::api::routes::customers::list),
        )
        .route(
            "/api/v1/customers/{customer_id}",
            get(crate::api::routes::customers::get)
                .patch(crate::api::routes::customers::update)
                .put(crate::api::routes::customers::update)
                .delete(crate::api::routes::customers::archive),
        )
        .route(
            "/api/v1/customers/{customer_id}/token",
            post(crate::api::routes::customers::mint_token),
        )
        .route(
            "/api/v1/features",
            post(crate::api::routes::catalog::create_feature)
                .get(crate::api::routes::catalog::list_features),
        )
        .route(
            "/api/v1/features/{identifier}",
            get(crate::api::routes::catalog::get_feature),
        )
        .route(
            "/api/v1/plans",
            post(crate::api::routes::catalog::create_plan)
                .get(crate::api::routes::catalog::list_plans),
        )
        .route(
            "/api/v1/plans/{identifier}",
            get(crate::api::routes::catalog::get_plan)
                .put(crate::api::routes::catalog::replace_plan),
        )
        .route(
            "/api/v1/checkout",
            post(crate::api::routes::checkout::create),
        )
        .route(
            "/api/v1/checkout/{session_id}/complete",
            post(crate::api::routes::checkout::complete),
        )
        .route(
            "/api/v1/subscriptions",
            get(crate::api::routes::subscriptions::list),
        )
        .route(
            "/api/v1/subscriptions/create",
            post(crate::api::dialects::kelviq::create),
        )
        .route(
            "/api/v1/subscriptions/{id}",
            get(crate::api::routes::subscriptions::get),
        )
        .route(
            "/api/v1/subscriptions/{id}/update",
            post(crate::api::dialects::kelviq::update),
        )
        .route(
            "/api/v1/subscriptions/{id}/update/preview",
            post(crate::api::dialects::kelviq::preview_update),
        )
        .route(
            "/api/v1/subscriptions/{id}/cancel",
            post(crate::api::dialects::kelviq::cancel),
        )
        .route(
            "/api/v1/subscriptions/{id}/resume",
            post(crate::api::dialects::kelviq::resume),
        )
        .route(
            "/api/v1/subscribe",
            post(crate::api::dialects::paykit::subscribe),
        )
        .route(
            "/api/v1/portal/session",
            post(crate::api::routes::portal::create_session),
        )
        .route(
            "/api/v1/license/activate",
            post(crate::api::routes::licenses::activate),
        )
        .route(
            "/api/v1/license/deactivate",
            post(crate::api::routes::licenses::deactivate),
        )
        .route(
            "/api/v1/license/validate",
            post(crate::api::routes::licenses::validate),
        )
        .route("/api/v1/invoices", get(crate::api::routes::invoices::list))
        .route(
            "/api/v1/refunds",
            post(crate::api::routes::refunds::create).get(crate::api::routes::refunds::list),
        )
        .route(
            "/api/v1/refunds/{id}",
            get(crate::api::routes::refunds::get),
        )
        .route(
            "/api/v1/charges",
            post(crate::api::dialects::kelviq::create_charge),
        )
        .route(
            "/api/v1/transaction",
            get(crate::api::routes::refunds::transactions),
        )
        .route(
            "/api/v1/payment-methods",
            get(crate::api::routes::invoices::list_payment_methods),
        )
        .route(
            "/api/v1/invoices/{id}",
            get(crate::api::routes::invoices::get),
        )
        .route(
            "/api/v1/customers/{customer_id}/balances",
            get(crate::api::routes::customers::balances),
        )
        .route(
            "/api/v1/customers/{customer_id}/payment-methods",
            post(crate::api::routes::invoices::attach_payment_method)
                .delete(crate::api::routes::invoices::detach_payment_methods),
        )
        .route(
            "/api/v1/test-clocks",
            post(crate::api::routes::test_clocks::create),
        )
        .route(
            "/api/v1/test-clocks/{id}",
            get(crate::api::routes::test_clocks::get),
        )
        .route(
            "/api/v1/test-clocks/{id}/advance",
            post(crate::api::routes::test_clocks::advance),
        )
        .route("/api/v1/usage", post(crate::api::routes::usage::report))
        .route(
            "/api/v1/report/usage",
            post(crate::api::dialects::kelviq::report_usage),
        )
        .route(
            "/api/v1/report/event",
            post(crate::api::dialects::kelviq::report_event),
        )
        .route(
            "/api/v1/webhook-endpoints",
            post(crate::api::routes::webhooks::create).get(crate::api::routes::webhooks::list),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}",
            delete(crate::api::routes::webhooks::delete)
                .patch(crate::api::routes::webhooks::update),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}/deliveries",
            get(crate::api::routes::webhooks::deliveries),
        )
        .route(
            "/v1/subscriptions",
            post(crate::api::dialects::fourgeeks::create)
                .get(crate::api::dialects::fourgeeks::list),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(crate::api::dialects::fourgeeks::get)
                .delete(crate::api::dialects::fourgeeks::cancel),
        )
        .route(
            "/api/v1/api-keys",
            post(crate::api::routes::api_keys::create).get(crate::api::routes::api_keys::list),
        )
        .route(
            "/api/v1/api-keys/{id}",
            delete(crate::api::routes::api_keys::revoke),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::api::idempotency::middleware,
        ));
    // The pages people open in a browser, and every answer to their forms, carry the hosted
    // pages' security headers (http::hosted).
    let hosted = Router::new()
        .route(
            "/checkout/{session_id}",
            get(crate::api::pages::checkout::show),
        )
        .route(
            "/checkout/{session_id}/pay",
            post(crate::api::pages::checkout::pay),
        )
        .route("/portal/{token}", get(crate::api::pages::portal::show))
        .route(
            "/portal/{token}/preview",
            get(crate::api::pages::portal::preview),
        )
        .route(
            "/portal/{token}/switch",
            post(crate::api::pages::portal::switch),
        )
        .route(
            "/portal/{token}/cancel",
            post(crate::api::pages::portal::cancel),
        )
        .route(
            "/portal/{token}/resume",
            post(crate::api::pages::portal::resume),
        )
        .route(
            "/portal/{token}/card",
            post(crate::api::pages::portal::card),
        )
        .route(hosted::STYLESHEET_PATH, get(hosted::stylesheet))
        .route(hosted::ICON_PATH, get(hosted::icon))
        .layer(axum::middleware::from_fn(hosted::security_headers));
    Router::new()
        .merge(api)
        .merge(hosted)
        .route(
            tollgate_shared::sync::STREAM_PATH,
            get(crate::api::routes::sync::stream),
        )
        .route("/healthz", get(crate::api::routes::ops::healthz))
        .route("/readyz", get(crate::api::routes::ops::readyz))
        .route("/metrics", get(crate::api::routes::ops::metrics))
        .route("/openapi.json", get(crate::api::openapi::serve))
        .fallback(crate::api::routes::ops::not_found)
        .method_not_allowed_fallback(crate::api::routes::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::api::routes::ops::track))
        .with_state(state)
}
pub mod bootstrap;
pub mod catalog_file;

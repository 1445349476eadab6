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

use crate::auth::keys::KeyCache;
use crate::auth::model::BootstrapKeys;
use crate::clock::SharedClock;
use crate::db::{Backend, Db, PoolSizes};
use crate::http::error::ApiError;
use crate::http::hosted;
use crate::settings::Settings;
use crate::state::{AppInner, AppState};
use crate::sync::notifier::SyncNotifier;
use crate::write::{Hooks, Writer, WriterControl};
use crate::{
    auth, billing, catalog, checkout, customers, dialects, idempotency, licenses, maintenance,
    observe, portal, refunds, subscriptions, sync, usage, webhooks,
};

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
            sync::changelog::latest(&mut conn).await?
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
        });
        let generated_keys = auth::bootstrap::bootstrap(&state.writer, &config.keys).await?;
        if let Some(path) = &config.catalog {
            let file = catalog::file::read(path)?;
            let changed = catalog::file::apply(&state.writer, &file).await?;
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
            webhooks::delivery::Deliverer {
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
                .billing()
                .run_forever(self.billing_tick, stopping.clone()),
        );
        tokio::spawn(
            maintenance::Maintenance {
                writer: state.writer.clone(),
                clock: state.clock.clone(),
                idempotency_ttl_secs: state.config.idempotency_ttl_secs,
                change_log_retention_secs: state.config.change_log_retention_secs,
            }
            .run_forever(self.maintenance_every, stopping.clone()),
        );
        if state.db.backend() == Backend::Postgres {
            tokio::spawn(sync::listen::run(
                state.db.clone(),
                state.db.write_url().to_owned(),
                state.sync.clone(),
                stopping.clone(),
            ));
        }
        tokio::spawn(
            catalog::recompile::Recompiler {
                writer: state.writer.clone(),
                wake: state.recompile_wake.clone(),
            }
            .run_forever(Duration::from_secs(1), stopping.clone()),
        );
        tokio::spawn(observe::gauges(state.clone(), stopping.clone()));
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
                auth::store::setting_or_insert(uow, "token_signing_key", &fresh).await?,
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
            post(customers::routes::create).get(customers::routes::list),
        )
        .route(
            "/api/v1/customers/{customer_id}",
            get(customers::routes::get)
                .patch(customers::routes::update)
                .put(customers::routes::update)
                .delete(customers::routes::archive),
        )
        .route(
            "/api/v1/customers/{customer_id}/token",
            post(customers::routes::mint_token),
        )
        .route(
            "/api/v1/features",
            post(catalog::routes::create_feature).get(catalog::routes::list_features),
        )
        .route(
            "/api/v1/features/{identifier}",
            get(catalog::routes::get_feature),
        )
        .route(
            "/api/v1/plans",
            post(catalog::routes::create_plan).get(catalog::routes::list_plans),
        )
        .route(
            "/api/v1/plans/{identifier}",
            get(catalog::routes::get_plan).put(catalog::routes::replace_plan),
        )
        .route("/api/v1/checkout", post(checkout::routes::create))
        .route(
            "/api/v1/checkout/{session_id}/complete",
            post(checkout::routes::complete),
        )
        .route("/api/v1/subscriptions", get(subscriptions::routes::list))
        .route(
            "/api/v1/subscriptions/create",
            post(dialects::kelviq::create),
        )
        .route(
            "/api/v1/subscriptions/{id}",
            get(subscriptions::routes::get),
        )
        .route(
            "/api/v1/subscriptions/{id}/update",
            post(dialects::kelviq::update),
        )
        .route(
            "/api/v1/subscriptions/{id}/update/preview",
            post(dialects::kelviq::preview_update),
        )
        .route(
            "/api/v1/subscriptions/{id}/cancel",
            post(dialects::kelviq::cancel),
        )
        .route(
            "/api/v1/subscriptions/{id}/resume",
            post(dialects::kelviq::resume),
        )
        .route("/api/v1/subscribe", post(dialects::paykit::subscribe))
        .route(
            "/api/v1/portal/session",
            post(portal::routes::create_session),
        )
        .route("/api/v1/license/activate", post(licenses::routes::activate))
        .route(
            "/api/v1/license/deactivate",
            post(licenses::routes::deactivate),
        )
        .route("/api/v1/license/validate", post(licenses::routes::validate))
        .route("/api/v1/invoices", get(billing::routes::list))
        .route(
            "/api/v1/refunds",
            post(refunds::routes::create).get(refunds::routes::list),
        )
        .route("/api/v1/refunds/{id}", get(refunds::routes::get))
        .route("/api/v1/charges", post(dialects::kelviq::create_charge))
        .route("/api/v1/transaction", get(refunds::routes::transactions))
        .route(
            "/api/v1/payment-methods",
            get(billing::routes::list_payment_methods),
        )
        .route("/api/v1/invoices/{id}", get(billing::routes::get))
        .route(
            "/api/v1/customers/{customer_id}/balances",
            get(customers::routes::balances),
        )
        .route(
            "/api/v1/customers/{customer_id}/payment-methods",
            post(billing::routes::attach_payment_method)
                .delete(billing::routes::detach_payment_methods),
        )
        .route(
            "/api/v1/test-clocks",
            post(billing::test_clocks::routes::create),
        )
        .route(
            "/api/v1/test-clocks/{id}",
            get(billing::test_clocks::routes::get),
        )
        .route(
            "/api/v1/test-clocks/{id}/advance",
            post(billing::test_clocks::routes::advance),
        )
        .route("/api/v1/usage", post(usage::routes::report))
        .route("/api/v1/report/usage", post(dialects::kelviq::report_usage))
        .route("/api/v1/report/event", post(dialects::kelviq::report_event))
        .route(
            "/api/v1/webhook-endpoints",
            post(webhooks::routes::create).get(webhooks::routes::list),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}",
            delete(webhooks::routes::delete).patch(webhooks::routes::update),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}/deliveries",
            get(webhooks::routes::deliveries),
        )
        .route(
            "/v1/subscriptions",
            post(dialects::fourgeeks::create).get(dialects::fourgeeks::list),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(dialects::fourgeeks::get).delete(dialects::fourgeeks::cancel),
        )
        .route(
            "/api/v1/api-keys",
            post(auth::routes::create).get(auth::routes::list),
        )
        .route("/api/v1/api-keys/{id}", delete(auth::routes::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware::middleware,
        ));
    // The pages people open in a browser, and every answer to their forms, carry the hosted
    // pages' security headers (http::hosted).
    let hosted = Router::new()
        .route("/checkout/{session_id}", get(checkout::page::show))
        .route("/checkout/{session_id}/pay", post(checkout::page::pay))
        .route("/portal/{token}", get(portal::page::show))
        .route("/portal/{token}/preview", get(portal::page::preview))
        .route("/portal/{token}/switch", post(portal::page::switch))
        .route("/portal/{token}/cancel", post(portal::page::cancel))
        .route("/portal/{token}/resume", post(portal::page::resume))
        .route("/portal/{token}/card", post(portal::page::card))
        .route(hosted::STYLESHEET_PATH, get(hosted::stylesheet))
        .route(hosted::ICON_PATH, get(hosted::icon))
        .layer(axum::middleware::from_fn(hosted::security_headers));
    Router::new()
        .merge(api)
        .merge(hosted)
        .route(
            tollgate_shared::sync::STREAM_PATH,
            get(sync::stream::stream),
        )
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .fallback(observe::not_found)
        .method_not_allowed_fallback(observe::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

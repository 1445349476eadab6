//! Startup: the shared state every handler sees, the router, and the server loop with its
//! graceful shutdown. `main.rs` only parses flags and calls [`Application::build`] / `run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tracing::{info, warn};

use crate::auth::BootstrapKeys;
use crate::clock::SharedClock;
use crate::db::{Db, WriteTx};
use crate::sync::{SyncNotifier, changelog};
use crate::{
    api_keys, billing, catalog, checkout, customers, fourgeeks, idempotency, observe,
    subscriptions, sync, usage, webhooks,
};

/// Request bodies above this are refused with 413 before any handler runs.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub catalog: Option<PathBuf>,
    /// Base of the URLs we hand out (checkout pages, pagination links). Defaults to the
    /// listen address.
    pub public_url: Option<String>,
    pub keys: BootstrapKeys,
    /// Hosts a `successUrl`/`cancelUrl` may point at; empty allows any http(s) host.
    pub redirect_hosts: Vec<String>,
    pub sync_heartbeat: Duration,
    pub drain: Duration,
    pub dunning_retry_days: Vec<u32>,
    /// How often the billing clock looks for due work (renewals, trial ends, retries).
    pub billing_tick: Duration,
    /// First webhook retry delay; later ones double (at most an hour).
    pub webhook_retry_base: Duration,
}

/// Settled configuration, as handlers see it.
#[derive(Debug)]
pub struct Settings {
    pub public_url: String,
    /// Days after a failed renewal on which the charge is retried; after the last, the
    /// subscription is canceled.
    pub dunning_retry_days: Vec<u32>,
    pub webhook_retry_base: Duration,
    pub redirect_hosts: Vec<String>,
    pub sync_heartbeat: Duration,
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: SharedClock,
    pub config: Arc<Settings>,
    pub sync: SyncNotifier,
    pub token_key: Arc<SigningKey>,
    pub token_verifying_key: String,
    pub shutdown: watch::Receiver<bool>,
    /// Wakes the webhook worker when a commit queued deliveries.
    pub webhook_wake: Arc<tokio::sync::Notify>,
    /// Snapshots hold a pooled connection and a read transaction while they stream; at most
    /// this many at once, so reconnecting edges cannot starve the API of connections.
    pub snapshot_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Commits and, if the transaction appended to the change log, wakes the sync streams.
    pub async fn commit(&self, tx: WriteTx) -> Result<(), sqlx::Error> {
        let appended = tx.appended;
        let webhooks = tx.webhooks;
        tx.commit().await?;
        if webhooks {
            self.webhook_wake.notify_one();
        }
        if let Some(v) = appended {
            self.sync.committed(v);
        }
        Ok(())
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    drain: Duration,
    billing_tick: Duration,
    /// Keys generated on this start, to print once.
    pub generated_keys: Vec<(String, String)>,
}

impl Application {
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Application> {
        let db = Db::connect(&config.database_url)
            .await
            .with_context(|| format!("opening {}", config.database_url))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let token_key = token_signing_key(&db).await?;
        let latest = {
            let mut conn = db.pool.acquire().await?;
            changelog::latest(&mut conn).await?
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            db,
            clock,
            config: Arc::new(Settings {
                public_url,
                redirect_hosts: config.redirect_hosts.clone(),
                sync_heartbeat: config.sync_heartbeat,
                dunning_retry_days: config.dunning_retry_days.clone(),
                webhook_retry_base: config.webhook_retry_base,
            }),
            sync: SyncNotifier::new(latest),
            token_verifying_key: tollgate_shared::token::encode_verifying_key(
                &token_key.verifying_key(),
            ),
            token_key: Arc::new(token_key),
            shutdown,
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            snapshot_slots: Arc::new(tokio::sync::Semaphore::new(2)),
        };
        let generated_keys = crate::auth::bootstrap(&state, &config.keys).await?;
        if let Some(path) = &config.catalog {
            let file = catalog::file::read(path)?;
            let changed = catalog::file::apply(&state, &file).await?;
            info!(path = %path.display(), changed, "catalog file applied");
        }
        Ok(Application {
            listener,
            router: router(state.clone()),
            state,
            shutdown_tx,
            drain: config.drain,
            billing_tick: config.billing_tick,
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
    /// up to the drain deadline for in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = NormalizePathLayer::trim_trailing_slash().layer(self.router);
        let app = axum::ServiceExt::<Request>::into_make_service(app);
        tokio::spawn(crate::webhooks::delivery::run_forever(
            self.state.clone(),
            Duration::from_secs(1),
        ));
        tokio::spawn(crate::billing::worker::run_forever(
            self.state.clone(),
            self.billing_tick,
        ));
        let shutdown_tx = self.shutdown_tx;
        let mut stopped = self.state.shutdown.clone();
        // Without TCP_NODELAY, Nagle and delayed ACKs hold small sync frames back ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            info!("shutting down: draining requests");
            let _ = shutdown_tx.send(true);
        });
        let drain = self.drain;
        tokio::select! {
            r = server => r?,
            () = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(drain).await;
            } => warn!("drain deadline passed; exiting with requests still open"),
        }
        Ok(())
    }
}

async fn token_signing_key(db: &Db) -> anyhow::Result<SigningKey> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE name = 'token_signing_key'")
            .fetch_optional(&db.pool)
            .await?;
    if let Some(b64) = stored {
        let bytes: [u8; 32] = B64
            .decode(b64)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored token signing key is corrupt"))?;
        return Ok(tollgate_shared::token::signing_key_from_bytes(&bytes));
    }
    let key = tollgate_shared::token::new_signing_key();
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('token_signing_key', ?) ON CONFLICT DO NOTHING",
    )
    .bind(B64.encode(key.to_bytes()))
    .execute(&db.pool)
    .await?;
    Ok(key)
}

fn router(state: AppState) -> Router {
    use axum::routing::delete;
    let api = Router::new()
        .route(
            "/api/v1/customers",
            post(customers::routes::create).get(customers::routes::list),
        )
        .route(
            "/api/v1/customers/{customer_id}",
            get(customers::routes::get)
                .patch(customers::routes::update)
                .put(customers::routes::update),
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
            "/api/v1/subscriptions/{id}",
            get(subscriptions::routes::get),
        )
        .route(
            "/api/v1/subscriptions/{id}/update",
            post(subscriptions::routes::update),
        )
        .route(
            "/api/v1/subscriptions/{id}/cancel",
            post(subscriptions::routes::cancel),
        )
        .route(
            "/api/v1/subscriptions/{id}/resume",
            post(subscriptions::routes::resume),
        )
        .route(
            "/api/v1/subscribe",
            post(subscriptions::subscribe::subscribe),
        )
        .route("/api/v1/invoices", get(billing::routes::list))
        .route("/api/v1/invoices/{id}", get(billing::routes::get))
        .route(
            "/api/v1/customers/{customer_id}/payment-methods",
            post(billing::routes::attach_payment_method)
                .delete(billing::routes::detach_payment_methods),
        )
        .route("/api/v1/test-clocks", post(billing::test_clocks::create))
        .route("/api/v1/test-clocks/{id}", get(billing::test_clocks::get))
        .route(
            "/api/v1/test-clocks/{id}/advance",
            post(billing::test_clocks::advance),
        )
        .route("/api/v1/usage", post(usage::routes::report))
        .route("/api/v1/report/usage", post(usage::routes::report_kelviq))
        .route(
            "/api/v1/webhook-endpoints",
            post(webhooks::routes::create).get(webhooks::routes::list),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}",
            delete(webhooks::routes::delete),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}/deliveries",
            get(webhooks::routes::deliveries),
        )
        .route(
            "/v1/subscriptions",
            post(fourgeeks::create).get(fourgeeks::list),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(fourgeeks::get).delete(fourgeeks::cancel),
        )
        .route(
            "/api/v1/api-keys",
            post(api_keys::create).get(api_keys::list),
        )
        .route("/api/v1/api-keys/{id}", delete(api_keys::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ));
    Router::new()
        .merge(api)
        .route("/checkout/{session_id}", get(checkout::page::show))
        .route("/checkout/{session_id}/pay", post(checkout::page::pay))
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

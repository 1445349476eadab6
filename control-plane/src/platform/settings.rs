//! Settled configuration, as handlers and workers see it. A leaf.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of the URLs we hand out (checkout pages, pagination links), without a trailing `/`.
    pub public_url: String,
    /// Days after a failed renewal on which the charge is retried; after the last, the
    /// subscription is canceled.
    pub dunning_retry_days: Vec<u32>,
    pub webhook_retry_base: Duration,
    /// Hosts a `successUrl`/`cancelUrl` may point at; empty allows any http(s) host.
    pub redirect_hosts: Vec<String>,
    pub sync_heartbeat: Duration,
    /// Request bodies above this are refused with 413 before any handler runs.
    pub body_limit: usize,
    /// How long a stored idempotent answer is replayed.
    pub idempotency_ttl_secs: i64,
    /// How long a checkout session can be paid.
    pub checkout_ttl_secs: i64,
    /// How long a customer-portal link works, in seconds.
    pub portal_session_ttl_secs: i64,
    /// How long the change log keeps entries (edges further behind resync with a snapshot).
    pub change_log_retention_secs: i64,
    /// How long a reported usage event (and so its idempotency key) is kept at least; after
    /// that it goes once the billing period it fell in has closed.
    pub usage_event_retention_secs: i64,
    /// Let webhook endpoints point at loopback, private, link-local and similar addresses
    /// (local development and tests only: otherwise anyone with a key has a port scanner).
    pub allow_private_webhook_urls: bool,
    /// Webhook endpoints per mode.
    pub max_webhook_endpoints: usize,
    /// Consecutive failed deliveries after which an endpoint's circuit opens (it is disabled
    /// until re-enabled through the API).
    pub webhook_breaker_failures: u32,
    /// How long the payments worker's claim on a payment intent lasts, in seconds; after a
    /// crash, an intent is taken up again (and reconciled) once it runs out.
    pub payment_lease_secs: i64,
    /// SQLite: the write-ahead log size past which the writer truncates it between batches.
    pub sqlite_wal_limit_bytes: u64,
    /// JSON API requests a second per client address (twice that in a burst); 0: off.
    pub rate_limit_per_ip: u32,
    /// JSON API requests a second per credential (`Authorization` value); 0: off.
    pub rate_limit_per_key: u32,
    /// Where `/metrics` and `/readyz` are served instead of the public listener; `None`
    /// keeps them on the public listener.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// How long one snapshot to an edge may take in all; a slower edge is dropped (and
    /// reconnects), so no edge holds a read transaction and a snapshot slot for longer.
    pub snapshot_deadline: Duration,
    /// How long an edge waits for one of the two snapshot slots before its stream ends (it
    /// reconnects with backoff).
    pub snapshot_slot_wait: Duration,
    /// A fault to inject, for the crash tests (debug builds only): `payments-after-charge`
    /// aborts the process after the processor answered and before the settle;
    /// `snapshot-stall-once` stalls the first snapshot after its first frame.
    pub failpoint: Option<String>,
    /// Stripe, per mode; a mode without it uses the test cards (test) or declines (live).
    pub stripe_test: Option<StripeSettings>,
    pub stripe_live: Option<StripeSettings>,
    /// Stripe's API (`https://api.stripe.com`); tests point it at an emulator.
    pub stripe_api_base: String,
    /// Stripe.js (`https://js.stripe.com/v3/`).
    pub stripe_js_url: String,
}

/// One mode's Stripe keys. Debug output never shows them.
#[derive(Clone, Default)]
pub struct StripeSettings {
    pub secret_key: String,
    pub publishable_key: Option<String>,
    /// The webhook endpoint's signing secrets: the current one, and the previous one during
    /// a rotation.
    pub webhook_secrets: Vec<String>,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("webhook_secrets", &self.webhook_secrets.len())
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults for tests and tools; `main.rs` builds its own from flags.
    pub fn for_url(public_url: &str) -> Settings {
        Settings {
            public_url: public_url.trim_end_matches('/').to_owned(),
            dunning_retry_days: vec![3, 5, 7],
            webhook_retry_base: Duration::from_secs(5),
            redirect_hosts: Vec::new(),
            sync_heartbeat: Duration::from_secs(2),
            body_limit: 64 * 1024,
            idempotency_ttl_secs: 86_400,
            checkout_ttl_secs: 86_400,
            portal_session_ttl_secs: 3_600,
            change_log_retention_secs: 7 * 86_400,
            usage_event_retention_secs: 35 * 86_400,
            allow_private_webhook_urls: false,
            max_webhook_endpoints: 16,
            webhook_breaker_failures: 20,
            payment_lease_secs: 45,
            sqlite_wal_limit_bytes: crate::platform::db::DEFAULT_WAL_LIMIT_BYTES,
            rate_limit_per_ip: 1_000,
            rate_limit_per_key: 1_000,
            admin_listen: None,
            snapshot_deadline: Duration::from_secs(600),
            snapshot_slot_wait: Duration::from_secs(30),
            failpoint: None,
            stripe_test: None,
            stripe_live: None,
            stripe_api_base: "https://api.stripe.com".to_owned(),
            stripe_js_url: "https://js.stripe.com/v3/".to_owned(),
        }
    }
}

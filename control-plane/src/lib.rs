//! Tollgate's control plane: owns the catalog, customers, checkout and subscriptions, compiles
//! every customer's entitlements in the same transaction as the change, and streams them to
//! the edges.
//!
//! Domains (each a module that owns its routes, rules and rows):
//! * [`catalog`] — features, plans, prices, money and charge periods; the catalog file.
//! * [`customers`] — customers and customer tokens.
//! * [`checkout`] — checkout sessions, the hosted page, the test-mode payment provider.
//! * [`subscriptions`] — subscription rows, views and transitions.
//! * [`entitlements`] — compiling what a customer may use (SPEC §6).
//! * [`sync`] — the change log and the snapshot/delta stream to edges.
//! * [`auth`], [`api_keys`] — secret/publishable/edge keys, bootstrap, management.
//!
//! Plumbing: [`app`] (startup, router, shutdown), [`db`] (pool, migrations, the write path),
//! [`clock`], [`error`] (the one mapping to the error envelope), [`extract`] (JSON, query and
//! pagination), [`idempotency`], [`observe`] (health, metrics, tracing), [`openapi`].

pub mod api_keys;
pub mod app;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod checkout;
pub mod clock;
pub mod customers;
pub mod db;
pub mod entitlements;
pub mod error;
pub mod extract;
pub mod fourgeeks;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod subscriptions;
pub mod sync;
pub mod usage;
pub mod webhooks;
